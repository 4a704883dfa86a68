// The pool's loop: setup, the signals of run(), calls from other threads.
// Policy lives in supervise.cpp, the workers' output in output.cpp.
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <stdexcept>

#include "core/option_table.hpp"
#include "core/pool.hpp"
#include "core/signal_table.hpp"
#include "core/spawn.hpp"
#include "core/exit_status.hpp"
#include "sys/procfs.hpp"
#include "sys/process.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/error.hpp"

namespace ufork {

void throw_errno(const std::string& what) {
  throw error(errno, std::system_category(), what);
}

void throw_invalid(const std::string& what) {
  throw error(std::make_error_code(std::errc::invalid_argument), "ufork: " + what);
}

int default_workers() noexcept {
  return std::max(sys::usable_cpus() - 1, 2);
}

namespace {

constexpr std::size_t max_processes = 4096;  // scoreboard cells: live workers at once

// argv[0] as execvp would find it; as it is if PATH has no such program
// (the exec then fails with ENOENT, reported per worker).
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::string found = sys::find_in_path(name);
  return found.empty() ? name : found;
}

// The scoreboard an upgrade brought, or -1: a new one.
int incoming_board() {
  const upgrade::state* s = upgrade::incoming();
  return s ? upgrade::take(s->board) : -1;
}

}  // namespace

pool::pool(options opts, hooks h)
    : opts_(std::move(opts)),
      hooks_(std::move(h)),
      calls_(loop_, [this] { apply(pool_event::terminate); }),
      board_(max_processes, incoming_board()),
      output_(
          loop_, opts_.max_line, [this](const log_line& line) { opts_.sink->write(line); },
          [this](pid_t pid, stream_kind s, int& slot) -> output* {
            process* p = table_.find(pid);
            if (!p && refork_.mold() && refork_.mold()->pid == pid) p = refork_.mold();
            if (p) slot = p->slot;
            return !p ? nullptr : s == stream_kind::out ? &p->out : &p->err;
          }) {
  validate(opts_);
  const upgrade::state* up = upgrade::incoming();
  if (up) nofile_ = up->nofile;  // the limit the first image found, not the one it raised
  default_sink_ = !opts_.sink;
  if (!opts_.sink) opts_.sink = make_fd_sink(STDOUT_FILENO);
  if (opts_.capture_output && default_sink_)
    throw_invalid("capture_output needs a sink that does not write to stdout");
  size_ = opts_.scale.max_workers ? opts_.scale.min_workers : opts_.workers;
  table_.resize(size_);

  notify_.emplace(
      loop_, up, opts_.exec.notify, !opts_.exec.argv.empty(), [this](pid_t pid) { return table_.find(pid) != nullptr; },
      [this](pid_t worker, std::string_view text, sys::unique_fd passed) { on_notify(worker, text, std::move(passed)); });
  if (!opts_.user.empty() || !opts_.group.empty()) {
    try {
      drop_ = sys::lookup_identity(opts_.user, opts_.group);
    } catch (const std::invalid_argument& e) {
      throw_invalid(std::string("options.user/group: ") + e.what());
    }
  }
  if (opts_.pin_cpus) cpus_ = sys::cpu_list();
  if (!opts_.exec.argv.empty()) {
    set_command();
    listen_names_ = opts_.exec.listen_names;
    if (listen_names_.empty()) listen_names_.assign(opts_.exec.listen_fds.size(), "unknown");  // systemd's default
  }

  detail::preload_backtrace();
  oom_scores_.emplace(opts_.oom_score_adj);
}

pool::~pool() {
  join();
  if (nofile_.rlim_max != 0) (void)sys::set_fd_limit(nofile_);  // the host's own limit back
}

void pool::log_text(const std::string& text) {
  opts_.sink->write({-1, sys::own_pid(), stream_kind::arbiter, text});
}

void pool::flush_everything() {
  opts_.sink->flush();
  std::cout.flush();
  std::fflush(nullptr);
}

void pool::request_stop() noexcept { calls_.request_stop(); }

