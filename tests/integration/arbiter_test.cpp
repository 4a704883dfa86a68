// The arbiter with real processes: each test forks a pool, sends real
// signals and reads what the pool prints.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "harness.hpp"

namespace ufork::test {
namespace {

pid_t to_pid(const std::ssub_match& m) { return m.matched ? static_cast<pid_t>(std::stoi(m.str())) : -1; }

std::vector<pid_t> to_pids(const std::vector<std::string>& found) {
  std::vector<pid_t> pids;
  for (const auto& s : found) pids.push_back(static_cast<pid_t>(std::stoi(s)));
  return pids;
}

int run_pool(options o, hooks h) {
  arbiter a(std::move(o), with_events(std::move(h)));
  return a.run();
}

TEST(arbiter, starts_every_slot_staggered_by_max_starting) {
  pool_process pool([] {
    auto o = test_options(4);
    o.max_starting = 1;
    hooks h;
    h.post_fork = [](worker& w) { say("post_fork id=" + std::to_string(w.id())); };
    return run_pool(o, h);
  });
  for (int i = 0; i < 4; ++i) pool.wait_for("event ready");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);

  std::set<std::string> ids;
  int starting = 0, most = 0;
  for (const auto& l : pool.lines()) {
    std::smatch m;
    if (std::regex_search(l, m, std::regex("post_fork id=(\\d+)"))) ids.insert(m[1]);
    if (l.find("event spawn") == 0) most = std::max(most, ++starting);
    if (l.find("event ready") == 0) --starting;
  }
  EXPECT_EQ(ids, (std::set<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(most, 1) << "more than max_starting workers were starting at once";
}

TEST(arbiter, replaces_a_killed_worker_in_its_slot_with_the_next_generation) {
  pool_process pool([] { return run_pool(test_options(2), {}); });
  auto ready = pool.wait_for("event ready slot=0 gen=1 pid=(\\d+)");
  pid_t victim = to_pid(ready[1]);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  pool.wait_for("event exit worker 0 pid " + std::to_string(victim) + " gen 1 crashed: killed by SIGKILL");
  auto respawn = pool.wait_for("event spawn slot=0 gen=2 pid=(\\d+)");
  EXPECT_NE(to_pid(respawn[1]), victim);
  pool.wait_for("event ready slot=0 gen=2");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// What fails in the child before the program runs is reported through the
// spawn unit's error pipe: here the program holds every fd its own limit
// (16) allows, which leaves a new worker no room for its stop eventfd. The
// fork hooks run around each fork.
TEST(arbiter, a_failed_worker_setup_names_the_step_and_the_errno) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan checks a vptr by writing the object to a pipe: with no fd free it
  // reports "invalid vptr" for any shared_ptr, before the arbiter runs.
  GTEST_SKIP() << "the sanitizers' runtime needs free fds, which this test takes away";
#endif
  pool_process pool([] {
    rlimit low{16, 64};  // the arbiter raises its own to 64 at once; workers get 16 back
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) return 2;
    while (::open("/dev/null", O_RDONLY) >= 0) {  // the program's own fds, inherited: 0..15 taken
    }
    auto o = test_options(1);
    o.max_boot_failures = 2;
    hooks h;
    h.before_fork = [] { say("before_fork"); };
    h.after_fork_parent = [] { say("after_fork_parent"); };
    h.after_fork_child = [] { say("after_fork_child"); };  // never: the setup fails first
    return run_pool(o, h);
  });
  EXPECT_EQ(pool.wait_exit(), exit_boot_failure);
  EXPECT_EQ(pool.count("event exit worker 0 .* crashed: exit 71 \\(EX_OSERR\\).*\\(setup failed: eventfd: Too many open files\\)"), 2u);
  EXPECT_EQ(pool.count("^before_fork$"), 2u);
  EXPECT_EQ(pool.count("^after_fork_parent$"), 2u);
  EXPECT_EQ(pool.count("after_fork_child"), 0u);
}

TEST(arbiter, after_fork_child_runs_in_the_worker_before_post_fork) {
  pool_process pool([] {
    hooks h;
    h.after_fork_child = [] { say("after_fork_child in " + std::to_string(::getpid())); };
    h.post_fork = [](worker& w) {
      say("post_fork in " + std::to_string(::getpid()));
      beat_until_stopped(w);
    };
    return run_pool(test_options(1), h);
  });
  auto first = pool.wait_for("^\\[worker 0 pid (\\d+)\\] after_fork_child in (\\d+)");
  std::string pid = first[1];
  EXPECT_EQ(first[2].str(), pid);
  pool.wait_for("^\\[worker 0 pid " + pid + "\\] post_fork in " + pid);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// What a service manager gave the arbiter (its readiness socket, its
// sockets, its watchdog) is the arbiter's, not its workers': a worker that
// called sd_notify() would speak for the whole service.
TEST(arbiter, workers_get_none_of_the_arbiters_own_manager_variables) {
  pool_process pool([] {
    for (const char* var : {"NOTIFY_SOCKET=/run/manager", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=a:b",
                            "WATCHDOG_USEC=1000000", "WATCHDOG_PID=1", "KEPT=yes"})
      ::putenv(const_cast<char*>(var));
    hooks h;
    h.post_fork = [](worker& w) {
      std::string seen;
      for (const char* name : {"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
                               "WATCHDOG_PID", "KEPT", "UFORK_WORKER_ID", "UFORK_WORKER_GENERATION"}) {
        const char* v = std::getenv(name);
        seen += std::string(" ") + name + "=" + (v ? v : "<unset>");
      }
      say("environment" + seen);
      beat_until_stopped(w);
    };
    return run_pool(test_options(1), h);
  });
  auto env = pool.wait_for("environment (.*)")[1].str();
  EXPECT_EQ(env,
            "NOTIFY_SOCKET=<unset> LISTEN_FDS=<unset> LISTEN_PID=<unset> LISTEN_FDNAMES=<unset> "
            "WATCHDOG_USEC=<unset> WATCHDOG_PID=<unset> KEPT=yes UFORK_WORKER_ID=0 UFORK_WORKER_GENERATION=1");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(arbiter, names_exit_codes_signals_and_escaped_exceptions) {
  pool_process pool([] {
    hooks h;
    h.post_fork = [](worker& w) {
      if (w.generation() > 1) return;
      if (w.id() == 0) ::_exit(70);
      if (w.id() == 1) std::raise(SIGSEGV);
      if (w.id() == 2) throw std::runtime_error("boom");
    };
    return run_pool(test_options(3), h);
  });
  pool.wait_for("event exit worker 0 .* crashed: exit 70 \\(EX_SOFTWARE\\)");
  pool.wait_for("event ready slot=0 gen=2");
  // Slots 1 and 2 end on their own time: a stop before their exits are
  // seen would name them stopped (check-asan's slower build showed it).
  pool.wait_count("event exit worker [12] .* crashed", 2);
  pool.signal(SIGTERM);
  pool.wait_exit();
  EXPECT_EQ(pool.count("event exit worker 1 .* crashed: killed by SIGSEGV"), 1u);
  EXPECT_EQ(pool.count("event exit worker 2 .* crashed: exit 70 \\(EX_SOFTWARE\\)"), 1u);
  EXPECT_EQ(pool.count("\\[worker 2 pid \\d+ err\\] ufork: exception escaped post_fork: boom"), 1u);
  EXPECT_EQ(pool.count("body returned"), 1u) << "a worker returned into the caller's stack";
}

TEST(arbiter, kills_a_ready_worker_without_heartbeat_after_a_stack_trace) {
  pool_process pool([] {
    auto o = test_options(1);
    o.timeout = 300ms;
    hooks h;
    h.post_fork = [](worker& w) {
      w.ready();
      if (w.generation() == 1)
        for (;;) ::pause();  // hung: no more heartbeats
      beat_until_stopped(w);
    };
    return run_pool(o, h);
  });
  pool.wait_for("worker 0 pid \\d+ hung: no heartbeat for .* \\(timeout\\); sending SIGABRT");
  pool.wait_for("\\[worker 0 pid \\d+ err\\] ufork: SIGABRT in worker; stack:");
  // Then where it hung by name, file and line: this file's loop above.
  pool.wait_for("\\[worker 0 pid \\d+ err\\] ufork: the same, symbolized:");
  pool.wait_for("\\[worker 0 pid \\d+ err\\]   .* at .*arbiter_test\\.cpp:\\d+$");
  pool.wait_for("event exit worker 0 pid \\d+ gen 1 hung: killed by SIGABRT.*\\(no heartbeat for .* \\(timeout\\)\\)");
  pool.wait_count("event ready slot=0 gen=2", 1);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(arbiter, kills_a_worker_that_is_never_ready_after_startup_timeout) {
  pool_process pool([] {
    auto o = test_options(1);
    o.startup_timeout = 300ms;
    hooks h;
    h.post_fork = [](worker& w) {
      if (w.generation() == 1)
        for (;;) ::pause();
    };
    return run_pool(o, h);
  });
  pool.wait_for("event exit worker 0 .* gen 1 hung: killed by SIGABRT.*\\(not ready after .* \\(startup_timeout\\)\\)");
  pool.wait_count("event ready slot=0 gen=2", 1);  // its successor: before or after that exit
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A stopped worker is continued so that it writes its stack, and its
// successor is forked when the hang is declared, before the hung one is gone.
TEST(arbiter, a_sigstopped_worker_writes_its_stack_and_is_replaced_at_the_deadline) {
  pool_process pool([] {
    auto o = test_options(1);
    o.timeout = 300ms;
    o.abort_timeout = 60s;  // SIGKILL would come too late: SIGCONT must have let SIGABRT in
    hooks h;
    h.post_fork = beat_until_stopped;
    return run_pool(o, h);
  });
  pid_t pid = to_pid(pool.wait_for("event ready slot=0 gen=1 pid=(\\d+)")[1]);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  pool.wait_for("worker 0 pid " + std::to_string(pid) + " hung: no heartbeat .*; sending SIGABRT; restarting");
  pool.wait_for("event spawn slot=0 gen=2");
  pool.wait_for("\\[worker 0 pid " + std::to_string(pid) + " err\\] ufork: SIGABRT in worker; stack:");
  pool.wait_for("event exit worker 0 pid " + std::to_string(pid) + " gen 1 hung: killed by SIGABRT");
  pool.wait_count("event ready slot=0 gen=2", 1);  // before or after that exit
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(arbiter, gives_up_with_one_warning_when_no_worker_can_start) {
  pool_process pool([] {
    auto o = test_options(4);
    o.max_boot_failures = 3;
    hooks h;
    h.post_fork = [](worker&) { ::_exit(1); };
    return run_pool(o, h);
  });
  EXPECT_EQ(pool.wait_exit(), exit_boot_failure);
  // 4 slots x 3 failed starts at least: a slot out of starts goes on (with its
  // backoff) until every slot is, so a fast one may fail a 4th time before the
  // slowest fails its 3rd (seen under ASan: 13).
  EXPECT_GE(pool.count("event exit"), 12u);
  EXPECT_EQ(pool.count("WARNING: \\d of 4 workers are failing to start"), 1u);
  EXPECT_EQ(pool.count("no worker ever became ready; every slot failed 3 starts in a row; last: worker"), 1u);
  // Backoff doubles per slot: 10 ms, then 20 ms.
  EXPECT_GE(pool.count("restarting in 0.010 s"), 1u);
}

// The waits a pool's log announced ("restarting in 0.004 s"), in seconds.
std::vector<double> restart_waits(const pool_process& pool) {
  std::vector<double> waits;
  std::regex re("restarting in ([0-9.]+) s");
  for (const auto& l : pool.lines()) {
    std::smatch m;
    if (std::regex_search(l, m, re)) waits.push_back(std::stod(m[1]));
  }
  return waits;
}

TEST(arbiter, a_worker_killed_after_ready_is_replaced_without_backoff_kill_after_kill) {
  pool_process pool([] { return run_pool(test_options(1), {}); });
  for (unsigned gen = 1; gen <= 10; ++gen) {
    auto ready = pool.wait_for("event ready slot=0 gen=" + std::to_string(gen) + " pid=(\\d+)");
    ASSERT_EQ(::kill(to_pid(ready[1]), SIGKILL), 0);
  }
  pool.wait_for("event ready slot=0 gen=11");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("crashed: killed by SIGKILL.*; restarting"), 10u);
  // At most what is left of min_interval (10 ms here) since the slot's last
  // fork; never a backoff.
  for (double wait : restart_waits(pool)) EXPECT_LE(wait, 0.010);
}

TEST(arbiter, workers_that_hang_after_ready_over_and_over_warn_once) {
  pool_process pool([] {
    auto o = test_options(2);
    o.timeout = 200ms;
    hooks h;
    h.post_fork = [](worker& w) {
      w.ready();
      while (!w.stopping()) ::pause();  // ready, then hung (but it obeys the stop)
    };
    return run_pool(o, h);
  });
  pool.wait_count("event exit worker \\d .* hung: killed by SIGABRT", 12);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("WARNING: 2 of 2 workers are failing to start or hanging"), 1u);
  EXPECT_EQ(pool.count("workers are starting again"), 0u);
  // Each one had become ready: replaced at once, with no backoff.
  for (double wait : restart_waits(pool)) EXPECT_LE(wait, 0.010);
}

TEST(arbiter, an_empty_pool_is_refused_unless_allowed) {
  pool_process refused([] { return run_pool_or_report(test_options(0)); });
  EXPECT_EQ(refused.wait_exit(), 1);
  EXPECT_EQ(refused.count("arbiter failed: ufork: a pool of 0 workers leaves connections waiting unanswered"), 1u);

  pool_process last([] { return run_pool(test_options(1), {}); });
  last.wait_for("event ready slot=0");
  last.signal(SIGTTOU);
  last.wait_for("SIGTTOU: size stays 1: a pool of 0 workers");
  last.signal(SIGTERM);
  EXPECT_EQ(last.wait_exit(), 0);

  pool_process allowed([] {
    auto o = test_options(1);
    o.allow_empty = true;
    return run_pool(o, {});
  });
  allowed.wait_for("event ready slot=0");
  allowed.signal(SIGTTOU);
  allowed.wait_for("size 1 -> 0: the pool is empty; connections wait unanswered until it grows");
  allowed.wait_for("event exit worker 0 .* shrunk");
  allowed.signal(SIGTERM);
  EXPECT_EQ(allowed.wait_exit(), 0);
}

// A v1 freezer cgroup of our own (as root), or empty where there is none.
std::string make_freezer(const std::string& name) {
  std::string dir = "/sys/fs/cgroup/freezer/ufork-" + name + "-" + std::to_string(::getpid());
  if (::access("/sys/fs/cgroup/freezer/cgroup.procs", W_OK) != 0 || ::mkdir(dir.c_str(), 0755) != 0) return {};
  return dir;
}

bool put(const std::string& file, const std::string& value) {
  std::ofstream f(file);
  f << value << std::flush;
  return static_cast<bool>(f);
}

// Freezes (or thaws) a v1 freezer cgroup and returns once it is. v1 freezes
// task by task and may report FREEZING; each read retries.
::testing::AssertionResult set_freezer(const std::string& dir, const std::string& want) {
  auto until = std::chrono::steady_clock::now() + 20s;
  for (std::string state;;) {
    if (!put(dir + "/freezer.state", want)) return ::testing::AssertionFailure() << "cannot write " << dir;
    std::ifstream(dir + "/freezer.state") >> state;
    if (state == want) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() > until) return ::testing::AssertionFailure() << dir << " says " << state;
  }
}

// The whole tree frozen for longer than the timeout (docker pause, a VM
// stall): on thaw, no healthy worker may be taken for hung. The arbiter and
// the workers are in two freezer cgroups, so that the test can thaw them in
// the order that is hard for the arbiter: itself first, while its workers'
// last heartbeats are 4 s old.
TEST(arbiter, a_frozen_tree_thaws_without_killing_a_healthy_worker) {
  std::string arbiter_cg = make_freezer("arbiter"), workers_cg = make_freezer("workers");
  if (arbiter_cg.empty() || workers_cg.empty()) {
    ::rmdir(arbiter_cg.c_str());
    GTEST_SKIP() << "no v1 freezer cgroup can be made here (needs root and cgroup v1 freezer)";
  }
  pool_process pool([arbiter_cg, workers_cg] {
    if (!put(arbiter_cg + "/cgroup.procs", std::to_string(::getpid()))) return 2;
    auto o = test_options(4);  // timeout 2 s: no false hang on a loaded machine before the freeze
    hooks h;
    h.post_fork = [workers_cg](worker& w) {
      if (!put(workers_cg + "/cgroup.procs", std::to_string(::getpid()))) ::_exit(2);
      for (int n = 0; !w.stopping(); ++n) {
        w.heartbeat();
        say("beat " + std::to_string(w.id()) + " " + std::to_string(n));
        pollfd pfd{w.stop_fd(), POLLIN, 0};
        (void)::poll(&pfd, 1, 250);
      }
    };
    return run_pool(o, h);
  });
  pool.wait_count("event ready", 4);
  struct thaw_at_exit {  // a failed assertion must not leave the pool frozen (and unkillable)
    std::vector<std::string> dirs;
    ~thaw_at_exit() {
      for (const auto& d : dirs) (void)put(d + "/freezer.state", "THAWED");
    }
  } thaw{{workers_cg, arbiter_cg}};
  ASSERT_TRUE(set_freezer(workers_cg, "FROZEN"));
  ASSERT_TRUE(set_freezer(arbiter_cg, "FROZEN"));
  std::this_thread::sleep_for(4s);  // the stimulus: frozen past the 2 s timeout and the 1 s stall rule
  ASSERT_TRUE(set_freezer(arbiter_cg, "THAWED"));
  pool.wait_for("the arbiter woke .* past its deadline");
  ASSERT_TRUE(set_freezer(workers_cg, "THAWED"));
  // Each worker beats 12 more times (3 s, past a timeout from the thaw): the
  // arbiter has checked its clocks meanwhile.
  std::size_t before = pool.lines().size();
  for (int id = 0; id < 4; ++id)
    pool.wait_count([&, seen = std::size_t{0}](const std::string& l) mutable {
      return ++seen > before && l.find("beat " + std::to_string(id) + " ") != std::string::npos;
    }, 12);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("hung"), 0u);
  if (HasFailure())
    for (const auto& l : pool.lines())
      if (l.find("] beat ") == std::string::npos) std::printf("pool: %s\n", l.c_str());
  EXPECT_EQ(::rmdir(workers_cg.c_str()), 0) << workers_cg;
  EXPECT_EQ(::rmdir(arbiter_cg.c_str()), 0) << arbiter_cg;
}

// The whole tree frozen (one cgroup) for 0.9x, 1.1x and 3x the 1 s timeout,
// twice each at the shorter two: a freeze that ends just before or just
// after a worker's deadline leaves it no time to beat, yet it is healthy.
// Then a worker really hung (SIGSTOP) is still caught.
TEST(arbiter, freezes_near_the_timeout_kill_no_healthy_worker_and_a_hung_one_is_still_caught) {
  std::string tree = make_freezer("tree");
  if (tree.empty()) GTEST_SKIP() << "no v1 freezer cgroup can be made here (needs root and cgroup v1 freezer)";
  pool_process pool([tree] {
    if (!put(tree + "/cgroup.procs", std::to_string(::getpid()))) return 2;  // the workers are forked into it
    auto o = test_options(3);
    o.timeout = 1s;
    hooks h;
    h.post_fork = [](worker& w) {
      for (int n = 0; !w.stopping(); ++n) {
        w.heartbeat();
        say("beat " + std::to_string(w.id()) + " " + std::to_string(n));
        pollfd pfd{w.stop_fd(), POLLIN, 0};
        (void)::poll(&pfd, 1, 250);  // a quarter of the timeout, as the library's own loops beat
      }
    };
    return run_pool(o, h);
  });
  auto pids = to_pids(pool.wait_count("event ready slot=\\d gen=1 pid=(\\d+)", 3));
  struct thaw_at_exit {
    std::string dir;
    ~thaw_at_exit() { (void)put(dir + "/freezer.state", "THAWED"); }
  } thaw{tree};
  auto beats_after = [&](std::size_t from, int id, std::size_t n) {
    pool.wait_count([&, seen = std::size_t{0}](const std::string& l) mutable {
      return ++seen > from && l.find("beat " + std::to_string(id) + " ") != std::string::npos;
    }, n);
  };
  for (auto frozen : {900ms, 900ms, 1100ms, 1100ms, 3000ms}) {
    ASSERT_TRUE(set_freezer(tree, "FROZEN"));
    std::this_thread::sleep_for(frozen);  // the stimulus: how long the tree is frozen
    ASSERT_TRUE(set_freezer(tree, "THAWED"));
    std::size_t before = pool.lines().size();
    for (int id = 0; id < 3; ++id) beats_after(before, id, 6);  // 1.5 s: past a timeout from the thaw
    EXPECT_EQ(pool.count("hung"), 0u) << "after a freeze of " << frozen.count() << " ms";
  }
  ::kill(pids[0], SIGSTOP);
  pool.wait_for("worker \\d pid " + std::to_string(pids[0]) + " hung: no heartbeat for");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("hung: no heartbeat"), 1u);
  if (HasFailure())
    for (const auto& l : pool.lines())
      if (l.find("] beat ") == std::string::npos) std::printf("pool: %s\n", l.c_str());
  EXPECT_EQ(::rmdir(tree.c_str()), 0) << tree;
}

// Moves this process into a new memory cgroup (v1, as root) limited to
// 64 MiB; returns its directory, or empty where that is not possible.
std::string enter_small_memory_cgroup() {
  std::ifstream self("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(self, line))
    if (auto pos = line.find(":memory:"); pos != std::string::npos) path = line.substr(pos + 8);
  if (path.empty()) return {};
  std::string dir = "/sys/fs/cgroup/memory" + (path == "/" ? "" : path) + "/ufork-oom-" + std::to_string(::getpid());
  if (::mkdir(dir.c_str(), 0755) != 0) return {};
  auto put = [&](const char* file, const std::string& value) {
    std::ofstream f(dir + "/" + file);
    f << value << std::flush;
    return static_cast<bool>(f);
  };
  (void)put("memory.memsw.limit_in_bytes", "-1");  // absent without swap accounting
  if (!put("memory.limit_in_bytes", "67108864") || !put("cgroup.procs", std::to_string(::getpid()))) {
    ::rmdir(dir.c_str());
    return {};
  }
  (void)put("memory.memsw.limit_in_bytes", "67108864");  // no escape into swap
  return dir;
}

// The OOM killer's first choice, eating memory until it is killed.
[[noreturn]] void eat_memory() {
  std::ofstream("/proc/self/oom_score_adj") << 1000 << std::flush;
  for (;;) {
    auto* block = static_cast<char*>(std::malloc(1 << 20));
    if (block) std::memset(block, 1, 1 << 20);
  }
}

// A one-worker pool in a 64 MiB memory cgroup; it prints "cgroup DIR" or
// "cgroup none" (then it runs no pool).
pool_process small_memory_pool(std::function<void(worker&)> post_fork) {
  return pool_process([post_fork] {
    std::string dir = enter_small_memory_cgroup();
    say("cgroup " + (dir.empty() ? std::string("none") : dir));
    if (dir.empty()) return 0;
    hooks h;
    h.post_fork = post_fork;
    return run_pool(test_options(1), h);
  });
}

// Its cgroup's directory, or empty (and the pool waited for) where none.
std::string cgroup_of(pool_process& pool) {
  std::string dir = pool.wait_for("^cgroup (.*)$")[1];
  if (dir != "none") return dir;
  pool.wait_exit();
  return {};
}

constexpr const char* no_memory_cgroup = "no memory cgroup can be created here (needs root and cgroup v1 memory)";

TEST(arbiter, names_a_kill_by_the_oom_killer) {
  auto pool = small_memory_pool([](worker& w) {
    if (w.generation() > 1) return;
    w.ready();
    eat_memory();
  });
  std::string dir = cgroup_of(pool);
  if (dir.empty()) GTEST_SKIP() << no_memory_cgroup;
  pool.wait_for("event exit worker 0 .* gen 1 crashed: killed by SIGKILL \\(OOM killer\\)", 60s);
  pool.wait_for("event ready slot=0 gen=2");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir;
}

// A process the worker spawned is OOM-killed in the cgroup the worker shares
// with the arbiter; then the worker gets a plain kill -9: not an OOM kill.
TEST(arbiter, a_kill_after_someone_elses_oom_kill_is_not_called_one) {
  auto pool = small_memory_pool([](worker& w) {
    if (w.generation() > 1) return;
    pid_t hog = ::fork();
    if (hog == 0) eat_memory();
    int status = 0;
    (void)::waitpid(hog, &status, 0);
    say("hog gone: signal " + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0));
    beat_until_stopped(w);
  });
  std::string dir = cgroup_of(pool);
  if (dir.empty()) GTEST_SKIP() << no_memory_cgroup;
  pool.wait_for("hog gone: signal 9", 60s);
  pid_t pid = to_pid(pool.wait_for("event ready slot=0 gen=1 pid=(\\d+)")[1]);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto line = pool.wait_for("event exit worker 0 pid " + std::to_string(pid) + " gen 1 crashed: killed by SIGKILL.*");
  EXPECT_EQ(line.str().find("(OOM killer)"), std::string::npos) << line.str();
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir;
}

// The worker's oom_score_adj is above the arbiter's, so the OOM killer
// takes any worker first.
TEST(arbiter, workers_are_the_oom_killers_first_choice) {
  pool_process pool([] {
    std::ifstream self("/proc/self/oom_score_adj");
    int mine = 0;
    self >> mine;
    say("arbiter adj " + std::to_string(mine));
    hooks h;
    h.post_fork = [](worker& w) {
      std::ifstream f("/proc/self/oom_score_adj");
      int adj = 0;
      f >> adj;
      say("worker adj " + std::to_string(adj));
      beat_until_stopped(w);
    };
    return run_pool(test_options(1), h);
  });
  int arbiter_adj = std::stoi(pool.wait_for("^arbiter adj (-?\\d+)")[1]);
  int worker_adj = std::stoi(pool.wait_for("worker adj (-?\\d+)")[1]);
  EXPECT_EQ(worker_adj, std::min(arbiter_adj + 500, 1000));
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(arbiter, stops_on_sigterm_and_leaves_no_process_behind) {
  pool_process pool([] {
    hooks h;
    h.post_fork = [](worker& w) {
      pid_t grandchild = ::fork();  // something the worker spawned
      if (grandchild == 0) {
        for (;;) ::pause();
      }
      say("grandchild " + std::to_string(grandchild));
      beat_until_stopped(w);
    };
    h.child_pre_exit = [](worker& w) { say("child_pre_exit " + std::to_string(w.id())); };
    h.parent_pre_stop = [] { say("parent_pre_stop"); };
    return run_pool(test_options(3), h);
  });
  auto pids = to_pids(pool.wait_count("event ready slot=\\d gen=1 pid=(\\d+)", 3));
  auto grandchildren = to_pids(pool.wait_count("grandchild (\\d+)", 3));
  pids.insert(pids.end(), grandchildren.begin(), grandchildren.end());
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("parent_pre_stop"), 1u);
  EXPECT_EQ(pool.count("child_pre_exit"), 3u);
  EXPECT_EQ(pool.count("event exit worker \\d .* stopped: exit 0"), 3u);
  for (pid_t pid : pids) {
    (void)reap(pid, 5s);  // an orphaned grandchild would come to us (subreaper)
    EXPECT_TRUE(gone(pid)) << "pid " << pid << " outlived the pool";
  }
}

// A stop reaches a worker that left the group it was started in (both join
// their arbiter's, when the test says so: after the fork, the arbiter puts
// the child in its own group too, whichever runs first): slot 0 stops when
// asked, slot 1 ignores SIGTERM and is killed at the graceful deadline. Each
// left a child of its own in the group it left, which goes too.
volatile std::sig_atomic_t move_now = 0;

TEST(arbiter, stops_workers_that_left_their_process_group) {
  pool_process pool([] {
    auto o = test_options(2);
    o.graceful_timeout = 1s;
    hooks h;
    h.post_fork = [](worker& w) {
      pid_t left_behind = ::fork();  // stays in the worker's first group
      if (left_behind == 0) {
        for (;;) ::pause();
      }
      std::signal(SIGUSR1, [](int) { move_now = 1; });
      if (w.id() == 1) std::signal(SIGTERM, SIG_IGN);
      for (bool moved = false; !w.stopping();) {
        w.heartbeat();
        if (move_now && !moved) {
          moved = true;
          int rc = ::setpgid(0, ::getpgid(::getppid()));
          say("moved slot=" + std::to_string(w.id()) + " rc=" + std::to_string(rc) +
              " pgid=" + std::to_string(::getpgrp()) + " left_behind=" + std::to_string(left_behind));
        }
        pollfd pfd{w.stop_fd(), POLLIN, 0};
        (void)::poll(&pfd, 1, 50);
      }
    };
    return run_pool(o, h);
  });
  auto pids = to_pids(pool.wait_count("event ready slot=\\d gen=1 pid=(\\d+)", 2));
  for (pid_t pid : pids) ::kill(pid, SIGUSR1);  // ready: the arbiter's setpgid after the fork is long done
  auto left = to_pids(pool.wait_count("moved slot=\\d rc=0 pgid=\\d+ left_behind=(\\d+)", 2));
  for (pid_t pid : pids) EXPECT_NE(::getpgid(pid), pid) << "pid " << pid << " is still its group's leader";
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(20s), 0);
  EXPECT_EQ(pool.count("event exit worker 0 .* stopped: exit 0"), 1u);
  EXPECT_EQ(pool.count("event exit worker 1 .* stopped: killed by SIGKILL"), 1u);
  pids.insert(pids.end(), left.begin(), left.end());
  for (pid_t pid : pids) {
    (void)reap(pid, 5s);
    EXPECT_TRUE(gone(pid)) << "pid " << pid << " outlived the pool";
  }
}

TEST(arbiter, a_second_sigint_stops_fast) {
  pool_process pool([] {
    auto o = test_options(2);
    o.graceful_timeout = 60s;
    hooks h;
    h.post_fork = [](worker& w) {
      std::signal(SIGTERM, SIG_IGN);  // a worker that will not stop by itself
      for (;;) {
        w.heartbeat();
        ::usleep(50'000);
      }
    };
    return run_pool(o, h);
  });
  pool.wait_count("event ready", 2);
  pool.signal(SIGINT);
  pool.wait_for("stopping 2 workers \\(graceful");
  pool.signal(SIGINT);
  pool.wait_for("stopping 2 workers \\(fast: SIGKILL\\)");
  EXPECT_EQ(pool.wait_exit(20s), 0);
  EXPECT_EQ(pool.count("event exit worker \\d .* stopped: killed by SIGKILL"), 2u);
}

TEST(arbiter, workers_exit_by_themselves_when_the_arbiter_is_killed) {
  pool_process pool([] {
    hooks h;
    h.post_fork = beat_until_stopped;
    return run_pool(test_options(3), h);
  });
  auto pids = to_pids(pool.wait_count("event ready slot=\\d gen=1 pid=(\\d+)", 3));
  ASSERT_EQ(pids.size(), 3u);
  pool.signal(SIGKILL);
  EXPECT_EQ(pool.wait_exit(), 128 + SIGKILL);
  for (pid_t pid : pids) {
    EXPECT_TRUE(reap(pid, 10s)) << "worker " << pid << " outlived its arbiter";
    EXPECT_TRUE(gone(pid));
  }
}

void list_fds(const std::string& who) {
  for (int fd = 0; fd < 1024; ++fd) {
    char target[256];
    ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof target - 1);
    if (n >= 0) say(who + " fd " + std::to_string(fd) + " " + std::string(target, static_cast<std::size_t>(n)));
  }
}

// What a worker finds when the caller's code starts: reported as lines.
void report_hygiene(worker& w) {
  sigset_t mask;
  ::sigprocmask(SIG_SETMASK, nullptr, &mask);
  say("mask-empty=" + std::to_string(sigisemptyset(&mask)));
  struct sigaction usr2{};
  ::sigaction(SIGUSR2, nullptr, &usr2);
  say("usr2-default=" + std::to_string(usr2.sa_handler == SIG_DFL));
  list_fds("worker");
  std::random_device rd;
  std::mt19937 engine(rd());
  say("random worker=" + std::to_string(w.id()) + " rand=" + std::to_string(std::rand()) +
      " engine=" + std::to_string(engine()));
}

TEST(arbiter, a_worker_starts_clean) {
  // State the test process holds that no worker may inherit.
  struct sigaction handler{};
  handler.sa_handler = [](int) {};
  struct sigaction old_usr2{};
  ::sigaction(SIGUSR2, &handler, &old_usr2);
  pool_process pool([] {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    ::sigprocmask(SIG_BLOCK, &block, nullptr);
    list_fds("pool");  // the caller's own fds, which workers do inherit
    hooks h;
    h.post_fork = report_hygiene;
    return run_pool(test_options(2), h);
  });
  ::sigaction(SIGUSR2, &old_usr2, nullptr);
  pool.wait_count("random worker=", 2);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);

