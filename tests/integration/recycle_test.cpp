// Recycling: a worker past a limit (options::recycle) is replaced as a
// reload replaces it, its successor ready first, with the reason recorded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <regex>
#include <vector>

#include "harness.hpp"

namespace ufork::test {
namespace {

// The line index of the first line matching re, or -1.
long line_of(const pool_process& pool, const std::string& re) {
  std::regex r(re);
  const auto& lines = pool.lines();
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (std::regex_search(lines[i], r)) return static_cast<long>(i);
  return -1;
}

// Generation 1 of slot 0 does `grow` once ready; the pool has `limits`.
pool_process recycling_pool(recycle_limits limits, void (*grow)()) {
  return pool_process([limits, grow] {
    auto o = test_options(1);
    o.recycle = limits;
    hooks h;
    h.post_fork = [grow](worker& w) {
      w.ready();
      if (w.generation() == 1) grow();
      beat_until_stopped(w);
    };
    arbiter a(o, with_events(h));
    return a.run();
  });
}

// Its successor was ready before it was stopped, and the reason says why.
void expect_recycled(pool_process& pool, const std::string& why) {
  pool.wait_for("event exit worker 0 pid \\d+ gen 1 recycled: .*\\(recycled: " + why);
  long ready = line_of(pool, "event ready slot=0 gen=2"), exit = line_of(pool, "event exit worker 0 .* gen 1");
  EXPECT_GE(ready, 0);
  EXPECT_LT(ready, exit) << "the successor was not ready first";
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(recycle, a_worker_past_max_rss_is_replaced_its_successor_ready_first) {
  recycle_limits r;
  r.max_rss = 32u << 20;
  r.check_interval = 100ms;
  auto pool = recycling_pool(r, [] {
    static std::vector<char> ballast(64u << 20);
    std::memset(ballast.data(), 1, ballast.size());  // resident, not only reserved
  });
  expect_recycled(pool, "rss \\d+ MiB > 32 MiB");
}

// Pages a worker shares with the arbiter are not its own: max_private
// counts what a worker alone holds (USS), so 64 MiB the arbiter made
// resident before the fork (in every worker's RSS) recycle no worker, and
// 64 MiB of a worker's own do.
std::vector<char>& arbiters_ballast() {
  static std::vector<char> ballast(64u << 20);
  return ballast;
}

TEST(recycle, max_private_counts_what_a_worker_alone_holds_not_what_it_shares) {
  pool_process pool([] {
    std::memset(arbiters_ballast().data(), 1, arbiters_ballast().size());  // resident before the fork
    auto o = test_options(2);
    o.recycle.max_private = 32u << 20;
    o.recycle.check_interval = 100ms;
    hooks h;
    h.post_fork = [](worker& w) {
      w.ready();
      if (w.id() == 0 && w.generation() == 1) {
        static std::vector<char> own(64u << 20);
        std::memset(own.data(), 1, own.size());
      }
      beat_until_stopped(w);
    };
    arbiter a(o, with_events(h));
    return a.run();
  });
  expect_recycled(pool, "private \\d+ MiB > 32 MiB");
  EXPECT_EQ(pool.count("worker 1 pid \\d+ recycled"), 0u) << "a worker recycled for the pages it shares";
  EXPECT_EQ(pool.count("worker 0 pid \\d+ recycled"), 1u) << "its successor, which shares them, recycled too";
}

TEST(recycle, a_worker_near_its_fd_limit_is_replaced) {
  recycle_limits r;
  r.max_fds_percent = 90;
  r.check_interval = 100ms;
  auto pool = recycling_pool(r, [] {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    for (rlim_t i = 0; i < limit.rlim_cur * 95 / 100; ++i)
      if (::open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) break;
  });
  expect_recycled(pool, "\\d+ fds open of \\d+ \\(over 90 %\\)");
}

TEST(recycle, a_worker_past_max_lifetime_is_replaced) {
  recycle_limits r;
  r.max_lifetime = 200ms;
  auto pool = recycling_pool(r, [] {});
  expect_recycled(pool, "lifetime");
}

TEST(recycle, a_worker_past_max_requests_asks_to_be_replaced) {
  recycle_limits r;
  r.max_requests = 10;
  auto pool = recycling_pool(r, [] { current_worker()->count_requests(10); });
  expect_recycled(pool, "10 requests");
}

// Two workers past max_lifetime. `successors_ready`: the successors (gen
// 2) become ready; else they never do.
pool_process lifetime_pool(int at_once, bool successors_ready) {
  return pool_process([at_once, successors_ready] {
    auto o = test_options(2);
    o.recycle.max_lifetime = 300ms;
    o.recycle.at_once = at_once;
    hooks h;
    h.post_fork = [successors_ready](worker& w) {
      if (w.generation() > 1 && !successors_ready)
        while (!w.stopping()) ::pause();  // starting until stopped
      beat_until_stopped(w);
    };
    arbiter a(o, with_events(h));
    return a.run();
  });
}

// One at a time by default: slot 1's successor is forked only once slot 0's
// is ready.
TEST(recycle, one_slot_at_a_time_by_default) {
  auto pool = lifetime_pool(1, true);
  pool.wait_for("event ready slot=1 gen=2");
  EXPECT_GT(line_of(pool, "event spawn slot=1 gen=2"), line_of(pool, "event ready slot=0 gen=2")) << [&] {
    std::string all;
    for (const auto& l : pool.lines()) all += l + "\n";
    return all;
  }();
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// With at_once 2, both successors are forked though neither ever becomes
// ready.
TEST(recycle, at_once_recycles_more_slots_together) {
  auto pool = lifetime_pool(2, false);
  pool.wait_count("event spawn slot=0 gen=2", 1);  // in either order
  pool.wait_count("event spawn slot=1 gen=2", 1);
  EXPECT_EQ(pool.count("event ready slot=\\d gen=2"), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(recycle, exec_d_workers_have_no_request_counter) {
  auto refused = run_program(UFORK_CLI_PATH, {"run", "--max-requests", "5", "--", "true"});
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.out.find("--max-requests needs a request counter"), std::string::npos) << refused.out;
}

}  // namespace
}  // namespace ufork::test
