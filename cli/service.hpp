// What `ufork hello` and `ufork run` share: the log sinks the flags ask for,
// daemon mode with its launcher and pidfile, and the "ready" line.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "ufork/arbiter.hpp"
#include "ufork/daemon.hpp"

namespace ufork::cli {

class service {
 public:
  // name: "ufork hello", for messages. paths: the command's own path
  // options, made absolute with the service's (a daemon works in /).
  service(const char* name, service_options& o, std::vector<std::string*> paths = {});

  // Runs body (which builds and runs the pool) as the flags say: detached
  // or not, with the pidfile; an exception is reported (to the launcher when
  // detached) and returns exit_runtime. Returns exit_usage for flags that
  // do not go together.
  int run(const std::function<int()>& body);

  // The pool's options from the flags: size, control socket, sinks,
  // capture of the arbiter's own output when detached. Throws
  // std::invalid_argument for a malformed --rlimit.
  void apply(options& pool) const;
  // on_worker_ready for the pool: once every first worker is ready, says so
  // (to the log, or to the launcher when detached). `a` is set before run().
  std::function<void(const worker_info&)> ready_hook(arbiter*& a);
  // Called once the pool has stopped: a launcher still waiting hears why.
  void stopped(int code);

  // hooks::reload_options for a pool started with --config (null without):
  // the file read again into the subcommand's options (O), the pool's
  // options from them, paths made absolute as at the start (against the
  // directory it started in); `finish` adds the subcommand's own (run: the
  // command). A setting of the command's own that changed (bind, log,
  // daemon, ...) is logged through `a` as taking a restart.
  template <class O>
  std::function<std::optional<options>()> reload_hook(const O& now, arbiter*& a,
                                                       std::function<void(const O&, options&)> finish = {}) {
    if (!now.reread) return {};
    return [this, &now, &a, finish]() -> std::optional<options> {
      O fresh;
      now.reread(fresh);
      options pool = fresh.pool;
      if (finish) finish(fresh, pool);
      return reloaded(std::move(pool), now.settings, fresh.settings, *a);
    };
  }

  // For a host with state of its own to keep right across daemon mode's
  // forks (Python's fork protocol): called before them, and in the daemon.
  std::function<void()> before_detach, after_detach;
  // Where the daemon works.
  std::string workdir = "/";

 private:
  options reloaded(options pool, const std::string& was, const std::string& is, arbiter& a) const;

  const char* name_;
  service_options& o_;
  std::vector<std::string*> paths_;
  std::optional<launcher> link_;
  std::optional<pidfile> pid_;
  std::string started_in_;  // the working directory at the start: relative paths are against it
  int ready_ = 0;
};

}  // namespace ufork::cli