  EXPECT_EQ(pool.count("\\] mask-empty=1$"), 2u);
  EXPECT_EQ(pool.count("\\] usr2-default=1$"), 2u);
  EXPECT_EQ(pool.count("\\] worker fd 0 /dev/null$"), 2u);
  EXPECT_EQ(pool.count("\\] worker fd [12] pipe:"), 4u);
  for (const char* leak : {"eventpoll", "signalfd", "timerfd", "pidfd"})
    EXPECT_EQ(pool.count(std::string("\\] worker fd \\d+ anon_inode:\\[?") + leak), 0u) << leak;
  // Each worker has the caller's fds, its notify socket and its stop
  // eventfd; nothing of the arbiter's (its pipes, pidfds, epoll, ...).
  std::size_t caller = pool.count("^pool fd ([3-9]|\\d\\d+) ");
  EXPECT_EQ(pool.count("\\] worker fd ([3-9]|\\d\\d+) "), 2 * (caller + 2));
  EXPECT_EQ(pool.count("\\] worker fd \\d+ socket:"), 2 + 2 * pool.count("^pool fd \\d+ socket:"));
  EXPECT_EQ(pool.count("\\] worker fd \\d+ anon_inode:\\[eventfd\\]"), 2u);

  std::set<std::string> rands, engines;
  for (const auto& l : pool.lines()) {
    std::smatch m;
    if (std::regex_search(l, m, std::regex("rand=(\\d+) engine=(\\d+)"))) {
      rands.insert(m[1]);
      engines.insert(m[2]);
    }
  }
  EXPECT_EQ(rands.size(), 2u);
  EXPECT_EQ(engines.size(), 2u);
}

