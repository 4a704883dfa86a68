// ufork/asio.hpp: a worker on the program's own io_context.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "ufork/asio.hpp"

#include <boost/asio/post.hpp>

namespace ufork::test {
namespace {

// Gen 1 of slot 0 runs `work` in its loop; every worker says "stop callback"
// on SIGTERM and returns from io.run().
pool_process asio_pool(void (*work)(boost::asio::io_context&)) {
  return pool_process([work] {
    auto o = test_options(1);
    o.timeout = 300ms;
    hooks h;
    h.post_fork = [work](worker& w) {
      boost::asio::io_context io;
      asio_worker attached(w, io, [&] {
        say("stop callback");
        attached.detach();
      });
      if (w.generation() == 1) work(io);
      io.run();
      say("io.run returned");
    };
    arbiter a(o, with_events(h));
    return a.run();
  });
}

TEST(asio, the_stop_callback_runs_on_sigterm_and_the_loop_returns) {
  auto pool = asio_pool([](boost::asio::io_context&) {});
  pool.wait_for("event ready slot=0 gen=1");
  pool.signal(SIGTERM);
  pool.wait_for("stop callback");
  pool.wait_for("io.run returned");
  pool.wait_for("event exit worker 0 .* stopped: exit 0");
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(asio, a_handler_that_blocks_the_loop_gets_its_worker_replaced) {
  auto pool = asio_pool([](boost::asio::io_context& io) {
    boost::asio::post(io, [] {
      for (;;) ::pause();
    });
  });
  pool.wait_for("hung: no heartbeat");
  pool.wait_for("event ready slot=0 gen=2");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// Short handlers back to back for ten timeouts: busy, but the loop turns.
TEST(asio, a_busy_loop_that_keeps_turning_is_not_taken_for_hung) {
  auto pool = asio_pool([](boost::asio::io_context& io) {
    auto until = std::chrono::steady_clock::now() + 3s;
    auto spin = std::make_shared<std::function<void()>>();
    *spin = [&io, until, spin] {
      auto t = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - t < 2ms) {
      }
      if (std::chrono::steady_clock::now() < until)
        boost::asio::post(io, *spin);
      else
        say("busy done");
    };
    boost::asio::post(io, *spin);
  });
  pool.wait_for("busy done", 30s);
  EXPECT_EQ(pool.count("hung"), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

}  // namespace
}  // namespace ufork::test
