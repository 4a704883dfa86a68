#include "client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <utility>

#include "commands.hpp"

namespace ufork::cli {

std::optional<control_client> control_client::connect(const std::string& path, const char* who, int& code) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  code = exit_unreachable;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    std::cerr << who << ": nothing answers at " << path << ": socket path too long\n";
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    if (err == EACCES || err == EPERM) {  // the arbiter may well be there: not gone, not ours
      code = exit_error_answer;
      std::cerr << who << ": permission denied at " << path << " (a control socket is for its arbiter's user and root)\n";
    } else {
      std::cerr << who << ": nothing answers at " << path << ": " << std::generic_category().message(err) << "\n";
    }
    return std::nullopt;
  }
  return control_client(fd);
}

control_client::control_client(control_client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buffered_(std::move(other.buffered_)) {}

control_client& control_client::operator=(control_client&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    buffered_ = std::move(other.buffered_);
  }
  return *this;
}

control_client::~control_client() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::string> control_client::request(const std::string& line, std::chrono::milliseconds timeout) {
  std::string out = line + "\n";
  for (std::size_t off = 0; off < out.size();) {
    ssize_t n = ::send(fd_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // refused and closed: its last words may still be readable
    off += static_cast<std::size_t>(n);
  }
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
    pollfd pfd{fd_, POLLIN, 0};
    int r = ::poll(&pfd, 1, timeout.count() < 0 ? -1 : static_cast<int>(std::max<long>(left.count(), 0)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    char buf[65536];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    closed_ = n == 0;
    if (n <= 0) return std::nullopt;
    buffered_.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace ufork::cli