// Library mode with ufork's fd-holding features on: a log file set, a
// control socket, a pidfile. Workers keep the caller's fds, and get none of
// ufork's.
TEST(arbiter, a_worker_gets_the_programs_fds_and_none_of_ufork) {
  std::string base = "/tmp/ufork-fds-" + std::to_string(::getpid());
  pool_process pool([base] {
    int program[2];
    if (::pipe(program) != 0) return 2;  // the program's own, no CLOEXEC: workers keep it
    auto pid = pidfile::acquire(base + ".pid");
    auto o = test_options(2);
    o.sink = make_tee_sink({say_sink(), make_file_sink({base + ".log"})});
    o.control_path = base + ".sock";
    list_fds("pool");
    hooks h;
    h.post_fork = report_hygiene;
    return run_pool(o, h);
  });
  pool.wait_count("random worker=", 2);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  ::unlink((base + ".log").c_str());
  // "pool" listed the caller's fds and ufork's pidfile and log file, opened
  // before the arbiter: a worker has the caller's, its notify socket and its
  // stop eventfd.
  std::size_t ufork_own = pool.count("^pool fd \\d+ " + base);
  EXPECT_EQ(ufork_own, 2u);
  std::size_t caller = pool.count("^pool fd ([3-9]|\\d\\d+) ") - ufork_own;
  EXPECT_EQ(pool.count("\\] worker fd ([3-9]|\\d\\d+) "), 2 * (caller + 2));
  EXPECT_EQ(pool.count("\\] worker fd \\d+ " + base), 0u);
  EXPECT_EQ(pool.count("\\] worker fd \\d+ pipe:"), 2 * (2 + pool.count("^pool fd ([3-9]|\\d\\d+) pipe:")));
}

