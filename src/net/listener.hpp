// Listening sockets for the HTTP helper and the status page, made with
// plain syscalls in the arbiter (no io_context may exist before fork). In
// the library (part `net`), which libufork-http links.
#pragma once

#include <string>
#include <vector>

#include "sys/event.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/export.hpp"

namespace ufork::net {

struct bound {
  sys::unique_fd fd;
  std::string address;  // "127.0.0.1:7777", the port resolved; "unix:/run/app.sock"
  std::string file;     // a unix socket's path, which its binder removes once done with it
};

// Binds HOST:PORT, or unix:PATH (see listen_unix); listens unless
// listen_now is false. "fd:N" takes fd N, a listening inet or unix socket
// this process was given (socket activation). Throws ufork::error with the
// address in its message.
UFORK_API bound bind_endpoint(const std::string& endpoint, bool reuseport, bool listen_now, int backlog);

// ", on every interface" for "0.0.0.0:P" and "[::]:P" (a --bind of ":P"
// binds those: a log line should say so), else "".
UFORK_API std::string every_interface_note(const std::string& address);

// From here on the listening socket drops every new connection's SYN (its
// client retries a second later, and by then the socket is closed: a
// refusal), while handshakes already under way complete and queue. So a
// stop can accept all that is queued and close without resetting any
// connection a client already thinks is open. Returns false (errno set)
// if the filter cannot be attached.
UFORK_API bool drop_new_connections(int fd);

// Whether a TCP handshake to this listening socket's port is under way: a
// request in SYN_RECV, as the kernel's sock_diag lists them (ss's source).
// True when it cannot be told, so a caller waits as if one were.
UFORK_API bool handshakes_under_way(int listen_fd);

// A worker's event loop watches the shared listening socket with
// EPOLLEXCLUSIVE from here on: a new connection wakes one waiting worker,
// not every one (sys::watch_exclusively). The registrations, for taking
// the socket out of the loop's set and putting it back; none if it could
// not be done (the workers are all woken then, as before).
UFORK_API std::vector<sys::epoll_registration> accept_exclusively(int listen_fd);

}  // namespace ufork::net
