// `ufork hello`: uFork's example, a pre-forked server answering every request
// with "Hello, World! (from PID <pid>)".
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.hpp"
#include "ufork/daemon.hpp"
#include "ufork/error.hpp"
#include "ufork/http/server.hpp"

namespace ufork::cli {

namespace {

// The sinks the flags ask for; null for the default (the terminal).
std::shared_ptr<log_sink> make_sinks(const hello_options& o) {
  auto format = o.log_json ? log_format::json : log_format::plain;
  std::vector<std::shared_ptr<log_sink>> sinks;
  if (!o.log.empty()) sinks.push_back(make_file_sink({o.log, o.log_max_size, o.log_files, format}));
  if (o.syslog) sinks.push_back(make_syslog_sink("ufork", format));
  if (sinks.empty()) return nullptr;
  return sinks.size() == 1 ? sinks.front() : make_tee_sink(std::move(sinks));
}

int serve_hello(const hello_options& o, std::optional<launcher>& link, std::optional<pidfile>& pid) {
  http::server_options so;
  so.pool.workers = o.workers;
  so.pool.timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_seconds * 1000));
  so.pool.control_path = o.control;
  so.pool.sink = make_sinks(o);
  so.reuseport = o.reuseport;
  // Its workers need nothing but the listening socket: not even an fd this
  // command inherited from the shell that started it.
  so.pool.strict_fds = true;
  if (!o.pidfile.empty()) pid.emplace(pidfile::acquire(o.pidfile));
  int ready = 0;
  // Ready when every first worker is: then the server answers.
  arbiter* pool = nullptr;
  so.configure = [&](arbiter& a) { pool = &a; };
  so.hooks.on_worker_ready = [&](const worker_info&) {
    if (++ready != o.workers) return;
    std::string line = "ufork hello: ready, " + std::to_string(o.workers) + " workers";
    if (!link) return pool->log(line);  // through the sink: above the prompt
    std::cout << line << std::endl;     // captured into the daemon's log
    link->ready();
  };
  if (link) {
    so.pool.capture_output = true;
    so.pool.console = false;
  }
  auto hello = [](const http::request& req) {
    // Made on the first request, in the worker: its own pid.
    static const std::string body = "Hello, World! (from PID " + std::to_string(::getpid()) + ")\n";
    http::response res{boost::beast::http::status::ok, req.version()};
    res.set(boost::beast::http::field::content_type, "text/plain");
    res.body() = body;
    return res;
  };
  int code = http::serve(hello, o.bind, so);
  if (link && link->fd() >= 0) link->failed("the pool stopped before it was ready (exit " + std::to_string(code) + ")");
  return code;
}

}  // namespace

int run_hello(hello_options o) {
  if (o.daemon && o.log.empty() && !o.syslog) {
    std::cerr << "ufork hello: --daemon needs --log PATH or --syslog (a daemon has no terminal)\n";
    return exit_usage;
  }
  // The daemon works in /: paths given relative to here must not move.
  for (auto* path : {&o.log, &o.pidfile, &o.control})
    if (!path->empty()) *path = std::filesystem::absolute(*path).string();
  std::optional<launcher> link;
  if (o.daemon) link.emplace(daemonize());
  std::optional<pidfile> pid;
  try {
    return serve_hello(o, link, pid);
  } catch (const std::exception& e) {
    if (link && link->fd() >= 0) {
      link->failed(e.what());
    } else {
      std::cerr << "ufork hello: " << e.what() << "\n";
    }
    return exit_runtime;
  }
}

}  // namespace ufork::cli
