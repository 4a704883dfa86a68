#include "listen.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "ufork/arbiter.hpp"

namespace ufork::cli {
namespace {

[[noreturn]] void refuse(const std::string& text, const std::string& why) {
  throw std::invalid_argument("--bind " + text + ": " + why);
}

[[noreturn]] void fail(const bind_spec& s, const std::string& what, int err = errno) {
  throw std::runtime_error("cannot listen on " + s.text + ": " + what + (err ? ": " + std::generic_category().message(err) : ""));
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

// "127.0.0.1:8080", "unix:/run/app.sock", or "fd N" if the socket will not say.
std::string address_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "fd " + std::to_string(fd);
  if (ss.ss_family == AF_UNIX) return std::string("unix:") + reinterpret_cast<const sockaddr_un*>(&ss)->sun_path;
  return describe(ss);
}

int listen_tcp(const bind_spec& s, std::string& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(s.host.empty() ? nullptr : s.host.c_str(), s.port.c_str(), &hints, &found); rc != 0)
    fail(s, ::gai_strerror(rc), 0);
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  bool ok = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
            ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd, 4096) == 0;
  int err = errno;
  ::freeaddrinfo(found);
  if (!ok) {
    if (fd >= 0) ::close(fd);
    fail(s, err == EACCES && std::stoi(s.port) < 1024 ? "bind (a port below 1024 needs root or CAP_NET_BIND_SERVICE)" : "bind",
         err);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  address = describe(ss);
  return fd;
}

// A socket file nobody answers on is a leftover: replaced. One that answers
// is another server's.
void clear_stale(const bind_spec& s, const sockaddr_un& addr) {
  struct stat st{};
  if (::lstat(s.path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) fail(s, "exists and is not a socket", 0);
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool answers = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (probe >= 0) ::close(probe);
  if (answers) fail(s, "another process answers there", 0);
  if (::unlink(s.path.c_str()) != 0) fail(s, "unlink the stale socket");
}

int listen_unix(const bind_spec& s) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, s.path.c_str(), s.path.size() + 1);
  clear_stale(s, addr);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(s, "socket");
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    fail(s, "bind", err);
  }
  auto undo = [&](const std::string& what) {
    int err = errno;
    ::close(fd);
    ::unlink(s.path.c_str());
    fail(s, what, err);
  };
  if (s.mode >= 0 && ::chmod(s.path.c_str(), static_cast<mode_t>(s.mode)) != 0) undo("chmod");
  if (!s.owner.empty() || !s.group.empty()) {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    if (!s.owner.empty()) {
      const passwd* pw = ::getpwnam(s.owner.c_str());  // NOLINT(concurrency-mt-unsafe): before any thread
      if (!pw) undo("no user " + s.owner);
      uid = pw->pw_uid;
    }
    if (!s.group.empty()) {
      const group* gr = ::getgrnam(s.group.c_str());  // NOLINT(concurrency-mt-unsafe): before any thread
      if (!gr) undo("no group " + s.group);
      gid = gr->gr_gid;
    }
    if (::chown(s.path.c_str(), uid, gid) != 0) undo("chown");
  }
  if (::listen(fd, 4096) != 0) undo("listen");
  return fd;
}

}  // namespace

