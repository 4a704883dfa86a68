#include "service.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <iostream>

#include "core/exit_status.hpp"
#include "sys/process.hpp"

namespace ufork::cli {
namespace {

// "core=0", "nofile=4096:65536", "as=unlimited".
resource_limit parse_rlimit(const std::string& text) {
  static const std::pair<const char*, int> names[] = {
      {"core", RLIMIT_CORE}, {"nofile", RLIMIT_NOFILE}, {"as", RLIMIT_AS},       {"nproc", RLIMIT_NPROC},
      {"data", RLIMIT_DATA}, {"stack", RLIMIT_STACK},   {"fsize", RLIMIT_FSIZE}, {"memlock", RLIMIT_MEMLOCK},
      {"cpu", RLIMIT_CPU}};
  auto bad = [&](const std::string& why) { throw std::invalid_argument("--rlimit " + text + ": " + why); };
  auto eq = text.find('=');
  if (eq == std::string::npos) bad("expected NAME=SOFT[:HARD]");
  std::string name = text.substr(0, eq), values = text.substr(eq + 1);
  int resource = -1;
  for (const auto& [n, r] : names)
    if (name == n) resource = r;
  if (resource < 0) bad("unknown limit '" + name + "' (core, nofile, as, nproc, data, stack, fsize, memlock, cpu)");
  auto number = [&](const std::string& v) -> std::uint64_t {
    if (v == "unlimited" || v == "infinity") return RLIM_INFINITY;
    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) bad("'" + v + "' is not a number");
    return std::stoull(v);
  };
  auto colon = values.find(':');
  std::uint64_t soft = number(values.substr(0, colon));
  std::uint64_t hard = colon == std::string::npos ? soft : number(values.substr(colon + 1));
  if (soft > hard) bad("the soft limit is above the hard one");
  return {resource, soft, hard};
}

}  // namespace

service::service(const char* name, service_options& o, std::vector<std::string*> paths)
    : name_(name), o_(o), paths_(std::move(paths)) {
  for (auto* path : {&o.log, &o.pidfile, &o.control}) paths_.push_back(path);
}

void service::apply(options& pool) const {
  pool.workers = o_.workers;
  pool.allow_empty = o_.allow_empty;
  pool.control_path = o_.control;
  pool.metrics_address = o_.metrics;
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
  pool.recycle.max_lifetime_jitter = std::chrono::milliseconds(static_cast<long>(o_.max_lifetime_jitter_seconds * 1000));
  pool.recycle.at_once = o_.recycle_at_once;
  if (o_.max_starting > 0) pool.max_starting = o_.max_starting;
  pool.pin_cpus = o_.pin_cpus;
  pool.nice = o_.nice;
  for (const auto& r : o_.rlimits) pool.rlimits.push_back(parse_rlimit(r));  // READY=1 and friends when systemd started us with NOTIFY_SOCKET
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
    if (++ready_ != o_.workers) return;
    std::string line = std::string(name_) + ": ready, " + workers_count(static_cast<std::size_t>(o_.workers));
    if (!link_) return a->log(line);  // through the sink: above the prompt
    std::cout << line << std::endl;   // captured into the daemon's log
    link_->ready();
  };
}

void service::stopped(int code) {
  if (link_ && link_->fd() >= 0) link_->failed("the pool stopped before it was ready (exit " + std::to_string(code) + ")");
}

int service::run(const std::function<int()>& body) {
  try {
    for (const auto& r : o_.rlimits) (void)parse_rlimit(r);
  } catch (const std::invalid_argument& e) {
    std::cerr << name_ << ": " << e.what() << "\n";
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
