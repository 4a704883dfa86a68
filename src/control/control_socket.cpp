// The control socket's transport: accept, read lines, write answers.
#include "control/control_socket.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control/commands.hpp"
#include "sys/sys.hpp"
#include "ufork/error.hpp"

namespace ufork {

namespace {

std::string error_line(const std::string& why) { return answer_line({false, why, {}}); }

sockaddr_un address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    throw error(std::make_error_code(std::errc::filename_too_long),
                "control socket path must be 1 to " + std::to_string(sizeof addr.sun_path - 1) + " bytes: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// A socket file left by a crashed arbiter is removed; a live one is not.
void clear_stale(const std::string& path, const sockaddr_un& addr) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (!S_ISSOCK(st.st_mode))
    throw error(std::make_error_code(std::errc::file_exists), "control socket: " + path + " exists and is not a socket");
  auto made = sys::make_unix_socket(false);
  if (!made) throw error(made.error(), "socket");
  sys::unique_fd probe = std::move(made).value();
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
    throw error(std::make_error_code(std::errc::address_in_use),
                "control socket: another arbiter answers on " + path);
  if (errno != ECONNREFUSED)
    throw error(errno, std::system_category(), "control socket: cannot probe " + path);
  if (::unlink(path.c_str()) != 0) throw_errno("control socket: unlink stale " + path);
}

}  // namespace

control_server::control_server(reactor& loop, std::string path, int max_clients, answer_fn answer, log_fn log)
    : loop_(loop), path_(std::move(path)), max_clients_(max_clients), answer_(std::move(answer)), log_(std::move(log)) {
  sockaddr_un addr = address(path_);
  clear_stale(path_, addr);
  auto made = sys::make_unix_socket(true);
  if (!made) throw error(made.error(), "socket(control)");
  listen_ = std::move(made).value();
  // Created 0600: the umask covers the moment between bind and chmod.
  mode_t old = ::umask(0177);
  int bound = ::bind(listen_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (bound != 0) throw_errno("bind(" + path_ + ")");
  if (::chmod(path_.c_str(), 0600) != 0 || ::listen(listen_.get(), 128) != 0) {
    int saved = errno;
    ::unlink(path_.c_str());
    throw error(saved, std::system_category(), "control socket " + path_);
  }
  // Held in reserve: with the fd table full, accept fails with EMFILE and the
  // connection stays queued, so a level-triggered loop would spin. Closing
  // this one lets us accept and refuse it (libuv and nginx do the same).
  auto reserve = sys::open_dev_null(O_RDONLY);
  if (!reserve) throw error(reserve.error(), "control socket: open(/dev/null)");
  reserve_ = std::move(reserve).value();
  listen_token_ = loop_.add(listen_.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
}

control_server::~control_server() {
  for (auto& [id, c] : clients_) loop_.remove(c.token);
  loop_.remove(listen_token_);
  (void)::unlink(path_.c_str());
}

void control_server::refuse(sys::unique_fd fd, const std::string& why) {
  std::string line = error_line(why) + "\n";
  (void)sys::send(fd.get(), line.data(), line.size());  // best effort: it is going
}

void control_server::on_accept() {
  for (;;) {
    auto accepted = sys::accept(listen_.get(), true);
    if (!accepted) {
      auto ec = accepted.error();
      if (ec == std::errc::connection_aborted) continue;
      if (ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system) out_of_fds();
      return;  // EAGAIN: all accepted
    }
    sys::unique_fd fd = std::move(accepted).value();
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != ::geteuid() && cred.uid != 0)) {
      log_("control: refused pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid) +
           ": only uid " + std::to_string(::geteuid()) + " or root may connect");
      refuse(std::move(fd), "permission denied");
      continue;
    }
    if (static_cast<int>(clients_.size()) >= max_clients_) {
      log_("control: refused pid " + std::to_string(cred.pid) + ": " + std::to_string(max_clients_) +
           " clients connected already");
      refuse(std::move(fd), "too many control clients");
      continue;
    }
    std::uint64_t id = next_id_++;
    client& c = clients_[id];
    c.fd = std::move(fd);
    c.events = EPOLLIN;
    c.token = loop_.add(c.fd.get(), c.events, [this, id](std::uint32_t ev) { on_client(id, ev); });
  }
}

// With the fd table full, accept4 fails before it looks at the queue, and
// the queued connection keeps a level-triggered listener readable: calling
// it again would spin. The reserve fd lets us take the connection that woke
// us and refuse it; then the listener leaves epoll until an fd is free.
void control_server::out_of_fds() {
  if (reserve_) {
    reserve_.reset();
    if (auto victim = sys::accept(listen_.get(), false))
      refuse(std::move(victim).value(), "the arbiter is out of file descriptors");
  }
  loop_.modify(listen_token_, 0);
  paused_ = true;
  log_("control: out of file descriptors; not accepting clients until one is free");
}

void control_server::resume_if_fds_free() {
  if (!paused_) return;
  if (!reserve_) {
    auto r = sys::open_dev_null(O_RDONLY);
    if (!r) return;
    reserve_ = std::move(r).value();
  }
  if (!sys::open_dev_null(O_RDONLY)) return;  // one more fd than the reserve: closed at once
  paused_ = false;
  loop_.modify(listen_token_, EPOLLIN);
  log_("control: accepting clients again");
}

void control_server::on_client(std::uint64_t id, std::uint32_t events) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  client& c = it->second;
  if (events & EPOLLIN) {
    char buf[16384];
    auto n = sys::read(c.fd.get(), buf, sizeof buf);
    if (!n && sys::would_block(n.error())) return;
    if (!n || n.value() == 0) {  // gone (or reset): answers nobody will read are dropped
      drop(id);
      return;
    }
    c.in.append(buf, n.value());
    read_lines(c);
  }
  if (!write_out(c)) drop(id);
}

void control_server::read_lines(client& c) {
  auto too_long = [&c] {  // answered, then the client is closed
    c.out += error_line("line longer than 64 KiB") + "\n";
    c.closing = true;
  };
  std::size_t start = 0, nl;
  while (!c.closing && (nl = c.in.find('\n', start)) != std::string::npos) {
    std::string_view line(c.in.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line)
      too_long();
    else
      c.out += answer_(line) + "\n";
    start = nl + 1;
  }
  c.in.erase(0, start);
  if (c.in.size() > max_line && !c.closing) too_long();  // and no end in sight
  if (c.closing) c.in.clear();
}

bool control_server::write_out(client& c) {
  while (!c.out.empty()) {
    auto n = sys::send(c.fd.get(), c.out.data(), c.out.size());
    if (n && n.value() > 0) {
      c.out.erase(0, n.value());
      continue;
    }
    if (!n && sys::would_block(n.error())) break;
    return false;  // EPIPE, ECONNRESET: gone
  }
  if (c.out.size() > max_unread) {
    log_("control: dropped a client that does not read its answers");
    return false;
  }
  if (c.out.empty() && c.closing) return false;
  // Wait for room only while answers are pending; stop reading from a client
  // that is being closed.
  std::uint32_t events = 0;
  if (!c.closing) events |= EPOLLIN;
  if (!c.out.empty()) events |= EPOLLOUT;
  if (events != c.events) loop_.modify(c.token, c.events = events);  // not a syscall per answer
  return true;
}

void control_server::drop(std::uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  loop_.remove(it->second.token);
  clients_.erase(it);
}

}  // namespace ufork