// A worker that passes an fd over its notify socket does not leak it into
// the arbiter (from where later workers would inherit it): the pipe's write
// end it passed is closed, so its read end sees EOF.
TEST(arbiter, an_fd_a_worker_passes_on_its_notify_socket_is_closed) {
  pool_process pool([] {
    hooks h;
    h.post_fork = [](worker& w) {
      int notify = -1;
      for (int fd = 3; fd < 64 && notify < 0; ++fd) {
        int type = 0, domain = 0;
        socklen_t len = sizeof type;
        if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_DGRAM &&
            ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX)
          notify = fd;
      }
      int ends[2];
      if (notify < 0 || ::pipe(ends) != 0) ::_exit(2);
      char byte = 'x';
      iovec iov{&byte, 1};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &ends[1], sizeof(int));
      if (::sendmsg(notify, &msg, 0) != 1) ::_exit(3);
      ::close(ends[1]);
      pollfd pfd{ends[0], POLLIN, 0};
      bool closed = ::poll(&pfd, 1, 20'000) == 1 && ::read(ends[0], &byte, 1) == 0;
      say(closed ? "the passed fd was closed" : "the passed fd is still open");
      beat_until_stopped(w);
    };
    return run_pool(test_options(1), h);
  });
  pool.wait_for("\\] the passed fd (was closed|is still open)");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("the passed fd was closed"), 1u);
}

