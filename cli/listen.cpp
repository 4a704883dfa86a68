#include "listen.hpp"

#include <sys/un.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "net/address.hpp"
#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "ufork/arbiter.hpp"

namespace ufork::cli {
namespace {

[[noreturn]] void refuse(const std::string& text, const std::string& why) {
  throw std::invalid_argument("--bind " + text + ": " + why);
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
  auto where = net::split_host_port(address);
  if (!where) refuse(text, std::string(net::host_port_expected) + ", or unix:PATH");
  s.host = where->host;
  s.port = where->port;
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
        fd = s.path.empty() ? net::listen_tcp(s.text, {s.host, s.port}, {}).release()
                            : net::listen_unix(s.path, {s.mode, s.owner, s.group, 4096, false, s.text}).release();
      if (s.path.empty()) address = net::address_of(fd);
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
  if (!count || !pid || std::to_string(sys::own_pid()) != pid) return 0;  // not for us
  return std::max(std::atoi(count), 0);
}

void listeners::adopt_activated() {
  int n = activated_count();
  std::string names = std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
  for (int i = 0; i < n; ++i) {
    int fd = 3 + i;  // SD_LISTEN_FDS_START
    // Ours to hand on, no one else's (an upgrade kept it open for this
    // image: close-on-exec again once the pool is adopted).
    if (inherited_socket("fd " + std::to_string(fd), false) < 0) sys::set_cloexec(fd);
    carry_socket(fd, "fd " + std::to_string(fd));
    std::string name = names.substr(0, names.find(':'));
    names = names.find(':') == std::string::npos ? "" : names.substr(names.find(':') + 1);
    std::string address = net::address_of(fd);
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
  for (int fd : fds_) sys::close_fd(fd);  // and carried no more
  std::error_code ignored;
  for (const auto& f : files_) std::filesystem::remove(f, ignored);
  fds_.clear();
  files_.clear();
}

}  // namespace ufork::cli
