#include "listener.hpp"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "sys/carry.hpp"
#include "sys/event.hpp"
#include "sys/result.hpp"
#include "sys/socket.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/error.hpp"

namespace ufork::http {
namespace {

// getaddrinfo's errors, in its own words.
const std::error_category& resolver_category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int rc) const override { return ::gai_strerror(rc); }
  } category;
  return category;
}

[[noreturn]] void fail(const std::string& endpoint, const std::string& what, std::error_code ec) {
  throw error(ec, "cannot listen on " + endpoint + ": " + what);
}

std::string describe(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

}  // namespace

bound bind_endpoint(const std::string& endpoint, bool reuseport, bool listen_now, int backlog) {
  if (endpoint.rfind("fd:", 0) == 0) {  // a listening socket this process was given (socket activation)
    int fd = -1;
    try {
      fd = std::stoi(endpoint.substr(3));
    } catch (const std::exception&) {
    }
    auto ss = sys::local_address(fd);
    if (fd < 3 || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
      fail(endpoint, "not an inet socket", std::make_error_code(std::errc::not_a_socket));
    (void)sys::take_carried("fd " + std::to_string(fd), false);  // an upgrade kept it open for this image
    sys::carry(fd, "fd " + std::to_string(fd));
    return {sys::unique_fd(fd), describe(ss)};
  }
  // After an in-place upgrade: the old image's socket, bound as this one would be.
  const std::string carried_as = "tcp " + endpoint + (reuseport ? " reuseport" : "") + (listen_now ? "" : " unlistened");
  if (int fd = sys::take_carried(carried_as); fd >= 0) {
    sys::carry(fd, carried_as);
    return {sys::unique_fd(fd), describe(sys::local_address(fd))};
  }
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon + 1 == endpoint.size())
    fail(endpoint, "expected HOST:PORT", std::make_error_code(std::errc::invalid_argument));
  std::string host = endpoint.substr(0, colon), port = endpoint.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535)
    fail(endpoint, "bad port '" + port + "'", std::make_error_code(std::errc::invalid_argument));

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found); rc != 0)
    fail(endpoint, "resolve " + (host.empty() ? std::string("*") : host), std::error_code(rc, resolver_category()));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);

  auto made = sys::make_tcp_socket(found->ai_family);
  if (!made) fail(endpoint, "socket", made.error());
  sys::unique_fd fd = std::move(made).value();
  int on = 1;
  (void)sys::set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (reuseport)
    if (auto ec = sys::set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on))
      fail(endpoint, "SO_REUSEPORT", ec);
  if (auto ec = sys::bind(fd.get(), found->ai_addr, found->ai_addrlen))
    fail(endpoint, ec == std::errc::permission_denied && std::stoi(port) < 1024
                       ? "bind (a port below 1024 needs root or CAP_NET_BIND_SERVICE)" : "bind", ec);
  if (listen_now)
    if (auto ec = sys::listen(fd.get(), backlog)) fail(endpoint, "listen", ec);
  std::string address = describe(sys::local_address(fd.get()));
  sys::carry(fd.get(), carried_as);
  return {std::move(fd), address};
}

std::string every_interface_note(const std::string& address) {
  bool every = address.starts_with("0.0.0.0:") || address.starts_with("[::]:");
  return every ? " (every interface: reachable from other hosts)" : "";
}

bool drop_new_connections(int fd) {
  // Classic BPF on the TCP header (a TCP socket's filter sees it at offset 0).
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),           // the flags byte
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),        // SYN | ACK
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),  // SYN alone: a new connection
      BPF_STMT(BPF_RET | BPF_K, 0),                     // dropped
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),            // the rest kept whole
  };
  sock_fprog program{static_cast<unsigned short>(std::size(code)), code};
  return !sys::set_socket_option(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

bool accept_exclusively(int listen_fd) { return sys::watch_exclusively(listen_fd) > 0; }

bool handshakes_under_way(int listen_fd) {
  sockaddr_storage ss = sys::local_address(listen_fd);
  if (ss.ss_family == AF_INET)
    return sys::syn_recv_count(AF_INET, reinterpret_cast<const sockaddr_in*>(&ss)->sin_port) != 0;
  if (ss.ss_family != AF_INET6) return true;
  // A dual-stack listener's IPv4 clients are listed as IPv4 requests.
  std::uint16_t port = reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port;
  return sys::syn_recv_count(AF_INET6, port) != 0 || sys::syn_recv_count(AF_INET, port) != 0;
}

}  // namespace ufork::http
