#include "exit_status.hpp"

#include <signal.h>

#include <gtest/gtest.h>

#include "ufork/arbiter.hpp"

namespace ufork {
namespace {

TEST(exit_status, names_sysexits_codes) {
  EXPECT_STREQ(sysexits_name(0), "EX_OK");
  EXPECT_STREQ(sysexits_name(64), "EX_USAGE");
  EXPECT_STREQ(sysexits_name(70), "EX_SOFTWARE");
  EXPECT_STREQ(sysexits_name(78), "EX_CONFIG");
  EXPECT_EQ(sysexits_name(1), nullptr);
  EXPECT_EQ(sysexits_name(79), nullptr);
}

TEST(exit_status, names_signals) {
  EXPECT_EQ(signal_name(SIGKILL), "SIGKILL");
  EXPECT_EQ(signal_name(SIGSEGV), "SIGSEGV");
}

TEST(exit_status, parses_cgroup_counters) {
  EXPECT_EQ(parse_counter("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n", "oom_kill"), 1u);
  EXPECT_EQ(parse_counter("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", "oom_kill"), 7u);
  EXPECT_EQ(parse_counter("garbage", "oom_kill"), std::nullopt);
}

TEST(exit_status, describes_an_exit) {
  exit_info e;
  e.worker = 3;
  e.pid = 4312;
  e.generation = 2;
  e.signal = SIGKILL;
  e.oom_killed = true;
  e.reason = exit_reason::crashed;
  e.uptime = std::chrono::milliseconds(1500);
  EXPECT_EQ(e.describe(), "worker 3 pid 4312 gen 2 crashed: killed by SIGKILL (OOM killer), after 1.500 s");
  e.signal = 0;
  e.code = 70;
  e.reason = exit_reason::hung;
  e.detail = "no heartbeat for 2.000 s (timeout)";
  EXPECT_EQ(e.status_text(), "exit 70 (EX_SOFTWARE)");
  EXPECT_EQ(e.describe(),
            "worker 3 pid 4312 gen 2 hung: exit 70 (EX_SOFTWARE), after 1.500 s (no heartbeat for 2.000 s (timeout))");
}

}  // namespace
}  // namespace ufork
