// `ufork run --bind`: the listening sockets, bound once in the arbiter
// before any fork and handed to every worker as fds 3, 4, ...
#pragma once

#include <string>
#include <vector>

namespace ufork::cli {

struct bind_spec {
  std::string text;  // as given, for messages
  std::string host, port;          // tcp
  std::string path;                // unix
  int mode = -1;                   // unix: chmod after bind; -1: the umask's
  std::string owner, group;        // unix: chown after bind
  std::string name;                // LISTEN_FDNAMES
};

// "127.0.0.1:8080", "[::1]:8080", ":8080" or "unix:/run/app.sock" followed
// by ",name=NAME", and for unix ",mode=0660", ",owner=USER", ",group=GROUP".
// A relative unix path is made absolute. Throws std::invalid_argument
// naming the address.
bind_spec parse_bind(const std::string& text, int index);

// How many listening sockets a service manager passed to this process
// (LISTEN_FDS, for our LISTEN_PID), at fds 3, 4, ...; 0 if none.
int activated_count();
// Unsets LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES once taken, as
// sd_listen_fds(1) does.
void forget_activation();

class listeners {
 public:
  // First the sockets a service manager passed to this process (socket
  // activation: LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, as sd_listen_fds()
  // reads them; the variables are then unset), then each spec, bound and
  // listening. Throws std::runtime_error naming the address.
  explicit listeners(const std::vector<bind_spec>& specs);
  ~listeners();  // closes them and removes the unix socket files made
  listeners(const listeners&) = delete;
  listeners& operator=(const listeners&) = delete;
  const std::vector<int>& fds() const noexcept { return fds_; }
  const std::vector<std::string>& names() const noexcept { return names_; }
  const std::vector<std::string>& addresses() const noexcept { return addresses_; }

 private:
  void adopt_activated();
  void close_all() noexcept;
  std::vector<int> fds_;
  std::vector<std::string> names_, addresses_, files_;
};

}  // namespace ufork::cli
