// A client of the control socket: one request line, one answer line.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace ufork::cli {

class control_client {
 public:
  // Connects; empty with errno's text in `error` when nothing answers.
  static std::optional<control_client> connect(const std::string& path, std::string& error);
  control_client(control_client&& other) noexcept;
  control_client& operator=(control_client&& other) noexcept;
  ~control_client();

  // Sends line and waits for one answer line; empty on EOF or timeout.
  std::optional<std::string> request(const std::string& line, std::chrono::milliseconds timeout);

 private:
  explicit control_client(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string buffered_;
};

}  // namespace ufork::cli