TEST(arbiter, carries_every_line_whole_and_exactly_once) {
  constexpr int per_worker = 100'000;
  pool_process pool([] {
    auto o = test_options(4);
    o.sink = make_fd_sink(STDOUT_FILENO);  // buffered, as by default
    hooks h;
    h.post_fork = [](worker& w) {
      if (w.generation() > 1) return;
      for (int i = 0; i < per_worker; ++i) std::printf("w%d line %d %s\n", w.id(), i, "xxxxxxxxxxxxxxxxxxxxxxxxx");
      std::fflush(stdout);
      std::printf("w%d done", w.id());  // no newline: delivered at exit
      std::fflush(stdout);
      ::_exit(0);
    };
    return arbiter(o, h).run();
  });
  pool.wait_count([](const std::string& l) { return l.ends_with(" done"); }, 4, 120s);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);

  // Parsed by hand, not with std::regex: 400,000 lines must check fast in
  // a sanitizer build too.
  std::vector<int> next(4, 0);
  std::size_t torn = 0;
  for (const auto& l : pool.lines()) {
    if (l.find(" line ") == std::string::npos) continue;
    int slot = -1, pid = 0, id = -2, n = -1, end = 0;
    char tail[32] = {};
    bool whole = std::sscanf(l.c_str(), "[worker %d pid %d] w%d line %d %31s%n", &slot, &pid, &id, &n, tail, &end) == 5 &&
                 static_cast<std::size_t>(end) == l.size() && slot == id && slot >= 0 && slot < 4 &&
                 std::string(tail) == "xxxxxxxxxxxxxxxxxxxxxxxxx";
    if (!whole) {
      ++torn;
      continue;
    }
    EXPECT_EQ(n, next[id]) << "lost or repeated line of worker " << id;
    next[id] = n + 1;
  }
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(next, std::vector<int>(4, per_worker));
}

