// The syscall wrappers of sys.hpp. Nothing here knows about workers.
#include "sys/sys.hpp"

#include <fcntl.h>
#include <poll.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <dirent.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <charconv>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace ufork::sys {

std::string error_text(int err) {
  const char* text = ::strerrordesc_np(err);  // a static string (glibc 2.32)
  return text ? text : "Unknown error " + std::to_string(err);
}
namespace {

template <class F>
auto retry_eintr(F f) {
  decltype(f()) r;
  do r = f();
  while (r == -1 && errno == EINTR);
  return r;
}

result<unique_fd> fd_or_error(int fd) {
  if (fd < 0) return last_error();
  own_fd(fd);
  return unique_fd(fd);
}

struct registry {
  std::mutex mu;
  std::set<int> fds;
  std::map<int, std::string> carried;   // carry(): fd -> name
  std::map<std::string, int> arrived;   // take_carried(): name -> fd, from UFORK_UPGRADE_FDS
  std::set<std::string> taken;
  bool arrivals_read = false;
};
registry& owned() {
  static registry* r = new registry;  // never destroyed: fds close during static destruction too
  return *r;
}

}  // namespace

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
  auto& r = owned();
  std::lock_guard lock(r.mu);
  r.fds.erase(fd);
  r.carried.erase(fd);
}

void carry(int fd, const std::string& name) {
  if (fd < 0 || name.find('\n') != std::string::npos) return;  // one name per line in UFORK_UPGRADE_FDS
  auto& r = owned();
  std::lock_guard lock(r.mu);
  if (name.empty())
    r.carried.erase(fd);
  else
    r.carried[fd] = name;
}

std::vector<std::pair<int, std::string>> carried_fds() {
  auto& r = owned();
  std::lock_guard lock(r.mu);
  return {r.carried.begin(), r.carried.end()};
}

// UFORK_UPGRADE_FDS: "FD NAME" lines, as carried_fds() gave them to the old
// image. Anything else in it is ignored: the state is checked apart.
static void read_arrivals(registry& r) {
  if (std::exchange(r.arrivals_read, true)) return;
  const char* text = std::getenv("UFORK_UPGRADE_FDS");
  if (!text) return;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    auto space = line.find(' ');
    int fd = -1;
    auto [end, ec] = std::from_chars(line.data(), line.data() + std::min(space, line.size()), fd);
    if (ec == std::errc() && space != std::string_view::npos && fd > 2 && ::fcntl(fd, F_GETFD) >= 0)
      r.arrived.emplace(std::string(line.substr(space + 1)), fd);
  }
}

// A copy: the fd that came stays open, as the old image left it, until the
// pool is adopted; until then a new image that fails (and closes what it
// took on its way out) can still hand it back.
int take_carried(const std::string& name, bool copy) {
  auto& r = owned();
  std::lock_guard lock(r.mu);
  read_arrivals(r);
  auto it = r.arrived.find(name);
  if (it == r.arrived.end() || r.taken.count(name)) return -1;
  int fd = it->second;
  if (!copy)
    r.arrived.erase(it);
  else if ((fd = retry_eintr([&] { return ::fcntl(it->second, F_DUPFD_CLOEXEC, 3); })) >= 0)
    r.taken.insert(name);
  return fd;
}

std::vector<std::string> close_arrivals() {
  auto& r = owned();
  std::unique_lock lock(r.mu);
  read_arrivals(r);
  std::vector<std::string> unclaimed;
  std::vector<int> fds;
  for (auto& [name, fd] : r.arrived) {
    if (!r.taken.count(name)) unclaimed.push_back(name);
    fds.push_back(fd);
  }
  r.arrived.clear();
  lock.unlock();
  for (int fd : fds) close_fd(fd);
  return unclaimed;
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

result<std::size_t> cut_torn_tail(const std::string& path) noexcept {
  unique_fd fd(retry_eintr([&] { return ::open(path.c_str(), O_RDWR | O_CLOEXEC); }));
  if (!fd) return errno == ENOENT ? result<std::size_t>(std::size_t{0}) : last_error();
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return last_error();
  off_t end = st.st_size, at = end;
  char buf[4096];
  while (at > 0) {  // back to the last newline, a block at a time
    off_t from = std::max<off_t>(at - static_cast<off_t>(sizeof buf), 0);
    ssize_t n = retry_eintr([&] { return ::pread(fd.get(), buf, static_cast<std::size_t>(at - from), from); });
    if (n < 0) return last_error();
    for (ssize_t i = n; i-- > 0;)
      if (buf[i] == '\n') {
        at = from + i + 1;
        if (at != end && retry_eintr([&] { return ::ftruncate(fd.get(), at); }) != 0) return last_error();
        return static_cast<std::size_t>(end - at);
      }
    at = from;
  }
  if (end != 0 && retry_eintr([&] { return ::ftruncate(fd.get(), 0); }) != 0) return last_error();
  return static_cast<std::size_t>(end);
}

std::error_code seek_to_end(int fd) noexcept {
  if (::lseek(fd, 0, SEEK_END) < 0) return last_error();
  return {};
}

std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return fds;
  int own = ::dirfd(dir);
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && fd != own) fds.push_back(static_cast<int>(fd));
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

