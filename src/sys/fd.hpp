// The syscall layer, fds: the registry of ufork's own fds, files, pipes.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/export.hpp"

namespace ufork::sys {

// The fd registry: every fd that ufork itself opens is registered here the
// moment it is opened (and is close-on-exec from birth), and forgotten when
// unique_fd closes it, so that a new worker closes exactly these and keeps
// the program's own. Every wrapper in src/sys/ opens its fds close-on-exec
// and registers them, unless it says otherwise. Thread-safe; not for a forked
// child (it takes a lock).
void own_fd(int fd) noexcept;
UFORK_API void set_cloexec(int fd) noexcept;
std::error_code set_nonblocking(int fd) noexcept;
std::vector<int> owned_fds();   // sorted
// Forgets and closes an fd of ufork's held as a plain int; -1 is ignored.
UFORK_API void close_fd(int fd) noexcept;
// Set once a syslog sink opened glibc's syslog socket (one of ufork's fds):
// a new worker then calls closelog() before closing ufork's fds.
inline std::atomic<bool> syslog_open{false};
// Every fd open in this process now (procfs.hpp: /proc/self/fd), sorted.
std::vector<int> open_fds();
// Registers the fds that open() opened, close-on-exec: for a library's file
// (spdlog's), whose number and flags we are not told. Returns them.
template <class F>
std::vector<int> own_new_fds(F&& open) {
  auto before = open_fds();
  open();
  std::vector<int> fresh;
  for (int fd : open_fds())
    if (!std::binary_search(before.begin(), before.end(), fd)) {
      set_cloexec(fd);
      own_fd(fd);
      fresh.push_back(fd);
    }
  return fresh;
}

struct pipe_ends {
  unique_fd read, write;
};
// Both ends O_CLOEXEC; the read end also O_NONBLOCK unless blocking_read.
// size > 0: F_SETPIPE_SZ, best effort (a refused size keeps the kernel's
// default).
result<pipe_ends> make_pipe(std::size_t size, bool blocking_read = false);

// open(2) with O_CLOEXEC added.
result<unique_fd> open_file(const char* path, int flags, unsigned mode = 0);
result<unique_fd> open_dev_null(int flags);
// dup(2), CLOEXEC.
UFORK_API result<unique_fd> duplicate(int fd) noexcept;
// dup2(2) onto target (daemon mode's stdout and stderr).
std::error_code dup_onto(int fd, int target) noexcept;
// Raises the soft RLIMIT_NOFILE to the hard one (best effort: the old limit
// still works) and returns the limit as it was ({0, 0} if unknown).
rlimit raise_fd_limit() noexcept;

UFORK_API result<std::size_t> read(int fd, void* buf, std::size_t len) noexcept;
// pread(2) at `offset`.
result<std::size_t> read_at(int fd, void* buf, std::size_t len, std::uint64_t offset) noexcept;
// Writes everything, waiting with poll() when fd is non-blocking and full.
UFORK_API std::error_code write_all(int fd, const void* buf, std::size_t len) noexcept;
// ftruncate(2) then pwrite(2) of text as the whole content.
std::error_code replace_content(int fd, const std::string& text) noexcept;
// fstat(2)'s size; ftruncate(2); lseek(fd, 0, SEEK_END).
result<std::uint64_t> file_size(int fd) noexcept;
std::error_code truncate(int fd, std::uint64_t size) noexcept;
std::error_code seek_to_end(int fd) noexcept;
// flock(LOCK_EX|LOCK_NB); EWOULDBLOCK when another process holds it.
std::error_code lock_exclusive(int fd) noexcept;

std::error_code change_dir(const std::string& path) noexcept;
void set_umask(unsigned mask) noexcept;
// chown(2); -1 keeps that id.
std::error_code change_owner(const std::string& path, uid_t uid, gid_t gid) noexcept;
// mkdir -p with `mode` for each directory made; best effort.
void make_dirs(const std::string& path, unsigned mode) noexcept;

}  // namespace ufork::sys