TEST(arbiter, splits_an_overlong_line_without_losing_a_byte) {
  pool_process pool([] {
    auto o = test_options(1);
    o.max_line = 64 * 1024;
    hooks h;
    h.post_fork = [](worker& w) {
      if (w.generation() > 1) return;
      std::string big(1024 * 1024, 'x');
      std::fwrite(big.data(), 1, big.size(), stdout);
      std::printf("\nafter\n");
      std::fflush(stdout);
      ::_exit(0);
    };
    return run_pool(o, h);
  });
  pool.wait_for("\\] after$");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  std::size_t bytes = 0, pieces = 0;
  for (const auto& l : pool.lines()) {
    auto pos = l.find("] x");
    if (pos == std::string::npos) continue;
    ++pieces;
    bytes += l.size() - pos - 2;
  }
  EXPECT_EQ(bytes, 1024u * 1024);
  EXPECT_EQ(pieces, 16u);
}

TEST(arbiter, a_slow_sink_slows_the_writers_and_loses_nothing) {
  constexpr int per_worker = 20'000;
  pool_process pool([] {
    auto o = test_options(2);
    o.pipe_size = 4096;  // the writers block early
    auto fast = say_sink();
    int n = 0;
    o.sink = make_callback_sink([fast, n](const log_line& l) mutable {
      if (++n % 1000 == 0) ::usleep(20'000);  // a sink that stalls now and then
      fast->write(l);
    });
    hooks h;
    h.post_fork = [](worker& w) {
      if (w.generation() > 1) return;
      for (int i = 0; i < per_worker; ++i) std::printf("w%d %d\n", w.id(), i);
      std::printf("w%d end\n", w.id());
      std::fflush(stdout);
      ::_exit(0);
    };
    return arbiter(o, h).run();
  });
  pool.wait_count("w\\d end$", 2, 60s);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("\\] w0 \\d+$"), static_cast<std::size_t>(per_worker));
  EXPECT_EQ(pool.count("\\] w1 \\d+$"), static_cast<std::size_t>(per_worker));
}

