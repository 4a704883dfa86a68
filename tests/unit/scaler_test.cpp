// Autoscaling's parts: the scaler's arithmetic on a clock of the test's, and
// the accept queues the kernel reports for real listening sockets.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "core/scaler.hpp"
#include "sys/socket.hpp"
#include "sys/unique_fd.hpp"

namespace ufork {
namespace {

using namespace std::chrono_literals;
using clock = scaler::clock;

TEST(scaler, starts_at_min_and_wants_one_spare_beyond_what_is_busy) {
  scaler s(1, 8, 10s);
  clock::time_point t0 = clock::now();
  EXPECT_EQ(s.target(t0), 1);
  EXPECT_EQ(s.look(0, 0, t0), 1);
  EXPECT_EQ(s.look(1, 0, t0), 2);  // the one worker busy: one more, so the next request does not wait
  EXPECT_EQ(s.look(2, 3, t0), 6);  // a queue: as many as it holds
  EXPECT_EQ(s.look(4, 60, t0), 8);  // never past max
  EXPECT_EQ(scaler(3, 8, 10s).look(0, 0, t0), 3);  // never below min
}

TEST(scaler, shrinks_one_level_at_a_time_once_not_needed_for_the_idle_timeout) {
  scaler s(1, 8, 10s);
  clock::time_point t0 = clock::now();
  EXPECT_EQ(s.look(3, 2, t0), 6);             // 5 needed at t0
  EXPECT_EQ(s.look(2, 0, t0 + 5s), 6);        // 2 needed at t0 + 5 s: the peak of the last 10 s is still 5
  ASSERT_TRUE(s.shrink_at(6));
  EXPECT_EQ(*s.shrink_at(6), t0 + 10s);       // when 5 were last needed, plus the idle timeout
  EXPECT_EQ(s.target(t0 + 10s), 3);           // 2 needed within the last 10 s, plus one
  EXPECT_EQ(*s.shrink_at(3), t0 + 15s);
  EXPECT_EQ(s.target(t0 + 15s), 1);
  EXPECT_FALSE(s.shrink_at(1));               // at min: never
  EXPECT_EQ(s.look(0, 0, t0 + 16s), 1);
}

TEST(scaler, a_pool_that_never_needed_a_worker_may_shrink_at_once) {
  scaler s(2, 4, 10s);
  ASSERT_TRUE(s.shrink_at(4));  // sized by hand above what it needs
  EXPECT_LE(*s.shrink_at(4), clock::now());
}

// A listening socket, its port, and n connections queued on it (none accepted).
struct queued_tcp {
  sys::unique_fd listener;
  std::vector<sys::unique_fd> clients;
  explicit queued_tcp(int n) : listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(::listen(listener.get(), 64), 0);
    EXPECT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    for (int i = 0; i < n; ++i) {
      clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      EXPECT_EQ(::connect(clients.back().get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }
  }
};

TEST(accept_queue, of_a_tcp_socket_counts_the_connections_not_yet_accepted) {
  queued_tcp q(5);
  EXPECT_TRUE(sys::is_listening(q.listener.get()));
  EXPECT_EQ(sys::accept_queue(q.listener.get()), 5);
  sys::unique_fd one(::accept(q.listener.get(), nullptr, nullptr));
  EXPECT_EQ(sys::accept_queue(q.listener.get()), 4);
  EXPECT_FALSE(sys::is_listening(one.get()));  // a connection is not a listener
}

TEST(accept_queue, of_a_unix_socket_counts_the_connections_not_yet_accepted) {
  std::string path = "/tmp/ufork-scaler-test-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  sys::unique_fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 64), 0);
  std::vector<sys::unique_fd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(clients.back().get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ::unlink(path.c_str());
  auto n = sys::accept_queue(listener.get());
  if (!n) GTEST_SKIP() << "this kernel does not answer unix_diag (the unix_diag module is not loaded here)";
  EXPECT_EQ(*n, 3);
}

TEST(listen_watch, finds_the_listening_sockets_that_are_not_ufork_own_and_wakes_on_a_connection) {
  reactor loop;
  queued_tcp q(0);
  int woken = 0;
  listen_watch w(loop, [&] { ++woken; });
  bool found = false;
  for (const auto& s : w.sockets()) found |= s.fd == q.listener.get() && s.name.starts_with("127.0.0.1:");
  EXPECT_TRUE(found);
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(q.listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  sys::unique_fd c1(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), c2(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(c1.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  loop.arm(clock::now() + 10s);
  loop.run_once();
  EXPECT_EQ(woken, 1);
  ASSERT_EQ(::connect(c2.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(w.look(), 2);
  loop.arm(clock::now() + 50ms);  // one event, then none until armed again
  loop.run_once();
  EXPECT_EQ(woken, 1);
  w.arm();  // still readable: the next turn sees it at once
  loop.arm(clock::now() + 10s);
  loop.run_once();
  EXPECT_EQ(woken, 2);
}

}  // namespace
}  // namespace ufork
