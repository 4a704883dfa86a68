// The pool's side of reforking (options::refork_after; core/refork.hpp):
// a worker past its threshold is promoted, its slot forked again; once it
// says it is the mold, every fork asks it, and the others are replaced one
// at a time; a generation that did not lower the pool's PSS is let go, as
// is a mold that dies, hangs or cannot fork: forks return to the arbiter.
#include <signal.h>
#include <sys/epoll.h>

#include "core/pool.hpp"
#include "sys/procfs.hpp"
#include "sys/process.hpp"

namespace ufork {
std::uint64_t pool::pool_pss() const {
  std::uint64_t total = 0;
  auto add = [&total](pid_t pid) {
    if (auto m = sys::memory_of(pid)) total += m->pss;
  };
  add(sys::own_pid());
  for (const auto& [pid, p] : table_.processes()) add(pid);
  if (const process* m = refork_.mold()) add(m->pid);
  return total;
}

void pool::consider_mold(process& p, clock::time_point now) {
  if (!refork_.may_promote() || is_stopping(phase_) || p.state != worker_state::ready || p.recycle_why ||
      table_.slot(p.slot).current != p.pid || replacements_.busy(successors_starting()))
    return;
  refork_.promoted(p.pid, pool_pss());
  log("refork: worker {} pid {} has served {} requests: once its connections are done it becomes the mold of "
      "generation {}, which every worker is forked from",
      p.slot, p.pid, p.beat->requests.load(std::memory_order_relaxed), refork_.generation());
  p.beat->become_mold.store(true, std::memory_order_release);  // before its SIGTERM
  p.detail = "promoted to mold";
  (void)table_.release(p);  // its slot is forked again now
  stop_worker(p, exit_reason::replaced, now);
}

void pool::mold_ready(pid_t pid, sys::unique_fd channel) {
  process* p = table_.find(pid);
  if (!p) return;
  if (pid != refork_.candidate() || is_stopping(phase_)) {  // unasked, or too late
    send(*p, SIGKILL);
    return;
  }
  close_setup_pipe(*p);
  loop_.remove(std::exchange(p->exit_token, 0));
  std::size_t cell = board_.index(p->beat);
  board_.release(p->beat);
  auto record = table_.remove(pid);
  if (auto previous = refork_.release()) {
    log("refork: the mold of generation {} (pid {}) retires: the next takes over", refork_.generation() - 1,
        previous->pid);
    end_mold(*previous);
  }
  record->exit_token = loop_.add(record->pidfd.get(), EPOLLIN, [this](std::uint32_t) { on_mold_exit(); });
  refork_.adopt(std::move(record), std::move(channel), cell);
  log("refork: pid {} is the mold of generation {}: every worker is forked from it now", pid, refork_.generation());
  if (auto why = reload(all_ids(), "refork"); !why.empty()) {  // a reload under way: the mold stays, unjudged
    log("refork: the others are not replaced now: {}; new workers come from the mold", why);
    (void)refork_.finished();
  }
}

std::optional<detail::spawned> pool::fork_from_mold(const detail::spawn_plan& plan) {
  if (!refork_.mold()) return std::nullopt;
  detail::mold_request rq{};
  rq.slot = plan.slot;
  rq.generation = plan.generation;
  rq.cpu = plan.cpu;
  fmt::format_to_n(rq.title, sizeof rq.title - 1, "{}", plan.title);
  auto child = refork_.fork(rq, board_.index(plan.beat_cell), plan.out_fd, plan.err_fd, opts_.timeout);
  if (child) return std::move(child).value();
  drop_mold(child.error() == std::errc::timed_out
                ? fmt::format("it did not answer a fork within {} ms (timeout): hung", opts_.timeout.count())
                : "it could not fork: " + child.error().message());
  return std::nullopt;
}

void pool::on_mold_exit() {
  const process* m = refork_.mold();
  if (!m) return;
  auto si = sys::waitid_pidfd(m->pidfd.get());
  if (si && si->si_pid == 0) return;
  exit_info e;
  if (si && si->si_code == CLD_EXITED)
    e.code = si->si_status;
  else if (si)
    e.signal = si->si_status;
  drop_mold(fmt::format("it died ({})", e.status_text()));
}

void pool::end_mold(process& m) {
  loop_.remove(m.exit_token);
  (void)sys::pidfd_send_signal(m.pidfd.get(), SIGKILL);
  sys::reap_pidfd(m.pidfd.get());
  output_.drain(m.slot, m.pid, m.out, m.err);
}

void pool::drop_mold(const std::string& why) {
  auto m = refork_.release();
  if (!m) return;
  end_mold(*m);
  log("refork: the mold of generation {} (pid {}) is let go: {}; workers are forked by the arbiter again",
      refork_.generation(), m->pid, why);
}

void pool::judge_generation() {
  std::uint64_t before = refork_.finished();
  if (refork_.mold() && before != 0) judge_pss(before);
  // A worker that passed its threshold while this generation was under way
  // asked then, once: the next generation starts from it now.
  auto now = clock::now();
  std::vector<pid_t> past;
  for (const auto& [pid, p] : table_.processes())
    if (auto at = p->beat->refork_at.load(std::memory_order_relaxed);
        at != 0 && p->beat->requests.load(std::memory_order_relaxed) >= at)
      past.push_back(pid);
  for (pid_t pid : past)
    if (process* p = table_.find(pid); p && refork_.may_promote()) consider_mold(*p, now);
}

void pool::judge_pss(std::uint64_t before) {
  // Down by 1 MiB at least: a mold is one more process, and a reading
  // moves by a few pages from one moment to the next.
  constexpr std::uint64_t margin = 1 << 20;
  std::uint64_t after = pool_pss();
  if (after + margin > before)
    drop_mold(fmt::format("the pool's PSS did not go down by 1 MiB ({} before, {} with its workers)", mib_text(before),
                          mib_text(after)));
  else
    log("refork: generation {} done: the pool's PSS {} -> {}", refork_.generation(), mib_text(before), mib_text(after));
}

}  // namespace ufork