// Hostile output, from three workers at once: a 100 MiB line, binary bytes
// (NUL, 0xff, invalid UTF-8) and then a closed stdout, and a flood as fast
// as the worker can write. The long line arrives whole in 64 KiB pieces,
// the binary one byte for byte, the closed stdout ends nothing, not one
// flood line is lost or out of order, and the arbiter answers its control
// socket all along.
TEST(arbiter, hostile_output_harms_nothing_and_loses_nothing) {
  std::string sock = "/tmp/ufork-hostile-" + std::to_string(::getpid()) + ".sock";
  pool_process pool([sock] {
    auto o = test_options(3);
    o.max_line = 64 * 1024;
    o.control_path = sock;
    auto out = say_sink();
    std::size_t big_bytes = 0, big_pieces = 0;
    long flood_next = 0;
    bool flood_gap = false;
    o.sink = make_callback_sink([=](const log_line& l) mutable {
      if (l.id == 0 && l.text.find_first_not_of('x') == std::string_view::npos && !l.text.empty()) {
        big_bytes += l.text.size();
        ++big_pieces;
      } else if (l.id == 0 && l.text == "after-big") {
        say("big " + std::to_string(big_bytes) + " in " + std::to_string(big_pieces));
      } else if (l.id == 1 && l.stream == stream_kind::out) {
        std::string want;
        for (int c = 0; c < 256; ++c)
          if (c != '\n') want += static_cast<char>(c);
        say(l.text == want ? "binary whole" : "binary changed: " + std::to_string(l.text.size()) + " bytes");
      } else if (l.id == 2 && l.text.starts_with("flood ")) {
        if (std::stol(std::string(l.text.substr(6))) != flood_next) flood_gap = true;
        if (++flood_next % 100'000 == 0) say("flood " + std::to_string(flood_next) + (flood_gap ? " with a gap" : ""));
      } else {
        out->write(l);
      }
    });
    hooks h;
    h.post_fork = [](worker& w) {
      if (w.generation() > 1) return beat_until_stopped(w);
      if (w.id() == 0) {
        std::string mib(1024 * 1024, 'x');
        for (int i = 0; i < 100; ++i) {
          (void)!::write(STDOUT_FILENO, mib.data(), mib.size());
          w.heartbeat();
        }
        (void)!::write(STDOUT_FILENO, "\nafter-big\n", 11);
        return beat_until_stopped(w);
      }
      if (w.id() == 1) {
        std::string bytes;
        for (int c = 0; c < 256; ++c)
          if (c != '\n') bytes += static_cast<char>(c);
        bytes += '\n';
        (void)!::write(STDOUT_FILENO, bytes.data(), bytes.size());
        ::close(STDOUT_FILENO);  // and goes on living without it
        return beat_until_stopped(w);
      }
      char line[32];
      for (long i = 0; !w.stopping(); ++i) {
        int n = std::snprintf(line, sizeof line, "flood %ld\n", i);
        (void)!::write(STDOUT_FILENO, line, static_cast<std::size_t>(n));
        if (i % 1024 == 0) w.heartbeat();
      }
    };
    return arbiter(o, h).run();
  });
  pool.wait_for("^big 104857600 in 1600$", 60s);
  pool.wait_count("^binary whole$", 1);
  pool.wait_count("^flood 200000$", 1, 60s);
  // Asked while the flood goes on: answered, and every worker is still the first.
  auto answer = run_program(UFORK_CLI_PATH, {"ctl", "--socket", sock, "--json", "workers"});
  EXPECT_EQ(answer.code, 0) << answer.out;
  EXPECT_NE(answer.out.find("\"generation\":1"), std::string::npos) << answer.out;
  EXPECT_EQ(answer.out.find("\"generation\":2"), std::string::npos) << answer.out;
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("with a gap"), 0u);
  EXPECT_EQ(pool.count("binary changed"), 0u);
}

}  // namespace
}  // namespace ufork::test
