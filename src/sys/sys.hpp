// The syscall layer: the only code in src/ that calls libc for fds and
// processes. Each wrapper retries EINTR (never for close) and reports failure
// as a std::error_code; EAGAIN is an ordinary outcome for the reactor.
#pragma once

#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <termios.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <cstddef>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "sys/unique_fd.hpp"
#include "ufork/export.hpp"

namespace ufork::sys {

// A value or an error, with std::expected's member names so it can become one.
template <class T>
class result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(std::error_code ec) : v_(ec) {}
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  std::error_code error() const { return std::get<1>(v_); }

 private:
  std::variant<T, std::error_code> v_;
};

// errno's text, as strerror's but safe from any thread.
std::string error_text(int err);

// The fd registry: every fd that ufork itself opens is registered here the
// moment it is opened (and is close-on-exec from birth), and forgotten when
// unique_fd closes it, so that a new worker closes exactly these and keeps
// the program's own. Every wrapper here opens its fds close-on-exec and
// registers them. Thread-safe; not for a forked child (it takes a lock).
void own_fd(int fd) noexcept;
void set_cloexec(int fd) noexcept;
std::error_code set_nonblocking(int fd) noexcept;
std::vector<int> owned_fds();   // sorted
// An in-place upgrade carries the listening sockets the library bound (in
// the arbiter) across its exec, by name ("tcp 127.0.0.1:7777", "unix
// /run/x.sock"): the old image lists them (carry; closing an fd forgets it),
// the new one takes each back under the same name before it would bind
// again (take_carried: a close-on-exec copy, or -1 if none came; with copy
// false, the fd itself, left open: one whose number is fixed, as a socket
// activation's at 3). What came
// is closed once the pool is adopted (close_arrivals: the names no one
// took). An empty name forgets fd.
void carry(int fd, const std::string& name);
std::vector<std::pair<int, std::string>> carried_fds();
int take_carried(const std::string& name, bool copy = true);
std::vector<std::string> close_arrivals();
// Forgets and closes an fd of ufork's held as a plain int; -1 is ignored.
void close_fd(int fd) noexcept;
// Set once a syslog sink opened glibc's syslog socket (one of ufork's fds):
// a new worker then calls closelog() before closing ufork's fds.
inline std::atomic<bool> syslog_open{false};
// Every fd open in this process now (from /proc/self/fd), sorted.
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

std::error_code last_error() noexcept;
bool would_block(std::error_code ec) noexcept;

struct pipe_ends {
  unique_fd read, write;
};
// Both ends O_CLOEXEC; the read end also O_NONBLOCK unless blocking_read.
// size > 0: F_SETPIPE_SZ, best effort (a refused size keeps the kernel's
// default).
result<pipe_ends> make_pipe(std::size_t size, bool blocking_read = false);

UFORK_API result<unique_fd> make_epoll();
result<unique_fd> make_timerfd();
result<unique_fd> make_eventfd(bool nonblocking);
result<unique_fd> make_signalfd(const sigset_t& set);
// A SOCK_DGRAM socketpair: [0] non-blocking with SO_PASSCRED (the arbiter's),
// [1] blocking (the workers'), both CLOEXEC.
result<std::pair<unique_fd, unique_fd>> make_notify_pair();
result<unique_fd> open_dev_null(int flags);
// Raises the soft RLIMIT_NOFILE to the hard one (best effort: the old limit
// still works) and returns the limit as it was ({0, 0} if unknown).
rlimit raise_fd_limit() noexcept;
// /proc/self/oom_score_adj: read it; write it (false if refused).
std::optional<int> oom_score_adj();
bool set_oom_score_adj(int value);
// flock(LOCK_EX|LOCK_NB); EWOULDBLOCK when another process holds it.
std::error_code lock_exclusive(int fd) noexcept;
// pread(2) from offset 0; pwrite(2) of text as the whole content.
result<std::size_t> read_start(int fd, void* buf, std::size_t len) noexcept;
std::error_code replace_content(int fd, const std::string& text) noexcept;
std::error_code change_dir(const std::string& path) noexcept;
void set_umask(unsigned mask) noexcept;
// Terminals: isatty(3); the settings now (tcgetattr); set them back
// (tcsetattr TCSANOW, async-signal-safe).
bool is_terminal(int fd) noexcept;
std::optional<termios> terminal_settings(int fd) noexcept;
void set_terminal(int fd, const termios& settings) noexcept;
// mkdir -p with `mode` for each directory made; best effort.
void make_dirs(const std::string& path, unsigned mode) noexcept;
// A line-oriented file whose last line was cut short (a write that failed
// part-way: a full disk) ends at its last newline again (ftruncate). Nothing
// is done to a missing or empty file, or one that ends in a newline. Returns
// how many bytes were cut.
result<std::size_t> cut_torn_tail(const std::string& path) noexcept;
// lseek(fd, 0, SEEK_END).
std::error_code seek_to_end(int fd) noexcept;
// open(2) with O_CLOEXEC added.
result<unique_fd> open_file(const char* path, int flags, unsigned mode = 0);
// A unix stream socket, CLOEXEC; nonblocking if asked.
result<unique_fd> make_unix_socket(bool nonblocking);
// Unix sockets by path. connect: EINTR retried. bind: the socket file is
// created with only `mode`'s bits (the umask covers bind's moment).
std::error_code connect_unix(int fd, const std::string& path) noexcept;
std::error_code bind_unix(int fd, const std::string& path, unsigned mode) noexcept;
UFORK_API std::error_code listen(int fd, int backlog) noexcept;
// SO_PEERCRED: the uid and pid of a unix socket's peer.
struct peer {
  uid_t uid = 0;
  pid_t pid = 0;
};
result<peer> peer_of(int fd) noexcept;
// Inet sockets (the HTTP helper): a TCP socket of family, CLOEXEC and not
// registered as ufork's own: it is for the workers, who inherit it.
// setsockopt(2); bind(2); getsockname(2).
// Exported from a shared libufork for ufork-http, as is listen().
UFORK_API result<unique_fd> make_tcp_socket(int family) noexcept;
UFORK_API std::error_code set_socket_option(int fd, int level, int name, const void* value, unsigned len) noexcept;
UFORK_API std::error_code bind(int fd, const sockaddr* addr, unsigned len) noexcept;
UFORK_API sockaddr_storage local_address(int fd) noexcept;  // zeroed if unknown
// TCP requests of `family` in SYN_RECV on local `port` (network order), from
// one sock_diag dump (ss's source); -1 if the kernel would not say.
int syn_recv_count(int family, std::uint16_t port) noexcept;
// dup(2), CLOEXEC.
UFORK_API result<unique_fd> duplicate(int fd) noexcept;
// accept4(2), the new socket nonblocking and CLOEXEC: a connection of
// ufork's own (registered), or -1 and ec; EAGAIN (none queued), EMFILE as
// errors. The HTTP worker's connections are not ufork's own descriptors
// (no registry: a connection is made and closed per request at times):
// accept_connection, and close_connection to close one; shutdown(2) of the
// sending side. Exported from a shared libufork for ufork-http, as are the
// epoll calls below.
result<unique_fd> accept(int listen_fd) noexcept;
UFORK_API int accept_connection(int listen_fd, std::error_code& ec) noexcept;
UFORK_API void close_connection(int fd) noexcept;
UFORK_API std::error_code shutdown_sending(int fd) noexcept;

