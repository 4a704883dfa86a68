#include "core/policy.hpp"

#include <algorithm>
#include <utility>

namespace ufork::policy {

void forked(slot& s, clock::time_point now) noexcept { s.last_fork = now; }

clock::duration ended(slot& s, end how, clock::time_point now, const restart_backoff& r) noexcept {
  clock::time_point at = s.last_fork + r.min_interval;
  if (how == end::failed_start) {
    ++s.failed_starts;
    if (s.failed_starts >= 2) {
      int doublings = std::min(s.failed_starts - 2, 30);
      milliseconds delay = std::min<milliseconds>(r.initial * (1LL << doublings), r.cap);
      at = std::max(at, now + delay);
    }
  } else {
    s.failed_starts = 0;
  }
  s.bad = how == end::served ? 0 : s.bad + 1;
  s.next_fork = std::max(at, now);
  return s.next_fork - now;
}

bool proven(slot& s) noexcept { return std::exchange(s.bad, 0) != 0; }

bool has_proven(std::optional<clock::time_point> ready_at, clock::time_point beat, milliseconds timeout) noexcept {
  return ready_at && beat >= *ready_at + timeout;
}

bool failing(const slot& s) noexcept { return s.bad >= 2; }

bool storm(std::size_t failing, std::size_t slots) noexcept { return failing * 2 > slots; }

bool out_of_starts(const slot& s, int max_boot_failures) noexcept {
  return max_boot_failures > 0 && s.failed_starts >= max_boot_failures;
}

std::optional<clock::time_point> deadline(const worker_clock& w, const timeouts& t) noexcept {
  switch (w.state) {
    case worker_state::starting: return std::max(w.started, w.window_from) + t.startup_timeout;
    case worker_state::ready:
      if (t.timeout <= milliseconds::zero()) return std::nullopt;  // no heartbeat to watch
      return std::max(w.beat, w.window_from) + t.timeout;
    case worker_state::stopping: return w.kill_at;
    case worker_state::spawning:
    case worker_state::exited: break;
  }
  return std::nullopt;
}

stall stalled(std::optional<clock::time_point> due, clock::time_point woke, milliseconds timeout) noexcept {
  using namespace std::chrono_literals;
  if (!due) return stall::none;
  if (woke - *due > std::max<milliseconds>(1s, timeout / 4)) return stall::long_;
  return woke - *due > short_stall ? stall::brief : stall::none;
}

}  // namespace ufork::policy
