// `ufork run -- CMD`: the pool's supervision for a program in any language.
// Each worker is CMD, exec'd after the fork, given the --bind sockets the
// systemd way (LISTEN_FDS) and, with --notify, heard through sd_notify.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "net/listener.hpp"
#include "listen.hpp"
#include "service.hpp"
#include "sys/process.hpp"

namespace ufork::cli {
namespace {

// As a shell: a command that cannot be found is one line and 127, one that
// is not executable 126, before any fork. (One that goes away later, while
// the pool runs, is a failed start of its worker, under the restart policy.)
int check_command(const std::string& name, const std::string& chdir) {
  std::filesystem::path path = name;
  if (name.find('/') == std::string::npos) {
    path = sys::find_in_path(name);
    if (path.empty()) {
      std::cerr << "ufork run: " << name << ": command not found (in PATH)\n";
      return 127;
    }
  } else if (path.is_relative() && !chdir.empty()) {
    path = std::filesystem::path(chdir) / path;  // the workers exec it from there
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    std::cerr << "ufork run: " << path.string() << ": No such file or directory\n";
    return 127;
  }
  if (!sys::executable(path)) {
    std::cerr << "ufork run: " << path.string() << ": not an executable file (Permission denied)\n";
    return 126;
  }
  return 0;
}

}  // namespace

int run_program(run_options o) {
  if (o.command.empty()) {
    std::cerr << "ufork run: no program to run (ufork run [OPTIONS] -- CMD [ARGS...])\n";
    return exit_usage;
  }
  if (int code = check_command(o.command[0], o.pool.exec.chdir)) return code;
  o.pool.exec.argv = o.command;  // before the service checks the options: --notify, --env and the like need it
  std::vector<bind_spec> specs;
  try {
    for (std::size_t i = 0; i < o.binds.size(); ++i) specs.push_back(parse_bind(o.binds[i], static_cast<int>(i)));
  } catch (const std::exception& e) {
    std::cerr << "ufork run: " << e.what() << "\n";
    return exit_usage;
  }
  service svc("ufork run", o, {&o.pool.exec.chdir});
  return svc.run([&] {
    listeners bound(specs);  // in the arbiter, before any fork
    options pool;
    svc.apply(pool);
    pool.exec.listen_fds = bound.fds();
    pool.exec.listen_names = bound.names();
    arbiter* self = nullptr;
    hooks h;
    h.on_worker_ready = svc.ready_hook(self);
    h.reload_options = svc.reload_hook<run_options>(o, self, [](const run_options& fresh, options& next) {
      next.exec.argv = fresh.command;
    });
    arbiter a(pool, h);
    self = &a;
    std::string line = "ufork run:";
    for (const auto& word : o.command) line += " " + word;
    for (const auto& address : bound.addresses()) line += "; listening on " + address + net::every_interface_note(address);
    a.log(line);
    return a.run();
  });
}

}  // namespace ufork::cli
