// The syscall layer's result type and its errors. src/sys/ is the only code
// in src/ that calls the kernel, a topic per file: fd (ufork's own fds, files,
// pipes), carry (the sockets an upgrade carries), socket, event (epoll,
// timerfd, eventfd, signalfd), process, procfs, terminal. Each wrapper
// retries EINTR (never for close) and reports failure as a std::error_code;
// EAGAIN is an ordinary outcome for the reactor. UFORK_API marks what the
// ufork command and ufork-http call from a shared libufork.
#pragma once

#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace ufork::sys {

// A value or an error, with std::expected's member names so it can become one.
template <class T>
class result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(std::error_code ec) : v_(ec) {}
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  std::error_code error() const { return std::get<1>(v_); }

 private:
  std::variant<T, std::error_code> v_;
};

// errno's text, as strerror's but safe from any thread.
std::string error_text(int err);
// errno as an error_code.
std::error_code last_error() noexcept;
// EAGAIN or EWOULDBLOCK.
bool would_block(std::error_code ec) noexcept;

}  // namespace ufork::sys
