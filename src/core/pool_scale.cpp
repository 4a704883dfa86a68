// The pool's side of autoscaling (options::scale; core/scaler.hpp). Quiet
// while nothing happens: the listening sockets are in the loop's epoll set
// for their next connection (EPOLLONESHOT), and each worker's cell asks its
// next request to say UFORK_BUSY=1; no timer runs. Either starts the looks:
// one every scale_look_every (the busy workers from the scoreboard, each
// socket's accept queue), which grow the pool at once, until
// scale_quiet_after looks in a row have seen nothing; then it is quiet
// again. A shrink is one worker at a time, once the scaler has not needed
// it for idle_timeout: a deadline, whether looking or not.
#include "core/exit_status.hpp"
#include "core/pool.hpp"
#include "sys/procfs.hpp"
#include "sys/process.hpp"
#include "sys/socket.hpp"

namespace ufork {
namespace {

constexpr auto scale_look_every = std::chrono::milliseconds(10);
constexpr int scale_quiet_after = 10;  // looks: 100 ms with nothing busy and nothing queued

std::string seconds(std::chrono::milliseconds d) { return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000); }

}  // namespace

void pool::scale_open() {
  const scaling& o = opts_.scale;
  if (o.max_workers == 0) return;
  scale_.emplace(o);
  scale_->sockets = std::make_unique<listen_watch>(loop_, [this] { scale_wake(clock::now()); });
  std::string watched;
  for (const auto& s : scale_->sockets->sockets())
    watched += (watched.empty() ? "" : ", ") + s.name + (s.unseen ? " (its queue unreadable here: connections only)" : "");
  log("autoscaling: {} to {} workers, shrinking after {} not needed{}; watching {}", o.min_workers, o.max_workers,
      seconds(o.idle_timeout),
      o.max_pool_memory ? ", PSS at most " + mib_text(o.max_pool_memory) : std::string(),
      watched.empty() ? std::string("no listening socket: busy workers only") : watched);
  for (const auto& [pid, p] : table_.processes()) p->beat->busy_wake.store(true, std::memory_order_relaxed);
  // Adopted after an upgrade above min_workers: that size, needed as of now.
  if (size_ > o.min_workers) (void)scale_->want.look(size_ - 1, 0, clock::now());
}

void pool::scale_wake(clock::time_point now) {
  if (!scale_ || scale_->looking) return;
  scale_->looking = true;
  scale_->idle_looks = 0;
  scale_->next_look = now;
  for (const auto& [pid, p] : table_.processes()) p->beat->busy_wake.store(false, std::memory_order_relaxed);
}

int pool::busy_workers() const {
  int n = 0;
  for (const auto& [pid, p] : table_.processes())
    n += p->state == worker_state::ready && p->beat->in_flight.load(std::memory_order_relaxed) > 0;
  return n;
}

bool pool::shrinking() const {
  for (const auto& [pid, p] : table_.processes())
    if (p->state == worker_state::stopping && p->reason == exit_reason::shrunk) return true;
  return false;
}

void pool::scale_tick(clock::time_point now) {
  if (!scale_ || phase_ != pool_phase::running) return;
  autoscale& a = *scale_;
  if (a.looking && now >= a.next_look) {
    int busy = busy_workers(), queued = a.sockets->look();
    int target = a.want.look(busy, queued, now);
    if (target > size_) {
      std::string why = fmt::format("{} of {} workers busy", busy, ready_count());
      for (const auto& s : a.sockets->sockets())
        if (s.queued > 0) why = fmt::format("accept queue {} on {}", s.queued, s.name);
      scale_up(target, std::move(why));
    }
    a.idle_looks = busy + queued == 0 ? a.idle_looks + 1 : 0;
    a.next_look = now + scale_look_every;
    if (a.idle_looks >= scale_quiet_after) {
      for (const auto& [pid, p] : table_.processes()) p->beat->busy_wake.store(true, std::memory_order_seq_cst);
      a.sockets->arm();
      // A request begun before its cell asked saw no flag and said nothing.
      a.looking = busy_workers() > 0;
    }
  }
  auto at = a.want.shrink_at(size_);
  if (at && now >= *at && !shrinking() && !replacements_.busy(successors_starting())) {
    ++a.downs;
    a.why = fmt::format("not needed for {} (idle timeout)", seconds(opts_.scale.idle_timeout));
    do_resize(size_ - 1, a.why);
  }
}

std::optional<clock::time_point> pool::scale_due() const {
  if (!scale_ || phase_ != pool_phase::running) return std::nullopt;
  std::optional<clock::time_point> at;
  if (scale_->looking) at = scale_->next_look;
  // A shrink held by one under way or by a reload: their ends wake the loop.
  if (auto shrink = scale_->want.shrink_at(size_); shrink && !shrinking() && !replacements_.busy(successors_starting()))
    if (!at || *shrink < *at) at = shrink;
  return at;
}

// To `target` workers, or as many as fit under the memory ceiling: each
// worker, the starting ones too, counted at the ready workers' mean PSS (a
// worker starts small and grows as it serves), the arbiter's before one is
// ready.
void pool::scale_up(int target, std::string why) {
  autoscale& a = *scale_;
  if (std::size_t ceiling = opts_.scale.max_pool_memory) {
    auto now = clock::now();
    if (a.held_at && now - *a.held_at < std::chrono::seconds(1)) return;  // smaps_rollup walks page tables
    auto pss = [](pid_t pid) -> std::uint64_t {
      auto m = sys::memory_of(pid);
      return m ? m->pss : 0;
    };
    std::uint64_t base = pss(sys::own_pid()) + (refork_.mold() ? pss(refork_.mold()->pid) : 0), warm = 0;
    std::uint64_t ready = 0;
    for (const auto& [pid, p] : table_.processes())
      if (p->state == worker_state::ready) {
        warm += pss(pid);
        ++ready;
      }
    std::uint64_t each = std::max<std::uint64_t>(ready ? warm / ready : base, 1);
    std::uint64_t projected = base + each * table_.processes().size();
    auto fit = static_cast<int>(projected >= ceiling ? 0 : (ceiling - projected) / each);
    if (size_ + fit < target) {
      if (!a.held_at)
        log("scaling held at {} (wanted {}: {}): {} per worker would take the pool's PSS past --max-pool-memory {} "
            "(counted at {} with {})",
            size_ + fit, target, why, mib_text(each), mib_text(ceiling), mib_text(projected),
            workers_count(table_.processes().size()));
      a.held_at = now;
      target = size_ + fit;
      if (target <= size_) return;
    } else {
      a.held_at.reset();
    }
  }
  ++a.ups;
  a.why = std::move(why);
  do_resize(target, a.why);
}

void pool::scale_status(pool_status& s) const {
  if (!scale_) return;
  auto& out = s.scale;
  out.min_workers = scale_->want.min();
  out.max_workers = scale_->want.max();
  out.target = scale_->want.target(clock::now());
  out.why = scale_->why;
  out.ups = scale_->ups;
  out.downs = scale_->downs;
  out.looking = scale_->looking;
  for (const auto& sock : scale_->sockets->sockets())
    out.queues.emplace_back(sock.name, sys::accept_queue(sock.fd).value_or(-1));
}

}  // namespace ufork
