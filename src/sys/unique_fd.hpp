// unique_fd: a move-only owned file descriptor. close() is never retried on
// EINTR: Linux releases the fd whatever close returns, and a retry could close
// a descriptor another thread has just been given.
#pragma once

#include <unistd.h>

#include <utility>

#include "ufork/export.hpp"

namespace ufork::sys {

// The fd is no longer one of ufork's own (fd_registry in sys.hpp).
UFORK_API void disown_fd(int fd) noexcept;  // exported: ufork-http shares the registry

class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) {
      disown_fd(fd_);
      (void)::close(fd_);  // see above: never retried
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace ufork::sys