pool_status pool::snapshot() const {
  return const_cast<pool*>(this)->call([this] {
    auto now = clock::now();
    pool_status s;
    s.size = size_;
    s.stopping = is_stopping(phase_);
    s.draining = phase_ == pool_phase::draining;
    s.ready = ready();
    s.min_ready = opts_.min_ready;
    for (const auto& [pid, p] : table_.processes()) s.workers.push_back(info(*p, now));
    s.mold = refork_.mold() ? refork_.mold()->pid : 0;
    s.refork_generation = refork_.generation();
    scale_status(s);
    std::sort(s.workers.begin(), s.workers.end(),
              [](const auto& a, const auto& b) { return std::tie(a.id, a.generation) < std::tie(b.id, b.generation); });
    s.counters = history_.counters;
    s.counters.requests = history_.requests_gone();
    for (const auto& w : s.workers) s.counters.requests += w.requests;
    s.counters.log_lost = opts_.sink->lost();
    s.dead.assign(history_.dead().begin(), history_.dead().end());
    if (auto at = next_deadline(now)) s.next_wakeup = std::max(*at - now, clock::duration::zero());
    return s;
  });
}

pid_t pool::worker_pid(int id) const noexcept {
  return id >= 0 && id < size_ ? table_.slot(id).current : 0;
}

std::vector<unsigned> pool::generations() const {
  std::vector<unsigned> g;
  g.reserve(size_);
  for (int i = 0; i < size_; ++i) g.push_back(table_.slot(i).generation);
  return g;
}

