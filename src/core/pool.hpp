// The pool: the core of the arbiter. It forks, watches, reaps and replaces
// the workers on its own event loop. Parts outside the core (the prompt, the
// control socket and the commands, in src/control/) read it through the view
// and act through the verbs below, and attach to its loop; the core knows
// nothing of them. Internal.
#pragma once

#include <sys/resource.h>
#include <signal.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/history.hpp"
#include "core/loop_calls.hpp"
#include "core/manager_link.hpp"
#include "core/notify_channel.hpp"
#include "core/oom.hpp"
#include "core/output_capture.hpp"
#include "core/option_table.hpp"
#include "core/policy.hpp"
#include "core/pool_phase.hpp"
#include "core/worker_table.hpp"
#include "core/reactor.hpp"
#include "core/refork.hpp"
#include "core/replacement_queue.hpp"
#include "core/scaler.hpp"
#include "core/scoreboard.hpp"
#include "core/signal_intake.hpp"
#include "core/upgrade.hpp"
#include "sys/fd.hpp"
#include "sys/unique_fd.hpp"
#include "sys/process.hpp"
#include "ufork/arbiter.hpp"

namespace ufork {

// "72.0 MiB", for the log.
inline std::string mib_text(std::uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

class pool {
 public:
  pool(options opts, hooks h);
  ~pool();

  // What runs on the loop's thread besides the pool: `open` before the first
  // fork (own_signals: run() rather than start()), `after_turn` after each
  // turn of the loop, `close` when the loop ends, before the sink is restored.
  // An upgrade: `before_exec` just before the exec (the terminal back as it
  // was), `exec_failed` when it returned; in the image that adopts the pool,
  // `upgraded` with the outcome for the client that asked (fd, or -1).
  struct attachment {
    std::function<void(bool own_signals)> open;
    std::function<void()> after_turn;
    std::function<void()> close;
    std::function<void()> before_exec, exec_failed;
    std::function<void(int reply_fd, bool ok, const std::string& text)> upgraded;
  };
  void attach(attachment a) { attachment_ = std::move(a); }

  // own_signals: run(), which takes the pool's signals if options say so.
  int run_loop(bool own_signals);
  void start();
  int wait();
  // Stops the pool if start()ed, and joins its thread.
  void join() noexcept;
  void request_stop() noexcept;
  // Runs f on the loop's thread and returns its result; runs it here when no
  // loop is running or this is the loop's thread.
  template <class F>
  auto call(F f) -> decltype(f()) {
    return calls_.call(std::move(f));
  }

  reactor& loop() noexcept { return loop_; }
  const options& opts() const noexcept { return opts_; }
  // The sink every line goes to; the console wraps it while it shows.
  const std::shared_ptr<log_sink>& sink() const noexcept { return opts_.sink; }
  void set_sink(std::shared_ptr<log_sink> s) { opts_.sink = std::move(s); }
  void log_text(const std::string& text);
  // The sink, std::cout and every stdio stream, before a fork or an exec.
  void flush_everything();

  // The view (loop's thread, or through call()).
  pool_status snapshot() const;
  int size() const noexcept { return size_; }
  bool stopping() const noexcept { return is_stopping(phase_); }
  // At least min_ready workers ready, neither draining nor stopping.
  bool ready() const noexcept;
  clock::duration uptime() const noexcept { return clock::now() - started_; }
  // The worker in slot `id`, or 0; the forks of each slot so far.
  pid_t worker_pid(int id) const noexcept;
  std::vector<unsigned> generations() const;
  const pool_tallies& tallies() const noexcept { return history_.tallies(); }

  // The verbs (loop's thread). Each returns why it was refused, or "".
  std::string resize(int n);
  std::error_code signal(int id, int sig);  // worker_pid(id) must be a worker
  // Each successor ready before its predecessor stops; name says it in the log ("restart" for one by hand).
  std::string reload(std::vector<int> ids, const char* name = "reload");
  // pool_reconfigure.cpp: a reload's new options (hooks::reload_options);
  // why they were refused, or "".
  std::string reconfigure(const options& next);
  void reopen_logs();
  void stop(bool fast) { apply(fast ? pool_event::quit : pool_event::terminate); }
  // The in-place upgrade (core/upgrade.hpp): returns only if refused or
  // failed (the new image's check, or the exec), with the sentence the log
  // has ("upgrade refused: ...", "upgrade failed: ..."). reply_fd: the
  // control client to answer, or -1.
  std::string upgrade(int reply_fd);

  // A hook of the caller's: an exception escaping it is logged, and
  // supervision goes on.
  template <class Fn, class... Args>
  void call_hook(const char* name, const Fn& fn, const Args&... args) noexcept {
    if (!fn) return;
    try {
      fn(args...);
    } catch (const std::exception& e) {
      log_text(fmt::format("hook {} threw: {}", name, e.what()));
    } catch (...) {
      log_text(fmt::format("hook {} threw", name));
    }
  }

 private:
  // pool.cpp
  int supervise(bool own_signals);
  void abandon() noexcept;
  void finish(std::shared_ptr<log_sink> base_sink) noexcept;
  void stop_orphans();
  void on_signal(int sig, pid_t sender);  // one of signal_table, or SIGCHLD
  std::vector<int> all_ids() const;
  int ready_count() const noexcept;
  // Orphans (PID 1, options::subreaper).
  void reap_orphans();
  rlimit restored_nofile() const;
  // pool_refork.cpp: reforking (options::refork_after).
  std::uint64_t pool_pss() const;  // the arbiter's, its workers' and the mold's
  void consider_mold(process& p, clock::time_point now);  // p is past its threshold
  void mold_ready(pid_t pid, sys::unique_fd channel);     // the candidate's channel
  // Forked by the mold, if there is one; nullopt: fork here (none, or it
  // failed and was let go).
  std::optional<detail::spawned> fork_from_mold(const detail::spawn_plan& plan);
  void on_mold_exit();
  void end_mold(process& m);  // SIGKILLed, reaped, its output drained
  void drop_mold(const std::string& why);
  // The refork's replacements are done: the generation kept or let go, and
  // a worker past the next threshold meanwhile promoted.
  void judge_generation();
  void judge_pss(std::uint64_t before);
  // pool_scale.cpp: autoscaling (options::scale; core/scaler.hpp).
  void scale_open();
  void scale_wake(clock::time_point now);  // a connection came, or a worker began a request
  void scale_tick(clock::time_point now);  // each turn: a look if one is due, a shrink if due
  std::optional<clock::time_point> scale_due() const;
  void scale_up(int target, std::string why);
  int busy_workers() const;
  bool shrinking() const;  // a worker stopping because the pool shrank
  void scale_status(pool_status& s) const;
  // pool_upgrade.cpp
  upgrade::state handover(int reply_fd) const;
  void adopt(const upgrade::state& s);
  // supervise.cpp: recycling (options::recycle).
  void recycle(process& p, std::string why, clock::time_point now);
  void check_usage(clock::time_point now);
  bool usage_limited() const noexcept {  // a memory or fd limit: check_usage reads /proc
    return opts_.recycle.max_rss || opts_.recycle.max_private || opts_.recycle.max_fds_percent > 0;
  }
  template <class... Args>
  void log(fmt::format_string<Args...> f, Args&&... args) {
    log_text(fmt::format(f, std::forward<Args>(args)...));
  }

  // supervise.cpp
  void maintain(clock::time_point now);
  // Forks a worker for the slot: its current one, or (reload) the incoming
  // one that replaces the current one when ready. Null if it failed (a
  // failed start of the slot).
  process* spawn(int slot, clock::time_point now, bool reload = false);
  void reload_done_yet();  // says "reload: done" once its last predecessor has exited
  void reload_next(clock::time_point now);
  int successors_starting() const;  // a reload's or a recycling's, not yet ready
  void abandon_reload(const process& successor, const std::string& why);
  void on_notify(pid_t worker, std::string_view text, sys::unique_fd passed);  // notify_channel's datagram
  void on_notify_line(process& p, std::string_view line, clock::time_point now);
  std::string title_suffix_;  // " (hello --bind 127.0.0.1:7777)": the program's arguments, for process titles
  void on_setup_pipe(pid_t pid);
  void close_setup_pipe(process& p);
  policy::timeouts timeouts_of(const process& p) const;
  void on_ready(process& p, clock::time_point now);
  void on_exit(pid_t pid);
  std::string slot_lost(int slot, policy::end how, clock::time_point now);
  void check_deadlines(clock::time_point now);
  void restart_clocks(policy::stall how, clock::duration late, clock::time_point now);
  std::optional<clock::time_point> next_deadline(clock::time_point now) const;  // nullopt: none
  policy::worker_clock clock_of(const process& p) const;
  void hang(process& p, std::string detail, clock::time_point now);
  void stop_worker(process& p, exit_reason why, clock::time_point now);
  // sig to the worker itself, through its pidfd (it may have left its group:
  // setpgid, setsid), and to the group it was started as the leader of,
  // which holds what it spawned.
  static void send(const process& p, int sig) noexcept;
  // The pool's phase after e (core/pool_phase.hpp), and what entering it does.
  void apply(pool_event e);
  void do_resize(int n, const std::string& why = {});  // why: the autoscaler's
  void update_storm();
  void check_give_up();
  worker_info info(const process& p, clock::time_point now) const;

  // First, before any fd is opened: three fds per worker (pidfd, stdout,
  // stderr) and the default soft limit of 1024 would cap the pool near 300.
  // Workers get the limit as it was.
  rlimit nofile_ = sys::raise_fd_limit();
  options opts_;
  hooks hooks_;
  reactor loop_;
  loop_calls calls_;
  detail::scoreboard board_;
  refork refork_{opts_.refork_after};
  struct autoscale {
    explicit autoscale(const scaling& o) : want(o.min_workers, o.max_workers, o.idle_timeout) {}
    scaler want;
    std::unique_ptr<listen_watch> sockets;
    bool looking = false;  // a look every scale_look_every, until quiet
    clock::time_point next_look{};
    int idle_looks = 0;    // in a row: busy + queued was 0
    std::string why;       // the last move's
    // The ceiling held the last scale-up back (logged once) at this time:
    // memory is read again a second later, not at every look.
    std::optional<clock::time_point> held_at;
    std::uint64_t ups = 0, downs = 0;
  };
  std::optional<autoscale> scale_;  // options::scale.max_workers set
  std::optional<notify_channel> notify_;  // set once the options are valid
  // Exec mode: the program's path and argv.
  std::string exec_path_;
  std::vector<char*> exec_argv_;  // into opts_.exec.argv
  void set_command();             // exec_path_, exec_argv_ from opts_.exec.argv
  std::vector<std::string> listen_names_;  // LISTEN_FDNAMES
  std::optional<sys::identity> drop_;      // options::user, group
  std::vector<int> cpus_;                  // options::pin_cpus: where worker i runs

  pool_phase phase_ = pool_phase::running;
  clock::time_point drain_until_{};  // when draining
  bool reap_orphans_ = false;  // PID 1 or options::subreaper, in run()
  std::optional<clock::time_point> next_usage_check_;  // RSS and fds, when a limit is set
  manager_link manager_;  // NOTIFY_SOCKET of ufork's own manager
  std::optional<oom_scoring> oom_scores_;  // set once the options are valid

  int size_ = 0;
  worker_table table_;
  pool_history history_;
  int exit_code_ = 0;  // exit_boot_failure once it gave up
  bool ever_ready_ = false;
  oom_witness oom_;
  output_capture output_;
  replacement_queue replacements_;
  clock::time_point started_ = clock::now();

  bool default_sink_ = false;
  attachment attachment_;
  std::thread background_;
  int background_result_ = 0;
  std::exception_ptr background_error_;

  // run()'s own signal handling.
  bool run_mode_ = false;  // run(), not start(): the process is ours to exec
  signal_intake signals_;
};

}  // namespace ufork
