#include "control/status_server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>

#include <algorithm>

#include "control/status_page.hpp"
#include "net/listener.hpp"
#include "sys/event.hpp"
#include "sys/fd.hpp"
#include "sys/result.hpp"
#include "sys/socket.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {

std::string response(int code, const char* reason, const char* type, const std::string& body, bool head) {
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n" +
                    (code == 405 ? "Allow: GET, HEAD\r\n" : "") + "\r\n";
  if (!head) out += body;
  return out;
}

}  // namespace

status_server::status_server(reactor& loop, const std::string& address, json_fn json, log_fn log)
    : loop_(loop), json_(std::move(json)), log_(std::move(log)) {
  auto bound = net::bind_endpoint(address, false, true, 64);
  listen_ = std::move(bound.fd);
  address_ = std::move(bound.address);
  // Non-blocking: a client that connects and resets before the accept
  // leaves nothing to accept, and a blocking accept would stall the loop.
  if (auto ec = sys::set_nonblocking(listen_.get())) throw error(ec, "status page: O_NONBLOCK");
  auto timer = sys::make_timerfd();
  if (!timer) throw error(timer.error(), "timerfd (status page)");
  timer_ = std::move(timer).value();
  // One accept per wakeup; the loop is level-triggered.
  listen_token_ = loop_.add(listen_.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
  timer_token_ = loop_.add(timer_.get(), EPOLLIN, [this](std::uint32_t) { on_timer(); });
}

status_server::~status_server() {
  for (auto& [id, c] : conns_) loop_.remove(c.token);
  loop_.remove(listen_token_);
  loop_.remove(timer_token_);
}

void status_server::on_accept() {
  auto accepted = sys::accept(listen_.get());
  if (!accepted) {
    auto ec = accepted.error();
    if (ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system) {
      loop_.modify(listen_token_, 0);  // the queued connection would wake the loop again and again
      paused_ = true;
    }
    return;  // EAGAIN: gone already
  }
  sys::unique_fd fd = std::move(accepted).value();
  if (static_cast<int>(conns_.size()) >= max_clients) {
    std::string busy = response(503, "Service Unavailable", "text/plain", "too many clients\n", false);
    (void)sys::send(fd.get(), busy.data(), busy.size());  // best effort: it is going
    return;
  }
  std::uint64_t id = next_id_++;
  conn& c = conns_[id];
  c.fd = std::move(fd);
  c.deadline = std::chrono::steady_clock::now() + max_time;
  c.token = loop_.add(c.fd.get(), EPOLLIN, [this, id](std::uint32_t ev) { on_conn(id, ev); });
  arm();
}

void status_server::resume_if_fds_free() {
  if (!paused_ || !sys::open_dev_null(O_RDONLY)) return;  // one fd free (closed at once)
  paused_ = false;
  loop_.modify(listen_token_, EPOLLIN);
}

void status_server::on_conn(std::uint64_t id, std::uint32_t events) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  conn& c = it->second;
  if ((events & EPOLLIN) && !c.answered) {
    char buf[4096];
    auto n = sys::read(c.fd.get(), buf, sizeof buf);
    if (!n && sys::would_block(n.error())) return;
    if (!n || n.value() == 0) return close_conn(id);
    c.in.append(buf, n.value());
    auto end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) end = c.in.find("\n\n");
    if ((end == std::string::npos ? c.in.size() : end) > max_request)
      c.out = response(431, "Request Header Fields Too Large", "text/plain", "request over 8 KiB\n", false);
    else if (end != std::string::npos)
      c.out = answer_status_request(std::string_view(c.in).substr(0, end), json_);
    else
      return;  // more to come
    c.answered = true;
    c.in.clear();
  }
  if (c.answered && !write_out(c)) close_conn(id);
}

// Read-only: GET and HEAD of a few paths.
std::string answer_status_request(std::string_view request,
                                  const std::function<std::string(const std::string&, bool)>& answer) {
  std::string_view line = request.substr(0, request.find_first_of("\r\n"));
  auto sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1 || !line.substr(sp2 + 1).starts_with("HTTP/1."))
    return response(400, "Bad Request", "text/plain", "expected: GET PATH HTTP/1.1\n", false);
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  bool head = method == "HEAD";
  if (method != "GET" && !head)
    return response(405, "Method Not Allowed", "text/plain", "read-only: GET and HEAD\n", false);
  std::string_view path = target.substr(0, target.find('?'));
  if (path == "/metrics") {
    std::string text = answer("metrics", false);
    if (!text.empty() && text.back() != '\n') text += '\n';  // the format's last line ends too
    return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, head);
  }
  if (path == "/status" || path == "/workers" || path == "/dead")
    return response(200, "OK", "application/json", answer(std::string(path.substr(1)), true) + "\n", head);
  if (path == "/") return response(200, "OK", "text/html; charset=utf-8", std::string(status_page), head);
  return response(404, "Not Found", "text/plain", "not found; try /, /status, /workers, /dead or /metrics\n", head);
}

bool status_server::write_out(conn& c) {
  while (!c.out.empty()) {
    auto n = sys::send(c.fd.get(), c.out.data(), c.out.size());
    if (n && n.value() > 0) {
      c.out.erase(0, n.value());
      continue;
    }
    if (!n && sys::would_block(n.error())) {
      loop_.modify(c.token, EPOLLOUT);
      return true;
    }
    return false;
  }
  return false;  // all written: done
}

void status_server::close_conn(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  loop_.remove(it->second.token);
  conns_.erase(it);
}

// Connections past their time are closed; the timer is armed for the next.
void status_server::on_timer() {
  (void)sys::drain_counter(timer_.get());
  auto now = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> late;
  for (auto& [id, c] : conns_)
    if (c.deadline <= now) late.push_back(id);
  for (auto id : late) close_conn(id);
  if (!late.empty()) log_("status page: closed " + std::to_string(late.size()) + " connection(s) past 10 s");
  arm();
}

void status_server::arm() {
  auto first = std::chrono::steady_clock::time_point{};
  for (auto& [id, c] : conns_)
    if (first == decltype(first){} || c.deadline < first) first = c.deadline;
  (void)sys::timerfd_arm(timer_.get(), first);  // time_point{}: disarmed
}

}  // namespace ufork
