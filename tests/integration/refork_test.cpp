// Reforking (options::refork_after): a worker past its threshold becomes
// the mold, every worker is forked from it, and what it warmed is shared;
// a mold that dies or hangs is let go and the arbiter forks again.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.hpp"
#include "sys/procfs.hpp"

namespace ufork::test {
namespace {

constexpr std::size_t warm_bytes = 64u << 20;

// The worker's warm-up, on its first "request": 64 MiB filled, once per
// memory: a worker forked from a mold that filled it finds it filled.
void warm_up() {
  static std::vector<char> cache;
  if (cache.empty()) cache.assign(warm_bytes, 1);
}

// Two workers that warm up; then the first of slot 0 counts 10 requests,
// past refork_after's first threshold, once slot 1's is warm too (it says
// so on a pipe): the pool's PSS is both caches when slot 0 is promoted.
pool_process reforking_pool(std::function<void(options&, hooks&)> tweak = {}) {
  return pool_process([tweak] {
    auto o = test_options(2);
    o.timeout = 10s;
    o.refork_after = {10};
    int warm[2];
    if (::pipe2(warm, O_CLOEXEC) != 0) return 1;
    hooks h;
    h.after_fork_child = [] { say("after_fork_child in pid " + std::to_string(::getpid())); };
    h.post_fork = [warm](worker& w) {
      warm_up();
      w.ready();
      char c = 'w';
      if (w.generation() == 1 && w.id() == 1) (void)!::write(warm[1], &c, 1);
      if (w.generation() == 1 && w.id() == 0 && ::read(warm[0], &c, 1) == 1) w.count_requests(10);
      beat_until_stopped(w);
    };
    if (tweak) tweak(o, h);
    arbiter a(o, with_events(h));
    return a.run();
  });
}

std::vector<pid_t> workers_of(pid_t arbiter, pid_t mold) {
  auto pids = sys::children_of(arbiter);
  std::erase(pids, mold);
  return pids;
}

TEST(refork, workers_forked_from_the_mold_share_what_it_warmed) {
  std::string sock = "/tmp/ufork-refork-" + std::to_string(::getpid()) + ".sock";
  auto pool = reforking_pool([&sock](options& o, hooks&) { o.control_path = sock; });
  pid_t mold = std::stoi(pool.wait_for("refork: pid (\\d+) is the mold of generation 1")[1]);
  auto m = pool.wait_for("refork: generation 1 done: the pool's PSS ([0-9.]+) MiB -> ([0-9.]+) MiB");
  ASSERT_FALSE(m.empty());
  EXPECT_GT(std::stod(m[1]) - std::stod(m[2]), 48) << m[0];  // each worker's own 64 MiB, now one shared copy
  auto workers = workers_of(pool.pid(), mold);
  ASSERT_EQ(workers.size(), 2u);
  for (pid_t w : workers) {  // the arbiter's children, holding the mold's pages
    auto use = sys::memory_of(w);
    ASSERT_TRUE(use);
    EXPECT_GE(use->rss, warm_bytes) << "worker " << w;
    EXPECT_LT(use->uss, warm_bytes / 4) << "worker " << w << ": its cache is its own, not the mold's";
  }
  // The mold is in sight: status, the pool's memory.
  auto status = run_program(UFORK_CLI_PATH, {"ctl", "--socket", sock, "status"});
  EXPECT_NE(status.out.find("forked by the mold, pid " + std::to_string(mold) + " (generation 1)"), std::string::npos)
      << status.out;
  auto listed = run_program(UFORK_CLI_PATH, {"ctl", "--socket", sock, "workers"});
  EXPECT_NE(listed.out.find("the mold (pid " + std::to_string(mold) + ": PSS"), std::string::npos) << listed.out;
  auto metrics = run_program(UFORK_CLI_PATH, {"ctl", "--socket", sock, "metrics"});
  EXPECT_NE(metrics.out.find("\nufork_mold 1\n"), std::string::npos) << metrics.out;
  EXPECT_NE(metrics.out.find("\nufork_refork_generation 1\n"), std::string::npos) << metrics.out;
  // after_fork_child ran in every worker, of every generation: two forked
  // by the arbiter, two by the mold, and slot 0's refill while its worker
  // became the mold (unless the mold was ready first: it then forked it).
  auto spawned = pool.count("event spawn");
  EXPECT_GE(spawned, 4u);
  pool.wait_count("after_fork_child in pid", spawned);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  workers.push_back(mold);
  for (pid_t pid : workers) EXPECT_TRUE(gone(pid)) << pid << " left behind";
}

TEST(refork, a_worker_forked_from_the_mold_dies_with_a_sigkilled_arbiter) {
  auto pool = reforking_pool();
  pid_t mold = std::stoi(pool.wait_for("refork: pid (\\d+) is the mold of generation 1")[1]);
  pool.wait_for("refork: generation 1 done");
  auto left = workers_of(pool.pid(), mold);
  ASSERT_EQ(left.size(), 2u);
  left.push_back(mold);
  pool.signal(SIGKILL);
  for (pid_t pid : left) EXPECT_TRUE(reap(pid, 10s)) << pid << " outlived the arbiter";
}

// The mold stops in its before_fork hook (the fork under way) and writes
// its pid to a pipe the test reads; then it is SIGKILLed there, or, with
// `hang`, left there until the arbiter's wait for its answer (timeout) ends.
void mold_lost_mid_fork(bool hang) {
  int pids[2];
  ASSERT_EQ(::pipe2(pids, O_CLOEXEC), 0);
  auto pool = reforking_pool([&pids, hang](options& o, hooks& h) {
    o.timeout = hang ? 1s : 60s;
    h.before_fork = [arbiter = ::getpid(), fd = pids[1]] {
      if (::getpid() == arbiter) return;
      pid_t me = ::getpid();
      (void)!::write(fd, &me, sizeof me);
      for (;;) ::pause();
    };
  });
  ::close(pids[1]);
  pid_t mold = 0;
  ASSERT_EQ(::read(pids[0], &mold, sizeof mold), static_cast<ssize_t>(sizeof mold));
  ::close(pids[0]);
  if (!hang) ::kill(mold, SIGKILL);
  pool.wait_for(hang ? "refork: the mold of generation 1 \\(pid \\d+\\) is let go: it did not answer a fork within "
                       "1000 ms \\(timeout\\): hung; workers are forked by the arbiter again"
                     : "refork: the mold of generation 1 \\(pid \\d+\\) is let go: it could not fork: .*; workers are "
                       "forked by the arbiter again");
  pool.wait_for("refork: done");
  auto workers = workers_of(pool.pid(), mold);
  EXPECT_EQ(workers.size(), 2u) << "the pool is not whole again";
  for (pid_t w : workers) {  // forked by the arbiter, which warmed nothing: each warmed its own
    // (slot 0's, forked again when its worker was promoted, is no successor
    // of the refork's: it may still be warming)
    pool.wait_count("event ready slot=\\d gen=\\d+ pid=" + std::to_string(w) + "$", 1);
    auto use = sys::memory_of(w);
    ASSERT_TRUE(use);
    EXPECT_GE(use->uss, warm_bytes) << "worker " << w;
  }
  EXPECT_TRUE(gone(mold));
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(refork, a_mold_sigkilled_mid_fork_is_let_go_and_the_arbiter_forks_again) { mold_lost_mid_fork(false); }

TEST(refork, a_mold_hung_mid_fork_is_let_go_and_the_arbiter_forks_again) { mold_lost_mid_fork(true); }

// A generation that does not lower the pool's PSS (nothing warmed) is let go.
TEST(refork, a_generation_that_shares_nothing_more_is_let_go) {
  auto pool = reforking_pool([](options&, hooks& h) {
    h.post_fork = [](worker& w) {
      w.ready();
      w.count_requests(10);
      beat_until_stopped(w);
    };
  });
  pool.wait_for("refork: the mold of generation 1 \\(pid \\d+\\) is let go: the pool's PSS did not go down");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// Two thresholds: slot 0's workers each count 10 at once, the second
// mold's too; the second mold takes over from the first, which is reaped
// (no zombie), and nothing is left after the stop.
TEST(refork, the_next_generations_mold_takes_over_and_the_last_is_reaped) {
  auto pool = reforking_pool([](options& o, hooks& h) {
    o.refork_after = {10, 10};
    h.post_fork = [](worker& w) {
      warm_up();
      w.ready();
      if (w.id() == 0) w.count_requests(10);
      beat_until_stopped(w);
    };
  });
  pid_t first = std::stoi(pool.wait_for("refork: pid (\\d+) is the mold of generation 1")[1]);
  pool.wait_for("refork: the mold of generation 1 \\(pid " + std::to_string(first) + "\\) retires");
  pid_t second = std::stoi(pool.wait_for("refork: pid (\\d+) is the mold of generation 2")[1]);
  EXPECT_TRUE(gone(first)) << "the first mold is left behind (a zombie counts)";
  pool.wait_for("refork: (generation 2 done|the mold of generation 2 .* is let go)");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_TRUE(gone(second));
}

TEST(refork, a_program_run_by_ufork_cannot_refork) {
  auto r = run_program(UFORK_CLI_PATH, {"run", "-w", "1", "--refork-after", "10", "--", "true"});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--refork-after forks workers from a warmed worker's memory, which a program run by ufork "
                       "replaces with exec"),
            std::string::npos)
      << r.out;
  r = run_program(UFORK_CLI_PATH, {"hello", "--refork-after", "10,0"});
  EXPECT_EQ(r.code, 2) << r.out;
}

}  // namespace
}  // namespace ufork::test
