// Daemonize and the pidfile. Unlike nginx's, the launching process exits
// only once the daemon has said how its start went.
#include "ufork/daemon.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

#include "sys/fd.hpp"
#include "sys/unique_fd.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {

void send_all(int fd, const std::string& text) noexcept {
  (void)sys::write_all(fd, text.data(), text.size());  // the launcher may be gone: nothing to tell
}

// The launcher: reads the daemon's word, says it, exits. A daemon that
// failed ("F PID WHY") exits right after saying so: the launcher exits once
// it has (10 s at most), so that nothing of a failed start is left running
// when the command returns.
[[noreturn]] void wait_for_daemon(int fd) {
  std::string word;
  char buf[4096];
  for (auto n = sys::read(fd, buf, sizeof buf); n && n.value() > 0; n = sys::read(fd, buf, sizeof buf))
    word.append(buf, n.value());
  if (word.rfind("R ", 0) == 0) {
    std::printf("ufork: daemon pid %s ready\n", word.substr(2).c_str());
    std::fflush(stdout);
    sys::child::exit(0);
  }
  std::string why = "the daemon exited before it was ready";
  pid_t pid = 0;
  if (word.rfind("F ", 0) == 0) {
    auto space = word.find(' ', 2);
    std::from_chars(word.data() + 2, word.data() + std::min(space, word.size()), pid);
    why = space == std::string::npos ? "" : word.substr(space + 1);
  }
  std::fprintf(stderr, "ufork: %s\n", why.c_str());
  std::fflush(stderr);
  if (pid > 0)
    if (auto daemon = sys::pidfd_open(pid)) sys::child::wait_readable(daemon->get(), 10'000);
  sys::child::exit(1);
}

void to_dev_null(int target, int flags) {
  if (auto null = sys::open_dev_null(flags)) (void)sys::dup_onto(null->get(), target);
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
  send_all(fd_, "R " + std::to_string(sys::own_pid()));
  sys::close_fd(std::exchange(fd_, -1));
}

void launcher::failed(const std::string& why) noexcept {
  if (fd_ < 0) return;
  send_all(fd_, "F " + std::to_string(sys::own_pid()) + " " + why);
  sys::close_fd(std::exchange(fd_, -1));
}

launcher daemonize(const daemon_options& options) {
  // An in-place upgrade's new image is the daemon already (same pid, same
  // session, its stdio set), and no launcher waits. It was exec'd where the
  // program started, for its argv's relative paths: back to the daemon's
  // directory.
  if (std::getenv("UFORK_UPGRADE_STATE")) {
    (void)sys::change_dir(options.workdir);
    return launcher(-1);
  }
  // Both ends are ufork's own: no worker may hold the launcher's pipe open.
  auto pipe = sys::make_pipe(0, true);
  if (!pipe) throw error(pipe.error(), "daemonize: pipe2");
  std::fflush(nullptr);
  auto first = sys::fork();
  if (!first) throw error(first.error(), "daemonize: fork");
  if (first.value() > 0) {  // the launcher
    pipe->write.reset();
    sys::reap(first.value());  // the middle process exits at once
    wait_for_daemon(pipe->read.get());
  }
  pipe->read.reset();
  int fd = pipe->write.get();
  // A session of its own, then a second fork so that the daemon is not a
  // session leader and can never acquire a controlling terminal.
  if (sys::new_session()) {
    send_all(fd, "F setsid failed");
    sys::child::exit(1);
  }
  auto second = sys::fork();
  if (!second || second.value() != 0) {
    if (!second) send_all(fd, "F fork failed");
    sys::child::exit(second ? 0 : 1);
  }
  if (sys::change_dir(options.workdir)) {
    send_all(fd, "F chdir(" + options.workdir + ") failed");
    sys::child::exit(1);
  }
  sys::set_umask(options.umask);
  to_dev_null(STDIN_FILENO, O_RDONLY);
  to_dev_null(STDOUT_FILENO, O_WRONLY);
  to_dev_null(STDERR_FILENO, O_WRONLY);
  return launcher(pipe->write.release());
}

pidfile pidfile::acquire(const std::string& path) {
  // One of ufork's own fds: no worker may hold the lock.
  // Never through a symlink: one put there would have us overwrite its target.
  auto opened = sys::open_file(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
  if (!opened && opened.error() == std::errc::too_many_symbolic_link_levels)
    throw error(opened.error(), "pidfile " + path + " is a symbolic link (refused: its target would be overwritten)");
  if (!opened) throw error(opened.error(), "pidfile " + path);
  sys::unique_fd fd = std::move(opened).value();
  if (auto ec = sys::lock_exclusive(fd.get())) {
    char buf[32] = {};
    auto n = sys::read_at(fd.get(), buf, sizeof buf - 1, 0);
    std::string holder = n && n.value() > 0 ? std::string(buf, n.value()) : "?";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    if (ec == std::errc::operation_would_block)
      throw error(std::make_error_code(std::errc::resource_unavailable_try_again),
                  "pidfile " + path + " is held by running pid " + holder);
    throw error(ec, "pidfile " + path + ": flock");
  }
  // Locked: whatever was there is stale. One write of the whole content.
  if (auto ec = sys::replace_content(fd.get(), std::to_string(sys::own_pid()) + "\n"))
    throw error(ec, "pidfile " + path + ": write");
  return pidfile(path, fd.release());
}

pidfile::pidfile(pidfile&& other) noexcept : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

pidfile::~pidfile() {
  if (fd_ < 0) return;
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);  // while still locked: no other daemon can be half-way in
  sys::close_fd(fd_);
}

}  // namespace ufork
