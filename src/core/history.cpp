// What the pool counts and remembers (history.hpp).
#include "core/history.hpp"

#include <fmt/format.h>

#include <utility>

#include "core/exit_status.hpp"
#include "core/policy.hpp"

namespace ufork {

void pool_history::forked(int slot, clock::time_point now) {
  ++counters.spawned;
  if (auto lost = lost_at_.find(slot); lost != lost_at_.end()) {
    tallies_.respawn_latency.observe(std::chrono::duration<double>(now - lost->second).count());
    lost_at_.erase(lost);
  }
}

void pool_history::hung(bool was_ready) {
  ++counters.hung;
  ++tallies_.hung_by_clock[was_ready ? "heartbeat" : "startup"];
}

void pool_history::exited(const exit_info& e, std::uint64_t requests) {
  requests_gone_ += requests;
  ++counters.exited;
  ++tallies_.exits_by_reason[to_string(e.reason)];
  if (e.signal)
    ++tallies_.exit_signals[signal_name(e.signal)];
  else
    ++tallies_.exit_codes[std::to_string(e.code)];
  tallies_.uptime_at_exit.observe(std::chrono::duration<double>(e.uptime).count());
  dead_.push_back(e);
  if (dead_.size() > dead_kept) dead_.pop_front();
}

void pool_history::adopt(const pool_counters& c, std::uint64_t requests_gone, const std::vector<exit_info>& dead) {
  counters = c;
  requests_gone_ = requests_gone;
  dead_.assign(dead.begin(), dead.end());
}

std::optional<std::string> pool_history::storm(std::size_t failing, std::size_t slots,
                                               const std::string& backoff_cap) {
  bool storm = policy::storm(failing, slots);
  if (storm == storm_) return std::nullopt;
  storm_ = storm;
  if (storm)
    return fmt::format("WARNING: {} of {} workers are failing to start or hanging (failed starts back off up to {}); "
                       "last: {}",
                       failing, slots, backoff_cap, last_failure);
  return fmt::format("workers are starting again ({} failed starts not logged)", std::exchange(storm_quiet_, 0));
}

}  // namespace ufork
