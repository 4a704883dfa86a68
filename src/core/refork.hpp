// Reforking (options::refork_after), the arbiter's side: which threshold a
// new worker counts toward, the candidate while it stops serving, the mold
// once it has handed over its channel (core/mold.hpp), and each fork asked
// of it. What the pool does around it (when to promote, the log, the
// replacement of the others) is in core/pool_refork.cpp. Internal.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/mold.hpp"
#include "core/spawn.hpp"
#include "core/worker_table.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace ufork {

class refork {
 public:
  explicit refork(std::vector<std::uint64_t> thresholds) : thresholds_(std::move(thresholds)) {}

  bool on() const noexcept { return !thresholds_.empty(); }
  // What a new worker's cell gets as refork_at: the next mold's threshold,
  // or 0 once none is left.
  std::uint64_t next_threshold() const noexcept { return next_ < thresholds_.size() ? thresholds_[next_] : 0; }
  // A worker past its threshold may become the next mold: one is left, and
  // no generation is under way (a candidate, or the others being replaced).
  bool may_promote() const noexcept { return next_threshold() != 0 && candidate_ == 0 && !under_way_; }
  // The mold's generation: 1 for the first; 0 before it.
  unsigned generation() const noexcept { return generation_; }

  // Worker `pid` is asked to become the next mold; pss: the pool's now.
  void promoted(pid_t pid, std::uint64_t pss) noexcept;
  pid_t candidate() const noexcept { return candidate_; }
  void candidate_lost() noexcept { candidate_ = 0, under_way_ = false; }
  // The candidate handed over its channel: it is the mold (its record, out
  // of the worker table: pidfd, output; cell: its scoreboard index).
  void adopt(std::unique_ptr<process> p, sys::unique_fd channel, std::size_t cell) noexcept;
  process* mold() noexcept { return mold_.get(); }
  const process* mold() const noexcept { return mold_.get(); }
  // The mold let go of: its record, to reap and drain. Null if none.
  std::unique_ptr<process> release() noexcept;
  // The generation's workers are all forked (or it was abandoned): the
  // pool's PSS at the promotion, to compare with; the next may start.
  std::uint64_t finished() noexcept { return std::exchange(under_way_, false) ? pss_before_ : 0; }

  // Forks a worker from the mold as rq says, onto the pipes' write ends
  // out and err, its scoreboard cell at index `cell`: a child of the
  // arbiter (CLONE_PARENT), with its pidfd and its setup-error pipe. Waits
  // at most `timeout` for the mold's answer (timed_out: hung).
  sys::result<detail::spawned> fork(detail::mold_request rq, std::size_t cell, int out, int err,
                                    std::chrono::milliseconds timeout);

 private:
  std::vector<std::uint64_t> thresholds_;
  std::size_t next_ = 0;
  unsigned generation_ = 0;
  pid_t candidate_ = 0;
  bool under_way_ = false;
  std::uint64_t pss_before_ = 0;
  std::unique_ptr<process> mold_;
  sys::unique_fd channel_;
  std::size_t cell_ = 0;
};

}  // namespace ufork
