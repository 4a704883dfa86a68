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
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

class deferred;

// What a handler returns: a whole response, or a response whose body
// (`res.body()` is then ignored) comes from `stream`, or an answer that
// comes later (answer::later). (Not ufork::reply, which answers a command.)
struct answer {
  answer(response r) : res(std::move(r)) {}  // NOLINT(google-explicit-constructor): return a response as it is
  answer(response r, body_source s) : res(std::move(r)), stream(std::move(s)) {}
  static answer later(std::shared_ptr<deferred> d) {
    answer a{response{}};
    a.pending = std::move(d);
    return a;
  }
  response res;
  body_source stream;
  std::shared_ptr<deferred> pending;
};

// An answer given later, from any thread: for a handler whose work runs
// elsewhere (a thread pool; an ASGI app's coroutine on the asyncio loop
// that turns the worker's, http_options::drive). Made in the handler, which
// returns answer::later(d) and hands d on; the connection answers nothing
// more (its pipelined requests wait) until d's answer has ended. Its
// request's deadline still holds. Given from another thread, each part
// wakes the worker's loop (a mailbox and an eventfd); given on the thread
// that drives the loop, outside step(), it is written at once or at the
// next step() (http_options::soon).
class UFORK_API deferred {
 public:
  // What the connection tells the other side, on the worker's loop thread:
  // `room`, all that was given has been written (the next piece may come:
  // a client is fed no faster than it reads); `gone`, the connection went
  // before the answer ended (the client left, a deadline, a stop): nothing
  // given from now on is sent.
  enum class event { room, gone };
  // Only in a handler (else std::logic_error). `tell` must not block.
  explicit deferred(std::function<void(event)> tell);
  ~deferred();
  deferred(const deferred&) = delete;
  deferred& operator=(const deferred&) = delete;

  // From any thread. The response's head, and with `last` its whole body
  // (res.body()); else the body follows from body(): chunked to an HTTP/1.1
  // client, to the connection's close for 1.0. A head that header_problem()
  // refuses becomes a 500 (logged).
  void start(response res, bool last);
  // The body's next piece; `last` ends the answer.
  void body(std::string piece, bool last);
  // The answer cannot be made: a 500 if nothing was started, else the
  // connection is closed (a cut body).
  void fail();

  // A request whose body comes in pieces (current_body_streamed(): set in
  // the handler). `take` gets each piece on the worker's loop thread, and
  // `last` with the end (an empty piece then, maybe); after a piece nothing
  // more is read from the client until more() is called (from any thread):
  // a client is read no faster than its body is taken. If the answer ends
  // before the body does, the connection closes after the answer.
  void on_body(std::function<void(std::string piece, bool last)> take);
  void more();

  struct state;  // the worker's side (server.cpp)

 private:
  friend struct deferred_access;
  std::shared_ptr<state> state_;
};

// Runs in a worker, on its io_context's thread. An exception becomes a 500.
// Content-Length (or chunked encoding) and Connection are set by the
// server; a handler's own `Connection: close` closes the connection. An
// answer with a header that header_problem() refuses, or a reason phrase
// holding CR, LF or NUL, becomes a 500 too (logged): nothing of it is sent.
using handler = std::function<answer(const request&)>;

// In a handler: the peer of the connection whose request it answers
// ("203.0.113.7", 52344), read with getpeername(2) when first asked for
// the connection (kept until it closes: a connection that is never asked
// about holds nothing for it); nullopt outside a handler and on a unix
// socket.
struct peer {
  std::string host;
  std::uint16_t port = 0;
};
UFORK_API std::optional<peer> current_peer();
// In a handler: this end of the connection, the address the client reached
// ("127.0.0.1", 8000); nullopt outside a handler and on a unix socket.
UFORK_API std::optional<peer> current_local();
// In a handler: true if the request's body is not in it but follows in
// pieces (http_options::stream_bodies_above): the handler must answer
// later, and take the body with deferred::on_body.
UFORK_API bool current_body_streamed();

// Why a response header cannot be sent as it is, or "" if it can: a name
// that is not an HTTP token (RFC 9110 5.6.2), or a value holding CR, LF or
// NUL, with which a value taken from a request could add headers of its
// own (response splitting).
UFORK_API std::string header_problem(std::string_view name, std::string_view value);

// Text in double quotes, each byte that is not printable ASCII (or is a
// quote or a backslash) as \xHH: for a log line (an access log's request
// line, a header a client sent).
UFORK_API std::string log_quoted(std::string_view text);

