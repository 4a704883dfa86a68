// What the pool counts and remembers (core/history.hpp), alone.
#include <gtest/gtest.h>

#include <signal.h>

#include "core/history.hpp"

namespace ufork {
namespace {

using clock = std::chrono::steady_clock;

exit_info exit_of(int id, int code, int signal, exit_reason why) {
  exit_info e;
  e.id = id;
  e.code = code;
  e.signal = signal;
  e.reason = why;
  e.uptime = std::chrono::seconds(5);
  return e;
}

TEST(pool_history, exits_are_tallied_and_the_last_64_kept) {
  pool_history h;
  for (int i = 0; i < 70; ++i) h.exited(exit_of(i, i % 2 ? 3 : -1, i % 2 ? 0 : SIGKILL, exit_reason::crashed), 10);
  EXPECT_EQ(h.counters.exited, 70u);
  EXPECT_EQ(h.requests_gone(), 700u);
  ASSERT_EQ(h.dead().size(), 64u);
  EXPECT_EQ(h.dead().front().id, 6);  // the oldest six are gone
  EXPECT_EQ(h.dead().back().id, 69);
  EXPECT_EQ(h.tallies().exits_by_reason.at("crashed"), 70u);
  EXPECT_EQ(h.tallies().exit_codes.at("3"), 35u);
  EXPECT_EQ(h.tallies().exit_signals.at("SIGKILL"), 35u);
  EXPECT_EQ(h.tallies().uptime_at_exit.count, 70u);
  EXPECT_EQ(h.tallies().uptime_at_exit.counts[2], 70u);  // 5 s: the (1, 10] bucket
}

TEST(pool_history, the_respawn_latency_runs_from_a_slot_lost_to_its_next_fork) {
  pool_history h;
  auto t = clock::now();
  h.forked(0, t);  // a first fork: no latency
  EXPECT_EQ(h.tallies().respawn_latency.count, 0u);
  h.slot_lost(0, t);
  h.forked(1, t + std::chrono::milliseconds(1));  // another slot's
  EXPECT_EQ(h.tallies().respawn_latency.count, 0u);
  h.forked(0, t + std::chrono::microseconds(700));
  EXPECT_EQ(h.tallies().respawn_latency.count, 1u);
  EXPECT_EQ(h.tallies().respawn_latency.counts[1], 1u);  // (0.5 ms, 1 ms]
  h.forked(0, t + std::chrono::seconds(1));              // once per loss
  EXPECT_EQ(h.tallies().respawn_latency.count, 1u);
  EXPECT_EQ(h.counters.spawned, 4u);
}

TEST(pool_history, a_storm_is_said_once_when_it_begins_and_once_with_its_count_when_it_ends) {
  pool_history h;
  h.last_failure = "worker 0 pid 7 exit 1";
  EXPECT_EQ(h.storm(0, 4, "30 s"), std::nullopt);
  auto begins = h.storm(4, 4, "30 s");
  ASSERT_TRUE(begins);
  EXPECT_NE(begins->find("4 of 4 workers are failing"), std::string::npos) << *begins;
  EXPECT_NE(begins->find("last: worker 0 pid 7 exit 1"), std::string::npos) << *begins;
  EXPECT_TRUE(h.in_storm());
  h.quiet();
  h.quiet();
  EXPECT_EQ(h.storm(4, 4, "30 s"), std::nullopt);
  EXPECT_EQ(h.storm(0, 4, "30 s"), "workers are starting again (2 failed starts not logged)");
  EXPECT_FALSE(h.in_storm());
  (void)h.storm(4, 4, "30 s");
  EXPECT_EQ(h.storm(0, 4, "30 s"), "workers are starting again (0 failed starts not logged)");
}

TEST(pool_history, hangs_are_counted_by_their_clock) {
  pool_history h;
  h.hung(true);
  h.hung(false);
  h.hung(true);
  EXPECT_EQ(h.counters.hung, 3u);
  EXPECT_EQ(h.tallies().hung_by_clock.at("heartbeat"), 2u);
  EXPECT_EQ(h.tallies().hung_by_clock.at("startup"), 1u);
}

}  // namespace
}  // namespace ufork
