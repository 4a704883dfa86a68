// The HTTP helper's worker side: one io_context per worker, made after the
// fork; an accept loop and a small state machine per connection on plain
// Asio callbacks; the worker attached to the loop by ufork/asio.hpp (its
// heartbeats, its stop); a tick that enforces the deadlines while a
// connection is open; a graceful stop that drains what is queued and
// finishes what is in flight.
//
// Why callbacks and not coroutines or beast::tcp_stream: under wrk, perf
// put more worker time in Asio's coroutine frames, its type-erased executor
// and tcp_stream's timer per operation than in the HTTP itself.
#include "ufork/http/server.hpp"

#include <utility>  // before Boost: see server.hpp

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>
#include <list>
#include <memory>
#include <optional>

#include "listener.hpp"
#include "session.hpp"
#include "sys/clock.hpp"
#include "sys/sys.hpp"
#include "ufork/error.hpp"
#include "ufork/asio.hpp"
#include "ufork/worker.hpp"

namespace ufork::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
// The io_context's own executor, not Asio's type-erased default.
using executor = asio::io_context::executor_type;
using socket_type = asio::basic_stream_socket<tcp, executor>;
using acceptor_type = asio::basic_socket_acceptor<tcp, executor>;
using timer_type = asio::steady_timer::rebind_executor<executor>::other;
using namespace std::chrono_literals;
using detail::framing;

// Connection deadlines need a few milliseconds at best: the kernel's coarse
// clock is read without the TSC (perf: the precise one was 3% of a request).
struct coarse_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<coarse_clock>;
  [[maybe_unused]] static constexpr bool is_steady = true;
  static time_point now() noexcept {
    return time_point(sys::coarse_monotonic());
  }
};
using clock = coarse_clock;

// RFC 9110 6.6.1: an origin server with a clock sends Date. Made once a
// second, with English names whatever the program's locale.
class http_date {
 public:
  std::string_view now() {
    if (time_t second = sys::coarse_realtime_seconds(); second != second_) {
      second_ = second;
      tm t{};
      ::gmtime_r(&second_, &t);
      static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
      static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
      length_ = static_cast<std::size_t>(std::snprintf(text_, sizeof text_, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                                                       days[t.tm_wday], t.tm_mday, months[t.tm_mon],
                                                       t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec));
    }
    return {text_, length_};
  }

 private:
  std::time_t second_ = -1;
  char text_[64] = {};
  std::size_t length_ = 0;
};

tcp listen_fd_protocol(int fd) {
  return sys::local_address(fd).ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
}

class worker_server {
 public:
  worker_server(worker& w, const handler& h, const http_options& o, int listen_fd)
      : worker_(w), handler_(h), options_(o) {
    acceptor_.assign(listen_fd_protocol(listen_fd), listen_fd);
    // On the shared socket, a new connection wakes one worker, as nginx's
    // do: Asio registers the socket as any other, and its accept never
    // modifies that registration.
    if (!o.reuseport) accept_exclusively(listen_fd);
    // A connection is accepted once its first bytes have come (1 s at
    // most: nginx's `deferred`), so that its first read finds the request
    // and no wait is armed for it. A stop sees such connections as
    // handshakes under way (SYN_RECV) and takes them during its linger.
    int defer_seconds = 1;
    (void)sys::set_socket_option(listen_fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_seconds, sizeof defer_seconds);
    // Deadlines are checked on each tick: a tenth of the shortest timeout,
    // so a connection is cut off within 10% of its time.
    auto shortest = std::min(o.request_timeout, o.keepalive_timeout);
    period_ = std::max<std::chrono::milliseconds>(shortest / 10, 1ms);
  }

  // The worker is attached to this loop as any program's would be
  // (ufork/asio.hpp): heartbeats from its timer, SIGTERM as begin_stop().
  // The deadline tick runs only while a connection is open: an idle worker
  // wakes for its heartbeat alone.
  void run() {
    attached_.emplace(worker_, io_, [this] { begin_stop(); });
    accept();
    io_.run();
  }

