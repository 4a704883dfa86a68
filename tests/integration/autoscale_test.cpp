// Autoscaling (options::scale): a pool that grows when connections queue or
// every worker is busy, and shrinks one worker at a time once idle. Real
// listening sockets, real clients holding real connections.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "harness.hpp"
#include "sys/procfs.hpp"
#include "sys/process.hpp"

namespace ufork::test {
namespace {

// A listening TCP socket on 127.0.0.1, non-blocking (the workers share it:
// the one that loses the race for a connection goes back to waiting).
int listen_tcp(int& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 128) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return -1;
  port = ntohs(addr.sin_port);
  return fd;
}

// Waits for fd to be readable, beating meanwhile; false once asked to stop
// (unless `finish`: a request in progress is finished whatever happens).
bool wait_readable(worker& w, int fd, bool finish) {
  for (;;) {
    w.heartbeat();
    pollfd p[2] = {{fd, POLLIN, 0}, {w.stop_fd(), POLLIN, 0}};
    if (::poll(p, finish ? 1 : 2, 50) > 0 && (p[0].revents & (POLLIN | POLLHUP)) != 0) return true;
    if (!finish && w.stopping()) return false;
  }
}

// Each connection is one request, which lasts until the client sends a
// line: the worker is busy in it (begin_request) and takes no other. Then
// "ok". A stop finishes the request in progress.
void serve_held_requests(worker& w, int listen_fd) {
  while (wait_readable(w, listen_fd, false)) {
    int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;  // another worker took it
    w.begin_request();
    char buf[64];
    if (wait_readable(w, c, true) && ::read(c, buf, sizeof buf) > 0) (void)!::write(c, "ok\n", 3);
    w.end_request();
    ::close(c);
  }
}

options scaling_options(int min, int max, milliseconds idle) {
  auto o = test_options(min);
  o.scale.min_workers = min;
  o.scale.max_workers = max;
  o.scale.idle_timeout = idle;
  o.max_starting = max;
  return o;
}

// A pool of held requests on a port it prints ("port N"); `touch` MiB
// written by each worker before it is ready.
pool_process scaling_pool(options o, std::size_t touch_mib = 0, bool others_fail = false) {
  return pool_process([o, touch_mib, others_fail]() mutable {
    int port = 0;
    int fd = listen_tcp(port);
    say("port " + std::to_string(port));
    if (o.scale.max_pool_memory)  // the test's budget: the arbiter's PSS now, plus the given MiB
      if (auto m = sys::memory_of(sys::own_pid())) o.scale.max_pool_memory += m->pss;
    hooks h;
    h.post_fork = [fd, touch_mib, others_fail](worker& w) {
      if (others_fail && w.id() > 0) sys::child::exit(1);  // fails its start
      static std::vector<char> ballast;
      ballast.assign(touch_mib << 20, 1);
      w.ready();
      serve_held_requests(w, fd);
    };
    return run_pool_or_report(o, with_events(h));
  });
}

// A client whose request lasts until finish().
class held {
 public:
  explicit held(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ~held() { ::close(fd_); }
  held(const held&) = delete;
  held& operator=(const held&) = delete;
  // The answer, once the worker that took it has it.
  std::string finish() {
    (void)!::write(fd_, "done\n", 5);
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 20000) <= 0) return "";
    char buf[16];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

