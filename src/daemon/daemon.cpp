// Daemonize and the pidfile. Unlike nginx's, the launching process exits
// only once the daemon has said how its start went.
#include "ufork/daemon.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "sys/sys.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {

void send_all(int fd, const std::string& text) noexcept {
  (void)sys::write_all(fd, text.data(), text.size());  // the launcher may be gone: nothing to tell
}

// The launcher: reads the daemon's word, says it, exits.
[[noreturn]] void wait_for_daemon(int fd) {
  std::string word;
  char buf[4096];
  for (auto n = sys::read(fd, buf, sizeof buf); n && n.value() > 0; n = sys::read(fd, buf, sizeof buf))
    word.append(buf, n.value());
  if (word.rfind("R ", 0) == 0) {
    std::printf("ufork: daemon pid %s ready\n", word.substr(2).c_str());
    std::fflush(stdout);
    ::_exit(0);
  }
  std::string why = word.rfind("F ", 0) == 0 ? word.substr(2) : "the daemon exited before it was ready";
  std::fprintf(stderr, "ufork: %s\n", why.c_str());
  ::_exit(1);
}

void to_dev_null(int target, int flags) {
  if (auto null = sys::open_dev_null(flags)) (void)::dup2(null->get(), target);
}

}  // namespace

launcher::launcher(launcher&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

launcher& launcher::operator=(launcher&& other) noexcept {
  if (this != &other) {
    sys::close_fd(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

launcher::~launcher() { sys::close_fd(fd_); }

void launcher::ready() noexcept {
  if (fd_ < 0) return;
  send_all(fd_, "R " + std::to_string(::getpid()));
  sys::close_fd(std::exchange(fd_, -1));
}

void launcher::failed(const std::string& why) noexcept {
  if (fd_ < 0) return;
  send_all(fd_, "F " + why);
  sys::close_fd(std::exchange(fd_, -1));
}

launcher daemonize(const daemon_options& options) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("daemonize: pipe2");
  std::fflush(nullptr);
  pid_t first = ::fork();
  if (first < 0) throw_errno("daemonize: fork");
  if (first > 0) {  // the launcher
    ::close(fds[1]);
    (void)::waitpid(first, nullptr, 0);  // the middle process exits at once
    wait_for_daemon(fds[0]);
  }
  ::close(fds[0]);
  // A session of its own, then a second fork so that the daemon is not a
  // session leader and can never acquire a controlling terminal.
  if (::setsid() < 0) {
    send_all(fds[1], "F setsid failed");
    ::_exit(1);
  }
  pid_t second = ::fork();
  if (second != 0) {
    if (second < 0) send_all(fds[1], "F fork failed");
    ::_exit(second < 0 ? 1 : 0);
  }
  if (::chdir(options.workdir.c_str()) != 0) {
    send_all(fds[1], "F chdir(" + options.workdir + ") failed");
    ::_exit(1);
  }
  ::umask(options.umask);
  to_dev_null(STDIN_FILENO, O_RDONLY);
  to_dev_null(STDOUT_FILENO, O_WRONLY);
  to_dev_null(STDERR_FILENO, O_WRONLY);
  sys::own_fd(fds[1]);  // no worker may hold the launcher's pipe open
  return launcher(fds[1]);
}

pidfile pidfile::acquire(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno("pidfile " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    if (err == EWOULDBLOCK)
      throw error(std::make_error_code(std::errc::resource_unavailable_try_again),
                  "pidfile " + path + " is held by running pid " + holder);
    throw error(err, std::system_category(), "pidfile " + path + ": flock");
  }
  // Locked: whatever was there is stale. One write of the whole content.
  std::string content = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, content.data(), content.size(), 0) != static_cast<ssize_t>(content.size())) {
    int err = errno;
    ::close(fd);
    throw error(err, std::system_category(), "pidfile " + path + ": write");
  }
  sys::own_fd(fd);  // no worker may hold the lock
  return pidfile(path, fd);
}

pidfile::pidfile(pidfile&& other) noexcept : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

pidfile::~pidfile() {
  if (fd_ < 0) return;
  (void)::unlink(path_.c_str());  // while still locked: no other daemon can be half-way in
  sys::close_fd(fd_);
}

}  // namespace ufork