 private:
  // A connection is always in one of these: reading (idle, or a request
  // begun: its session's `parser` is set), writing (`out` is set; nothing is read
  // until it is out, so a client that does not read is not fed), or
  // streaming (`stream` is set: the next piece is made when the last one is
  // out), or closing (its last answer sent, reading until the peer closes
  // so that unread bytes do not turn the close into a reset). Exactly one
  // Asio operation is pending for it whenever the loop runs (on its socket,
  // or a posted pump()), so closing the socket always ends in a handler
  // that erases it.
  //
  // What is rarely needed is on the heap (an idle connection costs what it
  // holds: 128 bytes here, and Asio's own per socket).
  struct connection : detail::session {
    bool closing = false;
    bool drained = false;  // the last read took less than it asked for: the kernel had no more
    bool nodelay = false;  // TCP_NODELAY set: from its second request on
    socket_type socket;
    // Read, not yet parsed: only a request that did not come whole in one
    // read (or requests behind a streamed answer) has one; see wait().
    std::unique_ptr<beast::flat_buffer> in;
    std::unique_ptr<std::string> out;  // answers the socket did not take at once, being written
    clock::time_point deadline;
    std::list<connection>::iterator self;
    explicit connection(socket_type s) : socket(std::move(s)) {}
  };

  // The connection's buffer, made on first use.
  beast::flat_buffer& buffer(connection& c) {
    if (!c.in) c.in = std::make_unique<beast::flat_buffer>(options_.header_limit + read_size);
    return *c.in;
  }
  static std::size_t unparsed(const connection& c) { return c.in ? c.in->size() : 0; }

  static constexpr std::size_t read_size = 16UL * 1024;
  static constexpr auto stop_linger = 200ms;   // see begin_stop
  static constexpr auto close_linger = 1000ms; // a closing connection waits this long for the peer

  void accept() {
    acceptor_.async_accept([this](error_code ec, socket_type s) {
      if (!ec) {
        if (std::exchange(accept_failing_, false)) std::fprintf(stderr, "ufork http: accepting again\n");
        start(std::move(s));
      }
      if (!acceptor_.is_open()) return;  // stopped
      if (ec && ec != asio::error::connection_aborted) {
        // Out of descriptors or memory: the socket stays readable, so
        // accepting again at once would spin. Pause, as nginx does, and
        // say so once, not every 100 ms.
        if (!std::exchange(accept_failing_, true))
          std::fprintf(stderr, "ufork http: accept: %s; retrying every 100 ms\n", ec.message().c_str());
        pause_.expires_after(100ms);
        pause_.async_wait([this](error_code e) {
          if (!e && acceptor_.is_open()) accept();
        });
        return;
      }
      accept();
    });
  }

  void start(socket_type s) {
    connection& c = conns_.emplace_back(std::move(s));
    c.self = std::prev(conns_.end());
    c.deadline = clock::now() + options_.keepalive_timeout;
    if (!ticking_) {
      ticking_ = true;
      arm_tick();
    }
    take(c);  // a new connection's request is on its way (here already, often), even during a stop
  }

  // Between requests of a keep-alive connection. TCP_NODELAY from here on,
  // as nginx does: a connection's first answer goes out at once anyway
  // (nothing of it is unacknowledged), and one that closes after it is
  // spared the call.
  void idle(connection& c) {
    if (lingered_) return erase(c);
    if (!std::exchange(c.nodelay, true)) {
      error_code ignored;
      c.socket.set_option(tcp::no_delay(true), ignored);
    }
    c.deadline = clock::now() + options_.keepalive_timeout;
    c.in.reset();  // empty
    wait(c);  // the next request has nearly never come yet: no read tried first
  }

