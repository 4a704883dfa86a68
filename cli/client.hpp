// A client of the control socket: one request line, one answer line.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "sys/unique_fd.hpp"

namespace ufork::cli {

class control_client {
 public:
  // Connects; else says why on stderr, as `who` ("ufork ctl"), and sets
  // `code`: 1 when the socket is there but not ours to use (permission
  // denied: another user's arbiter), 3 when nothing answers.
  static std::optional<control_client> connect(const std::string& path, const char* who, int& code);

  // Sends line and waits for one answer line; empty on EOF or timeout.
  std::optional<std::string> request(const std::string& line, std::chrono::milliseconds timeout);
  // The next line (without its newline); empty on EOF or timeout (-1: none).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // The lines already received, all of them: what a fast stream gives at once.
  bool has_line() const { return buffered_.find('\n') != std::string::npos; }
  // The other end has closed (read_line saw the end of the stream).
  bool closed() const { return closed_; }

 private:
  explicit control_client(sys::unique_fd fd) : fd_(std::move(fd)) {}
  sys::unique_fd fd_;
  std::string buffered_;
  bool closed_ = false;
};

}  // namespace ufork::cli
