// What the pool counts and remembers since it started (or since the image
// it was upgraded from started: the counters and the exits travel): the
// counters `status` shows, the last 64 exits (`dead`), the /metrics tallies
// (exits by reason, code and signal, hangs by clock, uptime at exit,
// respawn latency), the requests of the workers gone, the last failure and
// the failure storm (one loud line when most slots fail, one when that
// ends, the failures between counted, not logged). Pure. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ufork/arbiter.hpp"

namespace ufork {

struct histogram {
  std::vector<double> bounds;         // the buckets' upper bounds, seconds
  std::vector<std::uint64_t> counts;  // per bucket (not cumulative), the last one +Inf
  double sum = 0;
  std::uint64_t count = 0;
  explicit histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1) {}
  void observe(double v) {
    std::size_t i = 0;
    while (i < bounds.size() && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
  }
};

// What the pool counts for /metrics beyond pool_counters.
struct pool_tallies {
  std::map<std::string, std::uint64_t> exits_by_reason, exit_codes, exit_signals;
  std::map<std::string, std::uint64_t> hung_by_clock;  // "heartbeat" (timeout), "startup" (startup_timeout)
  histogram uptime_at_exit{{0.1, 1, 10, 60, 600, 3600, 86400}};
  // From a worker's death to its slot's next fork.
  histogram respawn_latency{{0.0005, 0.001, 0.002, 0.005, 0.01, 0.1, 1, 10, 60}};
};

class pool_history {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t dead_kept = 64;

  pool_counters counters;              // requests: those of the workers gone (requests_gone())
  std::string last_failure;            // a failed start's or a hang's line, for the give-up and storm lines

  // A worker of `slot` was forked: the time since its slot lost its last one, if it did.
  void forked(int slot, clock::time_point now);
  // The slot lost its worker (it died, or hung and is given up for dead):
  // the respawn latency runs from now.
  void slot_lost(int slot, clock::time_point now) { lost_at_[slot] = now; }
  void hung(bool was_ready);
  // A worker was reaped; `requests`: what it had served.
  void exited(const exit_info& e, std::uint64_t requests);
  // From the image before: its counters, the requests of its workers gone, its exits.
  void adopt(const pool_counters& c, std::uint64_t requests_gone, const std::vector<exit_info>& dead);

  const std::deque<exit_info>& dead() const noexcept { return dead_; }
  const pool_tallies& tallies() const noexcept { return tallies_; }
  std::uint64_t requests_gone() const noexcept { return requests_gone_; }

  // `failing` of `slots` slots fail (policy::storm decides): the line that
  // says a storm began or ended, or nullopt. quiet(): a failed start the
  // storm keeps out of the log.
  std::optional<std::string> storm(std::size_t failing, std::size_t slots, const std::string& backoff_cap);
  bool in_storm() const noexcept { return storm_; }
  void quiet() noexcept { ++storm_quiet_; }

 private:
  std::deque<exit_info> dead_;
  pool_tallies tallies_;
  std::map<int, clock::time_point> lost_at_;  // slots whose worker died, until their next fork
  std::uint64_t requests_gone_ = 0;
  bool storm_ = false;
  std::uint64_t storm_quiet_ = 0;
};

}  // namespace ufork
