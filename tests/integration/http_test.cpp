// The HTTP helper, over real TCP on 127.0.0.1, with a client written here.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>

#include "harness.hpp"
#include "ufork/http/server.hpp"

namespace ufork::test {
namespace {

namespace bhttp = boost::beast::http;

// Routes: / says hello with the worker's pid; /slow takes a second; /block
// never returns (a handler that blocks its loop).
http::response route(const http::request& req) {
  http::response res{bhttp::status::ok, req.version()};
  if (req.target() == "/slow") {
    say("slow start");
    ::usleep(1'000'000);
    res.body() = "slow done";
  } else if (req.target() == "/block") {
    for (;;) ::pause();
  } else {
    res.body() = "hello from " + std::to_string(::getpid());
  }
  return res;
}

pool_process http_pool(http::server_options o = {}, int workers = 2) {
  return pool_process([o, workers]() mutable {
    auto pool = test_options(workers);
    pool.timeout = o.pool.timeout == options{}.timeout ? 2s : o.pool.timeout;
    o.pool = pool;
    o.on_listening = [](const std::string& address) { say("listening " + address); };
    o.hooks = with_events({});
    try {
      return http::serve(route, "127.0.0.1:0", o);
    } catch (const std::exception& e) {
      say(std::string("serve failed: ") + e.what());
      return 1;
    }
  });
}

int port_of(pool_process& pool) { return std::stoi(pool.wait_for("listening 127\\.0\\.0\\.1:(\\d+)")[1]); }

class client {
 public:
  explicit client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ADD_FAILURE() << "connect";
  }
  ~client() { ::close(fd_); }
  void send(const std::string& data) { ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size())); }

  struct response {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
  };
  // One whole response, or status 0 when the server closed first.
  response read(std::chrono::milliseconds timeout = 20s) {
    response r;
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(timeout)) return r;
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    r.status = std::stoi(head.substr(9, 3));
    for (std::size_t pos = head.find("\r\n"); pos != std::string::npos;) {
      auto next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      if (auto colon = line.find(':'); colon != std::string::npos) {
        std::string key = line.substr(0, colon);
        for (auto& c : key) c = static_cast<char>(std::tolower(c));
        r.headers[key] = line.substr(colon + 2);
      }
      pos = next;
    }
    std::size_t length = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < length)
      if (!fill(timeout)) return {};
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }
  // True when the server closes the connection (EOF or reset) in time.
  bool closed(std::chrono::milliseconds timeout = 20s) {
    while (fill(timeout)) {
    }
    return eof_;
  }

 private:
  bool fill(std::chrono::milliseconds timeout) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

const std::string get = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

TEST(http, keeps_connections_alive_and_answers_pipelined_requests_in_order) {
  auto pool = http_pool();
  client c(port_of(pool));
  c.send(get);
  auto first = c.read();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body.rfind("hello from ", 0), 0u);
  c.send(get);
  EXPECT_EQ(c.read().body, first.body) << "a keep-alive connection stays with its worker";
  c.send(get + "GET /other HTTP/1.1\r\nHost: test\r\n\r\n" + get);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.read().status, 200) << "pipelined response " << i;
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, answers_bad_requests_with_4xx_and_closes) {
  http::server_options o;
  o.header_limit = 4096;
  o.body_limit = 1024;
  auto pool = http_pool(o);
  int port = port_of(pool);
  {
    client c(port);
    c.send("this is not http\r\n\r\n");
    EXPECT_EQ(c.read().status, 400);
    EXPECT_TRUE(c.closed());
  }
  {
    client c(port);
    c.send("GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n");
    EXPECT_EQ(c.read().status, 431);
    EXPECT_TRUE(c.closed());
  }
  {
    client c(port);
    c.send("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n");
    EXPECT_EQ(c.read().status, 413);
    EXPECT_TRUE(c.closed());
  }
  {
    client c(port);
    std::string binary(512, '\0');
    for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7);
    c.send(binary + "\r\n\r\n");
    EXPECT_EQ(c.read().status, 400);
  }
  client after(port);  // the workers are fine
  after.send(get);
  EXPECT_EQ(after.read().status, 200);
  EXPECT_EQ(pool.count("event exit"), 0u) << "a bad request crashed a worker";
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, cuts_off_a_slow_client) {
  http::server_options o;
  o.request_timeout = 300ms;
  auto pool = http_pool(o);
  client c(port_of(pool));
  c.send("GET / HTTP/1.1\r\nHost: te");  // and never the rest
  EXPECT_TRUE(c.closed(20s));
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, a_request_in_flight_during_sigterm_gets_its_whole_response) {
  auto pool = http_pool({}, 1);
  client c(port_of(pool));
  c.send("GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
  pool.wait_for("slow start");
  pool.signal(SIGTERM);
  auto r = c.read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "slow done");
  EXPECT_EQ(r.headers["connection"], "close");
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("event exit .* stopped: exit 0"), 1u);
}

TEST(http, a_handler_that_blocks_its_loop_gets_the_worker_replaced) {
  http::server_options o;
  o.pool.timeout = 300ms;
  auto pool = http_pool(o, 1);
  int port = port_of(pool);
  pool.wait_for("event ready slot=0 gen=1");
  client blocked(port);
  blocked.send("GET /block HTTP/1.1\r\nHost: test\r\n\r\n");
  pool.wait_for("hung: no heartbeat for .* \\(timeout\\)");
  pool.wait_for("event ready slot=0 gen=2");
  client c(port);
  c.send(get);
  EXPECT_EQ(c.read().status, 200);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, keeps_serving_while_workers_are_killed_one_by_one) {
  auto pool = http_pool({}, 2);
  int port = port_of(pool);
  auto pids = pool.wait_count("event ready slot=\\d gen=1 pid=(\\d+)", 2);
  int failures = 0;
  for (int round = 0; round < 4; ++round) {
    // The workers' pids, from the responses themselves.
    client probe(port);
    probe.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    auto body = probe.read().body;
    pid_t victim = static_cast<pid_t>(std::stoi(body.substr(body.rfind(' ') + 1)));
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    for (int i = 0; i < 10; ++i) {
      client c(port);
      c.send(get);
      failures += c.read().status != 200;
    }
    pool.wait_count("event exit .* killed by SIGKILL", static_cast<std::size_t>(round + 1));
  }
  EXPECT_EQ(failures, 0);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, reports_an_address_it_cannot_bind_once_to_the_caller) {
  auto first = http_pool({}, 1);
  int port = port_of(first);
  first.wait_for("event ready");  // its signals are handled from here on
  for (const std::string& endpoint : {"127.0.0.1:" + std::to_string(port), std::string("nonsense"),
                                      std::string("127.0.0.1:99999"), std::string("256.1.1.1:80")}) {
    try {
      http::serve(route, endpoint, {});
      ADD_FAILURE() << endpoint << " was accepted";
    } catch (const ufork::error& e) {
      EXPECT_NE(std::string(e.what()).find(endpoint), std::string::npos) << e.what();
    }
  }
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait_exit(), 0);
}

}  // namespace
}  // namespace ufork::test
