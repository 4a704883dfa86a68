// One connection's HTTP/1.1 without its socket: the bytes it read become
// answers. The worker's server (server.cpp) owns the socket, the buffers
// and the deadlines; this is the part that decides what to answer, apart so
// that it can be fuzzed (tests/fuzz/http_session_fuzz.cpp).
#pragma once

#include "ufork/http/server.hpp"

#include <utility>  // before Boost: see server.hpp

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace ufork::http::detail {

// What a session asks of its server, Host in session::parse (a template,
// not virtual calls: UBSan's check of a virtual call needs a free fd, and a
// handler may have taken the last one):
//   answer handle(const request&);  the handler's answer (an exception it
//                                   throws becomes a 500 there)
//   void defer(const request&, std::shared_ptr<deferred>);
//                                   an answer that comes later (answer::later):
//                                   the connection waits for it
//   bool stopping();                every answer from now on closes its connection
//   std::string_view date();        the Date header's value for this second

// How the body's end is told: its length, chunked encoding (a streamed body
// to an HTTP/1.1 client), or the connection's close (one to HTTP/1.0).
enum class framing { length, chunked, close };

response error_response(boost::beast::http::status status);
// text in double quotes, every byte that is not printable ASCII (or is a
// quote or a backslash) as \xHH: for a log line.
std::string quoted(std::string_view text);
// Why `res` cannot be sent (header_problem() of a header, or its reason
// phrase), or "".
std::string response_problem(const response& res);

struct session {
  // A request begun; on the heap, as 288 bytes an idle connection does not
  // need. Still set once its handler has run: its body is being streamed
  // (http_options::stream_bodies_above), read as the handler takes it.
  std::unique_ptr<boost::beast::http::request_parser<boost::beast::http::string_body>> parser;
  body_source stream;     // the answer being streamed: its next pieces
  bool chunked = false;   // ... with chunked encoding
  bool last = false;      // the connection's last answer is made: nothing more is read for answers
  bool peer_done = false; // the client said it sends nothing more (Connection: close, HTTP/1.0)
  bool fresh = true;      // no request yet
  bool continued = false; // 100 Continue sent for the request being read
  // (The flags last: a connection's own fill the padding after them.)

  // Answers every whole request at the front of `in` (consumed), appending
  // the answers to `out`, until the connection's last answer or a streamed
  // one (whose pieces come from `stream`, and whose followers wait for its
  // end). True if a request began: its deadline starts.
  template <class Host>
  bool parse(boost::beast::flat_buffer& in, std::string& out, Host& host, const http_options& options);
  // The connection's last answer: `status`, for a request that cannot be read.
  void refuse(boost::beast::http::status status, std::string& out, std::string_view date);
  // An answer, framed and with Connection as the server decides.
  void respond(const response& res, bool head, bool keep, framing how, std::string& out, std::string_view date);

 private:
  enum class step { more, whole, head, refused };
  void begin(const http_options& options);  // a request's first byte: a new parser
  // Feeds the parser what `in` holds: step::whole with the request in `req`,
  // step::head with its head alone for one whose body streams
  // (http_options::stream_bodies_above), or step::refused with the status
  // to refuse it with (and 100 Continue appended to `out` for a client that
  // waits for it).
  step read_request(boost::beast::flat_buffer& in, std::string& out, request& req,
                    boost::beast::http::status& refusal, std::size_t stream_above);
  // The answer to `req`, its framing and whether the connection is kept;
  // false if it ends the parsing (streamed, or the last).
  bool answer_request(const request& req, answer r, bool stopping, std::string& out, std::string_view date);
};

template <class Host>
bool session::parse(boost::beast::flat_buffer& in, std::string& out, Host& host, const http_options& options) {
  bool began = false;
  while (in.size() > 0 && !last) {
    if (!parser) {
      begin(options);
      began = true;
    }
    request req;
    auto refusal = boost::beast::http::status::bad_request;
    step s = read_request(in, out, req, refusal, options.stream_bodies_above);
    if (s == step::more) break;
    if (s == step::refused) {
      refuse(refusal, out, host.date());
      break;
    }
    answer r = host.handle(req);
    if (s == step::head && !r.pending) {  // answered at once: its body is not read, the connection closes after
      parser.reset();
      answer_request(req, std::move(r), true, out, host.date());
      break;
    }
    if (r.pending) {  // answered later: the requests behind it wait
      peer_done = !req.keep_alive();
      host.defer(req, std::move(r.pending));
      break;
    }
    if (!answer_request(req, std::move(r), host.stopping(), out, host.date())) break;
  }
  return began;
}

}  // namespace ufork::http::detail
