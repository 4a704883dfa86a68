// ufork::arbiter: forks a pool of workers and keeps it running.
//
//   ufork::arbiter a(opts, {.post_fork = [](ufork::worker& w) { serve(w); }});
//   return a.run();  // until SIGINT/SIGTERM or stop()
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "ufork/export.hpp"
#include "ufork/options.hpp"
#include "ufork/worker.hpp"

namespace ufork {

enum class worker_state { spawning, starting, ready, stopping, exited };
UFORK_API const char* to_string(worker_state s) noexcept;

// Why a worker is gone.
enum class exit_reason {
  exited,   // it exited by itself with code 0
  crashed,  // it exited by itself with another code, or a signal not ours
  hung,     // no heartbeat within timeout, or not ready within startup_timeout
  stopped,  // the pool was stopping
  shrunk,   // the pool was made smaller
  killed,   // an operator's `kill` command sent it a terminating signal
  replaced, // reload or restart: its successor was ready
  recycled, // past a recycle limit (options::recycle): its successor was ready
};
UFORK_API const char* to_string(exit_reason r) noexcept;

struct UFORK_API exit_info {
  int id = -1;  // the slot, 0..size-1
  pid_t pid = 0;
  unsigned generation = 0;
  int code = -1;               // exit code, or -1 when a signal ended it
  int signal = 0;              // the signal that ended it, or 0
  bool core_dumped = false;
  bool oom_killed = false;     // the OOM killer's victim (the kernel log or its own cgroup says so)
  bool oom_possible = false;   // SIGKILL while the OOM killer fired in a cgroup it shared: cannot tell
  bool was_ready = false;
  exit_reason reason = exit_reason::crashed;
  std::string detail;          // e.g. "no heartbeat for 10s (timeout)"
  std::chrono::nanoseconds uptime{};
  std::chrono::system_clock::time_point when;

