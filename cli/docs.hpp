// `ufork _docs DIR` (hidden; the build runs it): the man pages, ufork(1) and
// ufork-SUBCOMMAND(1), and the bash completion (ufork.bash), written from
// the parser itself, so that a flag, its help and its man line cannot
// disagree.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace ufork::cli {

// 0, or 1 with a line for each file it could not write.
int write_docs(const CLI::App& app, const std::string& dir);

}  // namespace ufork::cli
