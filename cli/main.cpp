// ufork: the command line. Subcommands: ctl, console (and hello, the HTTP
// example, when built with the HTTP helper).
#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace ufork::cli;
  CLI::App app{"ufork: pre-forks worker processes and keeps them running"};
  app.require_subcommand(1);

  std::string socket;
  std::vector<std::string> words;
  bool json = false;
  auto* ctl = app.add_subcommand("ctl", "send one command to a running arbiter's control socket");
  ctl->add_option("--socket,-s", socket, "the control socket")->required();
  ctl->add_flag("--json", json, "print the JSON answer");
  ctl->add_option("command", words, "the command and its arguments (try: help)")->required();
  ctl->allow_extras(false);
  ctl->prefix_command(false);

  std::string console_socket;
  auto* console = app.add_subcommand("console", "the ufork>> prompt of a running arbiter");
  console->add_option("--socket,-s", console_socket, "the control socket")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : exit_usage;
  }
  if (*ctl) return run_ctl(socket, words, json);
  if (*console) return run_console(console_socket);
  return exit_usage;
}
