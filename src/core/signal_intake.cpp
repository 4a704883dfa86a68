// The arbiter's signals under run() (signal_intake.hpp).
#include "core/signal_intake.hpp"

#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "core/signal_table.hpp"
#include "sys/event.hpp"
#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {

void signal_intake::open(reactor& loop, bool with_sigchld, handler h) {
  sigset_t set;
  sigemptyset(&set);
  for (const auto& e : signal_table) sigaddset(&set, e.signal);
  if (with_sigchld) sigaddset(&set, SIGCHLD);
  if (auto ec = sys::block_signals(set, &old_mask_)) throw error(ec, "pthread_sigmask");
  auto fd = sys::make_signalfd(set);
  if (!fd) {
    sys::set_signal_mask(old_mask_);
    throw error(fd.error(), "signalfd");
  }
  fd_ = std::move(fd).value();
  handler_ = std::move(h);
  loop_ = &loop;
  token_ = loop.add(fd_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(); });
  sys::ignore_signal(SIGPIPE, &old_pipe_);
}

void signal_intake::close() noexcept {
  if (!loop_) return;
  loop_->remove(token_);
  loop_ = nullptr;
  fd_.reset();
  sys::set_action(SIGPIPE, old_pipe_, nullptr);
  sys::set_signal_mask(old_mask_);
}

void signal_intake::on_readable() {
  signalfd_siginfo si;
  for (;;) {
    auto n = sys::read(fd_.get(), &si, sizeof si);
    if (!n || n.value() != sizeof si) return;
    handler_(static_cast<int>(si.ssi_signo), static_cast<pid_t>(si.ssi_pid));
    if (!loop_) return;  // the handler closed it
  }
}

}  // namespace ufork
