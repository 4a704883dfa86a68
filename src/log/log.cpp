// The built-in sinks. A sink never decides anything about workers.
#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "sys/fd.hpp"
#include "ufork/log.hpp"

namespace ufork {

std::string format_prefix(const log_line& line) {
  switch (line.stream) {
    case stream_kind::out: return fmt::format("[worker {} pid {}] ", line.id, line.pid);
    case stream_kind::err: return fmt::format("[worker {} pid {} err] ", line.id, line.pid);
    case stream_kind::arbiter: return "[ufork] ";
  }
  return {};
}

namespace {

class fd_sink final : public log_sink {
 public:
  explicit fd_sink(int fd) : fd_(fd) {}
  ~fd_sink() override { flush(); }

  void write(const log_line& line) override {
    buf_ += format_prefix(line);
    buf_.append(line.text);
    buf_ += '\n';
    if (buf_.size() >= 256UL * 1024) flush();
  }

  void flush() override {
    if (buf_.empty()) return;
    // Blocks while fd is full: that is the backpressure. A dead reader
    // (EPIPE) or a full disk loses this batch; the next one tries again.
    if (auto ec = sys::write_all(fd_, buf_.data(), buf_.size()))
      std::fprintf(stderr, "ufork: log write failed: %s\n", ec.message().c_str());
    buf_.clear();
  }

 private:
  int fd_;
  std::string buf_;
};

class callback_sink final : public log_sink {
 public:
  explicit callback_sink(std::function<void(const log_line&)> fn) : fn_(std::move(fn)) {}
  void write(const log_line& line) override { fn_(line); }

 private:
  std::function<void(const log_line&)> fn_;
};

}  // namespace

std::shared_ptr<log_sink> make_fd_sink(int fd) { return std::make_shared<fd_sink>(fd); }

std::shared_ptr<log_sink> make_callback_sink(std::function<void(const log_line&)> fn) {
  return std::make_shared<callback_sink>(std::move(fn));
}

}  // namespace ufork
