// ufork/uv.hpp: a worker on the program's own libuv loop.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>

#include "harness.hpp"
#include "ufork/uv.hpp"

namespace ufork::test {
namespace {

// Gen 1 of slot 0 runs `work` on its loop; every worker says "stop callback"
// on SIGTERM and returns from uv_run.
pool_process uv_pool(void (*work)(uv_loop_t*)) {
  return pool_process([work] {
    auto o = test_options(1);
    o.timeout = 300ms;
    hooks h;
    h.post_fork = [work](worker& w) {
      uv_loop_t loop;
      uv_loop_init(&loop);
      {
        uv_worker attached(w, &loop, [&] {
          say("stop callback");
          attached.detach();
        });
        if (w.generation() == 1) work(&loop);
        uv_run(&loop, UV_RUN_DEFAULT);
      }
      uv_run(&loop, UV_RUN_NOWAIT);  // the close callbacks
      uv_loop_close(&loop);
      say("uv_run returned");
    };
    arbiter a(o, with_events(h));
    return a.run();
  });
}

TEST(uv, the_stop_callback_runs_on_sigterm_and_the_loop_returns) {
  auto pool = uv_pool([](uv_loop_t*) {});
  pool.wait_for("event ready slot=0 gen=1");
  pool.signal(SIGTERM);
  pool.wait_for("stop callback");
  pool.wait_for("uv_run returned");
  pool.wait_for("event exit worker 0 .* stopped: exit 0");
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(uv, a_callback_that_blocks_the_loop_gets_its_worker_replaced) {
  auto pool = uv_pool([](uv_loop_t* loop) {
    static uv_idle_t idle;
    uv_idle_init(loop, &idle);
    uv_idle_start(&idle, [](uv_idle_t*) {
      for (;;) ::pause();
    });
  });
  pool.wait_for("hung: no heartbeat");
  pool.wait_for("event ready slot=0 gen=2");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// An idle callback that spins 2 ms at a time for ten timeouts: busy, but the
// loop turns (and runs the heartbeat timer) between them.
TEST(uv, a_busy_loop_that_keeps_turning_is_not_taken_for_hung) {
  auto pool = uv_pool([](uv_loop_t* loop) {
    static uv_idle_t idle;
    static auto until = std::chrono::steady_clock::now() + 3s;
    uv_idle_init(loop, &idle);
    uv_idle_start(&idle, [](uv_idle_t* i) {
      auto t = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - t < 2ms) {
      }
      if (std::chrono::steady_clock::now() >= until) {
        say("busy done");
        uv_close(reinterpret_cast<uv_handle_t*>(i), nullptr);
      }
    });
  });
  pool.wait_for("busy done", 30s);
  EXPECT_EQ(pool.count("hung"), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

}  // namespace
}  // namespace ufork::test
