// The knobs of a pool. Every duration is a std::chrono type; every default is
// what a user of uFork or gunicorn would expect.
#pragma once

#include "ufork/export.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ufork/log.hpp"

namespace ufork {

using std::chrono::milliseconds;

// max(cores - 1, 2), as uFork.
UFORK_API int default_workers() noexcept;

struct restart_backoff {
  // A slot is never forked sooner than this after its previous fork, so a
  // program that crashes on its first request cannot fork-bomb the machine.
  // A worker that had become ready is replaced as soon as this allows.
  milliseconds min_interval{100};
  // A failed start is a worker that ended before it was ready. The first in
  // a row is retried after min_interval; the n-th (n >= 2) waits
  // initial * 2^(n-2), at most cap. A worker that becomes ready clears it.
  milliseconds initial{100};
  milliseconds cap{30'000};
};

// Exec mode (`ufork run`): each worker is a program exec'd after the fork,
// in any language, instead of post_fork. It gets only fds 0-2 and the
// listening sockets, and speaks the protocols systemd's services speak.
struct exec_spec {
  std::vector<std::string> argv;  // empty: library mode; argv[0] is looked up in PATH
  std::vector<std::string> env;   // "K=V", added to (or replacing) the arbiter's environment
  std::string chdir;              // the workers' working directory; empty: the arbiter's
  // Listening sockets handed to each worker as fds 3, 4, ... with LISTEN_FDS,
  // LISTEN_PID and LISTEN_FDNAMES (sd_listen_fds(3)). Not owned.
  std::vector<int> listen_fds;
  std::vector<std::string> listen_names;
  // The sd_notify protocol: NOTIFY_SOCKET in each worker's environment;
  // READY=1 makes it ready. Without it a worker is ready once it has run
  // ready_after since its exec (supervisord's startsecs), and only its death
  // is watched.
  bool notify = false;
  milliseconds ready_after{1'000};
  // With notify, a watchdog, as systemd's WatchdogSec=: WATCHDOG_USEC and
  // WATCHDOG_PID in the worker's environment, and a worker that sends no
  // WATCHDOG=1 for this long is hung (options::timeout is not used for exec'd
  // workers). 0, the default: no watchdog, as systemd without WatchdogSec=
  // (a worker may still ask for one with WATCHDOG_USEC=).
  milliseconds watchdog{0};
};

// Recycling: a worker past one of these limits is replaced the way a
// reload replaces it (its successor ready first, one slot at a time), with
// the reason in its exit record ("recycled: rss 612 MiB > 512 MiB"). 0: no
// limit. With no memory or fd limit set, nothing is polled.
struct recycle_limits {
  std::size_t max_rss = 0;                // bytes resident in the worker's process group (it and its children)
  // Bytes the worker's process group alone holds (USS: its private pages,
  // from smaps_rollup). RSS counts the pages a worker shares with the
  // arbiter and the others too, so as the shared part grows an RSS limit
  // recycles healthy workers; this one does not. Choose it for a leak.
  std::size_t max_private = 0;
  int max_fds_percent = 0;                // of the worker's RLIMIT_NOFILE (uFork's check: 90)
  milliseconds check_interval{10'000};    // how often memory and fds are read
  std::uint64_t max_requests = 0;         // worker::count_requests (the HTTP helper counts)
  std::uint64_t max_requests_jitter = 0;  // + a random 0..jitter per worker, so they do not all go at once
  milliseconds max_lifetime{0};
  milliseconds max_lifetime_jitter{0};
  // Slots recycling at once (successors starting together); a reload goes
  // one at a time whatever this says.
  int at_once = 1;
};

// Autoscaling: with max_workers set, the pool sizes itself between
// min_workers and max_workers instead of keeping options::workers. It grows
// the moment requests wait (connections in a listening socket's accept
// queue, workers busy in a request: worker::begin_request, which the HTTP
// helper calls) and shrinks, one worker at a time, the most recently added
// first, once it has not needed them for idle_timeout. It looks only while
// a worker is busy or a connection has come: an idle pool costs it nothing.
struct scaling {
  int min_workers = 1;  // the size it starts at and never goes below
  int max_workers = 0;  // 0: a fixed size (options::workers)
  milliseconds idle_timeout{10'000};
  // The pool's PSS (arbiter, workers, mold) that a scale-up never crosses:
  // it adds only the workers that fit, each worker (the starting ones too)
  // counted at the ready workers' mean PSS. 0: none.
  std::size_t max_pool_memory = 0;
};

// A resource limit for every worker (setrlimit(2) after the fork):
// {RLIMIT_CORE, 0, 0} and the like.
struct resource_limit {
  int resource;
  std::uint64_t soft, hard;
};

struct options {
  int workers = default_workers();
  // A pool of 0 workers (options, `size 0`, SIGTTOU) is refused unless this
  // is set: the kernel would go on accepting connections nobody answers.
  bool allow_empty = false;
  // A ready worker with no heartbeat for this long is hung.
  milliseconds timeout{10'000};
  // A starting worker not ready after this long is hung.
  milliseconds startup_timeout{60'000};
  // SIGTERM -> this long -> SIGKILL, when stopping a worker.
  milliseconds graceful_timeout{10'000};
  // SIGABRT (stack trace) -> this long -> SIGKILL, for a hung worker.
  milliseconds abort_timeout{1'000};
  // How many workers may be starting (forked, not yet ready) at once.
  int max_starting = 1;
  struct restart_backoff backoff;
  // If no worker has ever become ready and every slot has failed this many
  // starts in a row, run() gives up and returns exit_boot_failure. 0: never.
  int max_boot_failures = 5;
  // run() only: the `upgrade` command and SIGUSR2 exec the program's file
  // again in this process, which adopts the running workers and then
  // replaces them (docs/upgrade.md). Off for a program that cannot start
  // itself again from its argv (an interpreter at its prompt).
  bool upgrade = true;
  // Where every line goes; null means make_fd_sink(STDOUT_FILENO).
  std::shared_ptr<log_sink> sink;
  // run() only: take INT TERM QUIT HUP TTIN TTOU USR1 USR2 through a signalfd.
  // start() never touches the host program's signals.
  bool handle_signals = true;
  // Longer lines are split into pieces of this size, never dropped.
  std::size_t max_line = 64UL * 1024;
  // F_SETPIPE_SZ for each worker's stdout and stderr; 0 keeps the kernel's.
  std::size_t pipe_size = 1024UL * 1024;
  // run() only: the ufork>> prompt when stdin is a terminal.
  bool console = true;
  // Where the console keeps its history; empty: $XDG_STATE_HOME/ufork/history
  // or ~/.local/state/ufork/history.
  std::string history_file;
  // Workers' oom_score_adj is the arbiter's plus this (clamped to 1000), so
  // the kernel's OOM killer picks any worker before the arbiter; in run()
  // the arbiter also lowers its own by as much where it may (root). 0: both
  // left as they are.
  int oom_score_adj = 500;
  // A unix socket for `ufork ctl` and `ufork console`; empty: none. Created
  // 0600; only the arbiter's uid and root may use it.
  std::string control_path;
  // Control connections open at once; more are refused.
  int max_control_clients = 64;
  // "HOST:PORT": a read-only HTTP listener in the arbiter's own loop (it
  // answers while every worker is hung): /metrics (Prometheus text),
  // /status, /workers, /dead (JSON) and / (a live status page). Logged with
  // a warning if not a loopback address. Empty: none.
  std::string metrics_address;
  // The arbiter's own stdout and stderr into a pipe read by the loop, so what
  // the process itself prints reaches the sink as well (daemon mode). Needs
  // a sink that does not write to stdout.
  bool capture_output = false;
  // A worker inherits the program's own fds (post_fork needs its sockets)
  // and none of ufork's: every fd the library opens (log files, syslog, the
  // control socket, pidfile, the other workers' pipes, ...) is closed in it.
  // These are fds of the program's that workers must not inherit either.
  // Not owned.
  std::vector<int> private_fds;
  // Strict: a worker keeps only stdin/out/err, ufork's notify socket and
  // keep_fds; every other fd is closed, the program's included.
  bool strict_fds = false;
  std::vector<int> keep_fds;
  // Workers exec a program (see exec_spec); empty argv: post_fork runs.
  exec_spec exec;
  recycle_limits recycle;
  struct scaling scale;

  // Reforking, as Shopify's Pitchfork does it: once a worker has counted
  // refork_after[0] requests (worker::count_requests), it stops serving and
  // becomes the mold, and every worker is forked from it from then on (the
  // others replaced one at a time, each successor ready first), so that what
  // its requests loaded and warmed is shared by all; refork_after[1] makes
  // the next generation's mold, and so on. A generation whose workers do not
  // lower the pool's PSS is let go: forks return to the arbiter. The mold
  // must be single-threaded once post_fork has returned, and the program
  // fork-safe in every generation (what a worker opened, a database
  // connection, is inherited by the next: close it in child_pre_exit or
  // open it in post_fork). Library pools only: exec replaces the image.
  std::vector<std::uint64_t> refork_after;

  // Scheduling. pin_cpus: worker i runs on the i-th CPU (mod their number)
  // of those the arbiter may use, as nginx's worker_cpu_affinity auto.
  bool pin_cpus = false;
  int nice = 0;  // added to the workers' nice value (a negative one needs privileges)
  std::vector<resource_limit> rlimits;

  // Under a service manager and an orchestrator.
  // The pool is ready (status's "ready", `ufork ctl status --check`, READY=1
  // and WATCHDOG=1 to the manager) while at least this many workers are.
  int min_ready = 1;
  // A graceful stop (SIGTERM, `stop`, stop()) first drains for this long:
  // the pool says it is not ready while the workers go on serving, so a load
  // balancer stops sending; then the workers are stopped. SIGINT, SIGQUIT
  // and a second SIGTERM do not wait. 0: no drain.
  milliseconds drain_delay{0};
  // run() only: when NOTIFY_SOCKET is set, tell the service manager READY=1,
  // STATUS=, RELOADING=1, STOPPING=1, and WATCHDOG=1 as WATCHDOG_USEC asks,
  // but only while min_ready workers are ready: its watchdog then covers the
  // workers, not only the arbiter.
  bool notify_manager = false;
  // run() only: reap every process that is re-parented to the arbiter, not
  // only its workers (PR_SET_CHILD_SUBREAPER). Always so as PID 1.
  bool subreaper = false;
  // Each worker drops to this user (and its groups) or group after the fork
  // (setgroups, setgid, setuid, each checked), before the program runs; the
  // sockets were bound before. Empty: as the arbiter.
  std::string user, group;
};

// run() and wait() return 0 after a requested stop, and this when the pool
// gave up because no worker could ever start (gunicorn's WORKER_BOOT_ERROR).
inline constexpr int exit_boot_failure = 3;

}  // namespace ufork
