#include "core/exit_status.hpp"

#include "core/oom.hpp"

#include <signal.h>

#include <gtest/gtest.h>

#include "ufork/arbiter.hpp"

namespace ufork {
namespace {

TEST(exit_status, names_sysexits_codes) {
  EXPECT_STREQ(sysexits_name(0), "EX_OK");
  EXPECT_STREQ(sysexits_name(64), "EX_USAGE");
  EXPECT_STREQ(sysexits_name(70), "EX_SOFTWARE");
  EXPECT_STREQ(sysexits_name(127), "command not found");
  EXPECT_STREQ(sysexits_name(126), "cannot execute");
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

TEST(exit_status, finds_the_oom_victim_in_a_kernel_log_record) {
  EXPECT_EQ(oom_witness::killed_pid("6,1234,5678,-;Memory cgroup out of memory: Killed process 4312 (w) total-vm:1kB"),
            4312);
  EXPECT_EQ(oom_witness::killed_pid("3,9,9,-;Out of memory: Killed process 77 (x)"), 77);
  EXPECT_EQ(oom_witness::killed_pid("6,1,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,task=w,pid=4312"), std::nullopt);
  EXPECT_EQ(oom_witness::killed_pid("6,1,1,-;Killed process abc"), std::nullopt);
}

TEST(exit_status, finds_a_memory_cgroups_counter_on_v1_v2_and_hybrid) {
  // v1 (and hybrid, whose memory controller is v1): memory.oom_control.
  EXPECT_EQ(oom_witness::counter_file("5:devices:/\n4:memory:/a/b\n0::/\n"),
            "/sys/fs/cgroup/memory/a/b/memory.oom_control");
  EXPECT_EQ(oom_witness::counter_file("4:cpu,memory:/\n"), "/sys/fs/cgroup/memory/memory.oom_control");
  // v2 only: memory.events, under whichever root this machine has.
  auto v2 = oom_witness::counter_file("0::/x/y\n");
  ASSERT_TRUE(v2);
  EXPECT_TRUE(v2->ends_with("/x/y/memory.events")) << *v2;
  EXPECT_EQ(oom_witness::counter_file("garbage"), std::nullopt);
}

TEST(exit_status, describes_an_exit) {
  exit_info e;
  e.id = 3;
  e.pid = 4312;
  e.generation = 2;
  e.signal = SIGKILL;
  e.oom_killed = true;
  e.reason = exit_reason::crashed;
  e.uptime = std::chrono::milliseconds(1500);
  EXPECT_EQ(e.describe(), "worker 3 pid 4312 gen 2 crashed: killed by SIGKILL (OOM killer), after 1.500 s");
  e.oom_killed = false;
  e.oom_possible = true;
  EXPECT_EQ(e.status_text(), "killed by SIGKILL (possibly the OOM killer)");
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
