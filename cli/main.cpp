// ufork: the command line. Subcommands: run, ctl, console, top, hello (the
// HTTP example), and wsgi and asgi, which the Python module serves: their
// flags are checked here (the same parser), then python3 runs `-m ufork`
// with them.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "commands.hpp"

namespace {

namespace fs = std::filesystem;

// python3 -m ufork ARGS: the module beside this ufork in its build tree
// (build/cli/ufork, build/python), else wherever python3 finds it (an
// installed one, under dist-packages).
int exec_python(const ufork::cli::app_options& o, int argc, char** argv) {
  const char* name = o.asgi ? "ufork asgi" : "ufork wsgi";
#ifdef UFORK_PYTHON3
  std::error_code ec;
  fs::path built = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / "python";
  if (!ec && fs::exists(built / "ufork" / "__init__.py")) {
    const char* old = std::getenv("PYTHONPATH");  // NOLINT(concurrency-mt-unsafe): one thread, before exec
    std::string path = built.string() + (old && *old ? std::string(":") + old : "");
    ::setenv("PYTHONPATH", path.c_str(), 1);  // NOLINT(concurrency-mt-unsafe): the same
  }
  std::vector<char*> args{const_cast<char*>(UFORK_PYTHON3), const_cast<char*>("-m"), const_cast<char*>("ufork")};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  ::execv(UFORK_PYTHON3, args.data());
  std::cerr << name << ": cannot run " << UFORK_PYTHON3 << ": " << std::generic_category().message(errno) << "\n";
  return ufork::cli::exit_runtime;
#else
  (void)argc, (void)argv;
  std::cerr << name << ": this ufork was built without its Python module (pybind11, python3-dev)\n";
  return ufork::cli::exit_runtime;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ufork::cli;
  try {
    runners all{run_hello, run_program, exec_python, run_ctl, run_follow, run_top, run_console};
    return parse_and_run(argc, argv, all);
  } catch (const std::exception& e) {  // out of memory, or a bug: one line, not a core dump
    std::cerr << "ufork: " << e.what() << '\n';
    return exit_runtime;
  }
}
