#include "service.hpp"

#include <filesystem>
#include <iostream>

namespace ufork::cli {

service::service(const char* name, service_options& o, std::vector<std::string*> paths)
    : name_(name), o_(o), paths_(std::move(paths)) {
  for (auto* path : {&o.log, &o.pidfile, &o.control}) paths_.push_back(path);
}

void service::apply(options& pool) const {
  pool.workers = o_.workers;
  pool.control_path = o_.control;
  pool.min_ready = o_.min_ready;
  pool.drain_delay = std::chrono::milliseconds(static_cast<long>(o_.drain_delay_seconds * 1000));
  pool.subreaper = o_.subreaper;
  pool.user = o_.user;
  pool.group = o_.group;
  pool.notify_manager = true;
  pool.recycle.max_rss = o_.max_rss_mib << 20;
  pool.recycle.max_fds_percent = o_.max_fds_percent;
  pool.recycle.max_requests = o_.max_requests;
  pool.recycle.max_requests_jitter = o_.max_requests_jitter;
  pool.recycle.max_lifetime = std::chrono::milliseconds(static_cast<long>(o_.max_lifetime_seconds * 1000));
  pool.recycle.max_lifetime_jitter = std::chrono::milliseconds(static_cast<long>(o_.max_lifetime_jitter_seconds * 1000));  // READY=1 and friends when systemd started us with NOTIFY_SOCKET
  auto format = o_.log_json ? log_format::json : log_format::plain;
  std::vector<std::shared_ptr<log_sink>> sinks;
  if (!o_.log.empty()) sinks.push_back(make_file_sink({o_.log, o_.log_max_size, o_.log_files, format}));
  if (o_.syslog) sinks.push_back(make_syslog_sink("ufork", format));
  if (!sinks.empty()) pool.sink = sinks.size() == 1 ? sinks.front() : make_tee_sink(std::move(sinks));
  if (link_) {
    pool.capture_output = true;
    pool.console = false;
  }
}

std::function<void(const worker_info&)> service::ready_hook(arbiter*& a) {
  return [this, &a](const worker_info&) {
    if (++ready_ != o_.workers) return;
    std::string line = std::string(name_) + ": ready, " + std::to_string(o_.workers) + " workers";
    if (!link_) return a->log(line);  // through the sink: above the prompt
    std::cout << line << std::endl;   // captured into the daemon's log
    link_->ready();
  };
}

void service::stopped(int code) {
  if (link_ && link_->fd() >= 0) link_->failed("the pool stopped before it was ready (exit " + std::to_string(code) + ")");
}

int service::run(const std::function<int()>& body) {
  if (o_.daemon && o_.log.empty() && !o_.syslog) {
    std::cerr << name_ << ": --daemon needs --log PATH or --syslog (a daemon has no terminal)\n";
    return exit_usage;
  }
  // The daemon works in /: paths given relative to here must not move.
  for (auto* path : paths_)
    if (!path->empty()) *path = std::filesystem::absolute(*path).string();
  if (o_.daemon) link_.emplace(daemonize());
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

}  // namespace ufork::cli
