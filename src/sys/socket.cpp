// The syscall layer, sockets.
#include "sys/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "sys/detail.hpp"

namespace ufork::sys {

using detail::fd_or_error;
using detail::retry_eintr;


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

std::error_code bind_unix(int fd, const std::string& path, int mode) noexcept {
  auto addr = unix_address(path);
  if (!addr) return std::make_error_code(std::errc::filename_too_long);
  auto* sa = reinterpret_cast<const sockaddr*>(&*addr);
  if (mode < 0) return ::bind(fd, sa, sizeof *addr) != 0 ? last_error() : std::error_code();
  mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  int rc = ::bind(fd, sa, sizeof *addr);
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
  auto* p = static_cast<const char*>(buf);
  while (len > 0) {  // a stream socket may take part (a signal handler interrupted the wait)
    ssize_t n = retry_eintr([&] { return ::send(fd, p, len, MSG_NOSIGNAL); });
    if (n < 0) return last_error();
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return {};
}

namespace {

// recvmsg(2) of one message into buf: the sender's pid, if the kernel
// attached its credentials, into *sender (when not null), and each fd
// passed (CLOEXEC) to take(fd), which keeps it or closes it.
template <class Take>
ssize_t receive_message(int fd, void* buf, std::size_t len, int flags, pid_t* sender, Take&& take) noexcept {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(16 * sizeof(int))];
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = retry_eintr([&] { return ::recvmsg(fd, &msg, flags | MSG_CMSG_CLOEXEC); });
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(ucred)) && sender) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      *sender = cred.pid;
    } else if (c->cmsg_type == SCM_RIGHTS) {
      for (std::size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int one;
        std::memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof one);
        take(one);
      }
    }
  }
  return n;
}

}  // namespace

result<datagram> receive_with_credentials(int fd, char* buf, std::size_t len, unique_fd* passed) noexcept {
  datagram d{};
  ssize_t n = receive_message(fd, buf, len, MSG_DONTWAIT, &d.sender, [passed](int one) {
    if (passed && !*passed) {
      own_fd(one);
      passed->reset(one);
    } else {
      (void)::close(one);
    }
  });
  if (n < 0) return last_error();
  d.size = static_cast<std::size_t>(n);
  return d;
}

result<std::pair<unique_fd, unique_fd>> make_packet_pair() noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return last_error();
  return std::pair{unique_fd(fds[0]), unique_fd(fds[1])};
}

std::error_code send_with_fds(int fd, const void* buf, std::size_t len, const int* fds, std::size_t n) noexcept {
  constexpr std::size_t most = 4;
  if (n > most) return std::make_error_code(std::errc::invalid_argument);
  alignas(cmsghdr) char control[CMSG_SPACE(most * sizeof(int))] = {};
  iovec iov{const_cast<void*>(buf), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (n > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  }
  return retry_eintr([&] { return ::sendmsg(fd, &msg, MSG_NOSIGNAL); }) < 0 ? last_error() : std::error_code();
}

result<std::size_t> receive_with_fds(int fd, void* buf, std::size_t len, unique_fd* fds, std::size_t max,
                                     std::size_t* got) noexcept {
  *got = 0;
  ssize_t n = receive_message(fd, buf, len, 0, nullptr, [&](int one) {
    if (*got < max)
      fds[(*got)++].reset(one);
    else
      (void)::close(one);
  });
  if (n < 0) return last_error();
  return static_cast<std::size_t>(n);
}

sockaddr_storage peer_address(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) ss = {};
  return ss;
}

std::pair<std::string, std::uint16_t> host_and_port(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return {host, ntohs(in->sin_port)};
  }
  if (ss.ss_family != AF_INET6) return {};
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  return {host, ntohs(in6->sin6_port)};
}

bool is_ip_address(const std::string& text) noexcept {
  unsigned char bytes[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, text.c_str(), bytes) == 1 || ::inet_pton(AF_INET6, text.c_str(), bytes) == 1;
}

std::string describe(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_UNIX) return std::string("unix:") + reinterpret_cast<const sockaddr_un*>(&ss)->sun_path;
  auto [host, port] = host_and_port(ss);
  if (ss.ss_family == AF_INET6) host = "[" + host + "]";
  return (host.empty() ? std::string("?") : host) + ":" + std::to_string(port);
}

std::string address_of(int fd) {
  sockaddr_storage ss = local_address(fd);
  return ss.ss_family == AF_UNSPEC ? "fd " + std::to_string(fd) : describe(ss);
}

