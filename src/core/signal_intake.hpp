// The arbiter's signals under run(): those of signal_table (and SIGCHLD for
// a subreaper) blocked and read through a signalfd on the pool's loop, one
// at a time, with their sender; SIGPIPE ignored, so that a log reader gone
// away cannot kill the arbiter. close() puts the mask and SIGPIPE back as
// they were. What each signal does is the pool's (pool::on_signal). Internal.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <functional>

#include "core/reactor.hpp"
#include "sys/unique_fd.hpp"

namespace ufork {

class signal_intake {
 public:
  // sender: the pid that sent it, 0 for the kernel (for INT and QUIT: the terminal's keys).
  using handler = std::function<void(int sig, pid_t sender)>;

  signal_intake() = default;
  signal_intake(const signal_intake&) = delete;
  signal_intake& operator=(const signal_intake&) = delete;
  ~signal_intake() { close(); }

  // Throws ufork::error if the mask or the signalfd cannot be set.
  void open(reactor& loop, bool with_sigchld, handler h);
  void close() noexcept;

 private:
  void on_readable();

  reactor* loop_ = nullptr;  // set while open
  reactor::token token_ = 0;
  sys::unique_fd fd_;
  handler handler_;
  sigset_t old_mask_{};
  struct sigaction old_pipe_ {};
};

}  // namespace ufork
