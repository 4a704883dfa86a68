// `python3 -m ufork ARGS`: the ufork command's parser in this interpreter,
// which serves its wsgi subcommand (python/src/cli.cpp).
#pragma once

#include <string>
#include <vector>

namespace ufork::python {

// args: as sys.argv would have them, "ufork" first. Returns the exit code.
int main(const std::vector<std::string>& args);

}  // namespace ufork::python