namespace {

// A sock_diag request (ss's source) sent on a netlink socket of its own: the
// socket to read the answer from, or none.
template <class Request>
unique_fd ask_sock_diag(const Request& request, int flags) noexcept {
  unique_fd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return nl;
  struct {
    nlmsghdr header;
    Request request;
  } ask{};
  ask.header.nlmsg_len = sizeof ask;
  ask.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  ask.header.nlmsg_flags = static_cast<std::uint16_t>(flags);
  ask.request = request;
  if (::send(nl.get(), &ask, sizeof ask, 0) != static_cast<ssize_t>(sizeof ask)) return unique_fd();
  return nl;
}

// A unix socket's connections waiting for accept(2): unix_diag asked for
// the one socket by its inode (ss -x's source).
std::optional<int> unix_accept_queue(int fd) noexcept {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  unix_diag_req request{};
  request.sdiag_family = AF_UNIX;
  request.udiag_states = ~0U;
  request.udiag_ino = static_cast<std::uint32_t>(st.st_ino);
  request.udiag_show = UDIAG_SHOW_RQLEN;
  request.udiag_cookie[0] = request.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
  unique_fd nl = ask_sock_diag(request, NLM_F_REQUEST);
  if (!nl) return std::nullopt;
  alignas(nlmsghdr) char buf[4096];
  ssize_t n = 0;
  do n = ::recv(nl.get(), buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (n <= 0 || !NLMSG_OK(h, n) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY) return std::nullopt;
  auto* attr = reinterpret_cast<rtattr*>(static_cast<char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(unix_diag_msg)));
  int left = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(unix_diag_msg)));
  for (; RTA_OK(attr, left); attr = RTA_NEXT(attr, left))
    if (attr->rta_type == UNIX_DIAG_RQLEN) {
      unix_diag_rqlen q{};
      std::memcpy(&q, RTA_DATA(attr), sizeof q);
      return static_cast<int>(q.udiag_rqueue);
    }
  return std::nullopt;
}

}  // namespace

bool is_listening(int fd) noexcept {
  int listening = 0;
  socklen_t len = sizeof listening;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening != 0;
}

std::optional<int> accept_queue(int fd) noexcept {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return std::nullopt;
  if (domain == AF_UNIX) return unix_accept_queue(fd);
  if (domain != AF_INET && domain != AF_INET6) return std::nullopt;
  return tcp_accept_queue(fd);
}

std::optional<int> tcp_accept_queue(int fd) noexcept {
  tcp_info info{};  // of a listening socket: tcpi_unacked is its accept queue, tcpi_sacked its backlog
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  return static_cast<int>(info.tcpi_unacked);
}

int syn_recv_count(int family, std::uint16_t port) noexcept {
  inet_diag_req_v2 request{};
  request.sdiag_family = static_cast<std::uint8_t>(family);
  request.sdiag_protocol = IPPROTO_TCP;
  request.idiag_states = 1u << TCP_SYN_RECV;
  request.id.idiag_sport = port;  // the kernel skips other ports
  unique_fd nl = ask_sock_diag(request, NLM_F_REQUEST | NLM_F_DUMP);
  if (!nl) return -1;
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

std::error_code syslog_reachable() noexcept {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, "/dev/log");
  std::error_code ec;
  for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
    int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return last_error();
    ec = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? std::error_code() : last_error();
    ::close(fd);
    if (ec != std::errc::wrong_protocol_type) break;
  }
  return ec;
}

result<unique_fd> make_notify_listener(const std::string& abstract_name) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return last_error();
  own_fd(fd);
  unique_fd owned(fd);
  int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) return last_error();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (abstract_name.size() + 1 > sizeof addr.sun_path) return std::make_error_code(std::errc::filename_too_long);
  std::memcpy(addr.sun_path + 1, abstract_name.data(), abstract_name.size());  // sun_path[0] = 0: abstract
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) return last_error();
  return owned;
}

result<unique_fd> make_datagram_socket() {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return last_error();
  own_fd(fd);
  return unique_fd(fd);
}

std::error_code send_notify(int fd, const std::string& address, const std::string& text) noexcept {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (address.empty() || address.size() >= sizeof addr.sun_path) return std::make_error_code(std::errc::invalid_argument);
  std::memcpy(addr.sun_path, address.data(), address.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = 0;  // abstract
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  ssize_t n;
  while ((n = ::sendto(fd, text.data(), text.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len)) < 0 &&
         errno == EINTR) {
  }
  return n < 0 ? last_error() : std::error_code();
}

}  // namespace ufork::sys
