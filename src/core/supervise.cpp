// The arbiter's policy: keep `size` workers, each forked when its slot is
// free, its backoff has passed and fewer than max_starting are starting;
// reap each one the moment its pidfd says so; replace the hung ones at
// their deadline.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <random>
#include <tuple>
#include <type_traits>
#include <cstdio>
#include <cstring>

#include "core/notify.hpp"
#include "core/pool.hpp"
#include "core/spawn.hpp"
#include "core/exit_status.hpp"
#include "sys/fd.hpp"
#include "sys/procfs.hpp"
#include "sys/result.hpp"
#include "sys/socket.hpp"
#include "sys/process.hpp"

namespace ufork {
namespace {

clock::time_point beat_time(const process& p) {
  return clock::time_point(std::chrono::nanoseconds(p.beat->beat_ns.load(std::memory_order_relaxed)));
}

std::string seconds(clock::duration d) {
  return fmt::format("{:.3f} s", std::chrono::duration<double>(d).count());
}

// A random 0..most, so that workers started together do not all reach a
// recycle limit together.
template <class T>
T jitter(T most) {
  if (most <= T{}) return T{};
  static std::mt19937_64 random{sys::random_seed()};
  if constexpr (std::is_integral_v<T>)
    return std::uniform_int_distribution<T>(0, most)(random);
  else
    return T(std::uniform_int_distribution<typename T::rep>(0, most.count())(random));
}

void earliest(std::optional<clock::time_point>& best, std::optional<clock::time_point> t) {
  if (t && (!best || *t < *best)) best = t;
}

}  // namespace

worker_info pool::info(const process& p, clock::time_point now) const {
  worker_info w{p.slot, p.pid, p.generation, p.state, now - p.started, std::nullopt,
                p.beat->requests.load(std::memory_order_relaxed), p.status};
  if (auto beat = beat_time(p); beat != clock::time_point{}) w.heartbeat_age = now - beat;
  return w;
}

void pool::maintain(clock::time_point now) {
  if (is_stopping(phase_)) return;
  int starting = 0;
  for (const auto& [pid, p] : table_.processes()) starting += p->state == worker_state::starting;
  for (int slot = 0; slot < size_ && starting < opts_.max_starting && !is_stopping(phase_); ++slot) {
    const slot_state& s = table_.slot(slot);
    if (s.current != 0 || s.rules.next_fork > now) continue;
    (void)spawn(slot, now);
    ++starting;
  }
}

// The fd limit a worker gets back (the arbiter raised its own), unless the
// program set one for its workers (options::rlimits): {0, 0}, none.
rlimit pool::restored_nofile() const {
  for (const auto& l : opts_.rlimits)
    if (l.resource == RLIMIT_NOFILE) return {};
  return nofile_;
}

process* pool::spawn(int slot, clock::time_point now, bool reload) {
  slot_state& s = table_.slot(slot);
  auto fail = [&](const char* what, std::error_code ec) {
    ++history_.counters.spawn_errors;
    history_.last_failure = fmt::format("cannot start worker {}: {}: {}", slot, what, ec.message());
    if (reload) {  // the slot keeps its current worker
      log("{}", history_.last_failure);
      return nullptr;
    }
    log("{}{}", history_.last_failure, slot_lost(slot, policy::end::failed_start, now));  // backoff, not a loop
    update_storm();
    check_give_up();
    return nullptr;
  };
  auto out = sys::make_pipe(opts_.pipe_size);
  if (!out) return fail("pipe2", out.error());
  auto err = sys::make_pipe(opts_.pipe_size);
  if (!err) return fail("pipe2", err.error());
  auto p = std::make_unique<process>(opts_.max_line);
  p->beat = board_.acquire();
  if (!p->beat) return fail("scoreboard", std::make_error_code(std::errc::too_many_files_open));
  const exec_spec& x = opts_.exec;
  detail::worker_environment env(sys::environment(), x.env,
                                 {slot, s.generation + 1, &listen_names_, notify_->name(), x.watchdog});
  std::vector<int> scratch(x.listen_fds.size());
  std::optional<detail::exec_plan> exec;
  if (!x.argv.empty())
    exec = detail::exec_plan{exec_path_.c_str(), exec_argv_.data(), env.pid_fields(), x.listen_fds, scratch.data(),
                             x.chdir.empty() ? nullptr : x.chdir.c_str()};
  detail::fd_runs close;
  if (exec) {  // the child closes all but what it hands on
  } else if (opts_.strict_fds) {
    std::vector<int> keep = opts_.keep_fds;
    keep.push_back(notify_->worker_end());
    close = detail::all_but(std::move(keep));
  } else {  // ufork's own, and what the program asked for
    std::vector<int> drop = sys::owned_fds();
    std::erase(drop, notify_->worker_end());
    drop.insert(drop.end(), opts_.private_fds.begin(), opts_.private_fds.end());
    close = detail::runs_of(std::move(drop));
  }
  p->beat->refork_at.store(refork_.next_threshold(), std::memory_order_relaxed);
  if (scale_ && !scale_->looking) p->beat->busy_wake.store(true, std::memory_order_relaxed);  // its first request wakes
  if (opts_.recycle.max_requests)  // in the cell before the fork: the worker counts against it
    p->beat->request_limit.store(opts_.recycle.max_requests + jitter(opts_.recycle.max_requests_jitter),
                                 std::memory_order_relaxed);
  std::string title = fmt::format("ufork: worker {} gen {}{}", slot, s.generation + 1, title_suffix_);
  detail::spawn_plan plan{slot, s.generation + 1, p->beat, board_.cells(), notify_->worker_end(),
                          out->write.get(), err->write.get(), &close, sys::syslog_open.load(), sys::own_pid(),
                          restored_nofile(), oom_scores_->worker_value(),
                          std::max(opts_.timeout / 4, milliseconds(1)), &hooks_, env.envp(),
                          exec ? &*exec : nullptr, drop_ ? &*drop_ : nullptr, !opts_.user.empty(),
                          cpus_.empty() ? -1 : cpus_[static_cast<std::size_t>(slot) % cpus_.size()], opts_.nice,
                          &opts_.rlimits, title.c_str()};
  flush_everything();  // nothing buffered may be inherited: the child would print it again
  auto fork_here = [&] {
    call_hook("before_fork", hooks_.before_fork);
    auto forked = detail::spawn(plan);
    call_hook("after_fork_parent", hooks_.after_fork_parent);
    return forked;
  };
  auto from_mold = fork_from_mold(plan);  // with reforking; the mold runs the hooks itself
  auto child = from_mold ? sys::result<detail::spawned>(std::move(*from_mold)) : fork_here();
  if (!child) {
    board_.release(p->beat);
    return fail("fork", child.error());
  }
  policy::forked(s.rules, now);
  const recycle_limits& r = opts_.recycle;
  if (r.max_lifetime > milliseconds::zero())
    p->lifetime_due = now + r.max_lifetime + jitter(r.max_lifetime_jitter);
  p->slot = slot;
  p->generation = ++s.generation;
  p->pid = child->pid;
  p->pidfd = std::move(child->pidfd);
  p->setup_errors = std::move(child->setup_errors);
  p->reload = reload;
  p->started = now;
  p->out.fd = std::move(out->read);
  p->err.fd = std::move(err->read);
  (void)table_.set_state(*p, worker_state::starting);
  history_.forked(slot, now);
  process& ref = table_.insert(std::move(p), reload);
  pid_t pid = ref.pid;
  ref.exit_token = loop_.add(ref.pidfd.get(), EPOLLIN, [this, pid](std::uint32_t) { on_exit(pid); });
  if (exec)  // the error pipe closes empty when the exec succeeded
    ref.setup_token = loop_.add(ref.setup_errors.get(), EPOLLIN, [this, pid](std::uint32_t) { on_setup_pipe(pid); });
  output_.watch(ref.pid, ref.out, ref.err);
  call_hook("on_worker_spawn", hooks_.on_worker_spawn, info(ref, now));
  return &ref;
}

std::string pool::reload(std::vector<int> slots, const char* name) {
  if (is_stopping(phase_)) return "the pool is stopping";
  if (replacements_.busy(successors_starting())) return "a reload is in progress";
  if (std::string_view(name) == "reload" && hooks_.reload_options) {
    std::optional<options> next;
    try {
      next = hooks_.reload_options();
    } catch (const std::exception& e) {
      return fmt::format("not done: {}", e.what());
    }
    if (next) {
      if (auto why = reconfigure(*next); !why.empty()) return why;
      slots = all_ids();  // the size may have changed
    }
  }
  if (slots.size() == 1)
    log("{}: worker {}, its successor ready first", name, slots.front());
  else
    log("{}: {}, one at a time", name, workers_count(slots.size()));
  manager_.reloading(clock::now());
  (void)replacements_.reload(slots, name, successors_starting());
  reload_next(clock::now());
  return {};
}

int pool::successors_starting() const {
  int n = 0;
  for (const auto& [pid, p] : table_.processes()) n += p->reload && p->state == worker_state::starting;
  return n;
}

// A reload's successor failed before it was ready: the slots not reloaded
// yet keep their workers.
void pool::abandon_reload(const process& successor, const std::string& why) {
  log("reload: the successor of worker {} failed ({}); reload abandoned", successor.slot, why);
  replacements_.abandon();
  for (const auto& [pid, p] : table_.processes()) p->recycle_why.reset();  // the limits are checked again
  (void)refork_.finished();  // a refork's: its mold stays, unjudged
}

// Past a limit: replaced as a reload replaces it, its successor ready first,
// one slot at a time (after any reload or recycling under way).
void pool::recycle(process& p, std::string why, clock::time_point now) {
  if (is_stopping(phase_) || table_.slot(p.slot).current != p.pid) return;
  p.recycle_why = "recycled: " + std::move(why);
  log("worker {} pid {} {}; its successor starts first", p.slot, p.pid, *p.recycle_why);
  replacements_.recycle(p.slot);
  reload_next(now);
}

// Memory and fd use, every check_interval while a limit is set.
void pool::check_usage(clock::time_point now) {
  const recycle_limits& r = opts_.recycle;
  if (!usage_limited() || (next_usage_check_ && now < *next_usage_check_)) return;
  next_usage_check_ = now + r.check_interval;
  std::vector<std::pair<pid_t, std::string>> over;
  for (const auto& [pid, p] : table_.processes()) {
    if (p->state != worker_state::ready || p->recycle_why) continue;
    // The worker's process group: it and what it started (a shell's children).
    if (auto rss = r.max_rss ? sys::group_rss_bytes(pid) : 0; r.max_rss && rss > r.max_rss)
      over.emplace_back(pid, fmt::format("rss {} MiB > {} MiB", rss >> 20, r.max_rss >> 20));
    else if (auto uss = r.max_private ? sys::group_memory(pid).uss : 0; r.max_private && uss > r.max_private)
      over.emplace_back(pid, fmt::format("private {} MiB > {} MiB", uss >> 20, r.max_private >> 20));
    else if (auto fds = sys::fd_usage(pid); r.max_fds_percent > 0 && fds.limit > 0 &&
                                            fds.open * 100 > fds.limit * static_cast<std::uint64_t>(r.max_fds_percent))
      over.emplace_back(pid, fmt::format("{} fds open of {} (over {} %)", fds.open, fds.limit, r.max_fds_percent));
  }
  for (auto& [pid, why] : over)  // not above: recycling forks, and the table grows
    if (process* p = table_.find(pid)) recycle(*p, std::move(why), now);
}

// The successors the queue lets start now.
void pool::reload_next(clock::time_point now) {
  while (!is_stopping(phase_)) {
    auto slot = replacements_.next(successors_starting(), opts_.recycle.at_once);
    if (!slot) return;
    if (*slot >= size_ || table_.slot(*slot).current == 0) continue;  // being replaced anyway
    if (!spawn(*slot, now, true)) {
      log("reload: no successor for worker {}; reload abandoned", *slot);
      replacements_.abandon();
      return;
    }
  }
}

// A datagram of the sd_notify protocol (notify_channel.hpp), from library
// workers (READY=1 on their socket pair) and exec'd ones (NOTIFY_SOCKET):
// newline-separated KEY=VALUE.
void pool::on_notify(pid_t worker, std::string_view rest, sys::unique_fd passed) {
  process* p = table_.find(worker);
  if (!p) {
    ++history_.counters.notify_ignored;
    return;
  }
  if (passed) {  // only a mold passes an fd: its channel (an fd passed otherwise closes here)
    if (rest == "UFORK_MOLD=ready") mold_ready(worker, std::move(passed));
    return;
  }
  auto now = clock::now();
  pid_t pid = p->pid;  // the sender is known from its credentials, as systemd knows it
  while (!rest.empty() && (p = table_.find(pid))) {  // a line may end it (WATCHDOG=trigger)
    auto end = std::min(rest.find('\n'), rest.size());
    on_notify_line(*p, rest.substr(0, end), now);
    rest.remove_prefix(std::min(end + 1, rest.size()));
  }
}

void pool::on_notify_line(process& p, std::string_view line, clock::time_point now) {
  notify_line n = parse_notify_line(line);
  auto beat = [&] { p.beat->beat_ns.store(now.time_since_epoch().count(), std::memory_order_relaxed); };
  switch (n.what) {
    case notify_line::ready:
      beat();
      on_ready(p, now);
      break;
    case notify_line::watchdog: beat(); break;
    case notify_line::trigger: hang(p, "it asked for it (WATCHDOG=trigger)", now); break;
    case notify_line::timeout: p.timeout = n.timeout_value; break;
    case notify_line::status: p.status = std::move(n.text); break;
    case notify_line::error: p.detail = fmt::format("ERRNO={} ({})", n.error_value, sys::error_text(n.error_value)); break;
    case notify_line::recycle:
      if (p.state == worker_state::ready && !p.recycle_why)
        recycle(p, n.text == "requests" ? fmt::format("{} requests", p.beat->requests.load()) : "it asked", now);
      break;
    case notify_line::mold: consider_mold(p, now); break;
    case notify_line::busy: scale_wake(now); break;
    case notify_line::lifecycle: log("worker {} pid {}: {}", p.slot, p.pid, line); break;
    case notify_line::ignored: break;  // BARRIER=1: its fd is closed already; the rest (MAINPID, FDSTORE, ...) is not ours
  }
}

void pool::on_setup_pipe(pid_t pid) {
  process* p = table_.find(pid);
  if (!p || !p->setup_errors) return;
  bool exec_done = false;
  auto why = detail::read_setup_error(p->setup_errors.get(), exec_path_.c_str(), &exec_done);
  if (why.empty() && !exec_done) return;  // not yet
  if (!why.empty()) p->detail = why;       // it exits 126 or 127 now
  close_setup_pipe(*p);
  if (exec_done && !opts_.exec.notify) p->ready_due = clock::now() + opts_.exec.ready_after;
}

void pool::close_setup_pipe(process& p) {
  if (p.setup_token) loop_.remove(std::exchange(p.setup_token, 0));
  p.setup_errors.reset();
}

void pool::on_ready(process& p, clock::time_point now) {
  if (!table_.set_state(p, worker_state::ready)) return;
  p.ready_at = now;
  close_setup_pipe(p);  // its setup is done
  ever_ready_ = true;
  oom_.watch(p.pid);
  call_hook("on_worker_ready", hooks_.on_worker_ready, info(p, now));
  if (!p.reload) return;
  // A reload's successor: the slot is now this one's; its predecessor goes.
  if (process* old = table_.find(table_.promote(p))) {
    bool recycled = old->recycle_why.has_value();
    if (recycled) old->detail = *old->recycle_why;
    stop_worker(*old, recycled ? exit_reason::recycled : exit_reason::replaced, now);
  }
  reload_next(now);
  reload_done_yet();
}

// A reload is done when its last predecessor has exited (its "replaced"
// line said), not when its last successor is ready.
void pool::reload_done_yet() {
  bool stopping = std::ranges::any_of(table_.processes(), [](const auto& e) {
    return e.second->state == worker_state::stopping && e.second->reason == exit_reason::replaced;
  });
  if (const char* name = replacements_.finished(successors_starting(), stopping)) {
    log("{}: done", name);
    if (std::string_view(name) == "refork") judge_generation();
  }
}

void pool::on_exit(pid_t pid) {
  process* found = table_.find(pid);
  if (!found) return;
  process& p = *found;
  // Whatever the worker spawned into its group and left behind goes with it
  // (before the reap: until then no other process can have its pid).
  (void)sys::kill_group(pid, SIGKILL);
  auto si = sys::waitid_pidfd(p.pidfd.get());
  if (si && si->si_pid == 0) return;  // not exited yet (cannot happen: pidfd said so)
  auto now = clock::now();
  output_.drain(p.slot, p.pid, p.out, p.err);

  exit_info e;
  e.id = p.slot;
  e.pid = pid;
  e.generation = p.generation;
  e.was_ready = p.ready_at.has_value();
  e.uptime = now - p.started;
  e.when = std::chrono::system_clock::now();
  e.detail = p.detail;
  if (p.setup_errors)
    if (auto why = detail::read_setup_error(p.setup_errors.get(), exec_path_.c_str()); !why.empty()) e.detail = why;
  close_setup_pipe(p);
  if (!si) {
    e.detail = "waitid failed: " + si.error().message();
  } else if (si->si_code == CLD_EXITED) {
    e.code = si->si_status;
  } else {
    e.signal = si->si_status;
    e.core_dumped = si->si_code == CLD_DUMPED;
  }
  auto oom = oom_.judge(pid, e.signal == SIGKILL);
  e.oom_killed = oom == oom_verdict::yes;
  e.oom_possible = oom == oom_verdict::possibly;
  e.reason = p.reason.value_or(e.code == 0 ? exit_reason::exited : exit_reason::crashed);

  std::uint64_t requests = p.beat->requests.load(std::memory_order_relaxed);
  loop_.remove(p.exit_token);
  board_.release(p.beat);
  if (p.reload && p.state == worker_state::starting) abandon_reload(p, e.status_text());
  (void)table_.set_state(p, worker_state::exited);
  bool current = table_.release(p);
  (void)table_.remove(pid);

  if (pid == refork_.candidate()) {
    refork_.candidate_lost();
    e.detail = "promoted to mold, it exited instead";
  }
  history_.exited(e, requests);
  // Only a slot left empty needs a successor. A worker that had become
  // ready (or that an operator killed) is replaced at once; one that never
  // did is a failed start.
  std::string next;
  bool failed = false;
  if (current && !is_stopping(phase_) && e.id < size_) {
    history_.slot_lost(e.id, now);
    failed = !e.was_ready && e.reason != exit_reason::killed;
    if (failed) history_.last_failure = e.describe();
    next = slot_lost(e.id, failed ? policy::end::failed_start : policy::end::served, now);
  }
  call_hook("on_worker_exit", hooks_.on_worker_exit, e);
  reap_orphans();  // those this worker's zombie hid from the last SIGCHLD
  update_storm();
  if (failed && history_.in_storm())
    history_.quiet();
  else
    log("{}{}", e.describe(), next);
  if (failed) check_give_up();
  if (e.reason == exit_reason::replaced) reload_done_yet();
}

// The slot's current worker is gone: the policy says when the next may be
// forked. Returns the tail of the log line ("; restarting", ...).
std::string pool::slot_lost(int slot, policy::end how, clock::time_point now) {
  slot_state& s = table_.slot(slot);
  auto wait = policy::ended(s.rules, how, now, opts_.backoff);
  if (how == policy::end::failed_start && s.rules.failed_starts >= 2) ++history_.counters.backoffs;
  if (wait <= clock::duration::zero()) return "; restarting";
  return fmt::format("; restarting in {}", seconds(wait));
}

// A program that cannot start at all: stop, and tell the service manager.
void pool::check_give_up() {
  if (is_stopping(phase_) || ever_ready_ || size_ == 0) return;
  auto out = [this](const policy::slot& s) { return policy::out_of_starts(s, opts_.max_boot_failures); };
  auto& slots = table_.slots();
  if (!std::ranges::all_of(slots.begin(), slots.begin() + size_, out, &slot_state::rules)) return;
  log("no worker ever became ready; every slot failed {} starts in a row; last: {}", opts_.max_boot_failures,
      history_.last_failure);
  exit_code_ = exit_boot_failure;
  apply(pool_event::give_up);
}

// One loud line when most slots are failing, one when that ends; the
// failures in between are counted, not logged one by one.
void pool::update_storm() {
  auto& slots = table_.slots();
  auto failing = std::ranges::count_if(slots.begin(), slots.begin() + size_, policy::failing, &slot_state::rules);
  if (auto line = history_.storm(static_cast<std::size_t>(failing), static_cast<std::size_t>(size_),
                                  seconds(opts_.backoff.cap)))
    log("{}", *line);
}

policy::worker_clock pool::clock_of(const process& p) const {
  return {p.state, p.started, beat_time(p), p.kill_at, p.window_from};
}

// The worker's own heartbeat deadline (WATCHDOG_USEC=), or the pool's:
// options::timeout for a library worker, exec.watchdog for an exec'd one
// (none without it, or without notify: only its readiness and death).
policy::timeouts pool::timeouts_of(const process& p) const {
  milliseconds beat = p.timeout > milliseconds::zero() ? p.timeout
                      : opts_.exec.argv.empty()        ? opts_.timeout
                                                       : opts_.exec.watchdog;
  return {beat, opts_.startup_timeout};
}

void pool::check_deadlines(clock::time_point now) {
  bool changed = false;  // a slot's record: the storm may begin or end
  std::vector<pid_t> now_ready;  // exec'd without --notify, running for ready_after
  std::vector<pid_t> expired;    // past max_lifetime
  for (const auto& [pid, ptr] : table_.processes()) {
    process& p = *ptr;
    auto c = clock_of(p);
    auto t = timeouts_of(p);
    if (p.state == worker_state::starting && p.ready_due && now >= *p.ready_due) {
      now_ready.push_back(pid);
      continue;
    }
    if (p.state == worker_state::ready && !p.recycle_why && p.lifetime_due && now >= *p.lifetime_due)
      expired.push_back(pid);
    if (p.state == worker_state::ready && policy::has_proven(p.ready_at, c.beat, t.timeout) &&
        table_.slot(p.slot).current == pid)
      changed |= policy::proven(table_.slot(p.slot).rules);
    auto due = policy::deadline(c, t);
    if (!due || now < *due) continue;
    changed |= p.state != worker_state::stopping;
    if (p.state == worker_state::starting)
      hang(p, fmt::format("not ready after {} (startup_timeout)", seconds(now - std::max(p.started, p.window_from))),
           now);
    else if (p.state == worker_state::ready)
      hang(p, fmt::format("no heartbeat for {} (timeout)", seconds(now - std::max(c.beat, p.window_from))), now);
    else if (p.state == worker_state::stopping) {
      send(p, SIGKILL);
      p.kill_at.reset();
    }
  }
  if (changed) update_storm();
  for (pid_t pid : now_ready)  // not above: a reload's next fork may grow the table
    if (process* p = table_.find(pid)) on_ready(*p, now);
  // Several past their lifetime in one turn (forked in one turn, they come
  // due together) are queued by when they came due, then by slot: not in
  // the table's hash order.
  std::sort(expired.begin(), expired.end(), [this](pid_t a, pid_t b) {
    const process &x = *table_.find(a), &y = *table_.find(b);
    return std::tie(x.lifetime_due, x.slot) < std::tie(y.lifetime_due, y.slot);
  });
  for (pid_t pid : expired)
    if (process* p = table_.find(pid)) recycle(*p, "lifetime " + seconds(now - p->started), now);
  check_usage(now);
}

// The loop woke after its deadline: the arbiter was not running (the tree
// frozen, the VM paused), so a worker's silence meanwhile proves nothing.
// After a long stall each worker gets a fresh window from now, and the log
// says so. After a brief one (a freeze that ended just past a deadline,
// or a loaded machine), each worker that has beaten since its last fresh
// window gets one, quietly: a really hung worker is caught one timeout
// later, and load cannot put that off again and again.
void pool::restart_clocks(policy::stall how, clock::duration late, clock::time_point now) {
  bool long_stall = how == policy::stall::long_;
  if (long_stall) {
    ++history_.counters.stalls;
    log("the arbiter woke {} past its deadline (stalled: frozen or paused?); every worker's clock restarts now",
        seconds(late));
  }
  for (const auto& [pid, p] : table_.processes())
    if (long_stall || p->window_from == clock::time_point{} || beat_time(*p) > p->window_from) p->window_from = now;
}

std::optional<clock::time_point> pool::next_deadline(clock::time_point now) const {
  std::optional<clock::time_point> at;
  for (const auto& [pid, p] : table_.processes()) {
    earliest(at, policy::deadline(clock_of(*p), timeouts_of(*p)));
    if (p->state == worker_state::starting) earliest(at, p->ready_due);
    if (p->state == worker_state::ready && !p->recycle_why) earliest(at, p->lifetime_due);
  }
  if (usage_limited()) earliest(at, next_usage_check_);
  if (phase_ == pool_phase::draining) earliest(at, drain_until_);
  earliest(at, scale_due());
  if (auto beat = manager_.next_beat()) earliest(at, *beat);
  if (!is_stopping(phase_))
    for (int i = 0; i < size_; ++i) {
      const slot_state& s = table_.slot(i);
      if (s.current == 0 && s.rules.next_fork > now) earliest(at, s.rules.next_fork);
    }
  return at;
}

// SIGABRT first, so the worker's handler writes its stack to the log, and
// SIGCONT, so a stopped worker runs it; SIGKILL after abort_timeout for one
// that cannot (stuck in the kernel). Its successor is forked now: capacity
// comes back at the deadline, not when the hung one is gone.
void pool::hang(process& p, std::string detail, clock::time_point now) {
  bool was_ready = p.state == worker_state::ready;
  history_.hung(was_ready);
  if (p.reload && !was_ready) abandon_reload(p, "hung");
  if (!table_.set_state(p, worker_state::stopping)) return;
  p.reason = exit_reason::hung;
  p.detail = std::move(detail);
  p.kill_at = now + opts_.abort_timeout;
  (void)sys::pidfd_send_signal(p.pidfd.get(), SIGABRT);
  (void)sys::pidfd_send_signal(p.pidfd.get(), SIGCONT);
  std::string next;
  if (table_.release(p) && !is_stopping(phase_) && p.slot < size_) {
    history_.slot_lost(p.slot, now);  // given up for dead: its successor is forked now
    history_.last_failure = fmt::format("worker {} pid {} hung: {}", p.slot, p.pid, p.detail);
    next = slot_lost(p.slot, was_ready ? policy::end::hung : policy::end::failed_start, now);
  }
  log("worker {} pid {} hung: {}; sending SIGABRT{}", p.slot, p.pid, p.detail, next);
  if (!was_ready) check_give_up();
}

void pool::stop_worker(process& p, exit_reason why, clock::time_point now) {
  if (!table_.set_state(p, worker_state::stopping)) return;
  p.reason = why;
  p.kill_at = now + opts_.graceful_timeout;
  send(p, SIGTERM);
  send(p, SIGCONT);  // a stopped worker must see its SIGTERM
}

void pool::send(const process& p, int sig) noexcept {
  (void)sys::pidfd_send_signal(p.pidfd.get(), sig);
  (void)sys::kill_group(p.pid, sig);  // no pid reuse: the worker is not reaped yet
}

void pool::apply(pool_event e) {
  auto to = after(phase_, e, opts_.drain_delay > milliseconds::zero());
  if (!to) return;
  auto from = std::exchange(phase_, *to);
  auto now = clock::now();
  if (phase_ == pool_phase::draining) {
    drain_until_ = now + opts_.drain_delay;
    log("draining for {}: the pool says it is not ready while its workers serve; then it stops",
        seconds(opts_.drain_delay));
    return;
  }
  if (!is_stopping(from)) {
    drop_mold("the pool stops");
    manager_.stopping();
    call_hook("parent_pre_stop", hooks_.parent_pre_stop);
  }
  bool fast = phase_ == pool_phase::stopping_fast;
  log("stopping {} ({})", workers_count(table_.processes().size()),
      fast ? "fast: SIGKILL" : fmt::format("graceful: SIGTERM, SIGKILL after {}", seconds(opts_.graceful_timeout)));
  for (const auto& [pid, p] : table_.processes()) {
    p->beat->pool_stopping.store(true, std::memory_order_release);  // before its SIGTERM
    stop_worker(*p, exit_reason::stopped, now);
    if (fast) p->kill_at = now;
  }
  check_deadlines(now);
}

void pool::do_resize(int n, const std::string& why) {
  if (is_stopping(phase_) || n == size_) return;
  if (!why.empty())
    log("scaling {} -> {}: {}", size_, n, why);
  else
    log("size {} -> {}{}", size_, n, n == 0 ? ": the pool is empty; connections wait unanswered until it grows" : "");
  size_ = n;
  table_.resize(n);
  auto now = clock::now();
  for (const auto& [pid, p] : table_.processes())
    if (p->slot >= n) {
      (void)table_.release(*p);
      stop_worker(*p, exit_reason::shrunk, now);
    }
}

}  // namespace ufork
