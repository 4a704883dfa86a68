// The spawn unit: the only code between fork() and the program (post_fork
// now; exec later). The arbiter computes a spawn_plan before the fork, so
// that the child allocates nothing before the program runs. The child's
// setup is async-signal-safe (a host of start() may have other threads),
// but for closelog() when a syslog sink exists; a step that fails there is
// written to an error pipe before the child exits 71, and the arbiter reads
// it when the worker exits (libuv's process.c does this for exec).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "sys/sys.hpp"
#include "ufork/arbiter.hpp"

namespace ufork::detail {

struct cell;

using fd_runs = std::vector<std::pair<unsigned, unsigned>>;

struct spawn_plan {
  int slot;
  unsigned generation;
  cell* beat_cell;
  int notify_fd;               // kept: READY=1 goes here
  int out_fd, err_fd;          // become 1 and 2
  // The fds to close as [first, last] runs, each with one close_range (a
  // child of a 1,000-worker pool does not make 3,000 calls).
  const fd_runs* close_runs;
  bool close_syslog;
  pid_t arbiter_pid;
  rlimit nofile;               // the limit before the arbiter raised it
  const char* oom_score_adj;   // written to /proc/self/oom_score_adj; null: left
  std::chrono::milliseconds heartbeat_interval;
  const hooks* callbacks;
};

// Sorted fds as runs, 0-2 left out; and every fd from 3 up but `keep`.
fd_runs runs_of(std::vector<int> fds);
fd_runs all_but(std::vector<int> keep);

struct spawned {
  pid_t pid = 0;
  sys::unique_fd pidfd;
  sys::unique_fd setup_errors;  // the error pipe's read end, non-blocking
};

// Forks a worker that runs the plan. Fails for pipe2, fork or pidfd_open.
sys::result<spawned> spawn(const spawn_plan& plan);

// What the child's setup wrote before it exited ("setup failed: eventfd:
// Too many open files"); empty if nothing.
std::string read_setup_error(int fd);

// worker.cpp: the handlers every worker gets (SIGTERM sets the stop flag and
// stop_fd, SIGABRT writes the stack, SIGINT ignored, the rest default), and
// the worker itself once set up. Neither returns an error.
void install_worker_signals(int stop_fd) noexcept;
// Loads libgcc's unwinder in the arbiter, so that no worker's SIGABRT
// handler has to.
void preload_backtrace() noexcept;
[[noreturn]] void run_worker(const spawn_plan& plan, int stop_fd) noexcept;

}  // namespace ufork::detail
