// The HTTP helper's worker side: one io_context per worker, made after the
// fork; an accept loop and one coroutine per connection; a timer that sends
// the heartbeats; a graceful stop that drains what is queued and finishes
// what is in flight.
#include "ufork/http/server.hpp"

#include <utility>  // before Boost: see server.hpp

// g++ 12 misreads Asio 1.74's awaitable frame allocator (operator new/delete
// pairs of its own) as mismatched; a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <list>
#include <memory>
#include <optional>

#include "listener.hpp"
#include "ufork/worker.hpp"

namespace ufork::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;

response error_response(bhttp::status status, unsigned version) {
  response res{status, version};
  res.set(bhttp::field::content_type, "text/plain");
  res.body() = std::string(bhttp::obsolete_reason(status)) + "\n";
  res.keep_alive(false);
  res.prepare_payload();
  return res;
}

class worker_server {
 public:
  worker_server(worker& w, const handler& h, const server_options& o, int listen_fd)
      : worker_(w), handler_(h), options_(o), acceptor_(io_), stop_(io_, ::dup(w.stop_fd())), beat_(io_) {
    acceptor_.assign(listen_fd_protocol(listen_fd), listen_fd);
  }

  void run() {
    asio::co_spawn(io_, accept_loop(), asio::detached);
    asio::co_spawn(io_, heartbeat_loop(), asio::detached);
    stop_.async_wait(asio::posix::descriptor_base::wait_read, [this](beast::error_code ec) {
      if (!ec) begin_stop();
    });
    io_.run();
  }

 private:
  struct session {
    beast::tcp_stream stream;
    bool idle = true;  // waiting for the first byte of a request
    std::string out;   // the response being written, its capacity reused
    explicit session(tcp::socket s) : stream(std::move(s)) {}
  };

