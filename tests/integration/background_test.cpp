// The arbiter on a background thread of this process: start(), status(),
// resize(), stop(), wait(), and how rarely an idle arbiter wakes up.
#include <poll.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <atomic>

#include "harness.hpp"

namespace ufork::test {
namespace {

// Counts hook events, so a test can wait for "n workers ready" without polling.
class events {
 public:
  hooks attach(hooks h) {
    h.on_worker_ready = [this](const worker_info&) { bump(ready_); };
    h.on_worker_exit = [this](const exit_info& e) {
      std::lock_guard lock(mu_);
      exits_.push_back(e);
      cv_.notify_all();
    };
    return h;
  }
  bool wait_ready(int n) { return wait([&] { return ready_ >= n; }); }
  bool wait_exits(std::size_t n) { return wait([&] { return exits_.size() >= n; }); }
  std::vector<exit_info> exits() {
    std::lock_guard lock(mu_);
    return exits_;
  }

 private:
  void bump(int& counter) {
    std::lock_guard lock(mu_);
    ++counter;
    cv_.notify_all();
  }
  template <class P>
  bool wait(P pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 20s, pred);
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int ready_ = 0;
  std::vector<exit_info> exits_;
};

options quiet_options(int workers) {
  auto o = test_options(workers);
  o.sink = make_callback_sink([](const log_line&) {});
  return o;
}

TEST(arbiter_background, resizes_reports_status_and_stops) {
  events ev;
  arbiter a(quiet_options(2), ev.attach({}));
  a.start();
  ASSERT_TRUE(ev.wait_ready(2));
  a.resize(4);
  ASSERT_TRUE(ev.wait_ready(4));
  auto s = a.status();
  EXPECT_EQ(s.size, 4);
  ASSERT_EQ(s.workers.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(s.workers[static_cast<std::size_t>(i)].id, i);
    EXPECT_EQ(s.workers[static_cast<std::size_t>(i)].state, worker_state::ready);
    EXPECT_EQ(s.workers[static_cast<std::size_t>(i)].generation, 1u);
    EXPECT_TRUE(s.workers[static_cast<std::size_t>(i)].heartbeat_age.has_value());
  }
  EXPECT_EQ(s.counters.spawned, 4u);

  a.resize(1);
  ASSERT_TRUE(ev.wait_exits(3));
  for (const auto& e : ev.exits()) {
    EXPECT_EQ(e.reason, exit_reason::shrunk);
    EXPECT_GE(e.id, 1);
  }
  a.stop();
  EXPECT_EQ(a.wait(), 0);
  s = a.status();
  EXPECT_TRUE(s.workers.empty());
  EXPECT_EQ(s.dead.size(), 4u);
  EXPECT_EQ(s.dead.back().reason, exit_reason::stopped);
  EXPECT_EQ(s.dead.back().id, 0);
}

TEST(arbiter_background, an_idle_arbiter_sleeps_until_the_next_heartbeat_deadline) {
  events ev;
  auto o = quiet_options(8);
  o.timeout = 10s;  // workers beat every 2.5 s
  arbiter a(o, ev.attach({}));
  a.start();
  ASSERT_TRUE(ev.wait_ready(8));
  auto before = a.status();
  // The timer is armed for the earliest heartbeat deadline, at least
  // timeout - interval = 7.5 s away: nothing wakes the loop before it.
  ASSERT_TRUE(before.next_wakeup.has_value());
  EXPECT_GT(*before.next_wakeup, 2s);
  // A second status() call is one wake-up (the call itself); a ticking loop
  // would show many more over this window.
  pollfd none{-1, 0, 0};
  (void)::poll(&none, 1, 1000);  // not a synchronisation: an interval to count over
  auto after = a.status();
  EXPECT_LE(after.counters.wakeups - before.counters.wakeups, 2u);
  a.stop();
  EXPECT_EQ(a.wait(), 0);
}

TEST(arbiter_background, a_hook_that_throws_is_logged_and_supervision_goes_on) {
  events ev;
  std::mutex mu;
  std::vector<std::string> lines;
  auto o = test_options(2);
  o.sink = make_callback_sink([&](const log_line& l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l.text);
  });
  hooks h = ev.attach({});
  h.on_worker_spawn = [](const worker_info&) { throw std::runtime_error("spawn hook failed"); };
  arbiter a(o, h);
  a.start();
  ASSERT_TRUE(ev.wait_ready(2));
  a.stop();
  EXPECT_EQ(a.wait(), 0);
  std::lock_guard lock(mu);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "hook on_worker_spawn threw: spawn hook failed"), 2);
}

// A host program's threads all use the arbiter at once while it runs on its
// own: status, execute, log, resize. Every call is answered; then stop()
// from yet another thread ends it. (make check-tsan runs this under
// ThreadSanitizer.)
TEST(arbiter_background, many_host_threads_call_it_at_once) {
  events ev;
  arbiter a(quiet_options(2), ev.attach({}));
  a.start();
  ASSERT_TRUE(ev.wait_ready(2));
  std::atomic<int> answered{0};
  std::vector<std::thread> host;
  for (int t = 0; t < 4; ++t)
    host.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        answered += a.status().size >= 2;
        answered += a.execute("workers").ok;
        a.log("from host thread " + std::to_string(t));
        if (t == 0 && i == 10) a.resize(3);
      }
    });
  for (auto& t : host) t.join();
  EXPECT_EQ(answered.load(), 4 * 50 * 2);
  EXPECT_TRUE(ev.wait_ready(3));
  std::thread stopper([&] { a.stop(); });
  EXPECT_EQ(a.wait(), 0);
  stopper.join();
}

TEST(arbiter_background, rejects_invalid_options) {
  auto o = quiet_options(1);
  o.max_starting = 0;
  EXPECT_THROW(arbiter(o, {}), error);
  o = quiet_options(1);
  o.timeout = 0ms;
  EXPECT_THROW(arbiter(o, {}), error);
  o = quiet_options(-1);
  EXPECT_THROW(arbiter(o, {}), error);
}

}  // namespace
}  // namespace ufork::test
