#include "session.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <limits>
#include <string>

namespace ufork::http::detail {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

bhttp::status status_for(const boost::system::error_code& ec) {
  if (ec == bhttp::error::header_limit) return bhttp::status::request_header_fields_too_large;
  if (ec == bhttp::error::body_limit) return bhttp::status::payload_too_large;
  return bhttp::status::bad_request;
}

// The handler's reason phrase, else the status code's: Beast's name, or for
// the few registered codes Boost 1.74 lacks (an ASGI app gives only a
// number: FastAPI's HTTPException(418)) Python's http.HTTPStatus phrase, as
// uvicorn writes; an unregistered code gets none ("HTTP/1.1 420 ", as the
// grammar allows), never Beast's "<unknown-status>".
std::string_view reason_phrase(const response& res) {
  auto given = res.reason();
  if (given != "<unknown-status>") return {given.data(), given.size()};
  switch (res.result_int()) {
    case 103: return "Early Hints";
    case 418: return "I'm a Teapot";
    case 425: return "Too Early";
    default: return "";
  }
}

// A HEAD answer's Content-Length is the GET answer's: its body's size, or
// the handler's own Content-Length (digits) when it gave no body (an app
// that leaves out what HEAD does not send). Empty: the body's size.
std::string_view head_length(const response& res, bool head) {
  if (!head || !res.body().empty()) return {};
  auto given = res.find(bhttp::field::content_length);
  if (given == res.end()) return {};
  std::string_view value{given->value().data(), given->value().size()};
  bool digits = !value.empty() && value.size() <= 19 && std::ranges::all_of(value, [](char c) { return c >= '0' && c <= '9'; });
  return digits ? value : std::string_view{};
}

bool bodiless(const response& res) {
  unsigned status = res.result_int();
  return status < 200 || status == 204 || status == 304;
}

// The response's head, and its body if it has one in `res`, appended to
// `out`, with the framing and Connection the server decides: Beast's
// serializer and its field edits cost more than the rest of a small answer
// (perf, under wrk). A HEAD answer has its headers only; 1xx, 204 and 304
// have no body. `date` unless the handler set its own.
void serialize(const response& res, bool head, bool keep, framing how, std::string_view date, std::string& out) {
  auto add = [&out](beast::string_view v) { out.append(v.data(), v.size()); };
  bool none = bodiless(res);
  bool dated = false;
  out.append(res.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(res.result_int())).append(" ");
  out.append(reason_phrase(res));
  out.append("\r\n");
  for (const auto& field : res.base()) {
    auto name = field.name();
    if (name == bhttp::field::connection || name == bhttp::field::content_length ||
        name == bhttp::field::transfer_encoding)
      continue;
    dated = dated || name == bhttp::field::date;
    add(field.name_string());
    out.append(": ");
    add(field.value());
    out.append("\r\n");
  }
  if (!dated) out.append("Date: ").append(date).append("\r\n");
  if (!none && how == framing::length) {
    out.append("Content-Length: ");
    if (auto given = head_length(res, head); !given.empty())
      out.append(given);
    else
      out.append(std::to_string(res.body().size()));
    out.append("\r\n");
  }
  if (!none && how == framing::chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (!keep)
    out.append("Connection: close\r\n");
  else if (res.version() == 10)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  if (!head && !none && how == framing::length) out.append(res.body());
}

// RFC 9110 10.1.1: an HTTP/1.1 client may wait for 100 Continue before it
// sends a body (curl does, for a second, above 1 KiB).
bool wants_continue(const request& req) {
  return req.version() >= 11 && beast::iequals(req[bhttp::field::expect], "100-continue");
}

const char* name_problem(std::string_view name) {
  auto token = [](unsigned char c) {
    return std::isalnum(c) != 0 || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  };
  if (name.empty()) return "its name is empty";
  for (char c : name)
    if (!token(static_cast<unsigned char>(c))) return "its name holds a character outside HTTP's token";
  return nullptr;
}

std::string_view sv(beast::string_view v) { return {v.data(), v.size()}; }

bool splits(std::string_view v) { return v.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos; }

}  // namespace

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string response_problem(const response& res) {
  for (const auto& field : res.base()) {
    // A known field's name is Beast's own spelling: only its value to check.
    const char* why = field.name() == bhttp::field::unknown ? name_problem(sv(field.name_string())) : nullptr;
    if (!why && splits(sv(field.value()))) why = "its value holds CR, LF or NUL";
    if (why) return "header " + quoted(sv(field.name_string())) + ": " + why;
  }
  if (splits(sv(res.reason()))) return "its reason phrase holds CR, LF or NUL";
  return {};
}

response error_response(bhttp::status status) {
  response res{status, 11};
  res.set(bhttp::field::content_type, "text/plain");
  res.body() = std::string(bhttp::obsolete_reason(status)) + "\n";
  return res;
}

void session::begin(const http_options& options) {
  parser = std::make_unique<bhttp::request_parser<bhttp::string_body>>();
  parser->header_limit(static_cast<std::uint32_t>(options.header_limit));
  // With bodies streamed, the head is parsed alone first (eager off), to
  // decide; a body then has no limit. (The largest one, not none: Boost
  // 1.74's parser compares a Content-Length with the optional itself, and
  // any length is more than none.)
  bool streams = options.stream_bodies_above > 0;
  parser->body_limit(streams ? std::numeric_limits<std::uint64_t>::max() : options.body_limit);
  parser->eager(!streams);
  fresh = false;
  continued = false;
}

session::step session::read_request(beast::flat_buffer& in, std::string& out, request& req, bhttp::status& refusal,
                                    std::size_t stream_above) {
  for (;;) {
    boost::system::error_code ec;
    std::size_t used = parser->put(in.data(), ec);
    in.consume(used);
    if (ec == bhttp::error::need_more) return step::more;
    if (ec) {
      parser.reset();
      refusal = status_for(ec);
      return step::refused;
    }
    if (parser->is_done()) {
      req = parser->release();
      parser.reset();
      return step::whole;
    }
    // A client that asked before sending its body gets the go-ahead.
    if (parser->is_header_done() && !continued && wants_continue(parser->get())) {
      out.append("HTTP/1.1 100 Continue\r\n\r\n");
      continued = true;
    }
    // The head alone (eager off): a long or chunked body streams; another
    // is read whole.
    if (parser->is_header_done() && !parser->eager()) {
      parser->eager(true);
      auto length = parser->content_length();
      if (parser->chunked() || (length && *length > stream_above)) {
        req = request(parser->get().base());
        return step::head;
      }
      continue;
    }
    if (used == 0 || in.size() == 0) return step::more;
  }
}

bool session::answer_request(const request& req, answer r, bool stopping, std::string& out, std::string_view date) {
  bool head = req.method() == bhttp::verb::head;
  bool streamed = r.stream && !bodiless(r.res);
  framing how = !streamed                                       ? framing::length
                : req.version() >= 11 && r.res.version() >= 11 ? framing::chunked
                                                                : framing::close;
  // A handler may close the connection with its own Connection: close.
  bool keep = req.keep_alive() && !stopping && how != framing::close &&
              (r.res.find(bhttp::field::connection) == r.res.end() || r.res.keep_alive());
  respond(r.res, head, keep, how, out, date);
  peer_done = !req.keep_alive();
  if (streamed && !head) {  // answers to requests behind it wait for its end
    stream = std::move(r.stream);
    chunked = how == framing::chunked;
    return false;
  }
  return true;
}

void session::refuse(bhttp::status status, std::string& out, std::string_view date) {
  respond(error_response(status), false, false, framing::length, out, date);
}

void session::respond(const response& res, bool head, bool keep, framing how, std::string& out, std::string_view date) {
  last = !keep;
  serialize(res, head, keep, how, date, out);
}

}  // namespace ufork::http::detail

namespace ufork::http {

std::string log_quoted(std::string_view text) { return detail::quoted(text); }

std::string header_problem(std::string_view name, std::string_view value) {
  if (const char* why = detail::name_problem(name)) return why;
  return detail::splits(value) ? "its value holds CR, LF or NUL" : "";
}

}  // namespace ufork::http