 private:
  int fd_;
};

std::vector<std::unique_ptr<held>> hold(int port, int n) {
  std::vector<std::unique_ptr<held>> clients;
  for (int i = 0; i < n; ++i) clients.push_back(std::make_unique<held>(port));
  return clients;
}

long line_of(const pool_process& pool, const std::string& re, long from = 0) {
  std::regex r(re);
  const auto& lines = pool.lines();
  for (auto i = static_cast<std::size_t>(from); i < lines.size(); ++i)
    if (std::regex_search(lines[i], r)) return static_cast<long>(i);
  return -1;
}

TEST(autoscale, a_queue_grows_the_pool_at_once_and_idle_shrinks_it_one_worker_at_a_time) {
  auto pool = scaling_pool(scaling_options(1, 4, 1s));
  int port = std::stoi(pool.wait_for("port (\\d+)")[1]);
  pool.wait_for("autoscaling: 1 to 4 workers, shrinking after 1 s not needed; watching 127\\.0\\.0\\.1:" + std::to_string(port));
  pool.wait_for("event ready slot=0 gen=1");
  auto first = std::make_unique<held>(port);
  auto clients = hold(port, 9);  // one worker busy and 9 waiting: every worker the pool may have
  pool.wait_for("scaling \\d -> 4: accept queue \\d+ on 127\\.0\\.0\\.1:" + std::to_string(port));
  pool.wait_count("event ready slot=[1-3] gen=1", 3);
  // Each new slot was forked after a move that made room for it; none past max.
  for (int slot = 1; slot < 4; ++slot) {
    long spawn = line_of(pool, "event spawn slot=" + std::to_string(slot) + " ");
    long move = line_of(pool, "scaling \\d -> [" + std::to_string(slot + 1) + "-4]: ");
    EXPECT_GE(spawn, 0);
    EXPECT_LT(move, spawn) << "slot " << slot << " was forked before a move made room for it";
  }
  for (auto& c : clients) EXPECT_EQ(c->finish(), "ok\n");
  // One request stays in progress: the pool needs 1 worker and a spare.
  pool.wait_for("scaling 4 -> 3: not needed for 1 s \\(idle timeout\\)");
  pool.wait_for("scaling 3 -> 2: not needed");
  EXPECT_EQ(first->finish(), "ok\n");  // whichever worker had it, stopped or not, finished it
  pool.wait_for("scaling 2 -> 1: not needed");
  pool.wait_for("event exit worker 1 pid \\d+ gen 1");
  // One at a time, the most recently added first: each gone before the next move.
  long previous = line_of(pool, "scaling 4 -> 3");
  for (int slot = 3; slot >= 1; --slot) {
    long exit = line_of(pool, "event exit worker " + std::to_string(slot) + " pid \\d+ gen 1", previous);
    long next = line_of(pool, "scaling " + std::to_string(slot) + " -> " + std::to_string(slot - 1), previous + 1);
    EXPECT_GT(exit, previous) << "worker " << slot;
    if (slot > 1) {
      EXPECT_LT(exit, next) << "the pool shrank again before worker " << slot << " was gone";
    }
    previous = next;
  }
  EXPECT_EQ(pool.count("event spawn slot=[4-9]"), 0U);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(autoscale, the_memory_ceiling_holds_a_scale_up_back) {
  auto o = scaling_options(1, 4, 60s);
  o.scale.max_pool_memory = 150u << 20;  // + the arbiter's PSS: room for 2 workers of 64 MiB, not 3 (1 under ASan)
  auto pool = scaling_pool(o, 64);
  int port = std::stoi(pool.wait_for("port (\\d+)")[1]);
  pool.wait_for("event ready slot=0 gen=1");
  auto clients = hold(port, 6);
  auto held = pool.wait_for("scaling held at ([12]) \\(wanted [234]: .*\\): \\d+\\.\\d MiB per worker would take the "
                            "pool's PSS past --max-pool-memory");
  int at = std::stoi(held[1]);
  if (at == 2) pool.wait_for("event ready slot=1 gen=1");
  for (auto& c : clients) EXPECT_EQ(c->finish(), "ok\n");
  EXPECT_EQ(pool.count("event spawn slot=[" + std::to_string(at) + "-9]"), 0U);
  EXPECT_EQ(pool.count("scaling \\d -> [" + std::to_string(at + 1) + "-9]"), 0U);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(autoscale, failing_starts_follow_the_restart_policy_and_never_pass_max) {
  auto pool = scaling_pool(scaling_options(1, 3, 1s), 0, true);
  int port = std::stoi(pool.wait_for("port (\\d+)")[1]);
  pool.wait_for("event ready slot=0 gen=1");
  auto clients = hold(port, 5);
  pool.wait_for("scaling [12] -> 3: ");
  pool.wait_for("event exit worker 2 pid \\d+ gen 3 ");  // retried as the restart policy says
  for (auto& c : clients) EXPECT_EQ(c->finish(), "ok\n");  // worker 0 takes them one by one
  pool.wait_for("scaling 2 -> 1: not needed");
  EXPECT_EQ(pool.count("event spawn slot=[3-9]"), 0U);
  EXPECT_EQ(pool.count("scaling \\d -> [4-9]"), 0U);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(autoscale, a_unix_socket_queue_is_seen_and_shown_in_metrics) {
  std::string path = temp_path("scale.sock"), control = temp_path("scale.ctl");
  auto pool = ufork({"run", "--bind", "unix:" + path, "--max-workers", "3", "--ready-after", "0", "--control", control,
                     "--", "sleep", "1000"});
  auto watching = pool.wait_for("autoscaling: 1 to 3 workers.*; watching (.*)");
  if (std::string(watching[1]).find("unreadable") != std::string::npos) {
    pool.signal(SIGTERM);
    EXPECT_EQ(pool.wait_exit(), 0);
    GTEST_SKIP() << "this kernel does not answer unix_diag: " << watching[0];
  }
  pool.wait_for("ready, 1 worker");
  std::vector<int> clients;  // sleep accepts none: they stay queued
  for (int i = 0; i < 4; ++i) {
    clients.push_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(clients.back(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  pool.wait_for("scaling [12] -> 3: accept queue \\d on unix:" + path);
  auto status = ctl(control, "status");
  EXPECT_EQ(status["data"]["scale"]["target"], 3) << status.dump();
  EXPECT_EQ(status["data"]["scale"]["queues"]["unix:" + path], 4) << status.dump();
  auto metrics = run_program(UFORK_CLI_PATH, {"ctl", "--socket", control, "metrics"}).out;
  EXPECT_NE(metrics.find("ufork_listen_queue_depth{socket=\"unix:" + path + "\"} 4"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("ufork_pool_target_workers 3"), std::string::npos);
  EXPECT_TRUE(std::regex_search(metrics, std::regex("ufork_scale_events_total\\{direction=\"up\"\\} [12]\n"))) << metrics;
  for (int fd : clients) ::close(fd);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(autoscale, an_idle_pool_wakes_its_arbiter_for_nothing) {
  std::string control = temp_path("idle.ctl");
  auto pool = ufork({"hello", "--bind", "127.0.0.1:0", "--max-workers", "3", "--control", control});
  int port = std::stoi(pool.wait_for("listening on http://127\\.0\\.0\\.1:(\\d+)")[1]);
  pool.wait_for("ready, 1 worker");
  EXPECT_TRUE(ask(port).starts_with("Hello, World!"));
  auto wakeups = [&] {
    auto s = ctl(control, "status");
    return std::make_pair(s["data"]["counters"]["wakeups"].get<long>(), s["data"]["scale"]["looking"].get<bool>());
  };
  auto deadline = std::chrono::steady_clock::now() + 20s;
  auto [before, looking] = wakeups();
  while (looking && std::chrono::steady_clock::now() < deadline) {  // it looks for 100 ms after the request
    pool.drain_for(50ms);
    std::tie(before, looking) = wakeups();
  }
  ASSERT_FALSE(looking);
  pool.drain_for(5s);
  auto [after, still] = wakeups();
  EXPECT_FALSE(still);
  // A status command is a connection the loop serves (a few turns); nothing else may wake it.
  EXPECT_LE(after - before, 8) << "the arbiter woke " << after - before << " times in 5 s of idleness";
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// The size the pool had reached goes over an in-place upgrade, and stays
// until the new image has not needed it for the idle timeout.
TEST(autoscale, an_upgrade_carries_the_size_over) {
  auto control = temp_path("scale-upgrade.ctl");
  auto pool = ufork({"run", "--max-workers", "3", "--idle-timeout", "600", "--notify", "--bind", "127.0.0.1:0",
                     "--control", control, "--", notify_worker, "serve"});
  pool.wait_for("ufork run: ready, 1 worker");
  ASSERT_TRUE(ctl(control, "size 3")["ok"]);
  EXPECT_FALSE(ctl(control, "size 4")["ok"]);  // past --max-workers
  auto answer = ctl(control, "upgrade");
  ASSERT_TRUE(answer["ok"]) << answer;
  pool.wait_for("autoscaling: 1 to 3 workers");  // the new image's
  pool.wait_for("reload: done");
  auto status = ctl(control, "status");
  EXPECT_EQ(status["data"]["size"], 3) << status.dump();
  EXPECT_EQ(status["data"]["scale"]["target"], 3) << status.dump();
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(autoscale, bad_bounds_get_one_line_and_exit_2) {
  auto refused = [](std::vector<std::string> args, const std::string& says) {
    auto r = run_program(UFORK_CLI_PATH, args);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find(says), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  };
  refused({"hello", "--min-workers", "5", "--max-workers", "3"}, "--min-workers 5 is above --max-workers 3");
  refused({"hello", "--max-workers", "3", "--min-workers", "0"}, "--min-workers");
  refused({"hello", "--max-pool-memory", "100"}, "--max-pool-memory is the ceiling of a pool that sizes itself");
  refused({"run", "--max-workers", "2", "--max-pool-memory", "1", "--", "true"},
          "--max-pool-memory 1 MiB is below one worker's footprint");
  // Room in the fd limit: 4 fds per worker in the arbiter.
  auto small_limit = pool_process([] {
    rlimit l{256, 256};
    ::setrlimit(RLIMIT_NOFILE, &l);
    ::execl(UFORK_CLI_PATH, UFORK_CLI_PATH, "hello", "--max-workers", "100", nullptr);
    return 127;
  });
  small_limit.wait_for("--max-workers 100 needs about 464 fds in the arbiter; its fd limit is 256");
  EXPECT_EQ(small_limit.wait_exit(), 2);
}

}  // namespace
}  // namespace ufork::test
