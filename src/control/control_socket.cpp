// The control socket's transport: accept, read lines, write answers.
#include "control/control_socket.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/un.h>

#include <charconv>
#include <filesystem>
#include <utility>

#include "control/commands.hpp"
#include "net/address.hpp"
#include "sys/carry.hpp"
#include "sys/fd.hpp"
#include "sys/result.hpp"
#include "sys/socket.hpp"
#include "sys/unique_fd.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {

namespace {

std::string error_line(const std::string& why) { return answer_line({false, why, {}}); }

constexpr std::size_t max_path = sizeof(sockaddr_un::sun_path) - 1;

}  // namespace

control_server::control_server(reactor& loop, std::string path, int max_clients, answer_fn answer, log_fn log)
    : loop_(loop), path_(std::move(path)), max_clients_(max_clients), answer_(std::move(answer)), log_(std::move(log)) {
  if (path_.empty() || path_.size() > max_path)
    throw error(std::make_error_code(std::errc::filename_too_long),
                "control socket path must be 1 to " + std::to_string(max_path) + " bytes: " + path_);
  const std::string carried_as = "unix " + path_;
  if (int fd = sys::take_carried(carried_as); fd >= 0) {  // no moment without it across an upgrade
    sys::own_fd(fd);
    listen_.reset(fd);
  } else {
    // A socket file left by a crashed arbiter is replaced; a live one refused.
    listen_ = net::listen_unix(path_, {0600, "", "", 128, true, "control socket " + path_});
  }
  sys::carry(listen_.get(), carried_as);
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
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

void control_server::refuse(sys::unique_fd fd, const std::string& why) {
  std::string line = error_line(why) + "\n";
  (void)sys::send(fd.get(), line.data(), line.size());  // best effort: it is going
}

void control_server::log_refusal(const std::string& line) {
  last_refusal_ = line;
  ++refusals_unlogged_;
  log_refusals_due();
}

void control_server::log_refusals_due() {
  auto now = std::chrono::steady_clock::now();
  if (refusals_unlogged_ == 0 || now - refusal_logged_ < std::chrono::seconds(1)) return;
  log_(refusals_unlogged_ == 1 ? last_refusal_
                               : last_refusal_ + " (and " + std::to_string(refusals_unlogged_ - 1) +
                                     " more refused since the last such line)");
  refusals_unlogged_ = 0;
  refusal_logged_ = now;
}

void control_server::on_accept() {
  for (;;) {
    auto accepted = sys::accept(listen_.get());
    if (!accepted) {
      auto ec = accepted.error();
      if (ec == std::errc::connection_aborted) continue;
      if (ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system) out_of_fds();
      return;  // EAGAIN: all accepted
    }
    sys::unique_fd fd = std::move(accepted).value();
    auto peer = sys::peer_of(fd.get());
    sys::peer cred = peer ? peer.value() : sys::peer{static_cast<uid_t>(-1), 0};
    if (!peer || (cred.uid != sys::effective_uid() && cred.uid != 0)) {
      log_refusal("control: refused pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid) +
                  ": only uid " + std::to_string(sys::effective_uid()) + " or root may connect");
      refuse(std::move(fd), "permission denied");
      continue;
    }
    if (static_cast<int>(clients_.size()) >= max_clients_) {
      log_refusal("control: refused pid " + std::to_string(cred.pid) + ": " + std::to_string(max_clients_) +
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
    if (auto victim = sys::accept(listen_.get()))
      refuse(std::move(victim).value(), "the arbiter is out of file descriptors");
  }
  loop_.modify(listen_token_, 0);
  paused_ = true;
  ++pauses_;
  if (std::exchange(starved_, true)) return;  // said once for a time of want, however often the table fills
  log_("control: out of file descriptors; not accepting clients until one is free");
}

void control_server::resume_if_fds_free() {
  log_refusals_due();
  if (!starved_) return;
  auto now = std::chrono::steady_clock::now();
  if (!paused_) {  // the want is over once a second has gone by without the table filling
    if (now - resumed_at_ < std::chrono::seconds(1)) return;
    starved_ = false;
    log_("control: accepting clients again" +
         (pauses_ > 1 ? " (the fd table filled " + std::to_string(pauses_) + " times meanwhile)" : std::string()));
    pauses_ = 0;
    return;
  }
  if (!reserve_) {
    auto r = sys::open_dev_null(O_RDONLY);
    if (!r) return;
    reserve_ = std::move(r).value();
  }
  if (!sys::open_dev_null(O_RDONLY)) return;  // one more fd than the reserve: closed at once
  paused_ = false;
  resumed_at_ = now;
  loop_.modify(listen_token_, EPOLLIN);
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
  if (c.follow) {
    c.in.clear();
    return;
  }
  auto too_long = [&c] {  // answered, then the client is closed
    c.out += error_line("line longer than 64 KiB") + "\n";
    c.closing = true;
  };
  std::size_t start = 0, nl;
  while (!c.closing && !c.follow && (nl = c.in.find('\n', start)) != std::string::npos) {
    std::string_view line(c.in.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line)
      too_long();
    else if (line == "follow" || line.starts_with("follow "))
      c.out += start_following(c, line) + "\n";
    else
      c.out += answer_(line, c.fd.get()) + "\n";
    start = nl + 1;
  }
  c.in.erase(0, start);
  if (c.in.size() > max_line && !c.closing && !c.follow) too_long();  // and no end in sight
  if (c.closing || c.follow) c.in.clear();  // a follower's further lines are not commands
}

std::variant<follow_spec, std::string> parse_follow(std::string_view line) {
  follow_spec f;
  auto words = split_words(line);
  for (std::size_t i = 1; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--json") {
      f.json = true;
    } else if (w == "--events") {
      f.events = true;
    } else if (w == "--worker" && i + 1 < words.size()) {
      const std::string& n = words[++i];
      auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), f.worker);
      if (ec != std::errc() || end != n.data() + n.size() || f.worker < 0)
        return "follow: --worker takes an id, 0 or more: " + n;
    } else {
      return "follow: unknown argument '" + w + "'; follow [--json] [--events] [--worker ID]";
    }
  }
  return f;
}

