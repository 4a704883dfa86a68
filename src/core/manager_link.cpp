// The link to the service manager (manager_link.hpp).
#include "core/manager_link.hpp"

#include <fmt/format.h>

#include <cstdlib>

#include "sys/socket.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {

void manager_link::open(log_fn log) {
  const char* address = std::getenv("NOTIFY_SOCKET");
  if (!address || !*address) return;
  auto fd = sys::make_datagram_socket();
  if (!fd) throw error(fd.error(), "socket(NOTIFY_SOCKET)");
  fd_ = std::move(fd).value();
  address_ = address;
  log_ = std::move(log);
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* for_pid = std::getenv("WATCHDOG_PID");
  if (usec && (!for_pid || std::to_string(sys::own_pid()) == for_pid))
    if (long long us = std::atoll(usec); us > 0)
      watchdog_ = std::chrono::microseconds(us) / 2;  // twice per period, as sd_watchdog_enabled advises
}

void manager_link::tell(const std::string& text) {
  if (!fd_) return;
  if (auto ec = sys::send_notify(fd_.get(), address_, text))
    if (log_) log_(fmt::format("NOTIFY_SOCKET {}: {}", address_, ec.message()));
}

void manager_link::reloading(clock::time_point now) {
  auto usec = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  tell(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec));
  reloading_ = true;
}

std::optional<manager_link::clock::time_point> manager_link::next_beat() const {
  if (!fd_ || watchdog_ <= clock::duration::zero()) return std::nullopt;
  return next_beat_;
}

void manager_link::update(const view& v, clock::time_point now) {
  if (!fd_) return;
  std::string msg;
  if (!v.stopping && v.ready >= v.min_ready) {
    if (!ready_sent_)
      msg += fmt::format("READY=1\nMAINPID={}\n", sys::own_pid());
    else if (reloading_ && v.reload_done)
      msg += "READY=1\n";  // the reload is over, and the pool is ready again
    ready_sent_ = true;
    if (v.reload_done) reloading_ = false;
  }
  std::string status = fmt::format("{} of {} workers ready{}", v.ready, v.size, v.phase.empty() ? "" : "; " + v.phase);
  if (status != status_) msg += "STATUS=" + (status_ = status) + "\n";
  if (watchdog_ > clock::duration::zero() && now >= next_beat_) {
    if (v.ready >= v.min_ready) msg += "WATCHDOG=1\n";
    next_beat_ = now + watchdog_;
  }
  if (msg.empty()) return;
  msg.pop_back();
  tell(msg);
}

}  // namespace ufork
