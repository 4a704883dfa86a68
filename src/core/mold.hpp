// The mold (options::refork_after): a worker that has stopped serving and
// forks the pool's next workers, so that what it loaded and warmed is
// shared by them. The arbiter's side is core/refork.hpp; between the two,
// the mold's channel, a SOCK_SEQPACKET socket pair whose mold end the worker
// hands the arbiter on its notify socket ("UFORK_MOLD=ready", SCM_RIGHTS).
// Each request carries the new worker's stdout, stderr and setup-error
// pipes' write ends; each reply its pidfd. Internal.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "core/spawn.hpp"

namespace ufork::detail {

struct mold_request {
  int slot;
  unsigned generation;
  std::ptrdiff_t cell;  // the new worker's scoreboard cell, counted from the mold's own
  int cpu;              // -1: not pinned
  char title[200];      // its process title, NUL-terminated
};

struct mold_reply {
  pid_t pid;  // 0: no fork
  int err;    // then why (an errno)
};

// Forks the plan's worker as a child of this process's parent (the
// arbiter), not of this one (CLONE_PARENT): error_fd is the setup-error
// pipe's write end, whose read end the arbiter holds.
sys::result<spawned> spawn_sibling(const spawn_plan& plan, int error_fd);

// In the worker once post_fork has returned and the arbiter asked it to
// become the mold (run_worker): hands the arbiter its channel, then forks
// what the arbiter asks until the channel closes. A worker that cannot be
// one (more than one thread) says why on stderr and exits 0.
[[noreturn]] void run_mold(const spawn_plan& own, int stop_fd) noexcept;

}  // namespace ufork::detail