bind_spec parse_bind(const std::string& text, int index) {
  bind_spec s;
  s.text = text;
  s.name = "bind" + std::to_string(index);
  std::string address = text.substr(0, text.find(','));
  for (std::size_t at = text.find(','); at != std::string::npos;) {
    std::size_t next = text.find(',', at + 1);
    std::string option = text.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    at = next;
    auto eq = option.find('=');
    std::string key = option.substr(0, eq), value = eq == std::string::npos ? "" : option.substr(eq + 1);
    if (value.empty()) refuse(text, "option '" + option + "' is not KEY=VALUE");
    bool is_unix = address.rfind("unix:", 0) == 0;
    if (key == "name") {
      if (value.find(':') != std::string::npos) refuse(text, "a name has no ':'");
      s.name = value;
    } else if (key == "mode" && is_unix) {
      std::size_t used = 0;
      try {
        s.mode = std::stoi(value, &used, 8);
      } catch (const std::exception&) {
      }
      if (used != value.size() || s.mode < 0 || s.mode > 07777) refuse(text, "mode is octal, e.g. 0660");
    } else if (key == "owner" && is_unix) {
      s.owner = value;
    } else if (key == "group" && is_unix) {
      s.group = value;
    } else {
      refuse(text, "unknown option '" + key + "' (name=, and for unix: mode=, owner=, group=)");
    }
  }
  if (address.rfind("unix:", 0) == 0) {
    s.path = address.substr(5);
    if (s.path.empty()) refuse(text, "unix: needs a path");
    s.path = std::filesystem::absolute(s.path).string();
    if (s.path.size() >= sizeof(sockaddr_un::sun_path)) refuse(text, "the path is too long for a unix socket");
    return s;
  }
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) refuse(text, "expected HOST:PORT or unix:PATH");
  s.host = address.substr(0, colon);
  s.port = address.substr(colon + 1);
  if (s.host.size() >= 2 && s.host.front() == '[' && s.host.back() == ']') s.host = s.host.substr(1, s.host.size() - 2);
  if (s.port.find_first_not_of("0123456789") != std::string::npos || s.port.size() > 5 || std::stoi(s.port) > 65535)
    refuse(text, "bad port '" + s.port + "'");
  return s;
}

listeners::listeners(const std::vector<bind_spec>& specs) {
  adopt_activated();
  try {
    for (const auto& s : specs) {
      std::string address = "unix:" + s.path;
      // After an in-place upgrade, the socket the old image bound for it.
      const std::string carried_as = "bind " + s.text;
      int fd = inherited_socket(carried_as);
      if (fd < 0)
        fd = s.path.empty() ? listen_tcp(s, address) : listen_unix(s);
      else if (s.path.empty())
        address = address_of(fd);
      carry_socket(fd, carried_as);
      fds_.push_back(fd);
      if (!s.path.empty()) files_.push_back(s.path);
      names_.push_back(s.name);
      addresses_.push_back(address);
    }
  } catch (...) {
    close_all();
    throw;
  }
}

listeners::~listeners() { close_all(); }

int activated_count() {
  const char* count = std::getenv("LISTEN_FDS");
  const char* pid = std::getenv("LISTEN_PID");
  if (!count || !pid || std::to_string(::getpid()) != pid) return 0;  // not for us
  return std::max(std::atoi(count), 0);
}

void listeners::adopt_activated() {
  int n = activated_count();
  std::string names = std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
  for (int i = 0; i < n; ++i) {
    int fd = 3 + i;  // SD_LISTEN_FDS_START
    // Ours to hand on, no one else's (an upgrade kept it open for this
    // image: close-on-exec again once the pool is adopted).
    if (inherited_socket("fd " + std::to_string(fd), false) < 0) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
    carry_socket(fd, "fd " + std::to_string(fd));
    std::string name = names.substr(0, names.find(':'));
    names = names.find(':') == std::string::npos ? "" : names.substr(names.find(':') + 1);
    std::string address = address_of(fd);
    fds_.push_back(fd);
    names_.push_back(name.empty() ? "unknown" : name);
    addresses_.push_back(address + " (from the service manager)");
  }
  forget_activation();
}

void forget_activation() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): before any thread
  for (const char* var : {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}) ::unsetenv(var);
}

void listeners::close_all() noexcept {
  for (int fd : fds_) {
    carry_socket(fd, "");
    ::close(fd);
  }
  for (const auto& f : files_) ::unlink(f.c_str());
  fds_.clear();
  files_.clear();
}

}  // namespace ufork::cli
