// The arbiter's state, shared by arbiter.cpp (the loop, signals, calls from
// other threads), supervise.cpp (spawn, reap, deadlines: the policy of
// core/policy applied to the workers of core/worker_table), commands.cpp
// and output.cpp (the workers' pipes). Internal.
#pragma once

#include <sys/resource.h>
#include <signal.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/oom.hpp"
#include "core/policy.hpp"
#include "core/worker_table.hpp"
#include "reactor.hpp"
#include "scoreboard.hpp"
#include "sys/sys.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/arbiter.hpp"

namespace ufork {

// Why size 0 is refused unless options::allow_empty.
inline constexpr const char* empty_pool_refused =
    "a pool of 0 workers leaves connections waiting unanswered (options.allow_empty allows it)";

// "size 4" -> {"size", "4"}.
std::vector<std::string> split_words(std::string_view line);

class console;         // console.hpp: the prompt, arbiter.cpp only
class control_server;  // control_socket.hpp: the socket, arbiter.cpp only

class arbiter::impl {
 public:
  impl(options opts, hooks h);
  ~impl();

  // own_signals: run(), which takes the pool's signals if options say so.
  int run_loop(bool own_signals);
  void start();
  int wait();
  void request_stop() noexcept;
  void resize(int n);
  struct status snapshot() const;
  reply execute(std::string_view line);  // on the loop's thread
  void add_command(std::string name, std::string help, command_handler handler);
  std::vector<std::string> command_names() const;
  void log_text(const std::string& text);
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

  // Runs f on the loop's thread and returns its result; runs it here when no
  // loop is running or this is the loop's thread.
  template <class F>
  auto call(F f) -> decltype(f());

  std::thread background;
  int background_result = 0;
  std::exception_ptr background_error;

 private:
  // arbiter.cpp
  int supervise(bool own_signals);
  void abandon() noexcept;
  void finish(std::shared_ptr<log_sink> base_sink) noexcept;
  void install_signals();
  void restore_signals() noexcept;
  void on_signal();
  void on_wake();
  void run_posted();
  template <class... Args>
  void log(fmt::format_string<Args...> f, Args&&... args) {
    log_text(fmt::format(f, std::forward<Args>(args)...));
  }
  void open_console();
  void on_console_line(const std::string& line);
  std::vector<std::string> completions(const std::string& line_so_far) const;

  // commands.cpp
  using args = std::vector<std::string>;
  struct builtin {
    const char* name;
    const char* params;
    const char* help;
    reply (impl::*run)(const args&);
  };
  struct registered {
    std::string help;
    command_handler handler;
  };
  static const std::vector<builtin>& builtins();
  reply cmd_help(const args&);
  reply cmd_status(const args&);
  reply cmd_workers(const args&);
  reply cmd_dead(const args&);
  reply cmd_metrics(const args&);
  reply cmd_size(const args&);
  reply cmd_kill(const args&);
  reply cmd_restart(const args&);
  reply cmd_reload(const args&);
  reply cmd_reopen(const args&);
  reply cmd_stop(const args&);
  process* slot_process(const args& a, std::string& error);

  // supervise.cpp
  void maintain(clock::time_point now);
  // Forks a worker for the slot: its current one, or (reload) the incoming
  // one that replaces the current one when ready. Null if it failed (a
  // failed start of the slot).
  process* spawn(int slot, clock::time_point now, bool reload = false);
  // Replaces the workers of these slots one at a time, each successor ready
  // before its predecessor is stopped. Returns why not, or "".
  std::string start_reload(std::vector<int> slots);
  void reload_next(clock::time_point now);
  bool reloading() const;
  void abandon_reload(const process& successor, const std::string& why);
  void on_notify();
  void on_ready(process& p, clock::time_point now);
  void on_exit(pid_t pid);
  std::string slot_lost(int slot, policy::end how, clock::time_point now);
  void check_deadlines(clock::time_point now);
  void restart_clocks(clock::duration late, clock::time_point now);
  clock::time_point next_deadline(clock::time_point now) const;
  policy::worker_clock clock_of(const process& p) const;
  void hang(process& p, std::string detail, clock::time_point now);
  void stop_worker(process& p, exit_reason why, clock::time_point now);
  void begin_stop(bool fast);
  void do_resize(int n);
  void update_storm();
  void check_give_up();
  worker_info info(const process& p, clock::time_point now) const;

  // output.cpp
  void watch_output(process& p, output& o, enum stream s);
  bool on_output(int slot, pid_t pid, output& o, enum stream s);
  void drain_output(process& p);
  void close_output(int slot, pid_t pid, output& o, enum stream s);
  void capture_own_output();

  // First, before any fd is opened: three fds per worker (pidfd, stdout,
  // stderr) and the default soft limit of 1024 would cap the pool near 300.
  // Workers get the limit as it was.
  rlimit nofile_ = sys::raise_fd_limit();
  options opts_;
  hooks hooks_;
  reactor loop_;
  detail::scoreboard board_;
  sys::unique_fd notify_rx_, notify_tx_, wake_, signals_;
  std::optional<int> oom_found_;  // the arbiter's oom_score_adj as found
  std::string worker_oom_;        // what workers write to theirs; empty: nothing
  bool oom_lowered_ = false;

  int size_ = 0;
  worker_table table_;
  struct counters counters_;
  std::deque<exit_info> dead_;
  bool stopping_ = false, fast_ = false, gave_up_ = false, ever_ready_ = false;
  bool storm_ = false;
  std::uint64_t storm_quiet_ = 0;  // failed starts not logged during a storm
  std::string last_failure_;
  oom_witness oom_;
  std::vector<char> buf_;
  std::map<std::string, registered> commands_;
  std::deque<int> reload_queue_;  // slots still to reload, one at a time
  std::uint64_t requests_of_exited_ = 0;
  clock::time_point started_ = clock::now();

  // Calls from other threads.
  mutable std::mutex mu_;
  bool running_ = false;
  bool stop_requested_ = false;
  std::thread::id loop_thread_;
  std::vector<std::function<void()>> posted_;

  std::unique_ptr<control_server> control_;
  std::unique_ptr<output> own_output_;  // capture_output
  bool default_sink_ = false;
  std::unique_ptr<console> console_;

  // run()'s own signal handling.
  bool own_signals_ = false;
  reactor::token signals_token_ = 0;
  sigset_t old_mask_{};
  struct sigaction old_pipe_{};
};

}  // namespace ufork
