// ufork::uv_worker: a worker that runs the program's own libuv loop.
// Header-only: only programs that include it need libuv (Debian's
// libuv1-dev). The same contract as ufork/asio.hpp:
//
//   hooks.post_fork = [](ufork::worker& w) {
//     uv_loop_t* loop = uv_default_loop();
//     ufork::uv_worker attached(w, loop, [&] { attached.detach(); /* close handles */ });
//     serve(loop);
//     uv_run(loop, UV_RUN_DEFAULT);
//   };
//
// Heartbeats from a uv_timer_t in the loop (a loop wedged in a callback is
// taken for hung; a busy one that keeps turning is not), SIGTERM as `on_stop`
// run once in the loop (a uv_poll_t on the worker's stop fd), and detach()
// closes both so that uv_run() can return. Keep the object alive until the
// loop has run the close callbacks (uv_run returning is enough).
#pragma once

#include <uv.h>

#include <functional>
#include <utility>

#include "ufork/worker.hpp"

namespace ufork {

class uv_worker {
 public:
  uv_worker(worker& w, uv_loop_t* loop, std::function<void()> on_stop) : w_(w), on_stop_(std::move(on_stop)) {
    timer_.data = poll_.data = this;
    uv_timer_init(loop, &timer_);
    auto every = static_cast<std::uint64_t>(w.heartbeat_interval().count());
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<uv_worker*>(t->data)->w_.heartbeat(); }, 0, every ? every : 1);
    uv_poll_init(loop, &poll_, w.stop_fd());
    uv_poll_start(&poll_, UV_READABLE, [](uv_poll_t* p, int, int) {
      auto* self = static_cast<uv_worker*>(p->data);
      uv_poll_stop(p);
      if (self->on_stop_) self->on_stop_();
    });
    w.ready();
  }
  ~uv_worker() { detach(); }
  uv_worker(const uv_worker&) = delete;
  uv_worker& operator=(const uv_worker&) = delete;

  // Closes the timer and the stop watch: nothing of the attachment keeps
  // uv_run() from returning.
  void detach() {
    if (detached_) return;
    detached_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
  }

 private:
  worker& w_;
  std::function<void()> on_stop_;
  uv_timer_t timer_{};
  uv_poll_t poll_{};
  bool detached_ = false;
};

}  // namespace ufork
