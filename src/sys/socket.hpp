// The syscall layer, sockets: unix, TCP, datagrams with credentials, the
// connections of the HTTP worker, and sock_diag.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/export.hpp"

namespace ufork::sys {

// A unix stream socket, CLOEXEC; nonblocking if asked.
UFORK_API result<unique_fd> make_unix_socket(bool nonblocking);
// Unix sockets by path. connect: EINTR retried. bind: with mode >= 0 the
// socket file is created with only `mode`'s bits (the umask covers bind's
// moment); with -1, as the umask says.
UFORK_API std::error_code connect_unix(int fd, const std::string& path) noexcept;
std::error_code bind_unix(int fd, const std::string& path, int mode) noexcept;
UFORK_API std::error_code listen(int fd, int backlog) noexcept;
// SO_PEERCRED: the uid and pid of a unix socket's peer.
struct peer {
  uid_t uid = 0;
  pid_t pid = 0;
};
result<peer> peer_of(int fd) noexcept;

// Inet sockets (the HTTP helper, --bind): a TCP socket of family, CLOEXEC
// and not registered as ufork's own: it is for the workers, who inherit it.
// setsockopt(2); bind(2); getsockname(2).
// Exported from a shared libufork for ufork-http, as is listen().
UFORK_API result<unique_fd> make_tcp_socket(int family) noexcept;
UFORK_API std::error_code set_socket_option(int fd, int level, int name, const void* value, unsigned len) noexcept;
UFORK_API std::error_code bind(int fd, const sockaddr* addr, unsigned len) noexcept;
UFORK_API sockaddr_storage local_address(int fd) noexcept;  // zeroed if unknown
// "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock"; for a socket, "fd
// N" if it will not say.
UFORK_API std::string describe(const sockaddr_storage& address);
UFORK_API std::string address_of(int fd);
// getpeername(2): zeroed if unknown. An inet address's host ("127.0.0.1",
// "::1") and port; empty for another family. Whether text is an IPv4 or
// IPv6 address (inet_pton).
UFORK_API sockaddr_storage peer_address(int fd) noexcept;
UFORK_API std::pair<std::string, std::uint16_t> host_and_port(const sockaddr_storage& address);
UFORK_API bool is_ip_address(const std::string& text) noexcept;
// Whether fd is a socket that listens (SO_ACCEPTCONN); a listening
// socket's accept queue: connections waiting for accept(2) (TCP: TCP_INFO;
// unix: unix_diag's RQLEN, a module the kernel may lack); nullopt if the
// kernel would not say.
bool is_listening(int fd) noexcept;
std::optional<int> accept_queue(int fd) noexcept;
// A listening TCP socket's accept queue alone (one getsockopt), for the
// HTTP worker's accept path.
UFORK_API std::optional<int> tcp_accept_queue(int fd) noexcept;
// TCP requests of `family` in SYN_RECV on local `port` (network order), from
// one sock_diag dump (ss's source); -1 if the kernel would not say.
int syn_recv_count(int family, std::uint16_t port) noexcept;

// accept4(2), the new socket nonblocking and CLOEXEC: a connection of
// ufork's own (registered), or -1 and ec; EAGAIN (none queued), EMFILE as
// errors. The HTTP worker's connections are not ufork's own descriptors
// (no registry: a connection is made and closed per request at times):
// accept_connection, and close_connection to close one; shutdown(2) of the
// sending side. Exported from a shared libufork for ufork-http.
result<unique_fd> accept(int listen_fd) noexcept;
UFORK_API int accept_connection(int listen_fd, std::error_code& ec) noexcept;
UFORK_API void close_connection(int fd) noexcept;
UFORK_API std::error_code shutdown_sending(int fd) noexcept;

// send(2) without blocking or SIGPIPE; EAGAIN is an error (would_block).
result<std::size_t> send(int fd, const void* buf, std::size_t len) noexcept;
// The HTTP worker's side of a connection, without making its socket
// non-blocking first (a syscall per connection saved): recv(2) and send(2)
// with MSG_DONTWAIT (and MSG_NOSIGNAL). The bytes moved (0 from recv: the
// peer's end), or 0 and ec (EAGAIN when nothing is there, or no room).
// Exported from a shared libufork for ufork-http.
UFORK_API std::size_t receive_now(int fd, void* buf, std::size_t len, std::error_code& ec) noexcept;
UFORK_API std::size_t send_now(int fd, const void* buf, std::size_t len, std::error_code& ec) noexcept;
// send(2) of all of buf, waiting for room (a worker's notify datagram, a
// control client's line), without SIGPIPE.
UFORK_API std::error_code send_waiting(int fd, const void* buf, std::size_t len) noexcept;

// Notify sockets. A SOCK_DGRAM socketpair: [0] non-blocking with
// SO_PASSCRED (the arbiter's), [1] blocking (the workers'), both CLOEXEC.
result<std::pair<unique_fd, unique_fd>> make_notify_pair();
// A SOCK_DGRAM socket bound to an abstract unix name (no file), CLOEXEC,
// non-blocking, with SO_PASSCRED: the NOTIFY_SOCKET of exec'd workers.
result<unique_fd> make_notify_listener(const std::string& abstract_name);
// A datagram to a NOTIFY_SOCKET address: a path, or "@name" (abstract),
// from `fd`, an unbound SOCK_DGRAM socket (make_datagram_socket).
result<unique_fd> make_datagram_socket();
std::error_code send_notify(int fd, const std::string& address, const std::string& text) noexcept;
// A datagram on a SO_PASSCRED socket: its size and the sender's pid (0 if
// the kernel attached no credentials). Any fds the sender passed are
// closed at once (they would leak into the arbiter, and from it into later
// workers), but for the first one when `passed` asks for it. Non-blocking;
// EAGAIN is an error.
struct datagram {
  std::size_t size = 0;
  pid_t sender = 0;
};
result<datagram> receive_with_credentials(int fd, char* buf, std::size_t len, unique_fd* passed = nullptr) noexcept;

// Messages that carry fds (SCM_RIGHTS): a mold's channel to the arbiter.
// A SOCK_SEQPACKET socketpair, both ends blocking and CLOEXEC (not
// registered: the caller says whose they are).
result<std::pair<unique_fd, unique_fd>> make_packet_pair() noexcept;
// One message of len bytes with fds[0..n) (n <= 4), waiting for room.
std::error_code send_with_fds(int fd, const void* buf, std::size_t len, const int* fds, std::size_t n) noexcept;
// One message into buf, waiting for it: its size (0: the peer closed), and
// the fds it carried into fds[0..max) (CLOEXEC, not registered), any more
// closed; *got says how many.
result<std::size_t> receive_with_fds(int fd, void* buf, std::size_t len, unique_fd* fds, std::size_t max,
                                     std::size_t* got) noexcept;

// Whether syslog(3) would reach a daemon: a connect to /dev/log (datagram,
// then stream, as glibc tries); syslog(3) itself drops lines silently.
UFORK_API std::error_code syslog_reachable() noexcept;

}  // namespace ufork::sys