int watch_exclusively(int listen_fd) {
  int changed = 0;
  for (int fd : open_fds()) {
    char link[64] = {};
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (::readlink(path.c_str(), link, sizeof link - 1) <= 0 || std::string_view(link) != "anon_inode:[eventpoll]")
      continue;
    std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
    // "tfd:        5 events:       19 data:     55d1c0a2b3c0  pos:0 ino:..."
    for (std::string word; info >> word;) {
      if (word != "tfd:") continue;
      int target = -1;
      std::string events_word, data_word;
      std::uint32_t events = 0;
      std::uint64_t data = 0;
      info >> target >> events_word >> std::hex >> events >> data_word >> data >> std::dec;
      if (!info || target != listen_fd || events_word != "events:" || data_word != "data:") continue;
      // EPOLLEXCLUSIVE takes these bits only (not EPOLLPRI, which a
      // listening socket never raises).
      std::uint32_t exclusive = (events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLET)) | EPOLLEXCLUSIVE;
      if (epoll_remove(fd, listen_fd)) break;
      if (epoll_add(fd, listen_fd, exclusive, data)) {
        (void)epoll_add(fd, listen_fd, events, data);  // as it was (a kernel before 4.5)
        break;
      }
      ++changed;
      break;
    }
  }
  return changed;
}

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

bool would_block(std::error_code ec) noexcept {
  return ec == std::errc::resource_unavailable_try_again ||
         ec == std::errc::operation_would_block;
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

result<unique_fd> make_epoll() { return fd_or_error(::epoll_create1(EPOLL_CLOEXEC)); }

result<unique_fd> make_timerfd() {
  return fd_or_error(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
}

result<unique_fd> make_eventfd(bool nonblocking) {
  return fd_or_error(::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0)));
}

