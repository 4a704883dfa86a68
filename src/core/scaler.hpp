// Autoscaling (options::scale): the size a pool wants, and what it looks at
// to know it. Internal.
//
// scaler is pure: it is told, at each look, how many workers are busy in a
// request and how many connections wait in the listening sockets' accept
// queues, and says the size wanted: the most workers needed at once (busy +
// queued) over the last idle_timeout, plus one spare, within [min, max]. So
// a queue grows the pool at once, by as many as it holds, and the pool
// shrinks only once it has not needed a worker for idle_timeout.
//
// listen_watch is the pool's listening sockets (the arbiter's own inherited
// by the workers: `ufork run --bind`, the HTTP helper's, the WSGI server's,
// a program's) and their queues: TCP's from TCP_INFO, a unix socket's from
// unix_diag. While quiet, each is in the loop's epoll set for one event
// (EPOLLONESHOT): the next connection starts the looking.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/reactor.hpp"

namespace ufork {

class scaler {
 public:
  using clock = std::chrono::steady_clock;
  scaler(int min, int max, clock::duration idle);

  // One look at `now`; returns target(now).
  int look(int busy, int queued, clock::time_point now);
  int target(clock::time_point now) const;
  // When target() falls below size, or nullopt if it cannot (size <= min).
  std::optional<clock::time_point> shrink_at(int size) const;
  int min() const noexcept { return min_; }
  int max() const noexcept { return max_; }

 private:
  int min_, max_;
  clock::duration idle_;
  std::vector<clock::time_point> needed_at_;  // [k]: the last look that needed k workers or more
};

class listen_watch {
 public:
  struct socket {
    int fd;
    std::string name;  // "0.0.0.0:8000", "unix:/run/app.sock"
    bool unseen;  // its queue cannot be read (a kernel without unix_diag): only its connections wake
    int queued = 0;  // at the last look
    reactor::token token = 0;
  };

  // The listening stream sockets open in this process that are not ufork's
  // own (sys::owned_fds), each watched for its next connection.
  listen_watch(reactor& loop, const std::function<void()>& on_connection);
  ~listen_watch();
  listen_watch(const listen_watch&) = delete;
  listen_watch& operator=(const listen_watch&) = delete;

  // Reads every queue; returns their sum.
  int look();
  // Watches each socket for one more connection (the next one wakes).
  void arm();
  const std::vector<socket>& sockets() const noexcept { return sockets_; }

 private:
  reactor& loop_;
  std::vector<socket> sockets_;
};

}  // namespace ufork
