// Calls into the pool's loop from other threads (arbiter::status(),
// resize(), execute(), stop() from a host's thread): a function posted here
// runs on the loop's thread at the loop's next turn, which an eventfd
// wakes; call() waits for its result. While no loop runs, and on the
// loop's own thread, call() runs the function at once on the caller's
// thread. Internal.
#pragma once

#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "core/reactor.hpp"
#include "sys/unique_fd.hpp"

namespace ufork {

class loop_calls {
 public:
  // on_stop: runs on the loop's thread once request_stop() has been called.
  // Throws ufork::error if the eventfd cannot be made.
  loop_calls(reactor& loop, std::function<void()> on_stop);

  // The loop starts on this thread; std::logic_error if it has run before.
  void begin();
  // The loop has ended: what raced with the end runs now, and later calls
  // run on their callers' threads.
  void end() noexcept;
  // What was posted, and the stop if requested (the loop's thread).
  void run_posted();

  template <class F>
  auto call(F f) -> decltype(f());
  // From any thread, a signal handler excepted: the loop stops gracefully.
  void request_stop() noexcept;

 private:
  void wake() noexcept;

  std::function<void()> on_stop_;
  sys::unique_fd wake_;
  std::mutex mu_;
  bool running_ = false;
  bool stop_requested_ = false;
  std::thread::id loop_thread_;
  std::vector<std::function<void()>> posted_;
};

template <class F>
auto loop_calls::call(F f) -> decltype(f()) {
  std::unique_lock lock(mu_);
  if (!running_ || std::this_thread::get_id() == loop_thread_) {
    lock.unlock();
    return f();
  }
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  posted_.push_back([&task] { task(); });
  lock.unlock();
  wake();
  return result.get();
}

}  // namespace ufork