result<unique_fd> make_signalfd(const sigset_t& set) {
  return fd_or_error(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
}

result<std::pair<unique_fd, unique_fd>> make_notify_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) != 0) return last_error();
  own_fd(fds[0]);
  own_fd(fds[1]);
  std::pair<unique_fd, unique_fd> pair{unique_fd(fds[0]), unique_fd(fds[1])};
  int on = 1;
  if (::setsockopt(fds[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) return last_error();
  if (::fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) return last_error();
  return pair;
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

std::optional<int> oom_score_adj() {
  auto f = open_file("/proc/self/oom_score_adj", O_RDONLY);
  char buf[16] = {};
  if (!f) return std::nullopt;
  auto n = read(f->get(), buf, sizeof buf - 1);
  if (!n || n.value() == 0) return std::nullopt;
  return std::atoi(buf);
}

bool set_oom_score_adj(int value) {
  auto f = open_file("/proc/self/oom_score_adj", O_WRONLY);
  if (!f) return false;
  auto text = std::to_string(value);
  return !write_all(f->get(), text.data(), text.size());
}

result<unique_fd> open_file(const char* path, int flags, unsigned mode) {
  return fd_or_error(retry_eintr([&] { return ::open(path, flags | O_CLOEXEC, static_cast<mode_t>(mode)); }));
}

result<unique_fd> make_unix_socket(bool nonblocking) {
  return fd_or_error(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
}

int accept_connection(int listen_fd, std::error_code& ec) noexcept {
  int fd = retry_eintr([&] { return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK); });
  ec = fd < 0 ? last_error() : std::error_code();
  return fd;
}

result<unique_fd> accept(int listen_fd) noexcept {
  std::error_code ec;
  int fd = accept_connection(listen_fd, ec);
  if (fd < 0) return ec;
  own_fd(fd);
  return unique_fd(fd);
}

void close_connection(int fd) noexcept { (void)::close(fd); }  // never retried: see unique_fd

std::error_code shutdown_sending(int fd) noexcept {
  return ::shutdown(fd, SHUT_WR) < 0 ? last_error() : std::error_code();
}

namespace {
std::optional<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return std::nullopt;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}
}  // namespace

std::error_code connect_unix(int fd, const std::string& path) noexcept {
  auto addr = unix_address(path);
  if (!addr) return std::make_error_code(std::errc::filename_too_long);
  auto* sa = reinterpret_cast<const sockaddr*>(&*addr);
  // Not retried: after EINTR a connect goes on by itself (a unix one does not block).
  return ::connect(fd, sa, sizeof *addr) != 0 ? last_error() : std::error_code();
}

std::error_code bind_unix(int fd, const std::string& path, unsigned mode) noexcept {
  auto addr = unix_address(path);
  if (!addr) return std::make_error_code(std::errc::filename_too_long);
  mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  int saved = errno;
  ::umask(old);
  return rc != 0 ? std::error_code(saved, std::system_category()) : std::error_code();
}

std::error_code listen(int fd, int backlog) noexcept {
  return ::listen(fd, backlog) != 0 ? last_error() : std::error_code();
}

result<peer> peer_of(int fd) noexcept {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return last_error();
  return peer{cred.uid, cred.pid};
}

std::error_code lock_exclusive(int fd) noexcept {
  return retry_eintr([&] { return ::flock(fd, LOCK_EX | LOCK_NB); }) != 0 ? last_error() : std::error_code();
}

result<std::size_t> read_start(int fd, void* buf, std::size_t len) noexcept {
  ssize_t n = retry_eintr([&] { return ::pread(fd, buf, len, 0); });
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

bool is_terminal(int fd) noexcept { return ::isatty(fd) == 1; }

std::optional<termios> terminal_settings(int fd) noexcept {
  termios t{};
  if (::tcgetattr(fd, &t) != 0) return std::nullopt;
  return t;
}

void set_terminal(int fd, const termios& settings) noexcept { (void)::tcsetattr(fd, TCSANOW, &settings); }

void make_dirs(const std::string& path, unsigned mode) noexcept {
  for (std::size_t pos = 1; pos != std::string::npos; pos = path.find('/', pos + 1))
    (void)::mkdir(path.substr(0, pos).c_str(), static_cast<mode_t>(mode));
  (void)::mkdir(path.c_str(), static_cast<mode_t>(mode));
}

result<unique_fd> make_tcp_socket(int family) noexcept {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  return unique_fd(fd);
}

std::error_code set_socket_option(int fd, int level, int name, const void* value, unsigned len) noexcept {
  return ::setsockopt(fd, level, name, value, len) != 0 ? last_error() : std::error_code();
}

std::error_code bind(int fd, const sockaddr* addr, unsigned len) noexcept {
  return ::bind(fd, addr, len) != 0 ? last_error() : std::error_code();
}

sockaddr_storage local_address(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) ss = {};
  return ss;
}

result<unique_fd> duplicate(int fd) noexcept { return fd_or_error(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

std::error_code change_dir(const std::string& path) noexcept {
  return ::chdir(path.c_str()) != 0 ? last_error() : std::error_code();
}

void set_umask(unsigned mask) noexcept { ::umask(static_cast<mode_t>(mask)); }

result<std::size_t> read(int fd, void* buf, std::size_t len) noexcept {
  ssize_t n = retry_eintr([&] { return ::read(fd, buf, len); });
  if (n < 0) return last_error();
  return static_cast<std::size_t>(n);
}

result<std::size_t> send(int fd, const void* buf, std::size_t len) noexcept {
  std::error_code ec;
  std::size_t n = send_now(fd, buf, len, ec);
  if (ec) return ec;
  return n;
}

std::size_t receive_now(int fd, void* buf, std::size_t len, std::error_code& ec) noexcept {
  ssize_t n = retry_eintr([&] { return ::recv(fd, buf, len, MSG_DONTWAIT); });
  ec = n < 0 ? last_error() : std::error_code();
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::size_t send_now(int fd, const void* buf, std::size_t len, std::error_code& ec) noexcept {
  ssize_t n = retry_eintr([&] { return ::send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL); });
  ec = n < 0 ? last_error() : std::error_code();
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::error_code send_waiting(int fd, const void* buf, std::size_t len) noexcept {
  return retry_eintr([&] { return ::send(fd, buf, len, MSG_NOSIGNAL); }) < 0 ? last_error() : std::error_code();
}

namespace {
std::error_code epoll_ctl(int epfd, int op, int fd, std::uint32_t events, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  return ::epoll_ctl(epfd, op, fd, &ev) != 0 ? last_error() : std::error_code();
}
}  // namespace

std::error_code epoll_add(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept {
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events, data);
}
std::error_code epoll_modify(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept {
  return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, events, data);
}
std::error_code epoll_remove(int epfd, int fd) noexcept { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0); }

std::error_code dup_onto(int fd, int target) noexcept {
  return retry_eintr([&] { return ::dup2(fd, target); }) < 0 ? last_error() : std::error_code();
}

result<int> epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) noexcept {
  int n = retry_eintr([&] { return ::epoll_wait(epfd, events, max, timeout_ms); });
  if (n < 0) return last_error();
  return n;
}

result<datagram> receive_with_credentials(int fd, char* buf, std::size_t len) noexcept {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(16 * sizeof(int))];
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = retry_eintr([&] { return ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
  if (n < 0) return last_error();
  datagram d{static_cast<std::size_t>(n), 0};
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(ucred))) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      d.sender = cred.pid;
    } else if (c->cmsg_type == SCM_RIGHTS) {
      for (std::size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
        (void)::close(passed);
      }
    }
  }
  return d;
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