result<std::size_t> read(int fd, void* buf, std::size_t len) noexcept;
// send(2) without blocking or SIGPIPE; EAGAIN is an error (would_block).
result<std::size_t> send(int fd, const void* buf, std::size_t len) noexcept;
// The HTTP worker's side of a connection, without making its socket
// non-blocking first (a syscall per connection saved): recv(2) and send(2)
// with MSG_DONTWAIT (and MSG_NOSIGNAL). The bytes moved (0 from recv: the
// peer's end), or 0 and ec (EAGAIN when nothing is there, or no room).
// Exported from a shared libufork for ufork-http.
UFORK_API std::size_t receive_now(int fd, void* buf, std::size_t len, std::error_code& ec) noexcept;
UFORK_API std::size_t send_now(int fd, const void* buf, std::size_t len, std::error_code& ec) noexcept;
// send(2) that waits for room (a worker's notify datagram), without SIGPIPE.
std::error_code send_waiting(int fd, const void* buf, std::size_t len) noexcept;
// epoll_wait(2), with no timeout unless one is given (the reactor's
// timerfd is its clock; 0: what is ready now).
UFORK_API result<int> epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms = -1) noexcept;
// Makes every epoll set of this process that watches listen_fd watch it
// with EPOLLEXCLUSIVE (registered again with the same data), so that a new
// connection wakes one of the processes waiting on the socket, not all of
// them. For an event loop that registered the socket itself and does not
// modify it afterwards (Asio's accept). The sets are found in
// /proc/self/fdinfo. The number of sets changed; 0 if none could be.
int watch_exclusively(int listen_fd);
// epoll_ctl(2): ADD, MOD, DEL.
UFORK_API std::error_code epoll_add(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept;
std::error_code epoll_modify(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept;
std::error_code epoll_remove(int epfd, int fd) noexcept;
// dup2(2) onto target (daemon mode's stdout and stderr).
std::error_code dup_onto(int fd, int target) noexcept;

// A datagram on a SO_PASSCRED socket: its size and the sender's pid (0 if
// the kernel attached no credentials). Any fds the sender passed are
// closed at once: they would leak into the arbiter, and from it into later
// workers. Non-blocking; EAGAIN is an error.
struct datagram {
  std::size_t size = 0;
  pid_t sender = 0;
};
result<datagram> receive_with_credentials(int fd, char* buf, std::size_t len) noexcept;
// Writes everything, waiting with poll() when fd is non-blocking and full.
std::error_code write_all(int fd, const void* buf, std::size_t len) noexcept;

result<unique_fd> pidfd_open(pid_t pid) noexcept;
std::error_code pidfd_send_signal(int pidfd, int sig) noexcept;
// WEXITED|WNOHANG on a pidfd; si_pid == 0 when it has not exited yet.
result<siginfo_t> waitid_pidfd(int pidfd) noexcept;
// kill(-pgid, sig); ESRCH (nobody left) is success.
std::error_code kill_group(pid_t pgid, int sig) noexcept;

// Arms fd (a timerfd) at an absolute CLOCK_MONOTONIC time; epoch = disarm.
std::error_code timerfd_arm(int fd, std::chrono::steady_clock::time_point at) noexcept;
// Reads a timerfd or eventfd counter; EAGAIN is not an error (returns 0).
std::uint64_t drain_counter(int fd) noexcept;
// Adds to an eventfd; async-signal-safe.
void eventfd_signal(int fd) noexcept;

}  // namespace ufork::sys
