// ufork::http::serve: a pre-forked HTTP/1.1 server in one call, on
// Boost.Beast (uFork's serve_wsgi_gevent). The listening socket is bound in
// the arbiter before any fork, so a bad address is reported once, to the
// caller; every worker runs one io_context on its main thread, whose timer
// sends the heartbeats, so a handler that blocks the loop is caught as hung.
#pragma once

#include <utility>  // before any Boost header: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/beast/http.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "ufork/arbiter.hpp"

namespace ufork::http {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;

// A body made piece by piece, for one too large or too slow to hold at
// once. Called in the worker's loop each time the previous piece has been
// written, so a client is fed no faster than it reads: it appends the next
// piece to `out` and returns false with the last one. It must not return
// an empty piece unless it is the last (it is called again at once). Sent
// chunked to HTTP/1.1 clients; for HTTP/1.0 the body ends with the
// connection. An exception from it closes the connection (the response's
// head is gone already).
using body_source = std::function<bool(std::string& out)>;

// What a handler returns: a whole response, or a response whose body
// (`res.body()` is then ignored) comes from `stream`.
struct reply {
  reply(response r) : res(std::move(r)) {}  // NOLINT(google-explicit-constructor): return a response as it is
  reply(response r, body_source s) : res(std::move(r)), stream(std::move(s)) {}
  response res;
  body_source stream;
};

// Runs in a worker, on its io_context's thread. An exception becomes a 500.
// Content-Length (or chunked encoding) and Connection are set by the
// server; a handler's own `Connection: close` closes the connection.
using handler = std::function<reply(const request&)>;

struct server_options {
  struct options pool;                          // the arbiter's options
  std::size_t header_limit = 8 * 1024;          // larger headers: 431
  std::size_t body_limit = 1024 * 1024;         // larger bodies: 413
  // From a request's first byte, reading it, running the handler and writing
  // the answer must take no longer than this (a slowloris client is cut off).
  std::chrono::milliseconds request_timeout{10'000};
  // An idle keep-alive connection is closed after this.
  std::chrono::milliseconds keepalive_timeout{15'000};
  // One SO_REUSEPORT socket per worker instead of one shared socket.
  bool reuseport = false;
  int backlog = 4096;
  // Passed to the arbiter as they are, but post_fork, which (if set) runs in
  // each worker before its server starts (open a database connection, ...).
  struct hooks hooks;
  // Called once with the arbiter, before it runs: add commands, keep a
  // pointer for stop(), ...
  std::function<void(arbiter&)> configure;
  // Called in the arbiter with the bound address, e.g. "127.0.0.1:7777".
  std::function<void(const std::string&)> on_listening;
};

// Binds `endpoint` ("HOST:PORT", "[::1]:PORT"; port 0 picks one), then runs
// the pool until stopped; returns what arbiter::run() returns. Throws
// ufork::error naming the address if it cannot be bound.
int serve(handler h, const std::string& endpoint, server_options options = {});

}  // namespace ufork::http
