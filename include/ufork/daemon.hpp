// Daemon mode: detach from the terminal with a launcher that exits only once
// it knows how the start went, and a locked pidfile.
#pragma once

#include "ufork/export.hpp"

#include <sys/types.h>

#include <string>

namespace ufork {

// The daemon's line back to the process that started it, which is waiting.
class UFORK_API launcher {
 public:
  launcher() = default;
  explicit launcher(int fd) : fd_(fd) {}
  launcher(launcher&& other) noexcept;
  launcher& operator=(launcher&& other) noexcept;
  ~launcher();  // unanswered: the launcher says the daemon ended before it was ready

  // The launcher prints "ready" with the daemon's pid and exits 0.
  void ready() noexcept;
  // The launcher prints why and exits 1.
  void failed(const std::string& why) noexcept;
  // Still waiting for an answer; the fd workers must not inherit.
  int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

struct daemon_options {
  std::string workdir = "/";
  mode_t umask = 027;
};

// Forks, setsid(), forks again. The calling process waits for the daemon's
// ready() or failed() (or its death) and exits; daemonize() returns only in
// the daemon, with stdin, stdout and stderr on /dev/null (set
// options::capture_output and a file sink to keep what it prints). Throws
// ufork::error if the first fork fails.
[[nodiscard]] UFORK_API launcher daemonize(const daemon_options& options = {});

// A pidfile locked (flock) for the life of the process that holds it.
class UFORK_API pidfile {
 public:
  // Creates PATH or takes over a stale one (no lock holder), locks it and
  // writes this process's pid. Throws ufork::error if a live process holds
  // it ("pidfile P is held by running pid N") or a syscall fails.
  static pidfile acquire(const std::string& path);
  pidfile(pidfile&& other) noexcept;
  pidfile& operator=(pidfile&&) = delete;
  ~pidfile();  // removes the file

  int fd() const noexcept { return fd_; }  // workers must not inherit it

 private:
  pidfile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
};

}  // namespace ufork
