// ufork::attach_asio: a worker that runs the program's own Boost.Asio
// io_context instead of the library's heartbeat loop (uFork: "gevent
// supported, not required"). Header-only: only programs that include it need
// Boost.
//
//   hooks.post_fork = [](ufork::worker& w) {
//     boost::asio::io_context io;
//     ufork::asio_worker attached(w, io, [&] { attached.detach(); /* close listeners */ });
//     serve(io);
//     io.run();  // returns once the program's own work and the attachment are done
//   };
//
// - Heartbeats come from a timer inside the io_context, every
//   w.heartbeat_interval(): a loop wedged in a handler stops beating and the
//   worker is taken for hung and replaced; a loop that is busy but keeps
//   turning goes on beating.
// - SIGTERM (the arbiter stopping the worker) becomes `on_stop`, run once in
//   the loop: the program closes its listeners and lets io.run() return.
// - worker::count_requests() is there as it is, for max_requests.
#pragma once

#include <utility>  // before any Boost header: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fcntl.h>

#include <functional>
#include <memory>

#include "ufork/worker.hpp"

namespace ufork {

class asio_worker {
 public:
  // alive: if set, asked before each heartbeat; false skips it (a program
  // whose loop turns while another part of it is wedged).
  asio_worker(worker& w, boost::asio::io_context& io, std::function<void()> on_stop,
              std::function<bool()> alive = {})
      : state_(std::make_shared<state>(w, io, std::move(on_stop), std::move(alive))) {
    w.ready();
    beat(state_);
    watch_stop(state_);
  }
  ~asio_worker() {
    try {
      detach();
    } catch (const boost::system::system_error&) {  // a timer's cancel: does not fail on Linux's reactor
    }
  }
  asio_worker(const asio_worker&) = delete;
  asio_worker& operator=(const asio_worker&) = delete;

  // No more heartbeats or stop watch: nothing of the attachment keeps
  // io.run() from returning.
  void detach() {
    if (state_->detached) return;
    state_->detached = true;
    boost::system::error_code ignored;
    state_->timer.cancel();
    state_->stop.cancel(ignored);
  }

 private:
  struct state {
    state(worker& w, boost::asio::io_context& io, std::function<void()> f, std::function<bool()> a)
        : w(w), timer(io), stop(io, ::fcntl(w.stop_fd(), F_DUPFD_CLOEXEC, 0)), on_stop(std::move(f)), alive(std::move(a)) {}
    worker& w;
    boost::asio::steady_timer timer;
    boost::asio::posix::stream_descriptor stop;
    std::function<void()> on_stop;
    std::function<bool()> alive;
    bool detached = false;
  };

  static void beat(const std::shared_ptr<state>& s) {
    if (s->detached) return;
    if (!s->alive || s->alive()) s->w.heartbeat();
    s->timer.expires_after(s->w.heartbeat_interval());
    s->timer.async_wait([s](const boost::system::error_code& ec) {
      if (!ec) beat(s);
    });
  }

  static void watch_stop(const std::shared_ptr<state>& s) {
    s->stop.async_wait(boost::asio::posix::stream_descriptor::wait_read, [s](const boost::system::error_code& ec) {
      if (ec || s->detached) return;
      if (s->on_stop) s->on_stop();
    });
  }

  std::shared_ptr<state> state_;
};

}  // namespace ufork
