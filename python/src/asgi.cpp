#include "asgi.hpp"

#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "gil.hpp"
#include "request_view.hpp"

namespace ufork::python {
namespace {

namespace py = pybind11;
using pyfn = std::shared_ptr<py::object>;
pyfn keep(py::object o) { return shared_with_gil(new py::object(std::move(o))); }

// The strings of every request's scope and messages, made once and kept
// for the interpreter's life (interned): a dict written or read with one
// makes no string of its own (perf: a request made some 40).
struct names {
  py::handle type, status, headers, body, more_body, asgi, http_version, method, scheme, path, raw_path, query_string,
      root_path, client, server, state, http, http_request, http_disconnect, v10, v11, empty, done, set_result;
};
const names& strings() {
  static const names n = [] {
    auto s = [](const char* text) { return py::handle(PyUnicode_InternFromString(text)); };  // a reference kept for good
    return names{s("type"), s("status"), s("headers"), s("body"), s("more_body"), s("asgi"), s("http_version"),
                 s("method"), s("scheme"), s("path"), s("raw_path"), s("query_string"), s("root_path"), s("client"),
                 s("server"), s("state"), s("http"), s("http.request"), s("http.disconnect"), s("1.0"), s("1.1"),
                 s(""), s("done"), s("set_result")};
  }();
  return n;
}

// A message's field, or a null handle.
py::handle field(const py::dict& message, py::handle key) {
  PyObject* v = PyDict_GetItemWithError(message.ptr(), key.ptr());
  if (!v && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

bool truth(py::handle v) {
  int t = PyObject_IsTrue(v.ptr());
  if (t < 0) throw py::error_already_set();
  return t == 1;
}

bool is(py::handle text, const char* ascii) {
  return PyUnicode_Check(text.ptr()) && PyUnicode_CompareWithASCIIString(text.ptr(), ascii) == 0;
}

bool done(const py::object& fut) { return truth(fut.attr(strings().done)()); }

// A future a coroutine waits on: done with `result` (unless it already is:
// cancelled), and forgotten.
void settle(py::object& fut, py::handle result) {
  if (!fut) return;
  if (!done(fut)) fut.attr(strings().set_result)(result);
  fut = py::object();
}
namespace bhttp = boost::beast::http;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// Above this many bytes given and not yet written, send() says wait.
constexpr std::size_t high_water = 64UL * 1024;

py::bytes bytes_of(std::string_view s) { return {s.data(), s.size()}; }

std::string bytes_arg(const py::handle& v, const char* what) {
  if (PyBytes_Check(v.ptr())) return py::cast<std::string>(v);
  if (PyByteArray_Check(v.ptr()) || PyMemoryView_Check(v.ptr())) return py::cast<std::string>(py::bytes(py::reinterpret_borrow<py::object>(v)));
  throw asgi_error(std::string(what) + " must be bytes, not " + py::str(py::type::of(v).attr("__name__")).cast<std::string>());
}

}  // namespace

// The worker's side of the server: the app's loop, which turns the
// helper's (http_options::drive), the coroutine each request is given to,
// and what each one's scope is made from.
struct asgi_server::bridge {
  http::driven_loop* loop = nullptr;  // while the worker serves
  pyfn drive, spawn, soon;            // the worker's (serve_with)
  std::shared_ptr<const asgi_loop> futures;
  std::shared_ptr<py::dict> state;
  std::vector<std::string> trusted;
  int access_log = -1;

  // In the helper's handler, inside step(): the GIL is this thread's.
  http::answer handle(const http::request& req) {
    if (beast_iequals(req[bhttp::field::upgrade], "websocket")) {
      std::fprintf(stderr, "ufork asgi: a WebSocket upgrade of %s is answered 501: not supported yet\n",
                   std::string(sv(req.target())).c_str());
      http::response res{bhttp::status::not_implemented, req.version()};
      res.set(bhttp::field::content_type, "text/plain");
      res.body() = "WebSocket is not supported by this server\n";
      return res;
    }
    auto x = std::make_shared<asgi_exchange>();
    x->loop = futures;
    client_view client = client_of(req, trusted);
    x->body = req.body();
    x->head_request = req.method() == bhttp::verb::head;
    if (access_log >= 0) x->access = std::make_shared<access_entry>(access_log, client.addr.empty() ? "-" : client.addr, req);
    std::weak_ptr<asgi_exchange> weak = x;
    auto d = std::make_shared<http::deferred>([weak](http::deferred::event e) {
      if (auto ex = weak.lock()) ex->on(e);
    });
    if (http::current_body_streamed()) {  // a long or chunked body: receive() gives it piece by piece
      x->streamed = true;
      d->on_body([weak](std::string bytes, bool last) {
        if (auto ex = weak.lock()) ex->add_body(std::move(bytes), last);
      });
    }
    x->answer = d;
    (*spawn)(scope_of(req, client), py::cast(x));
    return http::answer::later(std::move(d));
  }

  py::dict scope_of(const http::request& req, const client_view& client) const {
    static const py::dict asgi = [] {
      py::dict d;
      d["version"] = "3.0";
      d["spec_version"] = "2.3";
      return d;
    }();
    const names& n = strings();
    py::dict scope;
    std::string_view target = sv(req.target());
    auto q = target.find('?');
    std::string_view raw = target.substr(0, q);
    std::string path = percent_decoded(raw);
    scope[n.type] = n.http;
    scope[n.asgi] = asgi;
    scope[n.http_version] = req.version() == 10 ? n.v10 : n.v11;
    scope[n.method] = py::str(std::string_view(sv(req.method_string())));
    scope[n.scheme] = client.scheme;
    scope[n.path] = py::reinterpret_steal<py::str>(
        PyUnicode_DecodeUTF8(path.data(), static_cast<Py_ssize_t>(path.size()), "surrogateescape"));
    scope[n.raw_path] = bytes_of(raw);
    scope[n.query_string] = bytes_of(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    scope[n.root_path] = n.empty;
    py::list headers(static_cast<std::size_t>(std::distance(req.begin(), req.end())));
    std::size_t i = 0;
    std::string lower;
    for (const auto& f : req) {
      lower = sv(f.name_string());
      for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      headers[i++] = py::make_tuple(bytes_of(lower), bytes_of(sv(f.value())));
    }
    scope[n.headers] = headers;
    scope[n.client] = client.addr.empty() ? py::object(py::none()) : py::object(py::make_tuple(client.addr, client.port));
    auto server = http::current_local();
    scope[n.server] = server ? py::object(py::make_tuple(server->host, server->port)) : py::object(py::none());
    scope[n.state] = py::reinterpret_steal<py::dict>(PyDict_Copy(state->ptr()));
    return scope;
  }

  static bool beast_iequals(boost::beast::string_view a, std::string_view b) {
    return boost::beast::iequals(a, boost::beast::string_view(b.data(), b.size()));
  }
};

py::object asgi_loop::done_with(py::handle result) const {
  py::object fut = future();
  fut.attr(strings().set_result)(result);
  return fut;
}

py::object asgi_exchange::receive() {
  if (py::object m = message()) return loop->done_with(m);
  receiver_ = loop->future();
  return receiver_;
}

py::object asgi_exchange::message() {
  const names& n = strings();
  py::dict m;
  if (streamed && piece_) {
    m[n.type] = n.http_request;
    m[n.body] = bytes_of(*piece_);
    m[n.more_body] = py::bool_(!piece_last_);
    piece_.reset();
    if (piece_last_)
      body_done_ = true;
    else
      answer->more();  // the next piece may be read
    return m;
  }
  if (streamed && !body_done_ && !gone_) return {};  // its next piece is on its way
  if (!streamed && !std::exchange(body_taken_, true)) {
    m[n.type] = n.http_request;
    m[n.body] = bytes_of(body);
    m[n.more_body] = py::bool_(false);
    std::string().swap(body);
    return m;
  }
  if (!over()) return {};  // until the client goes, or the response is complete
  m[n.type] = n.http_disconnect;
  return m;
}

void asgi_exchange::answer_receiver() {
  if (!receiver_) return;
  if (done(receiver_)) {  // cancelled: what it would have had stays for the next receive()
    receiver_ = py::object();
    return;
  }
  if (py::object m = message()) {
    receiver_.attr(strings().set_result)(m);
    receiver_ = py::object();
  }
}

py::object asgi_exchange::send(const py::dict& message) {
  const names& n = strings();
  py::handle type = field(message, n.type);
  if (!type) throw asgi_error("an ASGI message has a 'type'");
  if (is(type, "http.response.start")) {
    if (started_ || ended_) throw asgi_error("http.response.start sent twice");
    py::handle code = field(message, n.status);
    int status = code && PyLong_Check(code.ptr()) ? code.cast<int>() : 0;
    if (status < 100 || status > 999) throw asgi_error("http.response.start: status must be an int from 100 to 999");
    head_ = http::response{static_cast<bhttp::status>(status), 11};
    if (py::handle headers = field(message, n.headers))
      for (auto h : headers) {
        auto pair = py::reinterpret_borrow<py::sequence>(h);
        if (pair.size() != 2) throw asgi_error("http.response.start: a header is a (name, value) pair");
        std::string name = bytes_arg(pair[0], "a header's name"), value = bytes_arg(pair[1], "a header's value");
        if (auto why = http::header_problem(name, value); !why.empty())
          throw asgi_error("http.response.start: header " + py::repr(pair[0]).cast<std::string>() + ": " + why);
        auto field = bhttp::string_to_field(name);
        if (field == bhttp::field::content_length || field == bhttp::field::transfer_encoding) continue;  // the helper frames it
        head_.insert(name, value);
      }
    started_ = true;  // given to the connection with the first body message
    if (access) access->status = static_cast<unsigned>(status);
    return loop->done;
  }
  if (is(type, "http.response.body")) {
    if (!started_) throw asgi_error("http.response.body sent before http.response.start");
    if (ended_) throw asgi_error("http.response.body sent after the last one (more_body was false)");
    py::handle given = field(message, n.body), more_body = field(message, n.more_body);
    std::string piece = given ? bytes_arg(given, "http.response.body's body") : "";
    bool more = more_body && truth(more_body);
    if (gone_) return loop->done;  // the client left: sent to no one, as ASGI says
    if (access && !head_request) access->bytes += piece.size();
    if (!std::exchange(head_given_, true)) {  // the first body message: the head goes with it
      if (!more) {  // and the whole body (a HEAD answer's too: its size is the Content-Length; not written)
        head_.body() = std::move(piece);
        answer->start(std::move(head_), true);
        ended_ = true;
        answer_receiver();  // a receive() waiting: http.disconnect, the response is complete
        return loop->done;
      }
      answer->start(std::move(head_), false);
    }
    if (head_request) piece.clear();  // a streamed HEAD answer's pieces go nowhere
    unconfirmed_ += piece.size();
    if (!piece.empty() || !more) answer->body(std::move(piece), !more);
    ended_ = !more;
    if (ended_) answer_receiver();
    if (!more || unconfirmed_ <= high_water) return loop->done;
    room_ = loop->future();  // the client reads slower than the app sends
    return room_;
  }
  throw asgi_error("an HTTP ASGI app sends http.response.start and http.response.body, not " + py::str(type).cast<std::string>());
}

void asgi_exchange::fail() {
  if (ended_ || gone_) return;
  ended_ = true;
  if (access && !head_given_) access->status = 500;  // what the helper answers
  answer->fail();
}

void asgi_exchange::on(http::deferred::event e) {
  if (e == http::deferred::event::room) {
    unconfirmed_ = 0;
  } else {
    gone_ = true;
    answer_receiver();
  }
  settle(room_, py::none());
}

void asgi_exchange::add_body(std::string piece, bool last) {
  piece_ = std::move(piece);
  piece_last_ = last;
  answer_receiver();
}

asgi_server::asgi_server(const std::vector<std::string>& addresses, http::http_options options,
                         std::vector<std::string> forwarded_allow_ips, int access_log)
    : bridge_(std::make_shared<bridge>()),
      server_(
          [b = bridge_.get()](const http::request& req) { return b->handle(req); }, addresses, [&] {
            // A body above 64 KiB, or chunked, reaches the app in pieces as it comes (no limit: the app's to set).
            if (options.stream_bodies_above == 0) options.stream_bodies_above = 64UL * 1024;
            // The app's loop turns the helper's, on the worker's one thread: a
            // loop wedged by the app stops the heartbeats too.
            options.drive = [b = bridge_.get()](http::driven_loop& loop) {
              py::gil_scoped_acquire gil;
              if (!b->drive) throw std::logic_error("ufork asgi: the worker did not call serve_with()");
              b->loop = &loop;
              try {
                (*b->drive)();
              } catch (...) {
                b->loop = nullptr;
                throw;
              }
              b->loop = nullptr;
            };
            options.soon = [b = bridge_.get()] { (*b->soon)(); };  // the GIL is this thread's: in the app's send()
            return options;
          }()) {
  bridge_->trusted = std::move(forwarded_allow_ips);
  bridge_->access_log = access_log;
}

asgi_server::~asgi_server() = default;

void asgi_server::serve_with(const py::object& loop, py::object drive, py::object spawn, py::object soon,
                             py::dict state) {
  auto futures = shared_with_gil(new asgi_loop{loop.attr("create_future"), py::none()});
  futures->done = futures->done_with(py::none());
  bridge_->futures = std::move(futures);
  bridge_->drive = keep(std::move(drive));
  bridge_->spawn = keep(std::move(spawn));
  bridge_->soon = keep(std::move(soon));
  bridge_->state = shared_with_gil(new py::dict(std::move(state)));
}

int asgi_server::loop_fd() const {
  if (!bridge_->loop) throw std::logic_error("ufork asgi: loop_fd() outside the worker's drive");
  return bridge_->loop->fd();
}

bool asgi_server::step() { return bridge_->loop && bridge_->loop->step(); }

}  // namespace ufork::python
