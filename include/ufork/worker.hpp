// The worker side: what the caller's code sees inside a forked worker.
// Every function here is for the worker process only.
#pragma once

#include "ufork/export.hpp"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ufork {

namespace detail {
struct child_setup;
struct cell;
}

class UFORK_API worker {
 public:
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // The slot, 0..size-1, stable across restarts.
  int id() const noexcept { return id_; }
  // Higher on each fork of the same slot; the first is 1.
  unsigned generation() const noexcept { return generation_; }

  // Tells the arbiter "alive": a store to shared memory, no syscall, safe from
  // any thread. The first heartbeat also makes a starting worker ready.
  void heartbeat() noexcept;
  // starting -> ready, without waiting for the first heartbeat.
  void ready() noexcept;
  // Adds to this worker's request counter (shown by `workers` and
  // `metrics`); a store to shared memory. Past options::recycle.max_requests
  // it also asks the arbiter, once, to replace this worker; past a
  // threshold of options::refork_after, to make it the mold.
  void count_requests(std::uint64_t n = 1) noexcept;
  // A request begins and ends (the HTTP helper calls these around each
  // handler): a pool that sizes itself (options::scale) counts the workers
  // in one. A store to shared memory; the first after the pool has been idle
  // also wakes the arbiter. Safe from any thread; each begin needs its end.
  void begin_request() noexcept;
  void end_request() noexcept;
  // Spreading the connections of a listening socket the workers share (the
  // HTTP helper): the connections this worker has open, shown to the
  // others (a store to shared memory), or -1 once it takes no new ones.
  void show_connections(int open) noexcept;
  // The connections the pool's accepting workers hold (this one's among
  // them), and how many workers those are: read from shared memory.
  struct pool_connections {
    std::uint64_t held = 0;
    std::uint32_t workers = 0;
  };
  pool_connections connections_held() const noexcept;
  // True once the arbiter asked this worker to stop (SIGTERM).
  bool stopping() const noexcept;
  // True once the whole pool stops, not this worker alone (as a recycle, a
  // reload, a resize or a hung worker's successor stops one): a server on a
  // socket the workers share keeps taking connections for a moment only
  // then; alone, it leaves them to the others at once. Set before the SIGTERM.
  bool pool_stopping() const noexcept;
  // True once past options::recycle.max_requests: the arbiter is asked to
  // replace this worker (a server on a shared socket takes no new connection).
  bool recycling() const noexcept { return recycle_asked_.load(std::memory_order_relaxed); }
  // An eventfd that becomes readable when the worker is asked to stop, for
  // the program's own event loop. Owned by the library; do not close it.
  int stop_fd() const noexcept { return stop_fd_; }
  // How often the built-in loop beats: a quarter of options::timeout.
  std::chrono::milliseconds heartbeat_interval() const noexcept { return interval_; }

 private:
  friend struct detail::child_setup;
  worker() = default;

  int id_ = -1;
  unsigned generation_ = 0;
  std::atomic<std::int64_t>* beat_ = nullptr;  // the scoreboard cell's fields
  std::atomic<std::uint64_t>* requests_ = nullptr;
  const std::atomic<bool>* pool_stopping_ = nullptr;
  const std::atomic<std::uint64_t>* refork_at_ = nullptr;
  std::atomic<std::uint32_t>* in_flight_ = nullptr;
  std::atomic<bool>* busy_wake_ = nullptr;
  std::uint64_t request_limit_ = 0;  // options::recycle.max_requests, with its jitter
  std::atomic<bool> recycle_asked_{false};
  std::atomic<bool> mold_asked_{false};
  int notify_fd_ = -1;
  int stop_fd_ = -1;
  std::atomic<bool> ready_sent_{false};
  std::chrono::milliseconds interval_{};
  // Last: the inline accessors above read the same offsets as before.
  std::atomic<std::uint32_t>* connections_ = nullptr;
  std::atomic<bool>* accepting_ = nullptr;
  const detail::cell* board_ = nullptr;  // the pool's cells, from the first
};

// The worker this process is, or nullptr in the arbiter (uFork's cur_worker_id).
UFORK_API worker* current_worker() noexcept;

}  // namespace ufork