  // "exit 70 (EX_SOFTWARE)", "killed by SIGSEGV (core dumped)", ...
  std::string status_text() const;
  // status_text() with the reason and detail: the line the log shows.
  std::string describe() const;
};

struct worker_info {
  int id = -1;
  pid_t pid = 0;
  unsigned generation = 0;
  worker_state state = worker_state::spawning;
  std::chrono::nanoseconds uptime{};
  // Since the last heartbeat; empty before the first one.
  std::optional<std::chrono::nanoseconds> heartbeat_age;
  std::uint64_t requests = 0;  // counted by the worker (worker::count_requests)
  std::string status;          // an exec'd worker's last STATUS= (sd_notify)
};

struct pool_counters {
  std::uint64_t spawned = 0;
  std::uint64_t exited = 0;
  std::uint64_t hung = 0;         // killed because a clock fired
  std::uint64_t backoffs = 0;     // restarts delayed by backoff (2nd failed start in a row on)
  std::uint64_t spawn_errors = 0; // fork, pipe or pidfd_open failures
  std::uint64_t wakeups = 0;      // event-loop iterations (idle cost)
  std::uint64_t stalls = 0;       // the loop woke over max(1 s, timeout/4) past a deadline
  std::uint64_t log_lost = 0;     // lines the sink could not write
  std::uint64_t requests = 0;     // counted by the workers, the exited ones included
  std::uint64_t notify_ignored = 0;  // notify datagrams from no worker of ours (or one gone)
  std::uint64_t orphans_reaped = 0;  // adopted processes reaped (PID 1, options::subreaper)
};

struct pool_status {
  int size = 0;                    // the desired number of workers
  bool stopping = false;
  bool draining = false;           // a stop waits out options::drain_delay
  // At least options::min_ready workers are ready, and the pool is neither
  // draining nor stopping: what a readiness probe asks.
  bool ready = false;
  int min_ready = 1;
  std::vector<worker_info> workers;
  pool_counters counters;
  std::vector<exit_info> dead;     // the last 64 exits, oldest first
  // Reforking (options::refork_after): the mold's pid (0: none: workers are
  // forked by the arbiter), and the generations promoted so far.
  pid_t mold = 0;
  unsigned refork_generation = 0;
  // Autoscaling (options::scale; max_workers 0: a fixed size): the size
  // wanted now, why the size last moved ("accept queue 41 on
  // 0.0.0.0:8000"), the moves so far, and each listening socket's accept
  // queue at the last look (-1: unreadable).
  struct scaling {
    int min_workers = 0, max_workers = 0, target = 0;
    std::string why;
    std::uint64_t ups = 0, downs = 0;
    bool looking = false;  // a worker was busy or a connection came lately
    std::vector<std::pair<std::string, int>> queues;
  } scale;
  // When the loop will next wake up by itself; empty if nothing is due.
  std::optional<std::chrono::nanoseconds> next_wakeup;
};

// The answer to a command (from the ufork>> prompt, the control socket or
// arbiter::execute). `json`, when not empty, is a JSON value as text; else
// the answer's data is `text` as a JSON string.
struct reply {
  bool ok = true;
  std::string text;
  std::string json;
};
// A command's answers: ok("done"), ok("3 items", R"({"items":3})"), fail("why").
inline reply ok(std::string text, std::string json = {}) { return {true, std::move(text), std::move(json)}; }
inline reply fail(std::string error) { return {false, std::move(error), {}}; }
// A program's own command; runs on the arbiter's thread. args excludes the name.
using command_handler = std::function<reply(const std::vector<std::string>& args)>;

struct hooks {
  // In the worker, after the library's setup. When it returns, the worker
  // heartbeats until asked to stop. An escaping exception is printed and the
  // worker exits 70 (EX_SOFTWARE).
  std::function<void(worker&)> post_fork;
  // In the worker, before it exits (not after an exception or a signal).
  std::function<void(worker&)> child_pre_exit;
  // Around each fork: in the arbiter just before and just after it, and in
  // the new worker after the library's setup, before post_fork (a Python
  // binding calls PyOS_BeforeFork and PyOS_AfterFork_* here).
  std::function<void()> before_fork;
  std::function<void()> after_fork_parent;
  std::function<void()> after_fork_child;
  // In the arbiter, once, when a stop begins, before any worker is signalled.
  std::function<void()> parent_pre_stop;
  // In the arbiter: a worker was forked / became ready / was reaped.
  std::function<void(const worker_info&)> on_worker_spawn;
  std::function<void(const worker_info&)> on_worker_ready;
  std::function<void(const exit_info&)> on_worker_exit;
  // In the arbiter, when a reload begins (SIGHUP, the reload command),
  // before any worker is replaced: the options to reload with (a program
  // that reads its config file again), or nullopt to keep them. A reload
  // applies workers, the timeouts, the recycling limits, and an exec'd
  // program's command, environment, directory, ready-after and watchdog;
  // any other option that changed is logged as taking a restart. An
  // exception, or options validate() refuses, refuses the reload (saying
  // why) and changes nothing.
  std::function<std::optional<options>()> reload_options;
};

// The in-place upgrade (docs/upgrade.md) carries the listening sockets ufork
// bound across its exec. A socket the program bound itself goes too once
// registered here under a name of its own; the new image takes it back with
// inherited_socket(name): a close-on-exec copy, the program's to close, or
// -1 if none came (the one that came is closed once the pool is adopted).
// With copy false, the fd itself, for a socket whose number matters (a
// service manager's at 3). Close a registered fd only after
// carry_socket(fd, "") has forgotten it.
UFORK_API void carry_socket(int fd, const std::string& name);
UFORK_API int inherited_socket(const std::string& name, bool copy = true);

// The names of the commands every arbiter has ("help", "status",
// "workers", ...), as execute() and the control socket take them (the
// shell completion's list for an arbiter it cannot ask).
UFORK_API std::vector<std::string> builtin_commands();

class UFORK_API arbiter {
 public:
  // Throws ufork::error on invalid options or a failed setup syscall.
  explicit arbiter(options opts, hooks h);
  ~arbiter();  // stops and waits if start() is running
  arbiter(const arbiter&) = delete;
  arbiter& operator=(const arbiter&) = delete;

  // Runs the pool on this thread until stopped; returns 0, or
  // exit_boot_failure. Call at most once, and not together with start().
  int run();

  // Runs the pool on a background thread of a host program. Caveat: workers
  // are then forked from a multi-threaded process, so post_fork must only
  // use what is safe after such a fork (glibc's malloc is; locks held by the
  // host's other threads stay locked in the child). Signals are the host's:
  // call stop() from its own handlers.
  void start();
  // Asks for a graceful stop; safe from any thread and from hooks.
  void stop() noexcept;
  // Stops at once: SIGKILL to every worker (as SIGQUIT or a second Ctrl-C);
  // safe from any thread.
  void stop_now();
  // Joins start()'s thread; returns what run() would have.
  int wait();

  // Sets the desired number of workers; safe from any thread. Throws
  // ufork::error for a negative size, and for 0 unless
  // options::allow_empty.
  void resize(int workers);
  // A snapshot; safe from any thread.
  pool_status status() const;

  // Calls fn on the arbiter's thread whenever fd (not owned) is readable
  // (level-triggered): a host's own event source in the pool's loop, such as
  // the wakeup fd of Python's signal module. Call before run()/start().
  void watch(int fd, std::function<void()> fn);

  // Writes a line to the pool's sink, as the arbiter's own; safe from any thread.
  void log(std::string_view text);

  // Registers a command for the prompt, the control socket and execute().
  // Call before run()/start(), or from a hook. Throws ufork::error
  // if the name is taken or not a single word.
  void add_command(std::string name, std::string help, command_handler handler);
  // Runs one command line ("workers", "size 4", "kill 2 KILL", ...);
  // safe from any thread. A trailing --json is accepted and ignored here:
  // the reply carries both forms.
  reply execute(std::string_view line);

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ufork
