// The syscall layer, fds: the registry of ufork's own, files, pipes.
#include "sys/fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <set>

#include "sys/carry.hpp"
#include "sys/detail.hpp"

namespace ufork::sys {

namespace {

struct registry {
  std::mutex mu;
  std::set<int> fds;
};
registry& owned() {
  static registry* r = new registry;  // never destroyed: fds close during static destruction too
  return *r;
}

}  // namespace

using detail::fd_or_error;
using detail::retry_eintr;


void own_fd(int fd) noexcept {
  if (fd < 0) return;
  auto& r = owned();
  std::lock_guard lock(r.mu);
  try {
    r.fds.insert(fd);
  } catch (...) {  // out of memory: the fd is still close-on-exec
  }
}

void disown_fd(int fd) noexcept {
  {
    auto& r = owned();
    std::lock_guard lock(r.mu);
    r.fds.erase(fd);
  }
  forget_carried(fd);
}

void close_fd(int fd) noexcept { unique_fd{fd}.reset(); }

std::vector<int> owned_fds() {
  auto& r = owned();
  std::lock_guard lock(r.mu);
  return {r.fds.begin(), r.fds.end()};
}

void set_cloexec(int fd) noexcept {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0 && !(flags & FD_CLOEXEC)) (void)::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

std::error_code set_nonblocking(int fd) noexcept {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return last_error();
  return {};
}

result<std::uint64_t> file_size(int fd) noexcept {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return last_error();
  return static_cast<std::uint64_t>(st.st_size);
}

std::error_code truncate(int fd, std::uint64_t size) noexcept {
  return retry_eintr([&] { return ::ftruncate(fd, static_cast<off_t>(size)); }) != 0 ? last_error() : std::error_code();
}

std::error_code seek_to_end(int fd) noexcept {
  if (::lseek(fd, 0, SEEK_END) < 0) return last_error();
  return {};
}

result<pipe_ends> make_pipe(std::size_t size, bool blocking_read) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return last_error();
  own_fd(fds[0]);
  own_fd(fds[1]);
  pipe_ends ends{unique_fd(fds[0]), unique_fd(fds[1])};
  if (!blocking_read && ::fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) return last_error();
  // Best effort: beyond /proc/sys/fs/pipe-max-size or the user's pipe quota
  // the kernel refuses, and the default 64 KiB still works, only slower.
  if (size > 0) (void)::fcntl(fds[0], F_SETPIPE_SZ, static_cast<int>(size));
  return ends;
}

result<unique_fd> open_dev_null(int flags) { return open_file("/dev/null", flags); }

rlimit raise_fd_limit() noexcept {
  rlimit found{};
  if (::getrlimit(RLIMIT_NOFILE, &found) != 0) return {};
  if (found.rlim_cur < found.rlim_max) {
    rlimit raised = found;
    raised.rlim_cur = raised.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &raised);
  }
  return found;
}

result<unique_fd> open_file(const char* path, int flags, unsigned mode) {
  return fd_or_error(retry_eintr([&] { return ::open(path, flags | O_CLOEXEC, static_cast<mode_t>(mode)); }));
}

std::error_code lock_exclusive(int fd) noexcept {
  return retry_eintr([&] { return ::flock(fd, LOCK_EX | LOCK_NB); }) != 0 ? last_error() : std::error_code();
}

result<std::size_t> read_at(int fd, void* buf, std::size_t len, std::uint64_t offset) noexcept {
  ssize_t n = retry_eintr([&] { return ::pread(fd, buf, len, static_cast<off_t>(offset)); });
  if (n < 0) return last_error();
  return static_cast<std::size_t>(n);
}

std::error_code replace_content(int fd, const std::string& text) noexcept {
  if (::ftruncate(fd, 0) != 0) return last_error();
  ssize_t n = retry_eintr([&] { return ::pwrite(fd, text.data(), text.size(), 0); });
  if (n < 0) return last_error();
  if (static_cast<std::size_t>(n) != text.size()) return std::make_error_code(std::errc::no_space_on_device);
  return {};
}

void make_dirs(const std::string& path, unsigned mode) noexcept {
  for (std::size_t pos = 1; pos != std::string::npos; pos = path.find('/', pos + 1))
    (void)::mkdir(path.substr(0, pos).c_str(), static_cast<mode_t>(mode));
  (void)::mkdir(path.c_str(), static_cast<mode_t>(mode));
}

result<unique_fd> duplicate(int fd) noexcept { return fd_or_error(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

std::error_code change_dir(const std::string& path) noexcept {
  return ::chdir(path.c_str()) != 0 ? last_error() : std::error_code();
}

std::error_code change_owner(const std::string& path, uid_t uid, gid_t gid) noexcept {
  return ::chown(path.c_str(), uid, gid) != 0 ? last_error() : std::error_code();
}

void set_umask(unsigned mask) noexcept { ::umask(static_cast<mode_t>(mask)); }

result<std::size_t> read(int fd, void* buf, std::size_t len) noexcept {
  ssize_t n = retry_eintr([&] { return ::read(fd, buf, len); });
  if (n < 0) return last_error();
  return static_cast<std::size_t>(n);
}

std::error_code dup_onto(int fd, int target) noexcept {
  return retry_eintr([&] { return ::dup2(fd, target); }) < 0 ? last_error() : std::error_code();
}

std::error_code write_all(int fd, const void* buf, std::size_t len) noexcept {
  auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n >= 0) {
      p += n;
      len -= static_cast<std::size_t>(n);
    } else if (errno == EAGAIN) {
      pollfd pfd{fd, POLLOUT, 0};
      (void)retry_eintr([&] { return ::poll(&pfd, 1, -1); });  // an error reappears in write
    } else if (errno != EINTR) {
      return last_error();
    }
  }
  return {};
}

}  // namespace ufork::sys
