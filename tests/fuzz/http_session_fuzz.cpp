// The HTTP helper's request path (src/http/session.cpp around Beast's
// parser), driven as the worker's server drives it: any bytes, read in any
// pieces, into the server's bounded buffer, a streamed answer pumped to its
// end before the requests behind it. What comes out must be whole HTTP/1.1
// answers, exactly one per request the handler saw plus at most one refusal
// (400, 413 or 431), each 100 Continue before its request's answer, nothing
// after the connection's last answer, and Connection: close on that one.
//
// The input's first bytes choose the limits, whether the server is stopping,
// whether long bodies stream, and how the rest is cut into reads.
#include <utility>  // before Boost: see server.hpp

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/empty_body.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/session.hpp"

namespace {

namespace bhttp = boost::beast::http;
using namespace ufork::http;

struct host {
  bool stop = false;
  std::vector<bool> heads;  // per request handled: a HEAD (its answer has no body)

  answer handle(const request& req) {
    heads.push_back(req.method() == bhttp::verb::head);
    std::string_view target(req.target().data(), req.target().size());
    response res{bhttp::status::ok, req.version()};
    res.set(bhttp::field::content_type, "text/plain");
    if (target.starts_with("/204")) return response{bhttp::status::no_content, req.version()};
    if (target.starts_with("/close")) res.set(bhttp::field::connection, "close");
    if (target.starts_with("/stream")) {
      auto left = std::make_shared<int>(3);
      return answer(res, [left](std::string& out) {
        out = "piece " + std::to_string(*left) + "\n";
        return --*left > 0;
      });
    }
    res.body() = "got " + std::to_string(req.body().size()) + " bytes\n";
    return res;
  }
  bool stopping() const { return stop; }
  static void defer(const request&, const std::shared_ptr<deferred>&) {}  // the handler never defers
  static std::string_view date() { return "Thu, 26 Nov 2026 00:00:00 GMT"; }
};

// Reads `out` as the client would: the answers in order, 100 Continue
// between them. Returns the number of final answers; aborts on anything else.
std::size_t check_answers(std::string_view out, const std::vector<bool>& heads, bool& last_closes) {
  std::size_t finals = 0;
  while (!out.empty()) {
    bhttp::response_parser<bhttp::string_body> p;
    p.eager(true);
    p.body_limit(64UL * 1024 * 1024);
    if (finals < heads.size() && heads[finals]) p.skip(true);
    boost::system::error_code ec;
    std::size_t used = p.put(boost::asio::buffer(out.data(), out.size()), ec);
    if ((!ec || ec == bhttp::error::need_more) && p.is_header_done() && !p.is_done() &&
        !p.get().has_content_length() && !p.get().chunked()) {
      // A body that ends with the connection (a stream to HTTP/1.0): the rest.
      for (ec = {}; used < out.size() && !ec;)
        used += p.put(boost::asio::buffer(out.data() + used, out.size() - used), ec);
      if (!ec) p.put_eof(ec);
    }
    if (ec || !p.is_done()) std::abort();  // not a whole answer
    out.remove_prefix(used);
    if (p.get().result_int() == 100) continue;
    ++finals;
    last_closes = !p.get().keep_alive();
    if (last_closes && !out.empty()) std::abort();  // an answer after the last
  }
  return finals;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  http_options options;
  options.header_limit = 64 + data[0] * 16UL;  // 64 B .. 4 KiB
  options.body_limit = (data[1] & 0x7f) * 8UL;
  host h;
  h.stop = (data[1] & 0x80) != 0;
  // Bodies past the limit streamed (the head alone to the handler, which
  // answers at once here: the connection ends after it).
  if (data[2] & 0x40) options.stream_bodies_above = options.body_limit;
  std::size_t piece = 1 + data[2] % 64;
  data += 3;
  size -= 3;

  // As the worker's server: its buffer holds header_limit plus a read.
  boost::beast::flat_buffer in(options.header_limit + 16UL * 1024);
  detail::session s;
  std::string out;
  std::size_t at = 0;
  while (at < size && !s.last) {
    std::size_t room = in.max_size() - in.size();
    if (room == 0) {
      s.parser.reset();
      in.clear();
      s.refuse(bhttp::status::bad_request, out, host::date());
      break;
    }
    std::size_t n = std::min({piece, room, size - at});
    auto buf = in.prepare(n);
    std::memcpy(buf.data(), data + at, n);
    in.commit(n);
    at += n;
    for (;;) {
      s.parse(in, out, h, options);
      if (!s.stream) break;
      std::string p;
      for (bool more = true; more;) {  // pump(): chunked to HTTP/1.1, raw to HTTP/1.0
        p.clear();
        more = s.stream(p);
        if (!s.chunked) {
          out += p;
        } else if (!p.empty()) {
          char len[20];
          out.append(len, static_cast<std::size_t>(std::snprintf(len, sizeof len, "%zx\r\n", p.size())));
          out.append(p).append("\r\n");
        }
      }
      if (s.chunked) out += "0\r\n\r\n";
      s.stream = nullptr;
      if (s.last || in.size() == 0) break;
    }
  }
  bool last_closes = false;
  std::size_t finals = check_answers(out, h.heads, last_closes);
  if (finals != h.heads.size() && finals != h.heads.size() + 1) std::abort();  // one answer each, one refusal
  if (s.last != last_closes && finals > 0) std::abort();  // Connection: close on the last answer, and only there
  if (h.stop && finals > 0 && !last_closes) std::abort();  // a stopping server closes after its answer
  return 0;
}
