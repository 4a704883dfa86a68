#include "asgi.hpp"

#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "request_view.hpp"
#include "sys/event.hpp"
#include "sys/process.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/error.hpp"

namespace ufork::python {
namespace {

namespace py = pybind11;

// A future a coroutine waits on: done, and forgotten.
void wake(py::object& fut) {
  if (!fut || fut.is_none()) return;
  if (!fut.attr("done")().cast<bool>()) fut.attr("set_result")(py::none());
  fut = py::none();
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

// A request, as the helper's thread reads it (no Python), for the loop.
struct incoming {
  std::string method, target;
  unsigned version = 11;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  client_view client;
  std::optional<http::peer> server;
  std::shared_ptr<asgi_exchange> x;
};

// What the helper's thread and the loop's share: new requests and the
// exchanges' news, behind a mutex, and the eventfd the loop reads.
struct asgi_server::bridge {
  std::mutex mu;
  std::vector<incoming> requests;
  std::vector<std::pair<std::weak_ptr<asgi_exchange>, http::deferred::event>> news;
  struct piece {
    std::weak_ptr<asgi_exchange> x;
    std::string bytes;
    bool last;
  };
  std::vector<piece> bodies;  // streamed request bodies' pieces
  sys::unique_fd wake;  // made in each worker (mail_fd()): one made before the fork would be every worker's
  pid_t wake_pid = 0;
  std::vector<std::string> trusted;
  int access_log = -1;
  std::atomic<std::uint64_t> ticks{0};
  std::uint64_t beaten = 0;  // the helper's: ticks at its last heartbeat

  void post(auto change) {
    bool was_empty;
    {
      std::lock_guard lock(mu);
      was_empty = requests.empty() && news.empty() && bodies.empty();
      change();
    }
    if (was_empty) sys::eventfd_signal(wake.get());
  }

  // On the helper's thread, in its handler.
  http::answer handle(const http::request& req, const std::shared_ptr<bridge>& self) {
    if (beast_iequals(req[bhttp::field::upgrade], "websocket")) {
      std::fprintf(stderr, "ufork asgi: a WebSocket upgrade of %s is answered 501: not supported yet\n",
                   std::string(sv(req.target())).c_str());
      http::response res{bhttp::status::not_implemented, req.version()};
      res.set(bhttp::field::content_type, "text/plain");
      res.body() = "WebSocket is not supported by this server\n";
      return res;
    }
    incoming in;
    in.method = std::string(sv(req.method_string()));
    in.target = std::string(sv(req.target()));
    in.version = req.version();
    in.headers.reserve(static_cast<std::size_t>(std::distance(req.begin(), req.end())));
    for (const auto& f : req) {
      std::string name(sv(f.name_string()));
      for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      in.headers.emplace_back(std::move(name), std::string(sv(f.value())));
    }
    in.client = client_of(req, trusted);
    in.server = http::current_local();
    in.x = std::make_shared<asgi_exchange>();
    in.x->body = req.body();
    in.x->head_request = req.method() == bhttp::verb::head;
    if (access_log >= 0)
      in.x->access = std::make_shared<access_entry>(access_log, in.client.addr.empty() ? "-" : in.client.addr, req);
    std::weak_ptr<asgi_exchange> weak = in.x;
    std::weak_ptr<bridge> b = self;
    auto d = std::make_shared<http::deferred>([weak, b](http::deferred::event e) {
      if (auto br = b.lock()) br->post([&] { br->news.emplace_back(weak, e); });
    });
    if (http::current_body_streamed()) {  // a long or chunked body: receive() gives it piece by piece
      in.x->streamed = true;
      d->on_body([weak, b](std::string bytes, bool last) {
        if (auto br = b.lock()) br->post([&] { br->bodies.push_back({weak, std::move(bytes), last}); });
      });
    }
    in.x->answer = d;
    post([&] { requests.push_back(std::move(in)); });
    return http::answer::later(std::move(d));
  }

  static bool beast_iequals(boost::beast::string_view a, std::string_view b) {
    return boost::beast::iequals(a, boost::beast::string_view(b.data(), b.size()));
  }
};

py::object asgi_exchange::receive() {
  if (streamed) {
    if (!piece_) return py::none();
    py::dict m;
    m["type"] = "http.request";
    m["body"] = bytes_of(*piece_);
    m["more_body"] = !piece_last_;
    piece_.reset();
    if (piece_last_)
      body_done_ = true;
    else
      answer->more();  // the next piece may be read
    return m;
  }
  if (std::exchange(body_taken_, true)) return py::none();
  py::dict m;
  m["type"] = "http.request";
  m["body"] = bytes_of(body);
  m["more_body"] = false;
  std::string().swap(body);
  return m;
}

bool asgi_exchange::send(const py::dict& message) {
  if (!message.contains("type")) throw asgi_error("an ASGI message has a 'type'");
  auto type = py::str(message["type"]).cast<std::string>();
  if (type == "http.response.start") {
    if (started_ || ended_) throw asgi_error("http.response.start sent twice");
    py::object code = message.contains("status") ? py::object(message["status"]) : py::object(py::none());
    int status = PyLong_Check(code.ptr()) ? code.cast<int>() : 0;
    if (status < 100 || status > 999) throw asgi_error("http.response.start: status must be an int from 100 to 999");
    head_ = http::response{static_cast<bhttp::status>(status), 11};
    if (message.contains("headers"))
      for (auto h : message["headers"]) {
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
    return false;
  }
  if (type == "http.response.body") {
    if (!started_) throw asgi_error("http.response.body sent before http.response.start");
    if (ended_) throw asgi_error("http.response.body sent after the last one (more_body was false)");
    std::string piece = message.contains("body") ? bytes_arg(message["body"], "http.response.body's body") : "";
    bool more = message.contains("more_body") && py::bool_(message["more_body"]);
    if (gone_) return false;  // the client left: sent to no one, as ASGI says
    if (head_request) piece.clear();
    if (access) access->bytes += piece.size();
    if (!std::exchange(head_given_, true)) {  // the first body message: the head goes with it
      if (!more) {  // and the whole body
        head_.body() = std::move(piece);
        answer->start(std::move(head_), true);
        ended_ = true;
        wake(gone_waiter);  // a receive() waiting: http.disconnect, the response is complete
        return false;
      }
      answer->start(std::move(head_), false);
    }
    unconfirmed_ += piece.size();
    if (!piece.empty() || !more) answer->body(std::move(piece), !more);
    ended_ = !more;
    if (ended_) wake(gone_waiter);
    return more && unconfirmed_ > high_water;
  }
  throw asgi_error("an HTTP ASGI app sends http.response.start and http.response.body, not " + type);
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
    wake(gone_waiter);
    wake(body_waiter);
  }
  wake(room_waiter);
}

void asgi_exchange::add_body(std::string piece, bool last) {
  piece_ = std::move(piece);
  piece_last_ = last;
  wake(body_waiter);
}

asgi_server::asgi_server(const std::vector<std::string>& addresses, http::http_options options,
                         std::vector<std::string> forwarded_allow_ips, int access_log)
    : bridge_(std::make_shared<bridge>()),
      server_(
          [b = std::weak_ptr<bridge>(bridge_)](const http::request& req) -> http::answer {
            auto br = b.lock();
            if (!br) throw std::runtime_error("the ASGI server is gone");
            return br->handle(req, br);
          },
          addresses, [&] {
            // A body above 64 KiB, or chunked, reaches the app in pieces as it comes (no limit: the app's to set).
            if (options.stream_bodies_above == 0) options.stream_bodies_above = 64UL * 1024;
            options.alive = [b = bridge_.get()] {  // a beat only if the app's loop turned since the last one
              std::uint64_t now = b->ticks.load(std::memory_order_relaxed);
              return std::exchange(b->beaten, now) != now;
            };
            return options;
          }()) {
  bridge_->trusted = std::move(forwarded_allow_ips);
  bridge_->access_log = access_log;
}

asgi_server::~asgi_server() = default;

int asgi_server::mail_fd() {
  if (bridge_->wake_pid != sys::own_pid()) {  // this worker's own, before its HTTP server runs
    auto wake = sys::make_eventfd(true);
    if (!wake) throw error(wake.error(), "eventfd");
    bridge_->wake = std::move(wake).value();
    bridge_->wake_pid = sys::own_pid();
  }
  return bridge_->wake.get();
}

void asgi_server::tick() noexcept { bridge_->ticks.fetch_add(1, std::memory_order_relaxed); }

void asgi_server::take(const py::object& spawn, const py::dict& state) {
  (void)sys::drain_counter(bridge_->wake.get());
  std::vector<incoming> requests;
  std::vector<std::pair<std::weak_ptr<asgi_exchange>, http::deferred::event>> news;
  std::vector<bridge::piece> bodies;
  {
    std::lock_guard lock(bridge_->mu);
    requests.swap(bridge_->requests);
    news.swap(bridge_->news);
    bodies.swap(bridge_->bodies);
  }
  for (auto& [weak, e] : news)
    if (auto x = weak.lock()) x->on(e);
  static const py::dict asgi = [] {
    py::dict d;
    d["version"] = "3.0";
    d["spec_version"] = "2.3";
    return d;
  }();
  for (auto& in : requests) {
    py::dict scope;
    std::string_view target = in.target;
    auto q = target.find('?');
    std::string raw(target.substr(0, q));
    std::string path = percent_decoded(raw);
    scope["type"] = "http";
    scope["asgi"] = asgi;
    scope["http_version"] = in.version == 10 ? "1.0" : "1.1";
    scope["method"] = in.method;
    scope["scheme"] = in.client.scheme;
    scope["path"] = py::reinterpret_steal<py::str>(
        PyUnicode_DecodeUTF8(path.data(), static_cast<Py_ssize_t>(path.size()), "surrogateescape"));
    scope["raw_path"] = bytes_of(raw);
    scope["query_string"] = bytes_of(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    scope["root_path"] = "";
    py::list headers(in.headers.size());
    for (std::size_t i = 0; i < in.headers.size(); ++i)
      headers[i] = py::make_tuple(bytes_of(in.headers[i].first), bytes_of(in.headers[i].second));
    scope["headers"] = headers;
    scope["client"] = in.client.addr.empty() ? py::object(py::none()) : py::object(py::make_tuple(in.client.addr, in.client.port));
    scope["server"] = in.server ? py::object(py::make_tuple(in.server->host, in.server->port)) : py::object(py::none());
    scope["state"] = py::reinterpret_steal<py::dict>(PyDict_Copy(state.ptr()));
    spawn(scope, py::cast(in.x));
  }
  for (auto& p : bodies)
    if (auto x = p.x.lock()) x->add_body(std::move(p.bytes), p.last);
}

}  // namespace ufork::python
