// serve_asgi: the C++ HTTP helper (its parser, limits, keep-alive,
// pipelining, deadlines and stop) and the ASGI app's asyncio loop on each
// worker's one thread: the app's loop watches the helper's (loop_fd()) and
// turns it (step()); a request is given to the app as it is parsed, inside
// step(); the app's answer goes back as an http::deferred, its parts written
// as they are sent; `room` (all sent so far is written), a body's pieces and
// `gone` (the client left) come back to the app's futures.
#pragma once

#include <utility>  // before any Boost header (Boost 1.74's awaitable.hpp)

#include <pybind11/pybind11.h>

#include <stdexcept>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_app.hpp"
#include "ufork/http/server.hpp"

namespace ufork::python {

struct access_entry;  // request_view.hpp

// An ASGI message out of order or malformed (ufork.AsgiError, a
// RuntimeError): said in one line, the answer ended.
struct asgi_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The app's loop as the exchanges use it: the futures its coroutines await.
struct asgi_loop {
  pybind11::object create_future;  // loop.create_future
  pybind11::object done;           // done with None: what an await that need not wait is given
  pybind11::object future() const { return create_future(); }
  pybind11::object done_with(pybind11::handle result) const;
};

// One request's side in Python: the app's receive and send are its own
// (ufork's _asgi_call gives them to the app): each returns a future, done
// at once when it need not wait, so a message costs no coroutine of ours.
class asgi_exchange {
 public:
  // A future of the next message: the request's body as http.request
  // messages (whole, the first time; streamed, a body longer than 64 KiB or
  // chunked: its next piece, with more_body until the last, waited for if
  // it has not come), then http.disconnect once the client has gone or the
  // response is complete (waited for until then).
  pybind11::object receive();
  // An http.response.start or http.response.body message: checked (order,
  // types, header names and values), then given to the connection. A
  // future: done at once, or once the connection has written what it was
  // given (above 64 KiB given and not written: `room`) or the client has
  // gone. Raises asgi_error (a message out of order, a bad field).
  pybind11::object send(const pybind11::dict& message);
  // The app failed, or returned: the answer ends (a 500 if nothing was sent).
  void fail();
  // True once nothing more can be sent: the answer has ended, or the client is gone.
  bool over() const noexcept { return ended_ || gone_; }

  // The helper's side.
  std::shared_ptr<const asgi_loop> loop;
  std::shared_ptr<http::deferred> answer;
  std::string body;
  bool head_request = false;
  std::shared_ptr<access_entry> access;  // --access-log: its line, written when the exchange goes
  bool streamed = false;                 // its body comes in pieces (add_body)
  void on(http::deferred::event e);      // from the helper, in step()
  void add_body(std::string piece, bool last);  // from the helper, in step()

 private:
  pybind11::object message();  // the message receive() gives now, or null: it waits
  void answer_receiver();      // a receive() waiting: its message, if there is one now
  http::response head_;
  std::size_t unconfirmed_ = 0;  // bytes given since the last `room`
  bool body_taken_ = false, started_ = false, head_given_ = false, ended_ = false, gone_ = false;
  std::optional<std::string> piece_;  // a streamed body's piece, not yet received
  bool piece_last_ = false, body_done_ = false;
  pybind11::object receiver_, room_;  // the futures of a receive() and a send() waiting, or null
};

class asgi_server final : public http_app {
 public:
  // Binds each of `addresses` now, in the arbiter. Throws ufork::error.
  // access_log: an fd (O_APPEND) for a line per request in the combined
  // format (request_view.hpp), or -1.
  asgi_server(const std::vector<std::string>& addresses, http::http_options options,
              std::vector<std::string> forwarded_allow_ips, int access_log = -1);
  ~asgi_server() override;
  const std::vector<std::string>& addresses() const noexcept override { return server_.addresses(); }
  void attach(options& pool, hooks& h) override { server_.attach(pool, h); }
  void log_to(arbiter& a) noexcept override { server_.log_to(a); }

  // In the worker, before its HTTP server runs (the GIL held), with the
  // app's asyncio loop (the exchanges' futures are its): drive() is
  // called once it does, and turns the server's loop from the app's: it
  // watches loop_fd() and calls step() when it is readable, until step()
  // says false (the server is done, after the worker's stop; also outside
  // drive()); each request is given to spawn(scope, exchange), scope's
  // state a copy of `state`; soon() asks for a step() once the app's
  // current work is done (http_options::soon): what it sent is written then.
  void serve_with(const pybind11::object& loop, pybind11::object drive, pybind11::object spawn,
                  pybind11::object soon, pybind11::dict state);
  int loop_fd() const;
  bool step();

  struct bridge;

 private:
  std::shared_ptr<bridge> bridge_;
  http::server server_;
};

}  // namespace ufork::python
