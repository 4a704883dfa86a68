#include "request_view.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "sys/fd.hpp"
#include "sys/socket.hpp"

namespace ufork::python {
namespace {

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// The last of a comma-separated list ("a, b, c" -> "c"), trimmed.
std::string_view last_item(std::string_view list) {
  auto comma = list.rfind(',');
  std::string_view v = comma == std::string_view::npos ? list : list.substr(comma + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// The last item of the last `name` header line (a proxy may add a line
// rather than append to the list); empty if there is none.
std::string_view last_of(const http::request& req, const char* name) {
  std::string_view last;
  for (auto [it, end] = req.equal_range(name); it != end; ++it) last = last_item(sv(it->value()));
  return last;
}

std::string_view unquoted(std::string_view v) {
  return v.size() >= 2 && v.front() == '"' && v.back() == '"' ? v.substr(1, v.size() - 2) : v;
}

}  // namespace

forwarded forwarded_by(const http::request& req) {
  forwarded f;
  auto take = [&f](std::string_view addr, std::string_view scheme) {
    addr = unquoted(addr);
    scheme = unquoted(scheme);
    if (addr.starts_with('['))
      addr = addr.substr(1, addr.find(']') - 1);  // "[2001:db8::1]:4711"
    else if (auto colon = addr.find(':'); colon != std::string_view::npos && colon == addr.rfind(':'))
      addr = addr.substr(0, colon);  // "192.0.2.60:8080" (two colons or more: an IPv6 address as it is)
    if (sys::is_ip_address(std::string(addr))) f.addr = std::string(addr);
    if (scheme == "http" || scheme == "https") f.scheme = std::string(scheme);
  };
  if (req.find("Forwarded") != req.end()) {
    std::string_view element = last_of(req, "Forwarded"), addr, scheme;
    while (!element.empty()) {
      auto semi = element.find(';');
      std::string_view pair = last_item(element.substr(0, semi));
      element = semi == std::string_view::npos ? std::string_view() : element.substr(semi + 1);
      auto eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      std::string key(pair.substr(0, eq));
      for (char& c : key) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      if (key == "for") addr = pair.substr(eq + 1);
      if (key == "proto") scheme = pair.substr(eq + 1);
    }
    take(addr, scheme);
    return f;
  }
  take(last_of(req, "X-Forwarded-For"), last_of(req, "X-Forwarded-Proto"));
  return f;
}

client_view client_of(const http::request& req, const std::vector<std::string>& trusted) {
  client_view v;
  auto peer = http::current_peer();
  if (peer) {
    v.addr = peer->host;
    v.port = peer->port;
  }
  if (!peer || std::ranges::any_of(trusted, [&](const std::string& ip) { return ip == "*" || ip == peer->host; })) {
    forwarded f = forwarded_by(req);
    if (!f.addr.empty()) v.addr = f.addr;
    if (!f.scheme.empty()) v.scheme = f.scheme;
  }
  return v;
}

std::string percent_decoded(std::string_view path) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    int hi = -1, lo = -1;
    if (path[i] == '%' && i + 2 < path.size() && (hi = hex(path[i + 1])) >= 0 && (lo = hex(path[i + 2])) >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(path[i]);
    }
  }
  return out;
}

access_entry::access_entry(int out, std::string who, const http::request& req) : fd_(out), client_(std::move(who)) {
  namespace bhttp = boost::beast::http;
  request_ = http::log_quoted(std::string(sv(req.method_string())) + " " + std::string(sv(req.target())) +
                              (req.version() == 10 ? " HTTP/1.0" : " HTTP/1.1"));
  auto header = [&req](bhttp::field f) {
    auto it = req.find(f);
    return it == req.end() ? std::string("\"-\"") : http::log_quoted(sv(it->value()));
  };
  referer_ = header(bhttp::field::referer);
  agent_ = header(bhttp::field::user_agent);
}

access_entry::~access_entry() {
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t now = std::time(nullptr);
  std::tm t{};
  ::localtime_r(&now, &t);
  char zone[8] = "+0000";
  std::strftime(zone, sizeof zone, "%z", &t);
  char when[40];
  std::snprintf(when, sizeof when, "%02d/%s/%04d:%02d:%02d:%02d %s", t.tm_mday, months[t.tm_mon], t.tm_year + 1900,
                t.tm_hour, t.tm_min, t.tm_sec, zone);
  std::string line = client_ + " - - [" + when + "] " + request_ + " " + std::to_string(status) + " " +
                     (bytes ? std::to_string(bytes) : "-") + " " + referer_ + " " + agent_ + "\n";
  (void)sys::write_all(fd_, line.data(), line.size());
}

}  // namespace ufork::python