std::vector<int> pool::all_ids() const {
  std::vector<int> ids(static_cast<std::size_t>(size_));
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

void pool::set_command() {
  exec_path_ = find_program(opts_.exec.argv[0]);
  exec_argv_.clear();
  for (auto& arg : opts_.exec.argv) exec_argv_.push_back(arg.data());
  exec_argv_.push_back(nullptr);
}

std::string pool::resize(int n) {
  if (is_stopping(phase_)) return "the pool is stopping";
  if (n == 0 && !opts_.allow_empty) return empty_pool_refused;
  if (scale_ && (n < scale_->want.min() || n > scale_->want.max()))
    return fmt::format("the pool sizes itself from {} to {} workers (--min-workers, --max-workers)", scale_->want.min(),
                       scale_->want.max());
  if (scale_) (void)scale_->want.look(n - 1, 0, clock::now());  // held for the idle timeout, as a need would be
  do_resize(n);
  return {};
}

std::error_code pool::signal(int id, int sig) {
  process* p = id >= 0 && id < size_ ? table_.current(id) : nullptr;
  if (!p) return std::make_error_code(std::errc::no_such_process);
  if (auto ec = sys::pidfd_send_signal(p->pidfd.get(), sig)) return ec;
  // Only a signal that ends a process by default makes the exit ours.
  for (int fatal : {SIGTERM, SIGKILL, SIGINT, SIGQUIT, SIGABRT, SIGHUP})
    if (sig == fatal && !p->reason) p->reason = exit_reason::killed;
  log("kill: {} to worker {} pid {}", signal_name(sig), id, p->pid);
  return {};
}

void pool::reopen_logs() { opts_.sink->reopen(); }

int pool::ready_count() const noexcept {
  int n = 0;
  for (const auto& [pid, p] : table_.processes()) n += p->state == worker_state::ready;
  return n;
}

bool pool::ready() const noexcept { return phase_ == pool_phase::running && ready_count() >= opts_.min_ready; }

// Adopted processes that have exited (a worker's grandchildren whose parent
// died first): reaped here. A worker's own exit is left to its pidfd, which
// calls this again once it has reaped it.
void pool::reap_orphans() {
  if (!reap_orphans_) return;
  sys::reap_unclaimed([this](pid_t pid) {
    if (table_.find(pid)) return true;
    ++history_.counters.orphans_reaped;
    return false;
  });
}

// As PID 1 does at its end: the orphans it adopted and that still run (a
// worker's child that daemonized, leaving the worker's group) are stopped,
// SIGTERM then SIGKILL after graceful_timeout, and reaped.
void pool::stop_orphans() {
  std::vector<sys::unique_fd> left;
  for (pid_t pid : sys::children_of(sys::own_pid()))
    if (auto fd = sys::pidfd_open(pid)) {
      (void)sys::pidfd_send_signal(fd->get(), SIGTERM);
      (void)sys::pidfd_send_signal(fd->get(), SIGCONT);
      left.push_back(std::move(fd).value());
    }
  if (left.empty()) return;
  log("stopping the orphans it adopted: {} (SIGTERM, SIGKILL after {} ms)", left.size(), opts_.graceful_timeout.count());
  auto until = clock::now() + opts_.graceful_timeout;
  for (auto& fd : left) {
    auto ms = std::chrono::duration_cast<milliseconds>(until - clock::now()).count();
    if (!sys::child::wait_readable(fd.get(), static_cast<int>(std::max<long long>(ms, 0))))
      (void)sys::pidfd_send_signal(fd.get(), SIGKILL);
    sys::reap_pidfd(fd.get());
    ++history_.counters.orphans_reaped;
  }
}

void pool::on_signal(int sig, pid_t sender) {
  if (sig == SIGCHLD) {  // a worker's exit is its pidfd's business; this is for adopted orphans
    reap_orphans();
    return;
  }
  // pid 0: the kernel's, which for INT and QUIT means the terminal's keys.
  log("{} from {}", signal_name(sig),
      sender != 0      ? fmt::format("pid {}", sender)
      : sig == SIGINT  ? std::string("the terminal (Ctrl-C)")
      : sig == SIGQUIT ? std::string("the terminal (Ctrl-\\)")
                       : std::string("the kernel"));
  auto verb = verb_of(sig);
  if (!verb) return;  // none: only the table's are blocked
  switch (*verb) {
    case signal_verb::interrupt: apply(pool_event::interrupt); break;
    case signal_verb::terminate: apply(pool_event::terminate); break;
    case signal_verb::quit: apply(pool_event::quit); break;
    case signal_verb::grow:
      if (auto why = resize(size_ + 1); !why.empty()) log("SIGTTIN: size stays {}: {}", size_, why);
      break;
    case signal_verb::shrink:
      if (size_ > 1 || opts_.allow_empty) {
        if (auto why = resize(std::max(size_ - 1, 0)); !why.empty()) log("SIGTTOU: size stays {}: {}", size_, why);
      } else
        log("SIGTTOU: size stays {}: {}", size_, empty_pool_refused);
      break;
    case signal_verb::reopen: reopen_logs(); break;
    case signal_verb::reload:
      if (auto why = reload(all_ids()); !why.empty()) log("SIGHUP: {}", why);
      break;
    case signal_verb::upgrade: (void)upgrade(-1); break;  // it logs why if it did not happen
  }
}

int pool::run_loop(bool own_signals) {
  calls_.begin();
  auto base_sink = opts_.sink;
  try {
    int code = supervise(own_signals);
    finish(base_sink);
    return code;
  } catch (const std::exception& e) {
    // A new image that fails before it has adopted the pool gives it back
    // to the old one (this returns only if that cannot run).
    upgrade::roll_back(std::string("the new image's run() failed: ") + e.what());
    // Setup failed (a control socket in use, ...) or the loop itself did:
    // no worker may outlive the arbiter's supervision.
    abandon();
    finish(base_sink);
    throw;
  } catch (...) {
    abandon();
    finish(base_sink);
    throw;
  }
}

int pool::supervise(bool own_signals) {
  // PID 1 of a container, or asked: every orphan below us becomes ours to
  // reap. Never in start(): the host's children are the host's.
  if (own_signals && (opts_.subreaper || sys::own_pid() == 1)) {
    if (sys::own_pid() != 1)
      if (auto ec = sys::become_subreaper()) throw error(ec, "prctl(PR_SET_CHILD_SUBREAPER)");
    reap_orphans_ = true;
  }
  run_mode_ = own_signals;
  if (own_signals && opts_.handle_signals)
    signals_.open(loop_, reap_orphans_, [this](int sig, pid_t sender) { on_signal(sig, sender); });
  if (own_signals && opts_.notify_manager) manager_.open([this](const std::string& line) { log_text(line); });
  if (own_signals) oom_scores_->lower_own();  // run(): the process is ours
  if (attachment_.open) attachment_.open(own_signals);
  // Process titles: "ufork: arbiter (hello --bind 127.0.0.1:7777)", and each
  // worker's "ufork: worker 3 gen 2 (...)". The arbiter's only under run():
  // the process is the program's (its argv strings are written over; read
  // them before run()).
  const auto& argv = upgrade::program_argv();
  for (std::size_t i = 1; i < argv.size(); ++i) title_suffix_ += (i == 1 ? " (" : " ") + argv[i];
  if (argv.size() > 1) title_suffix_ += ")";
  if (own_signals) sys::child::set_title(("ufork: arbiter" + title_suffix_).c_str(), false);
  if (opts_.capture_output) output_.capture_own();
  const exec_spec& x = opts_.exec;
  std::string watched = x.argv.empty()                      ? fmt::format("timeout {} ms", opts_.timeout.count())
                        : x.watchdog > milliseconds::zero() ? fmt::format("watchdog {} ms", x.watchdog.count())
                        : x.notify                          ? std::string("ready at READY=1, no watchdog")
                                                            : fmt::format("ready after {} ms running, no heartbeat",
                                                                          x.ready_after.count());
  log("arbiter pid {}: {}, {}{}", sys::own_pid(), workers_count(size_), watched,
      opts_.control_path.empty() ? std::string() : ", control socket " + opts_.control_path);
  if (const upgrade::state* up = upgrade::incoming()) adopt(*up);
  calls_.run_posted();
  scale_open();
  maintain(clock::now());
  while (!(is_stopping(phase_) && table_.empty())) {
    loop_.arm(next_deadline(clock::now()));
    opts_.sink->flush();
    loop_.run_once();
    ++history_.counters.wakeups;
    auto now = clock::now();
    // The most overdue deadline, from what the handlers just learnt (a
    // worker that became ready just before the tree froze): long overdue
    // means the arbiter was not running when it was due.
    auto due = next_deadline(now);
    if (auto how = policy::stalled(due, now, opts_.timeout); how != policy::stall::none)
      restart_clocks(how, now - *due, now);  // a stall has a deadline
    check_deadlines(now);
    if (phase_ == pool_phase::draining && now >= drain_until_) apply(pool_event::drain_over);
    scale_tick(now);
    maintain(now);
    if (manager_.is_open())  // (the view costs a walk of the table: not for nobody)
      manager_.update({.ready = ready_count(),
                       .size = size_,
                       .min_ready = opts_.min_ready,
                       .stopping = is_stopping(phase_),
                       .reload_done = !replacements_.busy(successors_starting()),
                       .phase = phase_ == pool_phase::running ? "" : to_string(phase_)},
                      now);
    if (attachment_.after_turn) attachment_.after_turn();
  }
  if (reap_orphans_) stop_orphans();
  if (exit_code_ == exit_boot_failure)
    log("gave up; exit {}", exit_boot_failure);
  else
    log("all workers stopped");
  opts_.sink->flush();
  return exit_code_;
}

void pool::abandon() noexcept {
  for (const auto& [pid, p] : table_.processes()) {
    send(*p, SIGKILL);
    sys::reap_pidfd(p->pidfd.get());
  }
  while (!table_.empty()) (void)table_.remove(table_.processes().begin()->first);
  if (auto m = refork_.release()) {
    (void)sys::pidfd_send_signal(m->pidfd.get(), SIGKILL);
    sys::reap_pidfd(m->pidfd.get());
  }
}

void pool::finish(std::shared_ptr<log_sink> base_sink) noexcept {
  if (attachment_.close) attachment_.close();
  opts_.sink = std::move(base_sink);
  calls_.end();
  signals_.close();
  oom_scores_->restore_own();
}

void pool::start() {
  background_ = std::thread([this] {
    try {
      background_result_ = run_loop(false);
    } catch (...) {
      background_error_ = std::current_exception();
    }
  });
}

int pool::wait() {
  if (background_.joinable()) background_.join();
  if (background_error_) std::rethrow_exception(std::exchange(background_error_, nullptr));
  return background_result_;
}

void pool::join() noexcept {
  if (!background_.joinable()) return;
  request_stop();
  background_.join();
}

}  // namespace ufork
