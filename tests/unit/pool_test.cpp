// The core alone: a pool run through its view and verbs, with no prompt,
// control socket or command table linked in (see tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "core/pool.hpp"

namespace ufork {
namespace {

using namespace std::chrono_literals;

struct events {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<worker_info> ready;
  std::vector<exit_info> exits;

  template <class Pred>
  bool wait_for(Pred pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 30s, [&] { return pred(*this); });
  }
};

TEST(pool, runs_and_obeys_its_verbs_without_the_control_part) {
  events ev;
  options o;
  o.workers = 2;
  o.sink = make_callback_sink([](const log_line&) {});
  hooks h;
  h.post_fork = [](worker&) {};  // heartbeats until asked to stop
  h.on_worker_ready = [&](const worker_info& w) {
    std::lock_guard lock(ev.mu);
    ev.ready.push_back(w);
    ev.cv.notify_all();
  };
  h.on_worker_exit = [&](const exit_info& e) {
    std::lock_guard lock(ev.mu);
    ev.exits.push_back(e);
    ev.cv.notify_all();
  };
  pool p(o, h);
  p.start();
  ASSERT_TRUE(ev.wait_for([](events& e) { return e.ready.size() == 2; }));

  pid_t first = p.call([&] { return p.worker_pid(0); });
  ASSERT_GT(first, 0);
  EXPECT_EQ(p.call([&] { return p.signal(0, SIGKILL); }), std::error_code());
  ASSERT_TRUE(ev.wait_for([](events& e) { return e.ready.size() == 3; }));
  {
    std::lock_guard lock(ev.mu);
    ASSERT_EQ(ev.exits.size(), 1u);
    EXPECT_EQ(ev.exits[0].pid, first);
    EXPECT_EQ(ev.exits[0].reason, exit_reason::killed);
    EXPECT_EQ(ev.ready[2].id, 0);
    EXPECT_EQ(ev.ready[2].generation, 2u);
  }
  EXPECT_NE(p.call([&] { return p.signal(7, SIGTERM); }), std::error_code());
  EXPECT_NE(p.call([&] { return p.resize(0); }).find("allow_empty"), std::string::npos);

  EXPECT_EQ(p.call([&] { return p.reload({1}); }), "");
  ASSERT_TRUE(ev.wait_for([](events& e) { return e.exits.size() == 2; }));
  {
    std::lock_guard lock(ev.mu);
    EXPECT_EQ(ev.exits[1].reason, exit_reason::replaced);
    EXPECT_EQ(ev.exits[1].id, 1);
  }
  auto s = p.snapshot();
  EXPECT_EQ(s.size, 2);
  EXPECT_EQ(s.counters.spawned, 4u);
  EXPECT_EQ(p.call([&] { return p.generations(); }), (std::vector<unsigned>{2, 2}));

  p.request_stop();
  EXPECT_EQ(p.wait(), 0);
  EXPECT_TRUE(p.snapshot().workers.empty());
}

}  // namespace
}  // namespace ufork
