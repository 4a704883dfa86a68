// Addresses and binding, one part for every listening socket ufork makes:
// the HTTP helper's and the status page's (listener.hpp), `ufork run
// --bind`'s (cli/listen.cpp) and the control socket's. Made with plain
// syscalls in the arbiter (no io_context may exist before fork). In the
// library (part `net`), which libufork-http links.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>

#include "sys/socket.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/export.hpp"

namespace ufork::net {

// "HOST:PORT", "[IPV6]:PORT" or ":PORT" (every interface), split: the
// brackets taken off, the port 0 to 65535. nullopt if it is none of these.
struct host_port {
  std::string host, port;
};
UFORK_API std::optional<host_port> split_host_port(const std::string& text);
// What split_host_port refuses, in a message's words.
inline constexpr const char* host_port_expected = "expected HOST:PORT or [IPV6]:PORT (a port from 0 to 65535)";

// "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock" (sys/socket.hpp).
using sys::address_of;
using sys::describe;

// A TCP socket bound to `where` (resolved with getaddrinfo, SO_REUSEADDR),
// close-on-exec and not one of ufork's own fds: it is for the workers, who
// inherit it. Throws ufork::error "cannot listen on TEXT: WHAT: why" (TEXT
// is the address as the user gave it).
struct tcp_options {
  bool reuseport = false;   // SO_REUSEPORT
  bool listen_now = true;   // else only bound (a --reuseport pool's probe)
  int backlog = 4096;
};
UFORK_API sys::unique_fd listen_tcp(const std::string& text, const host_port& where, const tcp_options& how);

// A unix stream socket listening at path. A socket file nobody answers on is
// a leftover (a crash's): replaced; one that answers is another server's:
// refused, as is a file that is not a socket. The file is created with
// `mode`'s bits (the umask's with -1), then given to owner and group if
// named. `own`: one of ufork's fds (non-blocking: the arbiter's own loop
// accepts on it), else one for the workers. Throws ufork::error "cannot
// listen on LABEL: why"; nothing is left behind.
struct unix_options {
  int mode = -1;
  std::string owner, group;
  int backlog = 4096;
  bool own = false;
  std::string label;  // default: "unix:PATH"
};
UFORK_API sys::unique_fd listen_unix(const std::string& path, const unix_options& how);

}  // namespace ufork::net
