// The HTTP helper, over real TCP on 127.0.0.1, with a client written here.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "net/listener.hpp"
#include "ufork/http/server.hpp"

namespace ufork::test {
namespace {

namespace bhttp = boost::beast::http;

// Routes: / says hello with the worker's pid; /slow takes a second; /block
// never returns (a handler that blocks its loop); /bye closes the connection;
// /echo answers with the request's body; /stream streams streamed_body().
std::string streamed_body() {
  std::string body;
  for (int i = 0; i < 1000; ++i) body.append(1000, static_cast<char>('a' + i % 26));
  return body;
}

std::vector<int> fillers;  // a worker's, for /fill and /free

http::answer route(const http::request& req) {
  http::response res{bhttp::status::ok, req.version()};
  if (req.target() == "/stream") {
    auto made = std::make_shared<int>(0);
    return {res, [made](std::string& out) {
              out.append(1000, static_cast<char>('a' + *made % 26));
              return ++*made < 1000;
            }};
  }
  if (req.target() == "/echo") {
    res.body() = req.body();
  } else if (req.target() == "/streamed") {  // answered at once, whether its body came or follows
    res.body() = http::current_body_streamed() ? "follows" : "came: " + std::to_string(req.body().size());
  } else if (req.target() == "/peer") {
    auto peer = http::current_peer();
    res.body() = peer ? peer->host + " " + std::to_string(peer->port) : "none";
  } else if (req.target() == "/bye") {
    res.set(bhttp::field::connection, "close");
    res.set(bhttp::field::date, "Tue, 01 Jan 2030 00:00:00 GMT");
    res.body() = "bye";
  } else if (req.target() == "/slow") {
    say("slow start");
    ::usleep(1'000'000);
    res.body() = "slow done";
  } else if (req.target() == "/fill") {  // the worker's fd table filled to its limit
    int fd;
    while ((fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) fillers.push_back(fd);
    res.body() = std::to_string(fillers.size());
  } else if (req.target() == "/free") {
    for (int fd : fillers) ::close(fd);
    fillers.clear();
  } else if (req.target() == "/grow") {  // 64 MiB resident in this worker, for max_rss
    static std::vector<char> ballast(64u << 20);
    std::memset(ballast.data(), 1, ballast.size());
    res.body() = "grown";
  } else if (req.target() == "/split-value") {  // as an open redirect would, from the query
    res.set(bhttp::field::location, "/home\r\nSet-Cookie: session=attacker");
  } else if (req.target() == "/split-name") {
    res.insert("Set-Cookie: session=attacker\r\nX", "1");
  } else if (req.target() == "/split-nul") {
    res.insert("X-Next", std::string("/home\0attacker", 13));
  } else if (req.target() == "/split-reason") {
    res.reason("OK\r\nSet-Cookie: session=attacker");
  } else if (req.target() == "/sized") {  // 1,234 bytes; to HEAD, only their length, as a handler may
    if (req.method() == bhttp::verb::head)
      res.set(bhttp::field::content_length, "1234");
    else
      res.body().assign(1234, 's');
  } else if (req.target().starts_with("/status/")) {  // a bare status code, no reason given
    res.result(std::stoi(std::string(req.target().substr(8))));
  } else if (req.target() == "/block") {
    say("blocked " + std::to_string(::getpid()));
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
    pool.recycle = o.pool.recycle;
    pool.refork_after = o.pool.refork_after;
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
  explicit client(int port, bool may_fail = false) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (!connected_ && !may_fail) ADD_FAILURE() << "connect: " << std::strerror(errno);
  }
  bool connected() const { return connected_; }
  int local_port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    return ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0 ? ntohs(addr.sin_port) : -1;
  }
  ~client() { ::close(fd_); }
  bool try_send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  void send(const std::string& data) { ASSERT_TRUE(try_send(data)) << std::strerror(errno); }

  struct response {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::string head;  // the status line and the headers as sent
    std::string body;
  };
  // One whole response, or status 0 when the server closed first. `head_only`:
  // the answer to a HEAD request: no body, whatever its Content-Length.
  response read(std::chrono::milliseconds timeout = 20s, bool head_only = false) {
    response r;
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(timeout)) return r;
    std::string head = buf_.substr(0, end);
    r.head = head;
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
    if (head_only || r.status < 200 || r.status == 204 || r.status == 304) return r;
    if (r.headers["transfer-encoding"] == "chunked") {
      for (;;) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos)
          if (!fill(timeout)) return {};
        std::size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        while (buf_.size() < eol + 2 + size + 2)
          if (!fill(timeout)) return {};
        r.body += buf_.substr(eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        if (size == 0) return r;
      }
    }
    if (!r.headers.count("content-length")) {  // the body ends with the connection
      while (fill(timeout)) {
      }
      if (!eof_) return {};
      r.body = std::move(buf_);
      buf_.clear();
      return r;
    }
    std::size_t length = std::stoul(r.headers["content-length"]);
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
  bool connected_ = false;
  std::string buf_;
  bool eof_ = false;
};

const std::string get = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";


// A worker out of fds: its accept fails and is retried (said once, not in a
// loop), and once fds are free the queued client is served.
TEST(http, a_worker_out_of_fds_pauses_accepting_and_serves_again) {
  auto pool = http_pool({}, 1);
  int port = port_of(pool);
  pool.wait_for("event ready");
  client keep(port);
  keep.send("GET /fill HTTP/1.1\r\nHost: x\r\n\r\n");
  auto filled = keep.read();
  ASSERT_EQ(filled.status, 200);
  client queued(port);  // in the listen queue: the worker cannot take it
  queued.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  pool.wait_for("ufork http: accept: Too many open files; retrying every 100 ms");
  keep.send("GET /free HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(keep.read().status, 200);
  auto served = queued.read();
  EXPECT_EQ(served.status, 200);
  EXPECT_EQ(served.body.rfind("hello from ", 0), 0u) << served.body;
  pool.wait_for("ufork http: accepting again");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("ufork http: accept: Too many open files"), 1u);
}

TEST(http, a_handler_knows_its_peer_and_nothing_outside_one_does) {
  EXPECT_FALSE(http::current_peer());
  auto pool = http_pool({}, 1);
  client c(port_of(pool));
  c.send("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read().body, "127.0.0.1 " + std::to_string(c.local_port()));
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

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
  // More at once than one read takes (16 KiB), sent before any answer is
  // read: the worker reads the rest after its turn, and its answers wait
  // for room in the socket.
  std::string burst;
  for (int i = 0; i < 1000; ++i) burst += get;
  ASSERT_GT(burst.size(), 16u * 1024);
  c.send(burst);
  for (int i = 0; i < 1000; ++i) {
    auto r = c.read();
    ASSERT_EQ(r.status, 200) << "burst response " << i;
    EXPECT_EQ(r.body, first.body);
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, head_http10_100_continue_date_and_a_handlers_own_headers) {
  auto pool = http_pool({}, 1);
  int port = port_of(pool);
  {
    client c(port);
    c.send("HEAD / HTTP/1.1\r\nHost: test\r\n\r\n" + get);
    auto head = c.read(20s, true);
    EXPECT_EQ(head.status, 200);
    auto next = c.read();  // would read the HEAD answer's body if it had one
    EXPECT_EQ(next.status, 200);
    EXPECT_EQ(head.headers["content-length"], std::to_string(next.body.size()));
    EXPECT_TRUE(std::regex_match(next.headers["date"],
                                 std::regex(R"([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT)")))
        << next.headers["date"];
  }
  {  // a HEAD answer's Content-Length is the GET one's, whether the handler gave the body or its length
    client c(port);
    c.send("HEAD /sized HTTP/1.1\r\nHost: test\r\n\r\nGET /sized HTTP/1.1\r\nHost: test\r\n\r\n");
    auto head = c.read(20s, true);
    auto next = c.read();
    EXPECT_EQ(head.headers["content-length"], "1234");
    EXPECT_EQ(next.body, std::string(1234, 's'));
  }
  {
    client c(port);
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto r = c.read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["connection"], "keep-alive");
    c.send("GET / HTTP/1.0\r\n\r\n");  // HTTP/1.0 without keep-alive: the last
    EXPECT_EQ(c.read().status, 200);
    EXPECT_TRUE(c.closed());
  }
  {
    client c(port);
    c.send("POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    EXPECT_EQ(c.read().status, 100);  // before any of the body is sent
    c.send("hello");
    EXPECT_EQ(c.read().body, "hello");
  }
  {
    client c(port);
    c.send("GET /bye HTTP/1.1\r\nHost: test\r\n\r\n");
    auto r = c.read();
    EXPECT_EQ(r.body, "bye");
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_EQ(r.headers["date"], "Tue, 01 Jan 2030 00:00:00 GMT") << "the handler's own Date";
    EXPECT_EQ(r.head.find("Date:"), r.head.rfind("Date:")) << "one Date only";
    EXPECT_TRUE(c.closed());
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A status code Beast has no name for goes out with a registered phrase or
// none, never Beast's placeholder "<unknown-status>"; a given reason is kept.
TEST(http, a_status_code_without_a_known_reason_gets_its_registered_phrase_or_none) {
  auto pool = http_pool({}, 1);
  client c(port_of(pool));
  const std::map<std::string, std::string> lines = {
      {"/status/418", "HTTP/1.1 418 I'm a Teapot\r\n"},
      {"/status/420", "HTTP/1.1 420 \r\n"},
      {"/status/299", "HTTP/1.1 299 \r\n"},
      {"/status/404", "HTTP/1.1 404 Not Found\r\n"},
      {"/split-reason", "HTTP/1.1 500 Internal Server Error\r\n"},
  };
  for (const auto& [target, line] : lines) {
    c.send("GET " + target + " HTTP/1.1\r\nHost: test\r\n\r\n");
    auto r = c.read();
    EXPECT_EQ(r.head.substr(0, r.head.find("\r\n") + 2), line) << target;
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// Response splitting: a header or reason phrase a handler took from the
// request cannot add lines of its own. The answer is a 500, logged.
TEST(http, refuses_a_handlers_header_that_would_split_the_response) {
  auto pool = http_pool({}, 1);
  int port = port_of(pool);
  client c(port);
  for (std::string target : {"/split-value", "/split-name", "/split-nul", "/split-reason"}) {
    c.send("GET " + target + " HTTP/1.1\r\nHost: test\r\n\r\n");
    auto r = c.read();
    EXPECT_EQ(r.status, 500) << target;
    EXPECT_EQ(r.head.find("attacker"), std::string::npos) << r.head;
    EXPECT_EQ(r.head.find("Set-Cookie"), std::string::npos) << r.head;
  }
  pool.wait_for(R"(answer to GET "/split-value" is refused \(500 instead\): header "Location": its value holds CR, LF or NUL)");
  pool.wait_for(R"(answer to GET "/split-name" is refused .*: header "Set-Cookie: session=attacker\\x0d\\x0aX": its name holds)");
  pool.wait_for(R"(answer to GET "/split-nul" is refused .*: header "X-Next": its value holds CR, LF or NUL)");
  pool.wait_for(R"(answer to GET "/split-reason" is refused .*: its reason phrase holds CR, LF or NUL)");
  c.send(get);  // the connection serves on
  EXPECT_EQ(c.read().status, 200);
  EXPECT_EQ(http::header_problem("X-Ok", "a value: with\ttabs"), "");
  EXPECT_NE(http::header_problem("", "x"), "");
  EXPECT_NE(http::header_problem("X Space", "x"), "");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, streams_a_body_piece_by_piece) {
  auto pool = http_pool({}, 1);
  int port = port_of(pool);
  {
    client c(port);
    c.send("GET /stream HTTP/1.1\r\nHost: test\r\n\r\n" + get);
    auto r = c.read();
    EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
    EXPECT_EQ(r.body.size(), streamed_body().size());
    EXPECT_TRUE(r.body == streamed_body());
    EXPECT_EQ(c.read().status, 200) << "the request pipelined behind the stream";
  }
  {
    client c(port);
    c.send("GET /stream HTTP/1.0\r\n\r\n");  // no chunked encoding: the body ends with the connection
    auto r = c.read();
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_TRUE(r.body == streamed_body());
  }
  {
    client c(port);
    c.send("HEAD /stream HTTP/1.1\r\nHost: test\r\n\r\n" + get);
    EXPECT_EQ(c.read(20s, true).headers["transfer-encoding"], "chunked");
    EXPECT_EQ(c.read().status, 200);
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// After bad input: the pool still answers, no worker died; then it stops.
void expect_unharmed_then_stop(pool_process& pool, int port) {
  client after(port);
  after.send(get);
  EXPECT_EQ(after.read().status, 200);
  EXPECT_EQ(pool.count("event exit"), 0u) << "bad input crashed a worker";
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// With stream_bodies_above, a longer body (or a chunked one) is not read
// before the handler runs: one that answers at once has its answer sent,
// and the connection ends (the body unread); a shorter body comes whole.
TEST(http, a_handler_that_answers_a_streamed_request_at_once_ends_its_connection) {
  http::server_options o;
  o.stream_bodies_above = 1000;
  auto pool = http_pool(o, 1);
  int port = port_of(pool);
  {
    client c(port);
    c.send("POST /streamed HTTP/1.1\r\nHost: test\r\nContent-Length: 500\r\n\r\n" + std::string(500, 'x') + get);
    EXPECT_EQ(c.read().body, "came: 500");
    EXPECT_EQ(c.read().status, 200) << "kept alive";
  }
  for (std::string framing : {"Content-Length: 5000", "Transfer-Encoding: chunked"}) {
    client c(port);
    c.send("POST /streamed HTTP/1.1\r\nHost: test\r\n" + framing + "\r\n\r\n" + std::string(100, 'x'));
    auto r = c.read();
    EXPECT_EQ(r.body, "follows") << framing;
    EXPECT_EQ(r.headers["connection"], "close") << framing;
  }
  expect_unharmed_then_stop(pool, port);
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
  expect_unharmed_then_stop(pool, port);
}

// Seeded mutations of valid requests (bytes flipped, cut, repeated, CRLF
// and NUL thrown in), each on its own connection: every one gets a 4xx or
// an answer, or is closed; no worker dies.
TEST(http, no_mangled_request_crashes_a_worker) {
  http::server_options o;
  o.request_timeout = 2s;  // a mangled request may wait for bytes that never come
  auto pool = http_pool(o, 1);
  int port = port_of(pool);
  const std::vector<std::string> seeds = {
      get, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"};
  std::mt19937 random(20261126);
  auto pick = [&random](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(random); };
  const std::string specials[] = {"\r\n", "\r",       "\n", std::string(1, '\0'), ":",
                                  " ",    "\r\n\r\n", "9999999999999999999"};
  for (int i = 0; i < 300; ++i) {
    std::string m = seeds[pick(seeds.size())];
    for (std::size_t edits = 1 + pick(4); edits > 0; --edits) {
      std::size_t at = pick(m.size());
      switch (pick(4)) {
        case 0: m[at] = static_cast<char>(pick(256)); break;
        case 1: m.erase(at, 1 + pick(8)); break;
        case 2: m.insert(at, specials[pick(std::size(specials))]); break;
        default: m.insert(at, m.substr(at, 1 + pick(16))); break;
      }
      if (m.empty()) m = "\r\n";
    }
    client c(port);
    if (!c.try_send(m + "\r\n\r\n")) continue;  // closed on the first bad byte: fine
    c.read(5s);  // an answer, a 4xx, or a close: any of them
  }
  expect_unharmed_then_stop(pool, port);
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

// A non-blocking connect to a listening socket's own address.
int connect_to(int listening) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  EXPECT_EQ(::getsockname(listening, reinterpret_cast<sockaddr*>(&ss), &len), 0);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  EXPECT_NE(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
  EXPECT_EQ(errno, EINPROGRESS);
  return fd;
}

bool connected_within(int fd, int ms) {
  pollfd pfd{fd, POLLOUT, 0};
  int err = -1;
  socklen_t len = sizeof err;
  return ::poll(&pfd, 1, ms) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

void filter_drops_new_syns_and_keeps_the_queue(const std::string& endpoint) {
  auto listening = net::bind_endpoint(endpoint, false, true, 16);
  int fd = listening.fd.get();
  int queued = connect_to(fd);
  ASSERT_TRUE(connected_within(queued, 20'000));
  ASSERT_TRUE(net::drop_new_connections(fd)) << std::strerror(errno);

  int late = connect_to(fd);
  // Unfiltered, loopback connects in microseconds; a dropped SYN is only
  // retried after a second.
  EXPECT_FALSE(connected_within(late, 300)) << "a new connection got through";
  ::close(late);

  ASSERT_EQ(::fcntl(fd, F_SETFL, O_NONBLOCK), 0);
  int taken = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(taken, 0) << "the connection queued before the filter was lost";
  EXPECT_LT(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC), 0) << "the filtered one was queued";
  EXPECT_EQ(::send(queued, "x", 1, MSG_NOSIGNAL), 1);
  char byte = 0;
  pollfd readable{taken, POLLIN, 0};
  EXPECT_EQ(::poll(&readable, 1, 20'000), 1);
  EXPECT_EQ(::recv(taken, &byte, 1, 0), 1);
  ::close(taken);
  ::close(queued);
}

TEST(http, a_stopping_socket_drops_new_syns_and_keeps_its_queue) {
  filter_drops_new_syns_and_keeps_the_queue("127.0.0.1:0");
}

TEST(http, a_stopping_socket_drops_new_syns_and_keeps_its_queue_ipv6) {
  try {
    net::bind_endpoint("[::1]:0", false, true, 16);
  } catch (const ufork::error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  filter_drops_new_syns_and_keeps_the_queue("[::1]:0");
}

// Clients on four threads that connect, ask and read in a loop until told
// to stop or refused; a connection made and not answered is a drop.
class client_stream {
 public:
  explicit client_stream(int port) {
    for (int i = 0; i < 4; ++i)
      threads_.emplace_back([this, port] {
        while (!done_) {
          client c(port, true);
          if (!c.connected()) return;  // refused: the pool has stopped
          bool ok = c.try_send(get) && c.read().status == 200;
          {
            std::lock_guard lock(mu_);
            ++(ok ? answered : dropped);
          }
          counted_.notify_all();
        }
      });
  }
  ~client_stream() { join(); }
  // Until `n` more requests are answered (20 s at most).
  void wait_answers(int n) {
    std::unique_lock lock(mu_);
    int goal = answered + n;
    EXPECT_TRUE(counted_.wait_for(lock, 20s, [&] { return answered >= goal; })) << answered << " of " << goal;
  }
  void join() {
    done_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::atomic<int> answered{0}, dropped{0};

 private:
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::condition_variable counted_;
  std::vector<std::thread> threads_;
};

// Every connection made while the pool stops gets its answer; the ones
// after are refused.
void stop_under_a_stream_of_new_connections(bool reuseport) {
  http::server_options o;
  o.reuseport = reuseport;
  auto pool = http_pool(o, 2);
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  client_stream clients(port);
  clients.wait_answers(500);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  clients.join();
  EXPECT_EQ(clients.dropped, 0);
}

TEST(http, a_stop_under_a_stream_of_new_connections_drops_no_request) {
  stop_under_a_stream_of_new_connections(false);
}

TEST(http, a_stop_under_a_stream_of_new_connections_drops_no_request_with_reuseport) {
  stop_under_a_stream_of_new_connections(true);
}

// A reload replaces the workers one by one; every connection is answered.
void reload_under_a_stream_of_new_connections(bool reuseport) {
  http::server_options o;
  o.reuseport = reuseport;
  auto pool = http_pool(o, 2);
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  client_stream clients(port);
  clients.wait_answers(500);
  pool.signal(SIGHUP);
  pool.wait_count("event exit worker \\d .* replaced", 2);
  clients.wait_answers(500);  // served by the new workers
  clients.join();
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(clients.dropped, 0);
}

TEST(http, a_rolling_reload_under_a_stream_of_new_connections_drops_no_request) {
  reload_under_a_stream_of_new_connections(false);
}

TEST(http, a_rolling_reload_under_a_stream_of_new_connections_drops_no_request_with_reuseport) {
  reload_under_a_stream_of_new_connections(true);
}

// Reforking under a stream of new connections and one keep-alive client:
// the mold stops serving as a stop does, the others are replaced by its
// children one at a time, and every request is answered.
TEST(http, reforking_under_a_stream_of_connections_drops_no_request) {
  http::server_options o;
  o.pool.refork_after = {300};
  auto pool = http_pool(o, 2);
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  client_stream clients(port);
  std::atomic<bool> done{false};
  std::atomic<int> kept_alive_failures{0};
  std::thread keep_alive([&] {  // one connection for as long as the server keeps it, then the next
    while (!done) {
      client c(port);
      for (int i = 0; !done && i < 1000; ++i) {
        if (!c.try_send(get)) break;
        auto r = c.read();
        if (r.status != 200) {
          kept_alive_failures += r.status != 0 || i == 0;  // closed after an answer: reconnect
          break;
        }
        if (r.headers["connection"] == "close") break;
      }
    }
  });
  pool.wait_for("refork: pid \\d+ is the mold of generation 1");
  pool.wait_for("refork: done");
  pool.wait_for("refork: (generation 1 done|the mold of generation 1 .* is let go)");  // judged by the PSS
  clients.wait_answers(500);  // served by the mold's children
  done = true;
  keep_alive.join();
  clients.join();
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(clients.dropped, 0);
  EXPECT_EQ(kept_alive_failures, 0);
}

// The heartbeat is a timer in the worker's own loop: a worker busy with one
// request after another still sends it, and is not taken for hung.
// http::server attached to an arbiter the program built: its own hooks run
// first in each worker, its own command answers beside the server.
TEST(http, a_program_attaches_the_server_to_its_own_arbiter) {
  pool_process pool([] {
    http::server web(route, "127.0.0.1:0");
    say("listening " + web.address());
    options o = test_options(2);
    o.strict_fds = true;  // the server keeps its socket in the workers
    hooks h = with_events({});
    h.post_fork = [](worker& w) { say("program's post_fork in worker " + std::to_string(w.id())); };
    web.attach(o, h);
    arbiter a(o, h);
    web.log_to(a);
    a.add_command("hello", "the program's own", [](const std::vector<std::string>&) { return ok("the program's command answers"); });
    say(a.execute("hello").text);
    return a.run();
  });
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  pool.wait_for("program's post_fork in worker 1");
  EXPECT_EQ(pool.count("the program.s command answers"), 1u);
  client c(port);
  c.send(get);
  auto r = c.read();
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("hello from"), std::string::npos);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// Answers given later (http::deferred), by whoever the path names: /thread
// by a thread of the worker's own (through the mailbox and its eventfd),
// /later by the program's loop that turns the server's (http_options::drive),
// outside step(). / says whether the handler ran on the driving thread.
std::thread::id driver;
std::vector<std::shared_ptr<http::deferred>> given_later;  // the program loop's to answer
std::vector<std::shared_ptr<http::deferred>> paired;       // ... two at a time (/pair)
int soon_asked = 0;
std::vector<std::thread> answering;                        // joined when the server is done

http::response later_answer(const char* text) {
  http::response res{bhttp::status::ok, 11};
  res.body() = text;
  return res;
}

http::answer route_later(const http::request& req) {
  if (req.target() == "/thread" || req.target() == "/later" || req.target() == "/pair") {
    auto d = std::make_shared<http::deferred>([](http::deferred::event) {});
    if (req.target() == "/later")
      given_later.push_back(d);
    else if (req.target() == "/pair")
      paired.push_back(d);
    else
      answering.emplace_back([d] { d->start(later_answer("from a thread"), true); });
    return http::answer::later(d);
  }
  return later_answer(std::this_thread::get_id() == driver ? "on the driving thread" : "not on the driving thread");
}

pool_process later_pool(bool driven) {
  return pool_process([driven] {
    http::server_options o;
    o.pool = test_options(1);
    o.on_listening = [](const std::string& address) { say("listening " + address); };
    o.hooks = with_events({});
    o.hooks.child_pre_exit = [](worker&) {
      for (auto& t : answering) t.join();
    };
    static bool soon = false;  // the server asked for a step() once the answers of this turn are given
    if (driven) {
      o.drive = [](http::driven_loop& loop) {  // a loop of the program's own, on the worker's main thread
        driver = std::this_thread::get_id();
        while (loop.step()) {
          if (paired.size() == 2) {
            given_later.insert(given_later.end(), paired.begin(), paired.end());
            paired.clear();
          }
          for (auto& d : std::exchange(given_later, {})) d->start(later_answer("from the program's loop"), true);
          pollfd p{loop.fd(), POLLIN, 0};
          if (!std::exchange(soon, false) && ::poll(&p, 1, -1) < 0 && errno != EINTR)
            return say(std::string("poll: ") + std::strerror(errno));
        }
        say("drive returns; soon asked " + std::to_string(soon_asked) + " times");
      };
      o.soon = [] {
        soon = true;
        ++soon_asked;
      };
    }
    return http::serve(route_later, "127.0.0.1:0", o);
  });
}

// A worker's loop turned from the program's own loop on the same thread (as
// serve_asgi's asyncio loop turns it): handlers run on that thread; answers
// given later from that loop or from another thread are written; keep-alive
// and pipelining hold; the worker's stop ends step() and drive returns.
TEST(http, a_loop_turned_from_the_programs_own_loop_serves_answers_given_later_and_stops) {
  auto pool = later_pool(true);
  int port = port_of(pool);
  client c(port);
  c.send(get);
  EXPECT_EQ(c.read().body, "on the driving thread");
  c.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /thread HTTP/1.1\r\nHost: x\r\n\r\n" + get);
  EXPECT_EQ(c.read().body, "from the program's loop");
  EXPECT_EQ(c.read().body, "from a thread");
  EXPECT_EQ(c.read().body, "on the driving thread");
  // Answers given by the program's loop while another is under way: written
  // at the step() the server asks for (soon), not at once.
  client other(port);
  for (int i = 0; i < 3; ++i) {
    other.send("GET /pair HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send("GET /pair HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read().body, "from the program's loop");
    EXPECT_EQ(other.read().body, "from the program's loop");
  }
  pool.signal(SIGTERM);
  pool.wait_for("drive returns; soon asked 3 times");
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, an_answer_given_later_from_another_thread_is_written) {
  auto pool = later_pool(false);
  client c(port_of(pool));
  c.send("GET /thread HTTP/1.1\r\nHost: x\r\n\r\n" + get);
  EXPECT_EQ(c.read().body, "from a thread");
  EXPECT_EQ(c.read().body, "not on the driving thread");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// max_requests under a client loop: the workers are recycled one at a time,
// each successor ready first, and no client sees anything but a 200.
TEST(http, workers_recycled_by_max_requests_answer_every_request) {
  http::server_options o;
  o.pool.recycle.max_requests = 20;
  o.pool.recycle.max_requests_jitter = 5;
  auto pool = http_pool(o, 2);
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  // Until a successor has answered too (a recycled HTTP worker lingers,
  // serving, for a moment after its successor is ready): at least 200.
  std::set<std::string> pids;
  for (int i = 0; i < 200 || (pids.size() < 3 && i < 5000); ++i) {
    client c(port);
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto r = c.read();
    ASSERT_EQ(r.status, 200) << "request " << i;
    pids.insert(r.body);
  }
  EXPECT_GE(pids.size(), 3u) << "no successor answered";
  pool.wait_for("event exit worker \\d+ pid \\d+ gen \\d+ recycled: .*\\(recycled: \\d+ requests\\)");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A worker past max_rss under a client loop: replaced, its successor ready
// first, and no client sees anything but a 200.
// A worker past max_requests takes no new connection and closes its
// kept-alive ones after their answer, while its successor starts: one
// keep-alive client (reconnecting when told to close) sees no worker answer
// more than max_requests (one client: nothing else was in flight).
// Connections kept open, opened one after another on an idle pool: each
// wakes the same worker (the kernel wakes the first one waiting), which
// would hold them all (it did, 20 of 20, every time). A worker past its
// share steps aside, and the other takes its part. (How evenly under a
// burst: bench/http-spread.sh.)
TEST(http, connections_kept_open_spread_over_the_workers) {
  auto pool = http_pool();
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  std::vector<std::unique_ptr<client>> open;
  std::map<std::string, int> by_pid;
  for (int i = 0; i < 20; ++i) {
    auto& c = open.emplace_back(std::make_unique<client>(port));
    c->send(get);
    auto r = c->read();
    ASSERT_EQ(r.status, 200);
    ++by_pid[r.body];
  }
  // Idle, 12/8 or 11/9; on a machine busy enough that the other worker
  // is not run within the 1 ms a worker steps aside for, 19/1 was seen.
  EXPECT_EQ(by_pid.size(), 2u) << "all 20 went to " << by_pid.begin()->first;
  open.clear();
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, a_worker_past_max_requests_takes_no_new_connection) {
  http::server_options o;
  o.pool.recycle.max_requests = 200;
  auto pool = http_pool(o, 2);
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  std::map<std::string, int> by_pid;
  auto c = std::make_unique<client>(port);
  for (int answered = 0, tries = 0; answered < 3000 && tries < 4000; ++tries) {
    c->send(get);
    auto r = c->read();
    if (r.status == 0) {  // closed before an answer: not ours to count, ask again
      c = std::make_unique<client>(port);
      continue;
    }
    ASSERT_EQ(r.status, 200);
    ++answered;
    ++by_pid[r.body];
    if (r.headers["connection"] == "close") c = std::make_unique<client>(port);
  }
  int total = 0;
  for (const auto& [pid, n] : by_pid) {
    EXPECT_LE(n, 200) << pid;
    total += n;
  }
  EXPECT_EQ(total, 3000);
  EXPECT_GE(by_pid.size(), 15u);
  c.reset();
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, a_worker_recycled_by_max_rss_drops_no_request) {
  http::server_options o;
  o.pool.recycle.max_rss = 48u << 20;
  o.pool.recycle.check_interval = 100ms;
  auto pool = http_pool(o, 1);
  int port = port_of(pool);
  pool.wait_count("event ready", 1);
  {
    client c(port);
    c.send("GET /grow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_EQ(c.read().status, 200);
  }
  int asked = 0;
  while (pool.count("event exit worker 0 .* recycled: .*\\(recycled: rss") == 0 && asked < 100000) {
    client c(port);
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_EQ(c.read().status, 200) << "request " << asked;
    ++asked;
    pool.drain_for(0ms);
  }
  pool.wait_for("event exit worker 0 .* gen 1 recycled: .*\\(recycled: rss \\d+ MiB > 48 MiB\\)");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(http, a_busy_worker_is_not_taken_for_hung) {
  http::server_options o;
  o.pool.timeout = 500ms;
  auto pool = http_pool(o, 1);
  int port = port_of(pool);
  pool.wait_for("event ready");
  {
    client_stream clients(port);
    clients.wait_answers(20000);  // a second or more: two timeouts at least
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("hung"), 0u);
  EXPECT_EQ(pool.count("event exit"), 1u) << "only the stop";
}

// One worker stuck in a handler, 40 clients connecting and asking, then the
// stuck worker SIGKILLed: how many of the 40 get no answer. On the shared
// socket the other worker takes every queued connection; on a worker's own
// SO_REUSEPORT socket, the connections the kernel hashed to it die with it
// (unless the kernel migrates them: net.ipv4.tcp_migrate_req, off by default).
int lost_when_a_worker_dies(bool reuseport) {
  http::server_options o;
  o.reuseport = reuseport;
  auto pool = http_pool(o, 2);
  int port = port_of(pool);
  pool.wait_count("event ready", 2);
  client blocker(port);
  blocker.send("GET /block HTTP/1.1\r\nHost: test\r\n\r\n");
  pid_t stuck = static_cast<pid_t>(std::stoi(pool.wait_for("blocked (\\d+)")[1]));
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 40; ++i) {
    clients.push_back(std::make_unique<client>(port));
    clients.back()->send(get);
  }
  EXPECT_EQ(::kill(stuck, SIGKILL), 0);
  int lost = 0;
  for (auto& c : clients) lost += c->read().status != 200;
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  return lost;
}

TEST(http, a_dying_worker_loses_no_queued_connection_on_the_shared_socket) {
  EXPECT_EQ(lost_when_a_worker_dies(false), 0);
}

TEST(http, a_dying_worker_loses_its_queued_connections_with_reuseport) {
  std::ifstream migrate("/proc/sys/net/ipv4/tcp_migrate_req");
  int migrated = 0;
  migrate >> migrated;
  int lost = lost_when_a_worker_dies(true);
  RecordProperty("lost_of_40", lost);
  if (migrated)
    EXPECT_EQ(lost, 0);
  else
    EXPECT_GT(lost, 0) << "the kernel kept them: the README's reason for the shared default is gone";
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
