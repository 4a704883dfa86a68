// reactor: one epoll set, a callback per fd, and one timerfd armed for a
// single absolute deadline. It knows nothing of workers or signals' meaning.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "sys/unique_fd.hpp"

namespace ufork {

class reactor {
 public:
  using clock = std::chrono::steady_clock;
  using handler = std::function<void(std::uint32_t events)>;
  // Names a registration; a stale event for a removed one is dropped even if
  // its fd number has been reused meanwhile.
  using token = std::uint64_t;

  reactor();  // throws ufork::error

  // Watches fd (not owned) for events (EPOLLIN, ...), level-triggered.
  token add(int fd, std::uint32_t events, handler h);
  void remove(token t) noexcept;
  // Changes the events a registration waits for.
  void modify(token t, std::uint32_t events);

  // The one deadline: the loop wakes up at `at`, or never for time_point{}.
  void arm(std::optional<clock::time_point> at);

  // Waits for events (or the deadline) and runs their handlers. Returns the
  // number of events handled, the timer included.
  int run_once();

 private:
  struct entry {
    int fd;
    handler fn;
  };
  sys::unique_fd epoll_, timer_;
  clock::time_point armed_{};
  token next_ = 1;
  std::unordered_map<token, std::unique_ptr<entry>> entries_;
  // Entries removed during a dispatch, kept alive until it ends: a handler
  // may remove itself while it runs.
  std::vector<std::unique_ptr<entry>> removed_;
};

}  // namespace ufork
