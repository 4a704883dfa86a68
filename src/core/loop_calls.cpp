// Calls into the pool's loop from other threads (loop_calls.hpp).
#include "core/loop_calls.hpp"

#include <sys/epoll.h>

#include <stdexcept>

#include "sys/event.hpp"
#include "ufork/error.hpp"

namespace ufork {

loop_calls::loop_calls(reactor& loop, std::function<void()> on_stop) : on_stop_(std::move(on_stop)) {
  auto fd = sys::make_eventfd(true);
  if (!fd) throw error(fd.error(), "eventfd(wake)");
  wake_ = std::move(fd).value();
  loop.add(wake_.get(), EPOLLIN, [this](std::uint32_t) {
    (void)sys::drain_counter(wake_.get());
    run_posted();
  });
}

void loop_calls::begin() {
  std::lock_guard lock(mu_);
  if (running_ || loop_thread_ != std::thread::id{}) throw std::logic_error("ufork: an arbiter runs once");
  running_ = true;
  loop_thread_ = std::this_thread::get_id();
}

void loop_calls::end() noexcept {
  {
    std::lock_guard lock(mu_);
    running_ = false;
  }
  try {
    run_posted();  // calls that raced with the end run here, on their own
  } catch (...) {
  }
}

void loop_calls::run_posted() {
  std::vector<std::function<void()>> todo;
  {
    std::lock_guard lock(mu_);
    todo.swap(posted_);
    if (stop_requested_) {
      stop_requested_ = false;
      todo.emplace_back(on_stop_);
    }
  }
  for (auto& f : todo) f();
}

void loop_calls::request_stop() noexcept {
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  wake();
}

void loop_calls::wake() noexcept { sys::eventfd_signal(wake_.get()); }

}  // namespace ufork
