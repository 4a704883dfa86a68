// scoreboard: one shared-memory cell per worker process, mapped before any
// fork, so a heartbeat is a store and reading it costs the arbiter no syscall.
// Never touches the filesystem (gunicorn's heartbeat file causes false
// timeouts on slow disks). The memory is a memfd, so that an in-place
// upgrade maps the same cells again after its exec.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sys/unique_fd.hpp"

namespace ufork::detail {

struct alignas(64) cell {  // one cache line: workers never share one
  std::atomic<std::int64_t> beat_ns{0};  // steady_clock of the last heartbeat; 0 = none
  std::atomic<std::uint64_t> requests{0};  // counted by the worker, summed by metrics
  std::atomic<std::uint64_t> request_limit{0};  // set before the fork: the worker asks to be recycled there
  // Set before the SIGTERM of a whole pool's stop: the worker is not the only
  // one stopping (worker::pool_stopping()).
  std::atomic<bool> pool_stopping{false};
  // Reforking (options::refork_after): the worker asks to become the mold
  // once its requests reach refork_at (0: never); the arbiter sets
  // become_mold before the SIGTERM that makes it one.
  std::atomic<std::uint64_t> refork_at{0};
  std::atomic<bool> become_mold{false};
  // Autoscaling (options::scale): requests the worker is in now
  // (worker::begin_request), and set by the arbiter when it stops looking:
  // the worker's next request wakes it (UFORK_BUSY=1), once.
  std::atomic<std::uint32_t> in_flight{0};
  std::atomic<bool> busy_wake{false};
  // Spreading a shared socket's connections (worker::show_connections):
  // the connections the worker has open, and whether it takes new ones.
  std::atomic<std::uint32_t> connections{0};
  std::atomic<bool> accepting{false};
  // Board-wide, kept in cell 0 alone: one past the highest cell ever
  // handed out, so that a worker reads the cells in use, not all 4,096. (A
  // header would move every cell, and an upgraded arbiter maps the cells
  // the old one laid out.)
  std::atomic<std::uint32_t> board_high{0};
};
static_assert(sizeof(cell) == 64);

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class scoreboard {
 public:
  // A new one, or (upgrade) the one in memfd `fd` (taken), every cell free
  // until adopt(). Throws ufork::error.
  explicit scoreboard(std::size_t cells, int fd = -1);
  ~scoreboard();
  scoreboard(const scoreboard&) = delete;
  scoreboard& operator=(const scoreboard&) = delete;

  // A zeroed cell, or nullptr when all are in use.
  cell* acquire() noexcept;
  void release(cell* c) noexcept;
  // Upgrade: the memfd, a cell's index, and the cell of an adopted worker
  // (in use again; nullptr for a bad or taken index).
  int fd() const noexcept { return fd_.get(); }
  std::size_t index(const cell* c) const noexcept { return static_cast<std::size_t>(c - cells_); }
  cell* adopt(std::size_t index) noexcept;
  // The first cell: a worker reads the others from it (board_high).
  cell* cells() const noexcept { return cells_; }

 private:
  cell* in_use(cell* c) noexcept;

  sys::unique_fd fd_;
  cell* cells_;
  std::size_t size_;
  std::vector<cell*> free_;
};

}  // namespace ufork::detail