  // A connection with no request begun holds no buffer (as nginx frees its
  // header buffer between requests): it waits for the socket to be
  // readable (Asio re-arms it in epoll: one syscall, as the failed read a
  // pending read would have tried first), and then reads into the worker's
  // scratch buffer. A request that came whole, nearly every one, is
  // answered from there; only what is left (a request not whole yet, or
  // ones behind a streamed answer) is kept in the connection's own buffer.
  void wait(connection& c) {
    c.socket.async_wait(tcp::socket::wait_read, [this, &c](error_code ec) {
      if (ec) return erase(c);  // a deadline or a stop closed the socket
      take(c);
    });
  }

  void take(connection& c) {
    std::error_code ec;
    auto room = scratch_.prepare(read_size);
    std::size_t n = sys::receive_now(c.socket.native_handle(), room.data(), room.size(), ec);
    if (ec == std::errc::resource_unavailable_try_again) return wait(c);
    if (ec || n == 0) return erase(c);  // a reset, or the peer closed
    if (c.closing) return wait(c);  // read and dropped, until the peer closes
    scratch_.commit(n);
    c.drained = n < read_size;
    answer_from(c, scratch_);
    if (scratch_.size() > 0) {
      beast::flat_buffer& in = buffer(c);
      in.commit(asio::buffer_copy(in.prepare(scratch_.size()), scratch_.data()));
      scratch_.clear();
    }
    flush(c);
  }

  // The rest of a request begun, into the connection's buffer (Asio tries
  // the read at once, and only then waits).
  void read(connection& c) {
    beast::flat_buffer& in = buffer(c);
    std::size_t room = in.max_size() - in.size();
    if (room == 0) {  // a request that does not fit the buffer (a chunk header without end, ...)
      c.parser.reset();
      c.in.reset();
      c.refuse(bhttp::status::bad_request, out_, date_.now());
      return flush(c);
    }
    std::size_t want = std::min(room, read_size);
    c.socket.async_read_some(in.prepare(want),
                             [this, &c, want](error_code ec, std::size_t n) { received(c, want, ec, n); });
  }

  void received(connection& c, std::size_t wanted, error_code ec, std::size_t n) {
    if (ec) return erase(c);  // the peer closed, a reset, a deadline or a stop closed the socket
    c.in->commit(n);
    c.drained = n < wanted;
    parse(c);
  }

  // Answers every whole request in the connection's buffer, then writes the answers.
  void parse(connection& c) {
    answer_from(c, *c.in);
    flush(c);
  }

  // The answers to every whole request at the front of `in`, into out_; a
  // request begun starts its deadline.
  void answer_from(connection& c, beast::flat_buffer& in) {
    if (c.parse(in, out_, *this, options_)) c.deadline = clock::now() + options_.request_timeout;
  }

  friend struct detail::session;  // calls handle(), stopping() and date() as its Host

  answer handle(const request& req) {
    answer a = run_handler(req);
    worker_.count_requests();
    return a;
  }

  answer run_handler(const request& req) {
    try {
      return handler_(req);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ufork http: handler failed: %s\n", e.what());
      response res = detail::error_response(bhttp::status::internal_server_error);
      res.version(req.version());
      return res;
    }
  }

  // worker_.stopping(): SIGTERM may have come while a handler ran, before
  // the loop could see the stop fd.
  bool stopping() { return stopping_ || worker_.stopping(); }

  std::string_view date() { return date_.now(); }

