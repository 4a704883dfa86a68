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

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"
#include "sys/process.hpp"
#include "ufork/arbiter.hpp"

namespace ufork::detail {

struct cell;

using fd_runs = std::vector<std::pair<unsigned, unsigned>>;

// An exec'd worker's program, prepared in the arbiter: the child only
// writes its own pid into pid_fields (LISTEN_PID's and WATCHDOG_PID's
// values, each with room for 21 bytes).
struct exec_plan {
  const char* path;
  char* const* argv;
  std::vector<char*> pid_fields;
  std::vector<int> listen_fds;  // become 3, 4, ...
  int* scratch;                 // room for listen_fds.size() ints
  const char* chdir;            // null: the arbiter's
};

struct spawn_plan {
  int slot;
  unsigned generation;
  cell* beat_cell;
  const cell* board;           // the first cell (the worker reads the pool's)
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
  char* const* envp;           // the worker's environment
  const exec_plan* exec;       // null: post_fork runs
  const sys::identity* drop;   // the user and groups to become; null: stay
  bool drop_uid;               // setuid too (a user was named, not only a group)
  int cpu;                     // pin to this CPU; -1: not pinned
  int nice;                    // added to the nice value
  const std::vector<resource_limit>* rlimits;
  const char* title;           // the process title a library worker shows (ps, top)
};

// A new worker's environment, made in the arbiter before the fork: the
// arbiter's own without what its own service manager gave it
// (NOTIFY_SOCKET, LISTEN_*, WATCHDOG_*: they are not the worker's), then
// `extra` ("K=V", replacing), then the worker's: UFORK_WORKER_ID,
// UFORK_WORKER_GENERATION, LISTEN_FDS/FDNAMES/PID for listen_names,
// NOTIFY_SOCKET and WATCHDOG_USEC/PID when notify_socket is set. The *_PID
// values are room for the child to write its pid in (pid_fields).
class worker_environment {
 public:
  struct worker {
    int id;
    unsigned generation;
    const std::vector<std::string>* listen_names;  // may be null
    std::string notify_socket;                     // empty: none
    std::chrono::milliseconds watchdog;
  };
  worker_environment(char* const* base, const std::vector<std::string>& extra, const worker& w);
  char* const* envp() const noexcept { return ptrs_.data(); }
  const std::vector<char*>& pid_fields() const noexcept { return pid_fields_; }

 private:
  std::vector<std::string> vars_;
  std::vector<char*> ptrs_, pid_fields_;
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
// The new child's side of both: its setup, then the program (in a child of
// spawn() or of the mold's spawn_sibling; it does not return). error_fd:
// the error pipe's write end; error_reader: its read end, closed (-1: none).
[[noreturn]] void run_child(const spawn_plan& p, int error_fd, int error_reader) noexcept;

// What the child's setup wrote before it exited ("setup failed: eventfd:
// Too many open files", "cannot exec /bin/x: Permission denied"); empty if
// nothing. Exec mode: `exec_done` is set when the pipe closed empty (the
// exec succeeded).
std::string read_setup_error(int fd, const char* exec_path = nullptr, bool* exec_done = nullptr);

// worker.cpp: the handlers every worker gets (SIGTERM sets the stop flag and
// stop_fd, SIGABRT writes the stack, SIGINT ignored, the rest default), and
// the worker itself once set up. Neither returns an error.
void install_worker_signals(int stop_fd) noexcept;
// Loads libgcc's unwinder in the arbiter, so that no worker's SIGABRT
// handler has to.
void preload_backtrace() noexcept;
[[noreturn]] void run_worker(const spawn_plan& plan, int stop_fd) noexcept;

}  // namespace ufork::detail