// A worker's loop turned from another loop on the same thread
// (http_options::drive): that loop watches fd() and calls step() whenever
// it is readable, until step() says the server is done.
class driven_loop {
 public:
  // Readable when the server has something to do (a connection, a timer,
  // a deferred's news, the worker's stop).
  virtual int fd() const noexcept = 0;
  // Does what is ready now, without waiting. False once the server is done
  // (after the worker's stop): drive then returns.
  virtual bool step() = 0;

 protected:
  ~driven_loop() = default;
};

// The HTTP server's own knobs.
struct http_options {
  std::size_t header_limit = 8UL * 1024;          // larger headers: 431
  std::size_t body_limit = 1024UL * 1024;         // larger bodies: 413
  // If set, a request whose body is longer than this, or chunked, reaches
  // the handler once its head has come, its body following in pieces
  // (current_body_streamed(), deferred::on_body), with no limit; a shorter
  // one comes whole as ever. body_limit then holds for no request.
  std::size_t stream_bodies_above = 0;
  // From a request's first byte, reading it, running the handler and writing
  // the answer must take no longer than this (a slowloris client is cut off).
  std::chrono::milliseconds request_timeout{10'000};
  // An idle keep-alive connection is closed after this.
  std::chrono::milliseconds keepalive_timeout{15'000};
  // One SO_REUSEPORT socket per worker instead of one shared socket.
  bool reuseport = false;
  // If set, the worker does not run its loop itself: it calls this once, on
  // its main thread, and the program turns the loop from a loop of its own
  // on that thread (an asyncio loop): see driven_loop. Handlers, and a
  // deferred's `tell` and `take`, then run inside driven_loop::step().
  std::function<void(driven_loop&)> drive;
  // With drive: called on the driving thread, outside step(), when a
  // deferred given there has something to write while other answers are
  // under way (once until the next step()): the program calls step() soon,
  // once what it is doing now is done (asyncio: loop.call_soon), and what
  // was given meanwhile is written together. Unset, the loop's fd becomes
  // readable instead (an eventfd). The only answer under way is written at
  // once.
  std::function<void()> soon;
  int backlog = 4096;
};

// The HTTP server as a part of an arbiter the program builds itself, with
// its own hooks, commands and options:
//
//   ufork::http::server web(handle, "127.0.0.1:7777");  // binds now
//   ufork::options o;  ufork::hooks h{.post_fork = open_database};
//   web.attach(o, h);  // then the server runs in each worker after post_fork
//   ufork::arbiter a(o, h);
//   web.log_to(a);
//   return a.run();
//
// The server must outlive the arbiter's run.
class UFORK_API server {
 public:
  // Binds `endpoint` ("HOST:PORT", "[::1]:PORT"; port 0 picks one; "fd:N"
  // takes over listening socket N, as socket activation passes it), in this
  // process, before any fork. Throws ufork::error naming the address if it
  // cannot be bound.
  server(handler h, const std::string& endpoint, http_options options = {});
  // Several: "127.0.0.1:8000", "unix:/run/app.sock" (made, and removed
  // when the server is done with it; a relative path is made absolute);
  // every worker accepts on each.
  server(handler h, const std::vector<std::string>& endpoints, http_options options = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // The bound address, e.g. "127.0.0.1:7777" (the first one).
  const std::string& address() const noexcept;
  // Each, in the order given ("unix:/run/app.sock" for a unix socket).
  const std::vector<std::string>& addresses() const noexcept;
  // Adds the server to the options and hooks an arbiter will be built with:
  // the socket is kept in strict mode, the server runs in each worker after
  // the program's post_fork (which then must return), and a stop turns new
  // connections away first (no request is dropped). Once per server.
  void attach(options& pool, hooks& h);
  // Where the server's arbiter-side messages go (default: stderr).
  void log_to(arbiter& a) noexcept;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

// One call: everything above, and the arbiter it runs.
struct server_options : http_options {
  ufork::options pool;  // the arbiter's options
  // Passed to the arbiter as they are, but post_fork, which (if set) runs in
  // each worker before its server starts (open a database connection, ...).
  ufork::hooks hooks;
  // Called once with the arbiter, before it runs: add commands, keep a
  // pointer for stop(), ...
  std::function<void(arbiter&)> configure;
  // Called in the arbiter with the bound address, e.g. "127.0.0.1:7777".
  std::function<void(const std::string&)> on_listening;
};

// Binds `endpoint`, then runs the pool until stopped; returns what
// arbiter::run() returns. Throws ufork::error naming the address if it
// cannot be bound.
UFORK_API int serve(handler h, const std::string& endpoint, server_options options = {});

}  // namespace ufork::http
