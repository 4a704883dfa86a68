// What serve_wsgi and serve_asgi both make of a request: the client and
// scheme (a trusted proxy's Forwarded, RFC 7239, or X-Forwarded-For /
// -Proto), and the path %-decoded.
#pragma once

#include <utility>  // before any Boost header (Boost 1.74's awaitable.hpp)

#include <string>
#include <string_view>
#include <vector>

#include "ufork/http/server.hpp"

namespace ufork::python {

// What a proxy in forwarded_allow_ips says of the client: its address and
// the scheme it was reached by, from the last element of Forwarded (RFC
// 7239: for=, proto=) or else X-Forwarded-For and X-Forwarded-Proto (their
// last item: what the proxy itself saw). An address that is not an IP
// ("unknown", "_hidden") and a scheme but http or https are ignored.
struct forwarded {
  std::string addr, scheme;
};
forwarded forwarded_by(const http::request& req);

// The connection's client and scheme as the app should see them: its peer,
// or (from a peer in `trusted`, "*" trusting any; a unix socket's peer is
// trusted, as gunicorn does: only a local process the file's mode lets in
// can be one) what its proxy says. Empty addr: none known (a unix peer with
// no proxy header). In a handler only.
struct client_view {
  std::string addr, scheme = "http";
  std::uint16_t port = 0;
};
client_view client_of(const http::request& req, const std::vector<std::string>& trusted);

// A path with each %XX decoded (a % not followed by two hex digits kept).
std::string percent_decoded(std::string_view path);

// A request's line in the access log, in the combined format (Apache's,
// nginx's and gunicorn's default): written when the entry goes, once the
// response is over, with its status and the bytes of body given (a body
// cut short counts what was given), in one write(2), so lines from the
// workers sharing the file never interleave.
struct access_entry {
  access_entry(int out, std::string who, const http::request& req);  // who: the client, "-" if none
  access_entry(const access_entry&) = delete;
  access_entry& operator=(const access_entry&) = delete;
  ~access_entry();
  unsigned status = 0;
  std::size_t bytes = 0;

 private:
  int fd_;
  std::string client_, request_, referer_, agent_;
};

}  // namespace ufork::python
