// status_server: a small read-only HTTP listener in the arbiter's own loop
// (options::metrics_address), so it answers while every worker is hung or
// dead: /metrics (Prometheus text), /status, /workers and /dead (those
// commands' answers, as `ufork ctl --json` prints them) and / (a status page
// that polls them). One request per connection;
// limits like the control socket's: requests of 8 KiB at most, 16
// connections at once, 10 s each; no verb that changes the pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/reactor.hpp"
#include "sys/unique_fd.hpp"

namespace ufork {

// The answer to one request's head (up to its blank line), from the pages
// `answer` gives: what the listener sends. Pure, for the fuzzer too.
std::string answer_status_request(std::string_view request,
                                  const std::function<std::string(const std::string&, bool)>& answer);

class status_server {
 public:
  // A read-only command's answer: its JSON line (json), or its text.
  using json_fn = std::function<std::string(const std::string& command, bool json)>;
  using log_fn = std::function<void(const std::string&)>;
  static constexpr std::size_t max_request = 8UL * 1024;
  static constexpr int max_clients = 16;
  static constexpr std::chrono::seconds max_time{10};

  // Binds HOST:PORT now. Throws ufork::error naming the address.
  status_server(reactor& loop, const std::string& address, json_fn answer, log_fn log);
  ~status_server();
  status_server(const status_server&) = delete;
  status_server& operator=(const status_server&) = delete;

  const std::string& address() const noexcept { return address_; }
  // Out of fds, the listener waits outside epoll; the loop calls this after
  // each turn (cheap unless paused) to take it back once an fd is free.
  void resume_if_fds_free();

 private:
  struct conn {
    sys::unique_fd fd;
    reactor::token token = 0;
    std::string in, out;
    std::chrono::steady_clock::time_point deadline;
    bool answered = false;  // closes once `out` is written
  };
  void on_accept();
  void on_conn(std::uint64_t id, std::uint32_t events);
  bool write_out(conn& c);  // false: done or gone
  void close_conn(std::uint64_t id);
  void on_timer();
  void arm();

  reactor& loop_;
  std::string address_;
  json_fn json_;
  log_fn log_;
  sys::unique_fd listen_, timer_;
  reactor::token listen_token_ = 0, timer_token_ = 0;
  bool paused_ = false;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, conn> conns_;
};

}  // namespace ufork