  // A streamed body's next piece: posted after the last one is written, so
  // that other connections get their turn in between.
  void pump(connection& c) {
    if (!c.socket.is_open()) return erase(c);  // a deadline closed it meanwhile
    bool more = false;
    piece_.clear();
    try {
      more = c.stream(piece_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ufork http: body source failed: %s\n", e.what());
      return erase(c);
    }
    if (!c.chunked) {
      out_.append(piece_);
    } else if (!piece_.empty()) {
      char size[20];
      out_.append(size, static_cast<std::size_t>(std::snprintf(size, sizeof size, "%zx\r\n", piece_.size())));
      out_.append(piece_).append("\r\n");
    }
    if (!more) {
      if (c.chunked) out_.append("0\r\n\r\n");
      c.stream = nullptr;
    }
    c.deadline = clock::now() + options_.request_timeout;  // a stream has its time per piece
    flush(c);
  }

  // Writes the answers made in out_ at once, as far as the socket takes
  // them (nearly always all); the rest is the connection's to keep, and
  // Asio writes it when the socket drains. out_ is empty again after.
  void flush(connection& c) {
    if (!out_.empty()) {
      std::error_code ec;
      std::size_t n = sys::send_now(c.socket.native_handle(), out_.data(), out_.size(), ec);
      if (ec && ec != std::errc::resource_unavailable_try_again) {
        out_.clear();
        return erase(c);
      }
      if (n < out_.size()) {
        c.out = std::make_unique<std::string>(out_, n);
        out_.clear();
        asio::async_write(c.socket, asio::buffer(*c.out), [this, &c](error_code e, std::size_t) {
          if (e) return erase(c);
          c.out.reset();
          written(c);
        });
        return;
      }
      out_.clear();
    }
    written(c);
  }

  void written(connection& c) {
    if (c.stream) return asio::post(io_, [this, &c] { pump(c); });
    if (c.last) {  // its last answer is out: half-close, and wait for the peer's close
      error_code ignored;
      // Unless the client said it was done and sent nothing more: nothing
      // unread can turn the close into a reset, so it closes now (as nginx
      // does), without a wake-up for the peer's close.
      if (c.peer_done && c.drained && unparsed(c) == 0) return erase(c);
      c.socket.shutdown(tcp::socket::shutdown_send, ignored);
      c.last = false;
      c.closing = true;
      c.in.reset();
      c.deadline = std::min(c.deadline, clock::now() + close_linger);
      return take(c);
    }
    if (c.parser) return read(c);      // the rest of a request
    if (unparsed(c) > 0) return parse(c);  // requests that waited behind a streamed answer
    idle(c);
  }

  void erase(connection& c) {
    conns_.erase(c.self);
    if (lingered_ && conns_.empty()) finish();
  }

  // Nothing left after a stop: the loop's last timers go, io_.run() returns.
  void finish() {
    tick_.cancel();
    attached_->detach();
  }

  void arm_tick() {
    tick_.expires_after(period_);
    tick_.async_wait([this](error_code ec) {
      if (!ec) tick();
    });
  }

  void tick() {
    auto now = clock::now();
    error_code ignored;
    for (auto& c : conns_)  // its pending operation ends in erase()
      if (c.deadline <= now) c.socket.close(ignored);
    if (conns_.empty()) {  // idle: no tick until the next connection
      ticking_ = false;
      return;
    }
    arm_tick();
  }

  // A stop: every request from here on is answered with Connection: close.
  // New connections are refused by dropping their SYN: the arbiter does
  // it on the shared socket when the whole pool stops (a worker stopping
  // alone leaves the socket to the others), a worker on its own
  // SO_REUSEPORT socket. The worker goes on accepting for a moment, so the
  // handshakes under way complete and are taken too; then it takes what is
  // queued and closes the socket, resetting no connection a client thinks
  // is open.
  //
  // A keep-alive client's next request may be on its way already (it sends
  // it the moment it has an answer): closing its connection at once would
  // reset that request. So idle connections get the same moment, and the
  // ones still idle after it are closed.
  //
  // An idle worker has nothing to wait for: no connection, and no handshake
  // under way (the kernel lists those), so it stops at once.
  void begin_stop() {
    stopping_ = true;
    if (options_.reuseport && !drop_new_connections(acceptor_.native_handle()))
      std::perror("ufork http: stop: SO_ATTACH_FILTER");
    accept_queued();
    if (conns_.empty() && !handshakes_under_way(acceptor_.native_handle())) return end_linger();
    linger_.expires_after(stop_linger);
    linger_.async_wait([this](error_code) { end_linger(); });
  }

  void end_linger() {
    accept_queued();
    error_code ignored;
    acceptor_.close(ignored);
    pause_.cancel();
    lingered_ = true;
    for (auto& c : conns_)
      if (!c.fresh && !c.parser && !c.out && !c.closing && !c.stream) c.socket.close(ignored);
    if (conns_.empty()) finish();
  }

  void accept_queued() {
    error_code ec;
    acceptor_.non_blocking(true, ec);
    for (;;) {
      socket_type s(io_);
      acceptor_.accept(s, ec);
      if (ec) return;
      start(std::move(s));
    }
  }

  worker& worker_;
  const handler& handler_;
  const http_options& options_;
  // One thread only: no locking in the scheduler and the reactor.
  asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  acceptor_type acceptor_{io_};
  std::optional<asio_worker> attached_;
  timer_type tick_{io_}, linger_{io_}, pause_{io_};
  bool ticking_ = false;  // the deadline tick is armed (while connections are open)
  bool accept_failing_ = false;  // said once until an accept succeeds
  std::chrono::milliseconds period_;
  std::list<connection> conns_;
  http_date date_;
  // Scratch, shared by the connections one at a time: the answers being
  // made, a streamed body's latest piece.
  std::string out_, piece_;
  beast::flat_buffer scratch_{read_size};  // what take() read: see wait()
  bool stopping_ = false;
  bool lingered_ = false;
};

}  // namespace

