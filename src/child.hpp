// child_setup: everything a new worker needs, computed by the arbiter before
// fork so that the child allocates nothing it could do without, and the one
// function the child runs. It never returns into the arbiter's stack.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <utility>
#include <vector>

#include "ufork/arbiter.hpp"

namespace ufork::detail {

struct cell;

// Set once a syslog sink exists (file_sink.cpp): a new worker then calls
// closelog() before it closes ufork's fds.
inline std::atomic<bool> syslog_in_use{false};

struct child_setup {
  int slot;
  unsigned generation;
  cell* beat_cell;
  int notify_fd;               // kept: READY=1 goes here
  int out_fd, err_fd;          // become 1 and 2
  // The fds to close as [first, last] runs, each with one close_range, so a
  // child of a 1,000-worker pool does not make 3,000 calls: ufork's own fds
  // (the registry), or in strict mode all but the keep-list.
  const std::vector<std::pair<unsigned, unsigned>>* close_runs;
  bool close_syslog;
  pid_t arbiter_pid;
  rlimit nofile;               // the limit before the arbiter raised it
  const char* oom_score_adj;   // written to /proc/self/oom_score_adj; null: left
  std::chrono::milliseconds heartbeat_interval;
  const hooks* callbacks;

  [[noreturn]] void run() noexcept;
};

}  // namespace ufork::detail
