#include "client.hpp"

#include <poll.h>

#include <algorithm>
#include <iostream>
#include <utility>

#include "commands.hpp"
#include "sys/event.hpp"
#include "sys/fd.hpp"
#include "sys/socket.hpp"

namespace ufork::cli {

std::optional<control_client> control_client::connect(const std::string& path, const char* who, int& code) {
  code = exit_unreachable;
  auto made = sys::make_unix_socket(false);
  std::error_code ec = made ? sys::connect_unix(made->get(), path) : made.error();
  if (ec == std::errc::filename_too_long) {
    std::cerr << who << ": nothing answers at " << path << ": socket path too long\n";
    return std::nullopt;
  }
  if (ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted) {
    code = exit_error_answer;  // the arbiter may well be there: not gone, not ours
    std::cerr << who << ": permission denied at " << path << " (a control socket is for its arbiter's user and root)\n";
    return std::nullopt;
  }
  if (ec) {
    std::cerr << who << ": nothing answers at " << path << ": " << ec.message() << "\n";
    return std::nullopt;
  }
  return control_client(std::move(made).value());
}

std::optional<std::string> control_client::request(const std::string& line, std::chrono::milliseconds timeout) {
  std::string out = line + "\n";
  // Refused and closed: its last words may still be readable.
  (void)sys::send_waiting(fd_.get(), out.data(), out.size());
  return read_line(timeout);
}

std::optional<std::string> control_client::read_line(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
      std::string answer = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return answer;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd_.get(), POLLIN, 0};
    auto r = sys::poll_once(&pfd, 1, timeout.count() < 0 ? -1 : static_cast<int>(std::max<long>(left.count(), 0)));
    if (!r && r.error() == std::errc::interrupted) continue;
    if (!r || r.value() == 0) return std::nullopt;
    char buf[65536];
    auto n = sys::read(fd_.get(), buf, sizeof buf);
    closed_ = n && n.value() == 0;
    if (!n || n.value() == 0) return std::nullopt;
    buffered_.append(buf, n.value());
  }
}

}  // namespace ufork::cli
