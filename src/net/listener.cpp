#include "net/listener.hpp"

#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "net/address.hpp"
#include "sys/carry.hpp"
#include "sys/event.hpp"
#include "sys/result.hpp"
#include "sys/socket.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/error.hpp"

#include <filesystem>

namespace ufork::net {

bound bind_endpoint(const std::string& endpoint, bool reuseport, bool listen_now, int backlog) {
  if (endpoint.rfind("fd:", 0) == 0) {  // a listening socket this process was given (socket activation)
    int fd = -1;
    try {
      fd = std::stoi(endpoint.substr(3));
    } catch (const std::exception&) {
    }
    auto ss = sys::local_address(fd);
    if (fd < 3 || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 && ss.ss_family != AF_UNIX))
      throw error(std::make_error_code(std::errc::not_a_socket),
                  "cannot listen on " + endpoint + ": not an inet or unix socket");
    (void)sys::take_carried("fd " + std::to_string(fd), false);  // an upgrade kept it open for this image
    sys::carry(fd, "fd " + std::to_string(fd));
    return {sys::unique_fd(fd), describe(ss), {}};
  }
  if (endpoint.starts_with("unix:")) {
    if (reuseport)
      throw error(std::make_error_code(std::errc::invalid_argument), "cannot listen on " + endpoint + ": SO_REUSEPORT is for TCP");
    if (endpoint.size() == 5) throw error(std::make_error_code(std::errc::invalid_argument), "unix: needs a path");
    std::string path = std::filesystem::absolute(endpoint.substr(5)).string();
    // After an in-place upgrade: the old image's socket (its file in place).
    const std::string carried_as = "unix " + path;
    if (int fd = sys::take_carried(carried_as); fd >= 0) {
      sys::carry(fd, carried_as);
      return {sys::unique_fd(fd), "unix:" + path, path};
    }
    unix_options how;
    how.backlog = backlog;
    sys::unique_fd fd = listen_unix(path, how);
    sys::carry(fd.get(), carried_as);
    return {std::move(fd), "unix:" + path, path};
  }
  // After an in-place upgrade: the old image's socket, bound as this one would be.
  const std::string carried_as = "tcp " + endpoint + (reuseport ? " reuseport" : "") + (listen_now ? "" : " unlistened");
  if (int fd = sys::take_carried(carried_as); fd >= 0) {
    sys::carry(fd, carried_as);
    return {sys::unique_fd(fd), address_of(fd), {}};
  }
  auto where = split_host_port(endpoint);
  if (!where)
    throw error(std::make_error_code(std::errc::invalid_argument), "cannot listen on " + endpoint + ": " + host_port_expected);
  sys::unique_fd fd = listen_tcp(endpoint, *where, {reuseport, listen_now, backlog});
  std::string address = address_of(fd.get());
  sys::carry(fd.get(), carried_as);
  return {std::move(fd), address, {}};
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

std::vector<sys::epoll_registration> accept_exclusively(int listen_fd) { return sys::watch_exclusively(listen_fd); }

bool handshakes_under_way(int listen_fd) {
  sockaddr_storage ss = sys::local_address(listen_fd);
  if (ss.ss_family == AF_INET)
    return sys::syn_recv_count(AF_INET, reinterpret_cast<const sockaddr_in*>(&ss)->sin_port) != 0;
  if (ss.ss_family != AF_INET6) return true;
  // A dual-stack listener's IPv4 clients are listed as IPv4 requests.
  std::uint16_t port = reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port;
  return sys::syn_recv_count(AF_INET6, port) != 0 || sys::syn_recv_count(AF_INET, port) != 0;
}

}  // namespace ufork::net
