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

// What a session asks of its server.
class session_host {
 public:
  // The handler's answer; an exception it throws becomes a 500 here.
  virtual answer handle(const request& req) = 0;
  // Every answer from now on closes its connection.
  virtual bool stopping() = 0;
  // The Date header's value for this second.
  virtual std::string_view date() = 0;

 protected:
  ~session_host() = default;
};

// How the body's end is told: its length, chunked encoding (a streamed body
// to an HTTP/1.1 client), or the connection's close (one to HTTP/1.0).
enum class framing { length, chunked, close };

response error_response(boost::beast::http::status status);

struct session {
  // A request begun; on the heap, as 288 bytes an idle connection does not need.
  std::unique_ptr<boost::beast::http::request_parser<boost::beast::http::string_body>> parser;
  bool last = false;      // the connection's last answer is made: nothing more is read for answers
  bool peer_done = false; // the client said it sends nothing more (Connection: close, HTTP/1.0)
  bool fresh = true;      // no request yet
  bool continued = false; // 100 Continue sent for the request being read
  body_source stream;     // the answer being streamed: its next pieces
  bool chunked = false;   // ... with chunked encoding

  // Answers every whole request at the front of `in` (consumed), appending
  // the answers to `out`, until the connection's last answer or a streamed
  // one (whose pieces come from `stream`, and whose followers wait for its
  // end). True if a request began: its deadline starts.
  bool parse(boost::beast::flat_buffer& in, std::string& out, session_host& host, const http_options& options);
  // The connection's last answer: `status`, for a request that cannot be read.
  void refuse(boost::beast::http::status status, std::string& out, session_host& host);
  // An answer, framed and with Connection as the server decides.
  void respond(const response& res, bool head, bool keep, framing how, std::string& out, session_host& host);
};

}  // namespace ufork::http::detail