  static tcp listen_fd_protocol(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) continue;  // a connection reset while queued, EMFILE, ...: keep accepting
      start_session(std::move(s));
    }
  }

  void start_session(tcp::socket s) {
    s.set_option(tcp::no_delay(true));
    sessions_.emplace_back(std::move(s));
    auto it = std::prev(sessions_.end());
    asio::co_spawn(io_, serve(*it), [this, it](std::exception_ptr) { sessions_.erase(it); });
  }

  asio::awaitable<void> heartbeat_loop() {
    while (!stopping_) {
      worker_.heartbeat();
      beat_.expires_after(worker_.heartbeat_interval());
      beast::error_code ec;
      co_await beat_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }

  asio::awaitable<void> serve(session& s) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    for (;;) {
      if (buffer.size() == 0) {  // idle: between requests
        if (lingered_) co_return;
        s.idle = true;
        s.stream.expires_after(options_.keepalive_timeout);
        auto n = co_await s.stream.async_read_some(buffer.prepare(4096), asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;  // closed, timed out, or closed by a stop
        buffer.commit(n);
      }
      s.idle = false;
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
      parser.body_limit(options_.body_limit);
      s.stream.expires_after(options_.request_timeout);
      co_await bhttp::async_read(s.stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof) co_return;
      if (ec) {
        auto status = ec == bhttp::error::header_limit ? bhttp::status::request_header_fields_too_large
                      : ec == bhttp::error::body_limit ? bhttp::status::payload_too_large
                                                       : bhttp::status::bad_request;
        co_await reply(s, error_response(status, 11));
        co_return;
      }
      request req = parser.release();
      response res = answer(req);
      // worker_.stopping(): SIGTERM may have come while the handler ran,
      // before the loop could see the stop fd.
      res.keep_alive(req.keep_alive() && !stopping_ && !worker_.stopping());
      res.prepare_payload();
      bool keep = res.keep_alive();
      if (!co_await reply(s, std::move(res))) co_return;
      worker_.count_requests();
      if (!keep) co_return;
    }
  }

  response answer(const request& req) {
    try {
      return handler_(req);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ufork http: handler failed: %s\n", e.what());
      return error_response(bhttp::status::internal_server_error, req.version());
    }
  }

  // The response as bytes, written with one plain async_write: Beast's
  // serializer costs more than the rest of a small answer (perf, under wrk).
  static void serialize(const response& res, std::string& out) {
    out.clear();
    out.append(res.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    auto add = [&out](beast::string_view v) { out.append(v.data(), v.size()); };
    out.append(std::to_string(res.result_int())).append(" ");
    add(res.reason());
    out.append("\r\n");
    for (const auto& field : res.base()) {
      add(field.name_string());
      out.append(": ");
      add(field.value());
      out.append("\r\n");
    }
    out.append("\r\n").append(res.body());
  }

  asio::awaitable<bool> reply(session& s, response res) {
    beast::error_code ec;
    serialize(res, s.out);  // the write shares the request's deadline: one timer per request
    co_await asio::async_write(s.stream, asio::buffer(s.out), asio::redirect_error(use_awaitable, ec));
    if (!ec && !res.keep_alive()) s.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    co_return !ec;
  }

  // Stop accepting, but first take every connection already queued on the
  // socket, so none is reset; close idle keep-alive connections; let the
  // requests in flight finish (each answered with Connection: close).
  void begin_stop() {
    stopping_ = true;
    beat_.cancel();
    acceptor_.non_blocking(true);
    for (;;) {
      beast::error_code ec;
      tcp::socket s = acceptor_.accept(ec);
      if (ec) break;
      start_session(std::move(s));
    }
    beast::error_code ignored;
    acceptor_.close(ignored);
    // A keep-alive client's next request may be on its way already (it
    // sends it the moment it has an answer): closing its connection now
    // would reset that request. So idle connections get a moment, any
    // request in it is answered with Connection: close, and then the ones
    // still idle are closed.
    linger_.expires_after(stop_linger);
    linger_.async_wait([this](beast::error_code) {
      lingered_ = true;
      beast::error_code ignored;
      for (auto& s : sessions_)
        if (s.idle) s.stream.socket().close(ignored);
    });
  }

  static constexpr std::chrono::milliseconds stop_linger{200};

  worker& worker_;
  const handler& handler_;
  const server_options& options_;
  // One thread only: no locking in the scheduler and the reactor.
  asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  tcp::acceptor acceptor_;
  asio::posix::stream_descriptor stop_;
  asio::steady_timer beat_;
  asio::steady_timer linger_{io_};
  std::list<session> sessions_;
  bool stopping_ = false;
  bool lingered_ = false;
};

}  // namespace

int serve(handler h, const std::string& endpoint, server_options options) {
  // Bound here, in the arbiter, before any fork: a bad address or a port in
  // use is one exception for the caller, not a crash loop of workers.
  bound shared = bind_endpoint(endpoint, options.reuseport, !options.reuseport, options.backlog);
  if (options.on_listening) options.on_listening(shared.address);
  std::string address = shared.address;
  int shared_fd = shared.fd.get();  // the workers' copy: taken before any stop

  hooks hk = options.hooks;
  // Once stopping, the arbiter lets go of the socket: when the last worker
  // has drained its queue and closed it, new connections are refused at
  // once instead of queueing where nobody will accept them.
  hk.parent_pre_stop = [&] {
    if (options.hooks.parent_pre_stop) options.hooks.parent_pre_stop();
    shared.fd.reset();
  };
  hk.post_fork = [&](worker& w) {
    if (options.hooks.post_fork) options.hooks.post_fork(w);
    // The acceptor owns the worker's only copy: closing it at stop closes
    // the worker's hold on the socket.
    int fd = shared_fd;
    if (options.reuseport)  // each worker its own queue; the arbiter's holds the port
      fd = bind_endpoint(address, true, true, options.backlog).fd.release();
    worker_server server(w, h, options, fd);
    server.run();
  };
  arbiter a(options.pool, hk);
  a.log("listening on http://" + address + "/");
  if (options.configure) options.configure(a);
  return a.run();
}

}  // namespace ufork::http