struct server::state {
  handler h;
  http_options options;
  // Bound here, in the arbiter, before any fork: a bad address or a port in
  // use is one exception for the caller, not a crash loop of workers.
  bound shared;
  int shared_fd;  // the workers' copy: taken before any stop
  arbiter* log = nullptr;
  bool attached = false;

  state(handler handler, const std::string& endpoint, http_options o)
      : h(std::move(handler)), options(o),
        shared(bind_endpoint(endpoint, o.reuseport, !o.reuseport, o.backlog)), shared_fd(shared.fd.get()) {}

  void say(const std::string& text) const {
    if (log)
      log->log(text);
    else
      std::fprintf(stderr, "ufork http: %s\n", text.c_str());
  }
};

server::server(handler h, const std::string& endpoint, http_options options)
    : state_(std::make_unique<state>(std::move(h), endpoint, options)) {}
server::~server() = default;

const std::string& server::address() const noexcept { return state_->shared.address; }

void server::log_to(arbiter& a) noexcept { state_->log = &a; }

void server::attach(options& pool, hooks& hk) {
  if (std::exchange(state_->attached, true)) throw_invalid("an HTTP server is attached to one arbiter");
  state* st = state_.get();
  // Once stopping, the arbiter turns new connections away (see
  // worker_server::begin_stop) and lets go of the socket, so that it closes
  // when the last worker has taken its queue.
  hk.parent_pre_stop = [st, before = std::move(hk.parent_pre_stop)] {
    if (before) before();
    if (!st->options.reuseport && !drop_new_connections(st->shared.fd.get()))
      st->say("stop: cannot filter new connections: " + std::generic_category().message(errno));
    st->shared.fd.reset();
  };
  hk.post_fork = [st, before = std::move(hk.post_fork)](worker& w) {
    if (before) before(w);
    // The acceptor owns the worker's only copy: closing it at stop closes
    // the worker's hold on the socket.
    int fd = st->shared_fd;
    if (st->options.reuseport)  // each worker its own queue; the arbiter's holds the port
      fd = bind_endpoint(st->shared.address, true, true, st->options.backlog).fd.release();
    worker_server server(w, st->h, st->options, fd);
    server.run();
  };
  if (pool.strict_fds) pool.keep_fds.push_back(st->shared_fd);
}

int serve(handler h, const std::string& endpoint, server_options options) {
  server web(std::move(h), endpoint, options);
  if (options.on_listening) options.on_listening(web.address());
  hooks hk = options.hooks;
  web.attach(options.pool, hk);
  arbiter a(options.pool, hk);
  web.log_to(a);
  a.log("listening on http://" + web.address() + "/" + every_interface_note(web.address()));
  if (options.configure) options.configure(a);
  return a.run();
}

}  // namespace ufork::http
