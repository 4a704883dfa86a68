#include "service.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <iostream>

#include "core/exit_status.hpp"
#include "core/option_table.hpp"
#include "sys/socket.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork::cli {
service::service(const char* name, service_options& o, std::vector<std::string*> paths)
    : name_(name), o_(o), paths_(std::move(paths)) {
  for (auto* path : {&o.log, &o.pidfile, &o.pool.control_path}) paths_.push_back(path);
}

void service::apply(options& pool) const {
  pool = o_.pool;
  pool.notify_manager = true;  // READY=1 and friends when systemd started us with NOTIFY_SOCKET
  auto format = o_.log_json ? log_format::json : log_format::plain;
  std::vector<std::shared_ptr<log_sink>> sinks;
  if (!o_.log.empty()) {
    sinks.push_back(make_file_sink({o_.log, o_.log_max_size, o_.log_files, format}));
    // In the foreground, the terminal says where the lines went (it shows nothing more).
    if (!link_) std::cerr << name_ << ": logging to " << o_.log << (o_.syslog ? " and syslog" : "") << "\n";
  }
  // --syslog is a sink too: in the foreground without --log the terminal
  // keeps every line. A syslog that cannot be reached is said once, here.
  if (o_.syslog && o_.log.empty() && !link_) sinks.push_back(make_fd_sink(STDOUT_FILENO));
  if (o_.syslog) {
    if (auto ec = sys::syslog_reachable())
      std::cerr << name_ << ": syslog cannot be reached (/dev/log: " << ec.message() << "); "
                << "the lines go to " << (o_.log.empty() ? std::string("the terminal") : o_.log) << " only\n";
    else
      sinks.push_back(make_syslog_sink("ufork", format));
  }
  if (!sinks.empty()) pool.sink = sinks.size() == 1 ? sinks.front() : make_tee_sink(std::move(sinks));
  if (link_) {
    pool.capture_output = true;
    pool.console = false;
  }
}

std::function<void(const worker_info&)> service::ready_hook(arbiter*& a) {
  return [this, &a](const worker_info&) {
    int size = o_.pool.scale.max_workers ? o_.pool.scale.min_workers : o_.pool.workers;  // the size it starts at
    if (++ready_ != size) return;
    std::string line = std::string(name_) + ": ready, " + workers_count(static_cast<std::size_t>(size));
    if (!link_) return a->log(line);  // through the sink: above the prompt
    std::cout << line << std::endl;   // captured into the daemon's log
    link_->ready();
  };
}

void service::stopped(int code) {
  if (link_ && link_->fd() >= 0) link_->failed("the pool stopped before it was ready (exit " + std::to_string(code) + ")");
}

int service::run(const std::function<int()>& body) {
  // The pool's options as the library will take them: what it would refuse
  // is a usage error, said now.
  try {
    validate(o_.pool);
  } catch (const ::ufork::error& e) {
    // "ufork: WHAT: Invalid argument" (throw_invalid): WHAT.
    std::string what = e.what(), tail = ": " + e.code().message();
    if (what.ends_with(tail)) what.resize(what.size() - tail.size());
    std::cerr << name_ << ": " << (what.starts_with("ufork: ") ? what.substr(7) : what) << "\n";
    return exit_usage;
  }
  if (o_.daemon && o_.log.empty() && !o_.syslog) {
    std::cerr << name_ << ": --daemon needs --log PATH or --syslog (a daemon has no terminal)\n";
    return exit_usage;
  }
  if (o_.daemon && o_.log.empty())
    if (auto ec = sys::syslog_reachable()) {
      std::cerr << name_ << ": --syslog: /dev/log cannot be reached (" << ec.message()
                << "): the daemon would log nothing (add --log PATH)\n";
      return exit_runtime;
    }
  // The daemon works in /: paths given relative to here must not move.
  started_in_ = std::filesystem::current_path().string();
  for (auto* path : paths_)
    if (!path->empty()) *path = std::filesystem::absolute(*path).string();
  if (o_.daemon) {
    if (before_detach) before_detach();
    link_.emplace(daemonize({.workdir = workdir}));
    if (after_detach) after_detach();
  }
  try {
    if (!o_.pidfile.empty()) pid_.emplace(pidfile::acquire(o_.pidfile));
    int code = body();
    stopped(code);
    return code;
  } catch (const std::exception& e) {
    if (link_ && link_->fd() >= 0)
      link_->failed(e.what());
    else
      std::cerr << name_ << ": " << e.what() << "\n";
    return exit_runtime;
  }
}

options service::reloaded(options pool, const std::string& was, const std::string& is, arbiter& a) const {
  auto absolute = [this](std::string& p) {
    if (!p.empty() && p.front() != '/') p = (std::filesystem::path(started_in_) / p).string();
  };
  absolute(pool.control_path);
  absolute(pool.exec.chdir);
  // `key = value  # source` lines: the keys whose value changed, which the
  // pool's options do not hold (it says itself what it cannot apply).
  auto values = [](const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
      if (auto eq = line.find(" = "); eq != std::string::npos && line.front() != '#')
        out[line.substr(0, eq)] = line.substr(eq + 3, line.rfind("  # ") - eq - 3);
    return out;
  };
  auto before = values(was), after = values(is);
  std::string changed;
  for (const auto& [key, value] : after)
    if (before[key] != value && !find_option(key) && key != "command")
      changed += (changed.empty() ? "" : ", ") + key;
  if (!changed.empty()) a.log(fmt::format("reload: {} changed, which takes a restart: not applied", changed));
  return pool;
}

}  // namespace ufork::cli
