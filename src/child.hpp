// child_setup: everything a new worker needs, computed by the arbiter before
// fork so that the child allocates nothing it could do without, and the one
// function the child runs. It never returns into the arbiter's stack.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <utility>
#include <vector>

#include "ufork/arbiter.hpp"

namespace ufork::detail {

struct cell;

struct child_setup {
  int slot;
  unsigned generation;
  cell* beat_cell;
  int notify_fd;               // kept: READY=1 goes here
  int out_fd, err_fd;          // become 1 and 2
  // The arbiter's own fds as [first, last] runs: each closed with one
  // close_range, so a child of a 1,000-worker pool does not make 3,000 calls.
  const std::vector<std::pair<unsigned, unsigned>>* close_runs;
  pid_t arbiter_pid;
  rlimit nofile;               // the limit before the arbiter raised it
  std::chrono::milliseconds heartbeat_interval;
  const hooks* callbacks;

  [[noreturn]] void run() noexcept;
};

}  // namespace ufork::detail
