#include "core/refork.hpp"

#include <algorithm>
#include <utility>

#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "sys/socket.hpp"

namespace ufork {

void refork::promoted(pid_t pid, std::uint64_t pss) noexcept {
  candidate_ = pid;
  under_way_ = true;
  pss_before_ = pss;
  ++next_;
  ++generation_;
}

void refork::adopt(std::unique_ptr<process> p, sys::unique_fd channel, std::size_t cell) noexcept {
  candidate_ = 0;
  mold_ = std::move(p);
  sys::own_fd(channel.get());
  channel_ = std::move(channel);
  cell_ = cell;
}

std::unique_ptr<process> refork::release() noexcept {
  channel_.reset();  // the mold's loop ends at its end
  return std::move(mold_);
}

sys::result<detail::spawned> refork::fork(detail::mold_request rq, std::size_t cell, int out, int err,
                                          std::chrono::milliseconds timeout) {
  auto errors = sys::make_pipe(0);
  if (!errors) return errors.error();
  rq.cell = static_cast<std::ptrdiff_t>(cell) - static_cast<std::ptrdiff_t>(cell_);
  const int fds[3] = {out, err, errors->write.get()};
  if (auto ec = sys::send_with_fds(channel_.get(), &rq, sizeof rq, fds, 3)) return ec;
  errors->write.reset();
  if (!sys::child::wait_readable(channel_.get(), static_cast<int>(std::max<long>(timeout.count(), 1))))
    return std::make_error_code(std::errc::timed_out);
  detail::mold_reply reply{};
  sys::unique_fd pidfd;
  std::size_t got = 0;
  auto n = sys::receive_with_fds(channel_.get(), &reply, sizeof reply, &pidfd, 1, &got);
  if (!n) return n.error();
  if (n.value() != sizeof reply) return std::make_error_code(std::errc::broken_pipe);  // it closed: gone
  if (reply.pid <= 0) return std::error_code(reply.err, std::system_category());
  if (!pidfd) return std::make_error_code(std::errc::protocol_error);
  sys::own_fd(pidfd.get());
  return detail::spawned{reply.pid, std::move(pidfd), std::move(errors->read)};
}

}  // namespace ufork
