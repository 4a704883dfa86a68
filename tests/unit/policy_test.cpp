// The restart policy and the worker clocks on made-up times: no process, no
// real clock.
#include <gtest/gtest.h>

#include <vector>

#include "core/policy.hpp"

namespace ufork::policy {
namespace {

using namespace std::chrono_literals;

const restart_backoff rules{.min_interval = 100ms, .initial = 100ms, .cap = 30'000ms};
const clock::time_point t0 = clock::time_point(1000s);

TEST(policy, a_worker_that_was_ready_is_replaced_at_once) {
  slot s;
  forked(s, t0);
  EXPECT_EQ(ended(s, end::served, t0 + 5s, rules), clock::duration::zero());
  EXPECT_EQ(s.next_fork, t0 + 5s);
  // Dying young does not matter once it was ready: kill after kill, each
  // successor is forked at once (the kills are further apart than the minimum).
  for (int i = 1; i <= 20; ++i) {
    auto at = t0 + 5s + i * 200ms;
    forked(s, at - 200ms);
    EXPECT_EQ(ended(s, end::served, at, rules), clock::duration::zero()) << i;
  }
  EXPECT_EQ(s.failed_starts, 0);
}

TEST(policy, never_sooner_than_the_minimum_interval_after_the_last_fork) {
  slot s;
  forked(s, t0);
  EXPECT_EQ(ended(s, end::served, t0 + 30ms, rules), 70ms);
  EXPECT_EQ(s.next_fork, t0 + 100ms);
  slot zero;
  forked(zero, t0);
  EXPECT_EQ(ended(zero, end::served, t0 + 1ms, {.min_interval = 0ms, .initial = 100ms, .cap = 1s}),
            clock::duration::zero());
}

TEST(policy, the_first_failed_start_costs_the_minimum_interval_then_backoff_doubles_to_the_cap) {
  slot s;
  auto now = t0;
  std::vector<clock::duration> waits;
  for (int i = 0; i < 12; ++i) {
    forked(s, now);
    now += 10ms;  // dies 10 ms after its fork, never ready
    waits.push_back(ended(s, end::failed_start, now, rules));
    now = s.next_fork;
  }
  EXPECT_EQ(waits[0], 90ms);  // min_interval since the fork
  EXPECT_EQ(waits[1], 100ms);
  EXPECT_EQ(waits[2], 200ms);
  EXPECT_EQ(waits[3], 400ms);
  EXPECT_EQ(waits[9], 25'600ms);
  EXPECT_EQ(waits[10], 30'000ms);
  EXPECT_EQ(waits[11], 30'000ms);
  EXPECT_EQ(s.failed_starts, 12);
  // A worker that becomes ready and is then killed clears the count.
  forked(s, now);
  EXPECT_EQ(ended(s, end::served, now + 1s, rules), clock::duration::zero());
  EXPECT_EQ(s.failed_starts, 0);
}

TEST(policy, a_hang_after_ready_is_replaced_at_once_and_counts_toward_failing) {
  slot s;
  forked(s, t0);
  EXPECT_EQ(ended(s, end::hung, t0 + 10s, rules), clock::duration::zero());
  EXPECT_FALSE(failing(s));
  forked(s, t0 + 10s);
  EXPECT_EQ(ended(s, end::hung, t0 + 20s, rules), clock::duration::zero());
  EXPECT_TRUE(failing(s));
  EXPECT_EQ(s.failed_starts, 0);  // no backoff: each one had become ready
}

TEST(policy, failing_means_the_last_two_workers_failed_and_none_has_proven_since) {
  slot s;
  forked(s, t0);
  ended(s, end::failed_start, t0 + 1ms, rules);
  EXPECT_FALSE(failing(s));
  ended(s, end::hung, t0 + 2s, rules);
  EXPECT_TRUE(failing(s));
  // Ready, then hung, over and over: failing the whole time, so no flapping.
  for (int i = 0; i < 5; ++i) {
    ended(s, end::hung, t0 + 3s + i * 1s, rules);
    EXPECT_TRUE(failing(s));
  }
  ended(s, end::served, t0 + 10s, rules);
  EXPECT_FALSE(failing(s));
  ended(s, end::failed_start, t0 + 11s, rules);
  ended(s, end::failed_start, t0 + 12s, rules);
  EXPECT_TRUE(failing(s));
  EXPECT_TRUE(proven(s));
  EXPECT_FALSE(failing(s));
  EXPECT_FALSE(proven(s));  // nothing left to clear
}

TEST(policy, proven_is_a_heartbeat_a_full_timeout_after_ready) {
  EXPECT_FALSE(has_proven(t0, t0 + 999ms, 1s));
  EXPECT_TRUE(has_proven(t0, t0 + 1s, 1s));
  EXPECT_FALSE(has_proven(std::nullopt, t0, 1s));  // never ready
}

TEST(policy, storm_is_more_than_half_failing) {
  EXPECT_FALSE(storm(0, 0));
  EXPECT_FALSE(storm(2, 4));
  EXPECT_TRUE(storm(3, 4));
  EXPECT_TRUE(storm(1, 1));
}

TEST(policy, a_slot_is_out_of_starts_after_max_boot_failures_in_a_row) {
  slot s;
  s.failed_starts = 4;
  EXPECT_FALSE(out_of_starts(s, 5));
  s.failed_starts = 5;
  EXPECT_TRUE(out_of_starts(s, 5));
  EXPECT_FALSE(out_of_starts(s, 0));  // 0: never give up
}

TEST(policy, each_state_has_its_clock) {
  timeouts t{.timeout = 10s, .startup_timeout = 60s};
  worker_clock w{.state = worker_state::starting, .started = t0, .beat = {}, .kill_at = {}, .window_from = {}};
  EXPECT_EQ(deadline(w, t), t0 + 60s);
  w.state = worker_state::ready;
  w.beat = t0 + 3s;
  EXPECT_EQ(deadline(w, t), t0 + 13s);
  w.state = worker_state::stopping;
  w.kill_at = t0 + 20s;
  EXPECT_EQ(deadline(w, t), t0 + 20s);
  w.state = worker_state::exited;
  EXPECT_EQ(deadline(w, t), std::nullopt);
}

TEST(policy, a_stall_of_the_arbiter_restarts_every_clock) {
  // Deadline armed for t0 + 1s; the loop woke 15 s later (frozen): a stall.
  EXPECT_EQ(stalled(t0 + 1s, t0 + 16s, 2s), stall::long_);
  EXPECT_EQ(stalled(t0 + 1s, t0 + 1s + 900ms, 2s), stall::brief);  // under max(1 s, timeout / 4)
  EXPECT_EQ(stalled(t0 + 1s, t0 + 3s, 10s), stall::brief);         // 2 s late is under 10 s / 4
  EXPECT_EQ(stalled(t0 + 1s, t0 + 3s + 600ms, 10s), stall::long_);
  EXPECT_EQ(stalled(t0 + 1s, t0 + 1s + 3ms, 2s), stall::brief);
  EXPECT_EQ(stalled(t0 + 1s, t0 + 1s + 1ms, 2s), stall::none);      // on time, give or take the scheduler
  EXPECT_EQ(stalled(std::nullopt, t0 + 99s, 2s), stall::none);  // nothing was armed
  timeouts t{.timeout = 2s, .startup_timeout = 60s};
  worker_clock w{.state = worker_state::ready, .started = t0, .beat = t0 + 1s, .kill_at = {}, .window_from = t0 + 16s};
  EXPECT_EQ(deadline(w, t), t0 + 18s);  // a fresh window from the wake-up, not beat + 2 s
  w.beat = t0 + 17s;
  EXPECT_EQ(deadline(w, t), t0 + 19s);  // and a real heartbeat after it counts
}

}  // namespace
}  // namespace ufork::policy