std::string control_server::start_following(client& c, std::string_view line) {
  auto parsed = parse_follow(line);
  if (auto* why = std::get_if<std::string>(&parsed)) return error_line(*why);
  const follow_spec& f = std::get<follow_spec>(parsed);
  c.follow = f;
  ++followers_;
  std::string what = f.worker >= 0 ? "worker " + std::to_string(f.worker) + "'s lines" : "the workers' lines";
  return answer_line(ok("following " + what + (f.events ? " and the pool's events" : "") + " as they come",
                        R"({"following":true})"));
}

void control_server::publish(const log_line& line) {
  if (followers_ == 0) return;  // the common case, on every line of every worker
  for (auto& [id, c] : clients_) {
    if (!c.follow || c.closing) continue;
    const follow_spec& f = *c.follow;
    if (line.stream == stream_kind::arbiter ? !f.events : f.worker >= 0 && line.id != f.worker) continue;
    if (f.json) {
      c.out += format_line(line, log_format::json);
    } else {
      c.out += format_prefix(line);
      c.out += line.text;
    }
    c.out += '\n';
    if (c.out.size() > max_unread) {
      // Fallen behind: the line being sent is finished, then the reason,
      // then the connection is closed; what it has not read is dropped.
      c.out.resize(c.out.find('\n') + 1);
      c.out += error_line("follow: dropped, more than 1 MiB of lines behind") + "\n";
      c.closing = true;
      ++followers_dropped_;
    }
  }
}

void control_server::flush_followers() {
  if (followers_ == 0 && followers_dropped_ == 0) return;
  std::vector<std::uint64_t> gone;
  for (auto& [id, c] : clients_)
    if (c.follow && !c.out.empty() && !write_out(c)) gone.push_back(id);
  for (auto id : gone) drop(id);
  if (auto n = std::exchange(followers_dropped_, 0))
    log_("control: dropped " + std::to_string(n) + " follower(s) more than 1 MiB of lines behind");
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
  if (it->second.follow) --followers_;
  clients_.erase(it);
}

}  // namespace ufork