// Raw syscalls: glibc 2.36's <sys/pidfd.h> lacks extern "C", so its
// declarations do not link from C++.
result<unique_fd> pidfd_open(pid_t pid) noexcept {
  return fd_or_error(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

std::error_code pidfd_send_signal(int pidfd, int sig) noexcept {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0) return last_error();
  return {};
}

result<siginfo_t> waitid_pidfd(int pidfd) noexcept {
  siginfo_t info{};
  int r = retry_eintr([&] {
    return ::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
  });
  if (r != 0) return last_error();
  return info;
}

std::error_code kill_group(pid_t pgid, int sig) noexcept {
  if (::kill(-pgid, sig) != 0 && errno != ESRCH) return last_error();
  return {};
}

std::error_code timerfd_arm(int fd, std::chrono::steady_clock::time_point at) noexcept {
  using namespace std::chrono;
  itimerspec spec{};
  if (at != steady_clock::time_point{}) {
    auto ns = duration_cast<nanoseconds>(at.time_since_epoch()).count();
    if (ns <= 0) ns = 1;  // 0 would disarm; "already due" fires at once
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  }
  if (::timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) return last_error();
  return {};
}

std::uint64_t drain_counter(int fd) noexcept {
  std::uint64_t value = 0;
  if (retry_eintr([&] { return ::read(fd, &value, sizeof value); }) != sizeof value) return 0;
  return value;
}

void eventfd_signal(int fd) noexcept {
  std::uint64_t one = 1;
  // EAGAIN means the counter is already huge: the reader wakes up anyway.
  (void)!::write(fd, &one, sizeof one);
}

int syn_recv_count(int family, std::uint16_t port) noexcept {
  unique_fd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return -1;
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } ask{};
  ask.header.nlmsg_len = sizeof ask;
  ask.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  ask.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  ask.request.sdiag_family = static_cast<std::uint8_t>(family);
  ask.request.sdiag_protocol = IPPROTO_TCP;
  ask.request.idiag_states = 1u << TCP_SYN_RECV;
  ask.request.id.idiag_sport = port;  // the kernel skips other ports
  if (::send(nl.get(), &ask, sizeof ask, 0) != static_cast<ssize_t>(sizeof ask)) return -1;
  int found = 0;
  alignas(nlmsghdr) char buf[16384];
  for (;;) {
    ssize_t n = ::recv(nl.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return found;
      if (h->nlmsg_type == NLMSG_ERROR) return -1;
      auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      found += m->idiag_state == TCP_SYN_RECV && m->id.idiag_sport == port;
    }
  }
}


}  // namespace ufork::sys
