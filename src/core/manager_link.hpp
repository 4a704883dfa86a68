// The link to the service manager above the arbiter (systemd's
// NOTIFY_SOCKET, options::notify_manager, under run()): READY=1 when the
// pool first is, and again after a reload; STATUS= when the summary
// changes; RELOADING=1 and STOPPING=1; WATCHDOG=1 when due while enough
// workers are ready, so that too few let the manager's watchdog fire. The
// workers never see NOTIFY_SOCKET (spawn.cpp). Internal.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "sys/unique_fd.hpp"

namespace ufork {

class manager_link {
 public:
  using clock = std::chrono::steady_clock;
  using log_fn = std::function<void(const std::string&)>;

  // From NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (which, when set,
  // must be this process); nothing without NOTIFY_SOCKET. A failed send is
  // said through log. Throws ufork::error if no socket can be made.
  void open(log_fn log);
  bool is_open() const noexcept { return static_cast<bool>(fd_); }

  // What the pool looks like after a turn of its loop.
  struct view {
    int ready = 0, size = 0, min_ready = 1;
    bool stopping = false;
    bool reload_done = true;  // no reload's slot waits, no successor starts
    std::string phase;        // "" while running, else "draining", "stopping", ...
  };
  void update(const view& v, clock::time_point now);
  void reloading(clock::time_point now);  // RELOADING=1, READY=1 again once it is done
  void stopping() { tell("STOPPING=1"); }
  // When WATCHDOG=1 is next due; nullopt: the manager asked for none.
  std::optional<clock::time_point> next_beat() const;

 private:
  void tell(const std::string& text);

  sys::unique_fd fd_;
  std::string address_;
  log_fn log_;
  clock::duration watchdog_{};  // WATCHDOG=1 this often; 0: not asked
  clock::time_point next_beat_{};
  bool ready_sent_ = false, reloading_ = false;
  std::string status_;
};

}  // namespace ufork
