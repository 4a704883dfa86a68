#include "net/address.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <filesystem>
#include <memory>

#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "sys/socket.hpp"
#include "ufork/error.hpp"

namespace ufork::net {
namespace {

// getaddrinfo's errors, in its own words.
const std::error_category& resolver_category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int rc) const override { return ::gai_strerror(rc); }
  } category;
  return category;
}

[[noreturn]] void fail(const std::string& text, const std::string& what, std::error_code ec) {
  throw error(ec, "cannot listen on " + text + ": " + what);
}

// A socket file left by a crash is removed; one another process answers on,
// or a file that is not a socket, is refused.
void clear_stale(const std::string& path, const std::string& label) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto st = fs::symlink_status(path, ec);
  if (ec || !fs::exists(st)) return;  // nothing there
  if (!fs::is_socket(st)) fail(label, "it exists and is not a socket", std::make_error_code(std::errc::file_exists));
  auto probe = sys::make_unix_socket(false);
  if (!probe) fail(label, "socket", probe.error());
  ec = sys::connect_unix(probe->get(), path);
  if (!ec) fail(label, "another process answers there", std::make_error_code(std::errc::address_in_use));
  if (ec != std::errc::connection_refused) fail(label, "probe the socket there", ec);
  if (!fs::remove(path, ec) && ec) fail(label, "remove the stale socket", ec);
}

}  // namespace

std::optional<host_port> split_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  host_port hp{text.substr(0, colon), text.substr(colon + 1)};
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  if (hp.port.empty() || hp.port.size() > 5 || hp.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(hp.port) > 65535)
    return std::nullopt;
  return hp;
}

sys::unique_fd listen_tcp(const std::string& text, const host_port& where, const tcp_options& how) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const char* host = where.host.empty() ? nullptr : where.host.c_str();
  if (int rc = ::getaddrinfo(host, where.port.c_str(), &hints, &found); rc != 0)
    fail(text, "resolve " + (host ? where.host : std::string("*")), std::error_code(rc, resolver_category()));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);

  auto made = sys::make_tcp_socket(found->ai_family);
  if (!made) fail(text, "socket", made.error());
  sys::unique_fd fd = std::move(made).value();
  int on = 1;
  (void)sys::set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (how.reuseport)
    if (auto ec = sys::set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on)) fail(text, "SO_REUSEPORT", ec);
  if (auto ec = sys::bind(fd.get(), found->ai_addr, found->ai_addrlen))
    fail(text, ec == std::errc::permission_denied && std::stoi(where.port) < 1024
                   ? "bind (a port below 1024 needs root or CAP_NET_BIND_SERVICE)" : "bind", ec);
  if (how.listen_now)
    if (auto ec = sys::listen(fd.get(), how.backlog)) fail(text, "listen", ec);
  return fd;
}

sys::unique_fd listen_unix(const std::string& path, const unix_options& how) {
  const std::string label = how.label.empty() ? "unix:" + path : how.label;
  clear_stale(path, label);
  auto made = sys::make_unix_socket(how.own);
  if (!made) fail(label, "socket", made.error());
  sys::unique_fd fd = std::move(made).value();
  if (!how.own) sys::disown_fd(fd.get());  // the workers' (close-on-exec all the same)
  if (auto ec = sys::bind_unix(fd.get(), path, how.mode)) fail(label, "bind", ec);
  auto undo = [&](const std::string& what, std::error_code ec) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    fail(label, what, ec);
  };
  if (!how.owner.empty() || !how.group.empty()) {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    try {
      if (!how.owner.empty()) uid = sys::lookup_identity(how.owner, "").uid;
      if (!how.group.empty()) gid = sys::lookup_identity("", how.group).gid;
    } catch (const std::invalid_argument& e) {
      undo(e.what(), std::make_error_code(std::errc::invalid_argument));
    }
    if (auto ec = sys::change_owner(path, uid, gid)) undo("chown", ec);
  }
  if (auto ec = sys::listen(fd.get(), how.backlog)) undo("listen", ec);
  return fd;
}

}  // namespace ufork::net
