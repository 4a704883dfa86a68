// The HTTP helper's worker side: one io_context per worker, made after the
// fork; an accept loop, and a small state machine per connection driven by
// an epoll set of the worker's own (one descriptor in the io_context); the
// worker attached to the loop by ufork/asio.hpp (its heartbeats, its stop);
// a tick that enforces the deadlines while a connection is open; a graceful
// stop that drains what is queued and finishes what is in flight.
//
// Why callbacks and not coroutines or beast::tcp_stream: under wrk, perf
// put more worker time in Asio's coroutine frames, its type-erased executor
// and tcp_stream's timer per operation than in the HTTP itself. Why not an
// Asio socket per connection: Asio 1.74 arms a wait with an epoll_ctl(2)
// each time (a third syscall per keep-alive request, beside recv and send),
// and keeps ~270 bytes per socket.
#include "ufork/http/server.hpp"

#include <utility>  // before Boost: see server.hpp

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
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
#include <filesystem>
#include <string_view>
#include <list>
#include <mutex>
#include <unordered_map>
#include <memory>
#include <optional>
#include <system_error>
#include <vector>

#include "net/listener.hpp"
#include "session.hpp"
#include "sys/clock.hpp"
#include "sys/fd.hpp"
#include "sys/event.hpp"
#include "sys/socket.hpp"
#include "sys/unique_fd.hpp"
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

// Asio's epoll descriptor, for a loop turned from another
// (http_options::drive), which watches it: Boost 1.74 has no accessor for
// it, and an explicit instantiation may name a private member (the name is
// checked when this compiles; the object is io_context's own reactor).
#if !defined(BOOST_ASIO_HAS_EPOLL)
#error "ufork's HTTP helper needs Asio's epoll reactor (Linux)"
#endif
using reactor = asio::detail::epoll_reactor;
int epoll_fd_of(reactor& r);
template <int reactor::*fd>
struct reactor_access {
  friend int epoll_fd_of(reactor& r) { return r.*fd; }
};
template struct reactor_access<&reactor::epoll_fd_>;

thread_local int t_connection = -1;  // the connection whose request a handler answers
thread_local bool t_streamed = false;  // ... and whether its body follows in pieces

struct current_server;

// Answers given later (deferred) reach the worker's loop here: the ones
// with news, and the eventfd the loop waits on. Shared with the deferreds,
// which another thread may hold after the worker's server is gone.
struct mailbox {
  std::mutex mu;
  std::vector<std::shared_ptr<deferred::state>> news;
  sys::unique_fd wake;
  bool open = true;
  const current_server* owner = nullptr;
};

// A connection's two ends, as current_peer() and current_local() give
// them: asked once per connection (a Python server asks for every request).
struct connection_ends {
  std::optional<peer> remote, local;
};

// The worker's server as a handler and a deferred see it.
struct current_server {
  // Its mailbox, opened for the first deferred (a server that never gets
  // one holds no fd for it).
  virtual std::shared_ptr<mailbox> open_mailbox() = 0;
  // The connection's ends, read when first asked.
  virtual const connection_ends& ends(int fd) = 0;
  // The mailbox has news, given on the thread that drives the loop, outside
  // its step(): delivered at the next step(), which the driver is asked for.
  virtual void news_soon() = 0;

 protected:
  ~current_server() = default;
};
thread_local current_server* t_server = nullptr;  // while a handler runs
// The server whose loop this thread drives (http_options::drive), while it
// is not in its step(): a deferred given here (the app's loop running the
// app) needs no wake-up through the eventfd.
thread_local current_server* t_driver = nullptr;
struct driver_scope {  // t_driver set for a scope
  current_server* was;
  explicit driver_scope(current_server* s) : was(std::exchange(t_driver, s)) {}
  ~driver_scope() { t_driver = was; }
  driver_scope(const driver_scope&) = delete;
  driver_scope& operator=(const driver_scope&) = delete;
};

}  // namespace

struct deferred::state : std::enable_shared_from_this<deferred::state> {
  std::function<void(event)> tell;
  std::shared_ptr<mailbox> box;
  // Given, not yet taken by the loop (box->mu).
  std::optional<response> head;
  bool last = false;  // with the head: its body is whole
  std::string pieces;
  bool ended = false, failed = false, queued = false;
  bool more = false;  // the request body's next piece is wanted
  std::function<void(std::string, bool)> take_body;  // the loop's: a streamed request body's pieces
  // The worker's loop's own.
  void* conn = nullptr;  // the connection that waits for it, until it goes
  bool started = false, head_request = false, keep = false;
  unsigned version = 11;
  detail::framing how = detail::framing::length;

  // Changes what is given, and wakes the loop if it has nothing to look at yet.
  template <class F>
  void give(F change) {
    bool wake = false;
    {
      std::lock_guard lock(box->mu);
      if (!box->open) return;
      change();
      if (!std::exchange(queued, true)) {
        wake = box->news.empty();
        box->news.push_back(shared_from_this());
      }
    }
    if (!wake) return;
    if (t_driver && t_driver == box->owner)
      t_driver->news_soon();
    else
      sys::eventfd_signal(box->wake.get());
  }
};

deferred::deferred(std::function<void(event)> tell) : state_(std::make_shared<state>()) {
  if (!t_server) throw std::logic_error("ufork::http::deferred: made outside a handler");
  state_->tell = std::move(tell);
  state_->box = t_server->open_mailbox();
}
deferred::~deferred() = default;

void deferred::start(response res, bool last) {
  auto& s = *state_;
  s.give([&] {
    s.head = std::move(res);
    s.last = last;
    s.ended = s.ended || last;
  });
}
void deferred::body(std::string piece, bool last) {
  auto& s = *state_;
  s.give([&] {
    s.pieces += piece;
    s.ended = s.ended || last;
  });
}
void deferred::fail() {
  auto& s = *state_;
  s.give([&] { s.failed = true; });
}
void deferred::on_body(std::function<void(std::string piece, bool last)> take) { state_->take_body = std::move(take); }
void deferred::more() {
  auto& s = *state_;
  s.give([&] { s.more = true; });
}

struct deferred_access {
  static const std::shared_ptr<deferred::state>& of(const deferred& d) { return d.state_; }
};

namespace {

class worker_server final : public current_server, public driven_loop {
 public:
  // nudge_fd: the pool's eventfd for spreading connections (spread_some),
  // taken as the listening sockets are; or -1.
  worker_server(worker& w, const handler& h, const http_options& o, const std::vector<int>& listen_fds, int nudge_fd)
      : worker_(w), handler_(h), options_(o) {
    for (int fd : listen_fds) {
      listener& l = listeners_.emplace_back(io_, fd);
      l.acceptor.assign(listen_fd_protocol(fd), fd);
      l.tcp = sys::local_address(fd).ss_family != AF_UNIX;
      error_code ignored;
      l.acceptor.non_blocking(true, ignored);  // accept_some() takes until the queue is empty
      // On a shared socket, a new connection wakes one worker, as nginx's
      // do (see accept_some for how Asio's registration stays exclusive).
      if (!o.reuseport) l.registrations = net::accept_exclusively(fd);
      // A TCP connection is accepted once its first bytes have come (1 s at
      // most: nginx's `deferred`), so that its first read finds the
      // request. A stop sees such connections as handshakes under way
      // (SYN_RECV) and takes them during its linger. (A unix socket refuses
      // the option, and has no handshake.)
      int defer_seconds = 1;
      (void)sys::set_socket_option(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_seconds, sizeof defer_seconds);
    }
    // Deadlines are checked on each tick: a tenth of the shortest timeout,
    // so a connection is cut off within 10% of its time.
    auto shortest = std::min(o.request_timeout, o.keepalive_timeout);
    period_ = std::max<std::chrono::milliseconds>(shortest / 10, 1ms);
    auto set = sys::make_epoll();
    if (!set) throw std::system_error(set.error(), "epoll_create1");
    int fd = set.value().release();
    sys::disown_fd(fd);  // Asio's descriptor closes it
    events_.assign(fd);
    if (nudge_fd >= 0) {
      nudge_.assign(nudge_fd);
      nudge_registrations_ = sys::watch_exclusively(nudge_.native_handle());  // a nudge wakes one waiting worker
    }
  }
  worker_server(const worker_server&) = delete;
  worker_server& operator=(const worker_server&) = delete;
  // The mailbox's eventfd, made for the first deferred: the mailbox keeps
  // it (another thread may signal it after this server is gone), Asio's
  // loop waits on a copy.
  std::shared_ptr<mailbox> open_mailbox() override {
    if (!box_->wake) {
      auto wake = sys::make_eventfd(true);
      if (!wake) throw std::system_error(wake.error(), "eventfd");
      auto copy = sys::duplicate(wake.value().get());
      if (!copy) throw std::system_error(copy.error(), "dup");
      box_->wake = std::move(wake).value();
      box_->owner = this;
      mail_.assign(copy.value().release());
      watch_mail();
    }
    return box_;
  }

  ~worker_server() {  // empty after a stop; not after an exception out of the loop
    {
      std::lock_guard lock(box_->mu);
      box_->open = false;
      box_->news.clear();
    }
    for (auto& [fd, st] : waiting_) st->conn = nullptr;
    for (auto& c : conns_)
      if (c.fd >= 0) sys::close_connection(c.fd);
  }

  // The worker is attached to this loop as any program's would be
  // (ufork/asio.hpp): heartbeats from its timer, SIGTERM as begin_stop().
  // The deadline tick runs only while a connection is open: an idle worker
  // wakes for its heartbeat alone.
  //
  // Driven from the program's own loop (options_.drive), it runs in
  // step(): even the first accepts, so that handlers run only there.
  void run() {
    if (nudge_.is_open()) {  // before the worker is ready: the pool knows it accepts
      worker_.show_connections(0);
      watch_nudge();
    }
    attached_.emplace(worker_, io_, [this] { begin_stop(); });
    watch();
    for (auto& l : listeners_)  // connections may be queued already: the wait in accept_some sees only new ones
      asio::post(io_, [this, &l] { accept_some(l); });
    if (options_.drive) {
      reactor_fd_ = epoll_fd_of(asio::use_service<reactor>(io_));
      driver_scope driving(this);
      options_.drive(*this);
    } else {
      io_.run();
    }
  }
  int fd() const noexcept override { return reactor_fd_; }
  // What was given since the last step() is written first: the answers of
  // every request the app ran meanwhile leave together (a send(2) per answer
  // as each was given woke the client's side for each: with 64 clients,
  // FastAPI served 10% fewer requests, each costing more CPU).
  bool step() override {
    driver_scope turning(nullptr);  // what is given in a turn waits for the mailbox's turn
    deliver_news();
    io_.poll();
    return !io_.stopped();
  }

  const connection_ends& ends(int fd) override {
    auto [it, made] = ends_.try_emplace(fd);
    if (made) {
      auto [host, port] = sys::host_and_port(sys::peer_address(fd));
      if (!host.empty()) it->second.remote = peer{std::move(host), port};  // (none on a unix socket)
      std::tie(host, port) = sys::host_and_port(sys::local_address(fd));
      if (!host.empty()) it->second.local = peer{std::move(host), port};
    }
    return it->second;
  }

 private:
  // A listening socket (its fd the acceptor's), and its pause after an
  // accept failed (said once until an accept succeeds). In a list: the
  // callbacks keep a reference.
  struct listener {
    int fd;
    acceptor_type acceptor;
    timer_type pause;  // after a failed accept, or out of the loop (step_aside)
    std::vector<sys::epoll_registration> registrations;  // in Asio's set, exclusive: see step_aside
    bool tcp = true;
    bool failing = false;
    bool waiting = false;  // for the socket (an async_wait is pending)
    bool aside = false;    // out of the loop's set (step_aside)
    int idle_asides = 0;   // in a row, with no connection taken by the others meanwhile
    listener(asio::io_context& io, int f) : fd(f), acceptor(io), pause(io) {}
  };

  // The connections are in an epoll set of the worker's own, registered
  // once, edge-triggered, for reading and writing (as nginx's are); the set
  // is one descriptor in Asio's loop. A keep-alive request costs a recv(2)
  // and a send(2), and an idle connection no more than this struct: Asio's
  // own per socket (its state, a pending wait, and an epoll_ctl(2) to arm it
  // for each request) is not paid.
  //
  // A connection is always in one of these: reading (idle, or a request
  // begun: its session's `parser` is set), writing (`out` is set; nothing is
  // read until it is out, so a client that does not read is not fed),
  // streaming (`stream` is set: the next piece is made, posted, when the last
  // one is out), or closing (its last answer sent, reading until the peer
  // closes so that unread bytes do not turn the close into a reset).
  struct connection : detail::session {
    bool readable = true;  // input may be waiting (an edge not read to its end): a new one's request is there, often
    bool writable = true;  // the socket may take more (no send fell short since the last edge)
    bool ended = false;    // the peer closed or failed: readable until a read says so
    bool closing = false;
    bool drained = false;  // the last read took less than it asked for: the kernel had no more
    bool nodelay = false;  // TCP_NODELAY set: from its second request on
    bool pumping = false;  // a pump() is posted: it erases a connection closed meanwhile
    bool waiting = false;  // for an answer given later (waiting_ has it)
    bool body_wanted = false;  // a streamed request body: its next piece may be read (parser set)
    int fd;                // -1 once closed while pumping
    // Read, not yet parsed: only a request that did not come whole in one
    // read (or requests behind a streamed answer) has one; see take().
    std::unique_ptr<beast::flat_buffer> in;
    std::unique_ptr<std::string> out;  // answers the socket did not take at once, being written
    clock::time_point deadline;
    std::list<connection>::iterator self;
    explicit connection(int f) : fd(f) {}
  };

  // A connection's phase, named from what it holds: the buffers and the
  // stream are the phase's data, so the phase is read from them and cannot
  // disagree with them. The readiness flags above are the socket's, not the
  // phase's.
  enum class phase {
    fresh,      // no request yet
    idle,       // between requests of a keep-alive connection
    reading,    // a request begun (parser)
    writing,    // answers the socket did not take at once (out)
    streaming,  // a streamed body's next piece to make (stream)
    waiting,    // an answer given later (waiting), its next part still to come
    closing,    // its last answer sent; reading until the peer closes
  };
  static phase phase_of(const connection& c) {
    if (c.closing) return phase::closing;
    if (c.out) return phase::writing;
    if (c.stream) return phase::streaming;
    if (c.waiting) return phase::waiting;
    if (c.parser) return phase::reading;
    return c.fresh ? phase::fresh : phase::idle;
  }

  // The connection's buffer, made on first use.
  beast::flat_buffer& buffer(connection& c) {
    if (!c.in) c.in = std::make_unique<beast::flat_buffer>(options_.header_limit + read_size);
    return *c.in;
  }
  static std::size_t unparsed(const connection& c) { return c.in ? c.in->size() : 0; }
  connection* find(int fd) { return static_cast<std::size_t>(fd) < by_fd_.size() ? by_fd_[fd] : nullptr; }

  static constexpr std::size_t read_size = 16UL * 1024;
  static constexpr std::size_t body_piece = 64UL * 1024;  // a streamed request body's, when it comes fast
  static constexpr int accepts_per_turn = 16;  // then the loop's other work gets its turn
  static constexpr std::uint32_t spread_slack = 2;  // connections over its share a worker may hold (spread_some)
  static constexpr auto aside_for = 1ms;       // see step_aside
  static constexpr int events_per_turn = 128;
  static constexpr auto stop_linger = 200ms;   // see begin_stop
  static constexpr auto close_linger = 1000ms; // a closing connection waits this long for the peer

  // Takes what is queued (a turn's worth at a time), then waits for the
  // listening socket in Asio's loop. Asio arms that wait with an
  // EPOLL_CTL_MOD, which the kernel refuses for an EPOLLEXCLUSIVE
  // registration (Asio goes on, and the registration stays as it was,
  // edge-triggered): so the queue is always emptied before waiting, and
  // any connection after that is an edge the wait sees. (Not in the
  // connections' set: a set that is itself watched by another is never a
  // waiter to the kernel, so EPOLLEXCLUSIVE woke every worker there, all 4
  // of 4 per connection against 1 here.)
  //
  // A worker holding more than its share takes its share and leaves the
  // rest (spread_some); `all` takes them anyway (step_aside).
  void accept_some(listener& l, bool all = false) {
    std::uint32_t room = all ? UINT32_MAX : spread_some(l);
    for (int taken = 0; taken < accepts_per_turn && accepting_; ++taken) {  // a request answered may end it
      // Its share reached: worked out again (a burst goes on coming, and
      // the others take their part meanwhile) before it steps aside.
      if (room == 0 && (room = spread_some(l)) == 0) return step_aside(l);
      --room;
      std::error_code ec;
      int fd = sys::accept_connection(l.fd, ec);
      if (fd >= 0) {
        if (std::exchange(l.failing, false)) std::fprintf(stderr, "ufork http: accepting again\n");
        start(fd);
        continue;
      }
      if (ec == std::errc::resource_unavailable_try_again) {
        if (!std::exchange(l.waiting, true))
          l.acceptor.async_wait(tcp::acceptor::wait_read, [this, &l](error_code e) {
            l.waiting = false;
            if (!e && l.acceptor.is_open()) accept_some(l);
          });
        return;
      }
      if (ec == std::errc::connection_aborted) continue;
      // Out of descriptors or memory: the socket stays readable, so
      // accepting again at once would spin. Pause, as nginx does, and say
      // so once, not every 100 ms.
      if (!std::exchange(l.failing, true))
        std::fprintf(stderr, "ufork http: accept: %s; retrying every 100 ms\n", ec.message().c_str());
      l.pause.expires_after(100ms);
      l.pause.async_wait([this, &l](error_code e) {
        if (!e && l.acceptor.is_open()) accept_some(l);
      });
      return;
    }
    asio::post(io_, [this, &l, all] {
      if (l.acceptor.is_open()) accept_some(l, all);
    });
  }

  // How many connections this worker takes now. Connections that come in
  // a burst (a client opening 64 at once, a proxy's keep-alive pool) are
  // all queued before a woken worker runs; it would take them all, and
  // keep them. So each worker shows how many it holds (in its scoreboard
  // cell), and takes no more than its share of those held by the pool's
  // accepting workers and those queued, plus spread_slack; the others get
  // the rest (step_aside). No limit on a worker's own socket, or alone.
  std::uint32_t spread_some(const listener& l) {
    if (!nudge_.is_open() || l.registrations.empty()) return UINT32_MAX;
    auto pool = worker_.connections_held();  // shared memory: before the syscall, which one worker does not need
    if (pool.workers < 2) return UINT32_MAX;
    std::uint64_t queued = 1;  // a unix socket's queue costs a netlink dump: taken as one
    if (auto q = l.tcp ? sys::tcp_accept_queue(l.fd) : std::nullopt) {
      if (*q <= 0) return UINT32_MAX;  // nothing to leave: the wait sees the next one
      queued = static_cast<std::uint64_t>(*q);
    }
    auto share = (pool.held + queued + pool.workers - 1) / pool.workers;
    auto limit = share + std::max<std::uint64_t>(spread_slack, share / 8);
    return conns_.size() < limit ? static_cast<std::uint32_t>(limit - conns_.size()) : 0;
  }

  // What the other accepting workers hold.
  std::uint64_t others_hold() const {
    auto held = worker_.connections_held().held;
    return held > conns_.size() ? held - conns_.size() : 0;
  }

  // More than its share: the socket leaves this worker's loop for
  // aside_for, so that a new connection wakes another worker, and the
  // nudge (an eventfd each worker watches, exclusively) wakes one waiting
  // worker to take those queued now. Back, it takes its share again, and
  // may step aside again; but when the others took no connection while it
  // was aside, twice in a row (once may be because they were aside too),
  // they cannot (all busy): it takes all that is queued, and a connection
  // waits no longer.
  void step_aside(listener& l) {
    set_aside(l, true);
    sys::eventfd_signal(nudge_.native_handle());
    l.pause.expires_after(aside_for);
    l.pause.async_wait([this, &l, before = others_hold()](error_code e) {
      if (e || !l.acceptor.is_open()) return;  // stopped: the acceptor is closed
      set_aside(l, false);
      l.idle_asides = others_hold() > before ? 0 : l.idle_asides + 1;
      bool all = l.idle_asides == 2;
      accept_some(l, all);
      if (all || !l.aside) l.idle_asides = 0;
    });
  }

  // The socket out of the loop's set, or back. The nudge goes out with the
  // last socket and comes back with the first: a worker aside would take a
  // nudge meant for the others (one waiting worker is woken).
  void set_aside(listener& l, bool aside) {
    auto all_aside = [this] { return std::ranges::all_of(listeners_, [](const listener& x) { return x.aside; }); };
    bool nudge_was_aside = all_aside();
    l.aside = aside;
    auto move = [aside](int fd, const std::vector<sys::epoll_registration>& where) {
      for (const auto& r : where)
        if (auto ec = aside ? sys::epoll_remove(r.epfd, fd) : sys::epoll_add(r.epfd, fd, r.events, r.data))
          std::fprintf(stderr, "ufork http: epoll_ctl(spreading connections): %s\n", ec.message().c_str());
    };
    move(l.fd, l.registrations);
    if (all_aside() != nudge_was_aside) move(nudge_.native_handle(), nudge_registrations_);
  }

  // Another worker stepped aside: connections may be queued that no wait
  // of this worker's will see (they came before), so it looks.
  void watch_nudge() {
    nudge_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code e) {
      if (e) return;
      (void)sys::drain_counter(nudge_.native_handle());
      for (auto& l : listeners_)
        if (l.waiting && !l.aside && l.acceptor.is_open()) accept_some(l);
      watch_nudge();
    });
  }

  void start(int fd) {
    if (static_cast<std::size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<std::size_t>(fd) + 1);
    if (sys::epoll_add(events_.native_handle(), fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                       static_cast<std::uint64_t>(fd))) {
      sys::close_connection(fd);  // out of memory: as if it had failed to connect
      return;
    }
    connection& c = conns_.emplace_back(fd);
    c.self = std::prev(conns_.end());
    show_connections();
    by_fd_[fd] = &c;
    c.deadline = clock::now() + options_.keepalive_timeout;
    if (!ticking_) {
      ticking_ = true;
      arm_tick();
    }
    take(c);  // a new connection's request is on its way (here already, often), even during a stop
  }

  // A handler's answer::later: its connection waits for it.
  void defer(const request& req, const std::shared_ptr<deferred>& d) {
    connection* c = find(t_connection);
    const auto& st = deferred_access::of(*d);
    if (!c || st->box != box_) throw std::logic_error("ufork::http::deferred: made for another worker's request");
    st->conn = c;
    st->head_request = req.method() == bhttp::verb::head;
    st->version = req.version();
    st->keep = req.keep_alive();
    c->waiting = true;
    c->body_wanted = c->parser != nullptr;  // a streamed body's first piece: what came with the head, or the next read
    waiting_[c->fd] = st;
  }

  void watch_mail() {
    mail_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
      if (!ec) on_mail();
    });
  }

  // The mailbox's eventfd: news given from another thread (or, with no
  // `soon`, from the driving one).
  void on_mail() {
    (void)sys::drain_counter(box_->wake.get());
    deliver_news();
    if (!finished_) watch_mail();
  }

  // The one answer the loop waits for goes out at once; with others under
  // way, at the next step(), together.
  void news_soon() override {
    if (waiting_.size() <= 1)
      deliver_news();
    else if (options_.soon)
      options_.soon();
    else
      sys::eventfd_signal(box_->wake.get());
  }

  // What the deferreds were given since the last look, written to their
  // connections.
  void deliver_news() {
    std::vector<std::shared_ptr<deferred::state>> news;
    {
      std::lock_guard lock(box_->mu);
      news.swap(box_->news);
    }
    for (auto& st : news) {
      std::optional<response> head;
      std::string pieces;
      bool last, ended, failed, more;
      {
        std::lock_guard lock(box_->mu);
        st->queued = false;
        head = std::exchange(st->head, std::nullopt);
        pieces = std::exchange(st->pieces, {});
        last = st->last;
        ended = st->ended;
        failed = st->failed;
        more = std::exchange(st->more, false);
      }
      auto* c = static_cast<connection*>(st->conn);
      if (c && more && c->parser) {  // the app took the last piece of its streamed body: read on
        c->body_wanted = true;
        if (!c->out) take(*c);  // (else once the socket has taken what is being written: written())
        c = static_cast<connection*>(st->conn);  // (gone, if that read found the client gone)
      }
      if (c && (head || ended || failed || !pieces.empty())) deliver(*c, *st, std::move(head), last, pieces, ended, failed);
    }
  }

  void deliver(connection& c, deferred::state& st, std::optional<response> head, bool last, const std::string& pieces,
               bool ended, bool failed) {
    if (failed && st.started) return erase(c);  // a body cut short: the client sees the close
    if (failed || (head && !deliverable(*head))) {
      head = detail::error_response(bhttp::status::internal_server_error);
      last = ended = true;
    }
    if (head && !st.started) {
      head->version(st.version);
      unsigned status = head->result_int();
      bool none = status < 200 || status == 204 || status == 304;
      st.how = last || none                                       ? framing::length
               : st.version >= 11                                  ? framing::chunked
                                                                   : framing::close;
      bool keep = st.keep && !stopping() && st.how != framing::close &&
                  (head->find(bhttp::field::connection) == head->end() || head->keep_alive());
      c.respond(*head, st.head_request, keep, st.how, out_, date_.now());
      st.started = true;
    }
    if (st.started && !st.head_request && st.how != framing::length && !pieces.empty()) {
      if (st.how == framing::chunked) {
        char size[20];
        out_.append(size, static_cast<std::size_t>(std::snprintf(size, sizeof size, "%zx\r\n", pieces.size())));
        out_.append(pieces).append("\r\n");
      } else {
        out_.append(pieces);
      }
    }
    if (ended && st.started) {
      if (st.how == framing::chunked && !st.head_request) out_.append("0\r\n\r\n");
      c.waiting = false;
      st.conn = nullptr;
      waiting_.erase(c.fd);
      if (c.parser) {  // its request's body is not all read: the connection ends with this answer
        c.parser.reset();
        c.body_wanted = false;
        c.last = true;
      }
    }
    c.deadline = clock::now() + options_.request_timeout;  // an answer given in parts has its time per part
    if (c.out) {  // the socket has not taken the last part yet: this one goes after it
      c.out->append(out_);
      out_.clear();
      return;
    }
    flush(c);
  }

  // A head given later that can be sent (else logged: it becomes a 500).
  static bool deliverable(const response& res) {
    std::string why = detail::response_problem(res);
    if (!why.empty()) std::fprintf(stderr, "ufork http: an answer given later is refused (500 instead): %s\n", why.c_str());
    return why.empty();
  }

  // The worker's epoll set is readable when a connection has an event.
  void watch() {
    events_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
      if (!ec) on_events();
    });
  }

  void on_events() {
    epoll_event events[events_per_turn];
    auto n = sys::epoll_wait(events_.native_handle(), events, events_per_turn, 0);
    for (int i = 0; i < (n ? n.value() : 0); ++i) {
      connection* c = find(static_cast<int>(events[i].data.u64));
      if (!c) continue;  // closed (a copy of its socket in a child of a handler can still report)
      std::uint32_t e = events[i].events;
      if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->ended = true;
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable = true;
      if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->writable = true;
      proceed(*c);
    }
    if (!finished_) watch();  // (at once again if this turn left events: the set is still readable)
  }

  // What an event lets a connection do next.
  void proceed(connection& c) {
    if (c.out) {
      if (c.writable) write_rest(c);
    } else if (!c.pumping && c.readable) {
      take(c);
    }
  }

  // A connection read to the end of one buffer may have more: it reads
  // again after the connections with events now (one client's flood does
  // not hold up the others).
  void later(connection& c) {
    later_.push_back(c.fd);
    if (std::exchange(later_posted_, true)) return;
    asio::post(io_, [this] {
      later_posted_ = false;
      auto fds = std::move(later_);
      later_.clear();
      for (int fd : fds)
        if (connection* c = find(fd)) proceed(*c);  // (or a new one on that fd: a read finds nothing)
    });
  }

  // A streamed request body's next piece, from what `in` holds, to the
  // deferred answering it; then nothing more is read until it asks
  // (deferred::more). False if the connection is gone (a body that does
  // not parse is refused: the client sees the close).
  bool feed_body(connection& c, beast::flat_buffer& in) {
    auto& st = *waiting_.at(c.fd);
    for (;;) {
      boost::system::error_code ec;
      std::size_t used = c.parser->put(in.data(), ec);
      in.consume(used);
      if (ec == bhttp::error::need_more) break;
      if (ec) {
        erase(c);
        return false;
      }
      if (c.parser->is_done() || used == 0 || in.size() == 0) break;
    }
    bool last = c.parser->is_done();
    // Gathered to 64 KiB while the socket has more (each piece costs the
    // other side a wake-up), else what there is.
    std::size_t held = c.parser->get().body().size();
    if (!last && (held == 0 || (held < body_piece && !c.drained))) return true;
    std::string piece = std::exchange(c.parser->get().body(), {});
    c.body_wanted = false;
    if (last)
      c.parser.reset();
    else if (piece.size() >= body_piece)  // a whole piece: the next is likely one too, and grows into this at once
      c.parser->get().body().reserve(body_piece);
    c.deadline = clock::now() + options_.request_timeout;  // a body has its time per piece
    if (st.take_body) st.take_body(std::move(piece), last);
    return true;
  }

  // Reads what the socket has. With no request begun, into the worker's
  // scratch buffer (as nginx frees its header buffer between requests, an
  // idle connection holds none): a request that came whole, nearly every
  // one, is answered from there; only what is left (a request not whole
  // yet, or ones behind a streamed answer) is kept in the connection's own
  // buffer, where the rest of it is read.
  void take(connection& c) {
    if (c.waiting && c.parser) {  // a streamed request body: read while its next piece is wanted
      if (c.body_wanted && unparsed(c) > 0 && !feed_body(c, *c.in)) return;
      if (!c.body_wanted) return;
    }
    beast::flat_buffer& in = c.in ? *c.in : scratch_;
    std::size_t room = std::min(in.max_size() - in.size(), read_size);
    if (room == 0 && c.waiting) return;  // the requests behind one answered later: read once it has ended
    if (room == 0) {  // a request that does not fit the buffer (a chunk header without end, ...)
      c.parser.reset();
      c.in.reset();
      c.refuse(bhttp::status::bad_request, out_, date_.now());
      return flush(c);
    }
    std::error_code ec;
    std::size_t n = sys::receive_now(c.fd, in.prepare(room).data(), room, ec);
    if (ec == std::errc::resource_unavailable_try_again) {
      c.readable = false;  // until the next edge
      return;
    }
    if (ec || n == 0) return erase(c);  // a reset, or the peer closed
    // A read that took less than it asked for emptied the socket: what
    // comes next is an edge. Unless the peer has closed already: its end
    // is still to be read.
    c.drained = n < room;
    c.readable = !c.drained || c.ended;
    if (c.closing) {  // read and dropped, until the peer closes
      if (c.readable) later(c);
      return;
    }
    in.commit(n);
    if (!c.waiting) answer_from(c, in);  // (else kept, for once the answer given later has ended)
    if (c.waiting && c.parser && c.body_wanted && !feed_body(c, in)) {  // gone: what it read is no one's
      scratch_.clear();
      return;
    }
    if (&in == &scratch_ && scratch_.size() > 0) {
      beast::flat_buffer& own = buffer(c);
      own.commit(asio::buffer_copy(own.prepare(scratch_.size()), scratch_.data()));
    }
    scratch_.clear();
    flush(c);
  }

  // Answers every whole request in the connection's buffer, then writes the answers.
  void parse(connection& c) {
    answer_from(c, *c.in);
    flush(c);
  }

  // The answers to every whole request at the front of `in`, into out_; a
  // request begun starts its deadline.
  void answer_from(connection& c, beast::flat_buffer& in) {
    t_connection = c.fd;  // current_peer()'s, while the handler runs
    t_server = this;      // a deferred's, current_peer()'s
    bool begun = c.parse(in, out_, *this, options_);
    t_connection = -1;
    t_server = nullptr;
    if (begun) c.deadline = clock::now() + options_.request_timeout;
  }

  friend struct detail::session;  // calls handle(), stopping() and date() as its Host

  answer handle(const request& req) {
    worker_.begin_request();  // busy, for a pool that sizes itself
    connection* c = find(t_connection);
    t_streamed = c && c->parser;  // (a whole request's parser is gone: its request is made)
    answer a = run_handler(req);
    t_streamed = false;
    worker_.end_request();
    worker_.count_requests();
    // Past max_requests, its successor is on its way: connections are the
    // other workers' from now on, new ones and (each after its answer) the
    // kept-alive ones.
    if (worker_.recycling() && !options_.reuseport) {
      stopping_ = true;
      stop_accepting();
    }
    return a;
  }

  // The handler's answer, or a 500 if it threw or if its answer cannot be
  // sent as it is (response splitting: a header value from the request).
  answer run_handler(const request& req) {
    try {
      answer a = handler_(req);
      std::string why = detail::response_problem(a.res);
      if (why.empty()) return a;
      std::fprintf(stderr, "ufork http: the handler's answer to %s %s is refused (500 instead): %s\n",
                   std::string(req.method_string()).c_str(), detail::quoted({req.target().data(), req.target().size()}).c_str(), why.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ufork http: handler failed: %s\n", e.what());
    }
    response res = detail::error_response(bhttp::status::internal_server_error);
    res.version(req.version());
    return res;
  }

  // worker_.stopping(): SIGTERM may have come while a handler ran, before
  // the loop could see the stop fd.
  bool stopping() { return stopping_ || worker_.stopping(); }

  std::string_view date() { return date_.now(); }

  // A streamed body's next piece: posted after the last one is written, so
  // that other connections get their turn in between.
  void pump(connection& c) {
    c.pumping = false;
    if (c.fd < 0) return erase(c);  // a deadline closed it meanwhile
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
  // them (nearly always all); the rest is the connection's to keep, written
  // when the socket has room again. out_ is empty again after.
  void flush(connection& c) {
    if (!out_.empty()) {
      std::error_code ec;
      std::size_t n = sys::send_now(c.fd, out_.data(), out_.size(), ec);
      if (ec && ec != std::errc::resource_unavailable_try_again) {
        out_.clear();
        return erase(c);
      }
      if (n < out_.size()) {
        c.out = std::make_unique<std::string>(out_, n);
        c.writable = false;  // until the next edge
        out_.clear();
        return;
      }
      out_.clear();
    }
    written(c);
  }

  void write_rest(connection& c) {
    std::error_code ec;
    std::size_t n = sys::send_now(c.fd, c.out->data(), c.out->size(), ec);
    if (ec && ec != std::errc::resource_unavailable_try_again) return erase(c);
    if (n < c.out->size()) {
      c.out->erase(0, n);
      c.writable = false;
      return;
    }
    c.out.reset();
    written(c);
  }

  void written(connection& c) {
    if (c.waiting) {  // all given so far is out: the other side may give more
      auto& d = *waiting_.at(c.fd);
      if (d.started) d.tell(deferred::event::room);
      if (c.parser && c.body_wanted && (c.readable || unparsed(c) > 0)) take(c);  // a body's piece asked for meanwhile
      return;
    }
    if (c.stream) {
      c.pumping = true;
      return asio::post(io_, [this, &c] { pump(c); });
    }
    if (c.last) {  // its last answer is out: half-close, and wait for the peer's close
      // Unless the client said it was done and sent nothing more: nothing
      // unread can turn the close into a reset, so it closes now (as nginx
      // does), without a wake-up for the peer's close.
      if (c.peer_done && c.drained && unparsed(c) == 0) return erase(c);
      (void)sys::shutdown_sending(c.fd);
      c.last = false;
      c.closing = true;
      c.in.reset();
      c.deadline = std::min(c.deadline, clock::now() + close_linger);
      if (c.readable) take(c);
      return;
    }
    if (c.parser) {  // the rest of a request
      if (c.readable) take(c);
      return;
    }
    if (unparsed(c) > 0) return parse(c);  // requests that waited behind a streamed answer
    idle(c);
  }

  // Between requests of a keep-alive connection. TCP_NODELAY from here on,
  // as nginx does: a connection's first answer goes out at once anyway
  // (nothing of it is unacknowledged), and one that closes after it is
  // spared the call.
  void idle(connection& c) {
    if (lingered_) return erase(c);
    if (!std::exchange(c.nodelay, true)) {
      int on = 1;
      (void)sys::set_socket_option(c.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    c.deadline = clock::now() + options_.keepalive_timeout;
    c.in.reset();  // empty
    if (c.readable) later(c);  // the next request came while this one was answered
  }

  // Closes a connection now (a deadline, a stop): one with a pump posted
  // is erased by it.
  void close(connection& c) {
    if (!c.pumping) return erase(c);
    forget(c.fd);
    sys::close_connection(std::exchange(c.fd, -1));
  }

  // A connection's fd about to be closed: its number may be reused.
  void forget(int fd) {
    by_fd_[fd] = nullptr;
    ends_.erase(fd);
  }

  void erase(connection& c) {
    if (c.waiting) {  // its answer given later is wanted no more
      c.waiting = false;
      auto it = waiting_.find(c.fd);
      auto d = std::move(it->second);
      waiting_.erase(it);
      d->conn = nullptr;
      d->tell(deferred::event::gone);
    }
    if (c.fd >= 0) {
      forget(c.fd);
      sys::close_connection(c.fd);  // out of the epoll set with it
    }
    conns_.erase(c.self);
    show_connections();
    if (lingered_ && conns_.empty()) finish();
  }

  // Nothing left after a stop: the loop's last waits go, io_.run() returns.
  void finish() {
    if (std::exchange(finished_, true)) return;
    tick_.cancel();
    error_code ignored;
    events_.close(ignored);
    if (mail_.is_open()) mail_.close(ignored);
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
    for (auto it = conns_.begin(); it != conns_.end();) {
      connection& c = *it++;
      if (c.deadline <= now) close(c);
    }
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
  //
  // A worker stopping alone on the shared socket (a recycle, a reload, a
  // resize) takes nothing more from it, at once: the others are there.
  void begin_stop() {
    stopping_ = true;
    if (!options_.reuseport && !worker_.pool_stopping()) stop_accepting();
    for (auto& l : listeners_)
      if (options_.reuseport && !net::drop_new_connections(l.fd)) std::perror("ufork http: stop: SO_ATTACH_FILTER");
    accept_queued();
    bool handshakes = accepting_ && std::ranges::any_of(listeners_, [](const listener& l) {
      return net::handshakes_under_way(l.fd);
    });
    if (conns_.empty() && !handshakes) return end_linger();
    linger_.expires_after(stop_linger);
    linger_.async_wait([this](error_code) { end_linger(); });
  }

  void end_linger() {
    accept_queued();
    stop_accepting();
    lingered_ = true;
    for (auto it = conns_.begin(); it != conns_.end();) {
      connection& c = *it++;
      if (phase_of(c) == phase::idle) close(c);
    }
    if (conns_.empty()) finish();
  }

  // The sockets out of the loop and closed (this worker's copies): no more
  // connections taken. Their numbers may be reused from here on.
  void stop_accepting() {
    if (!std::exchange(accepting_, false)) return;
    for (auto& l : listeners_) {
      error_code ignored;
      l.acceptor.close(ignored);
      l.pause.cancel();
    }
    if (nudge_.is_open()) {
      worker_.show_connections(-1);
      error_code ignored;
      nudge_.close(ignored);
    }
  }

  // The pool sees how many this worker holds (spread_some).
  void show_connections() {
    if (accepting_ && nudge_.is_open()) worker_.show_connections(static_cast<int>(conns_.size()));
  }

  void accept_queued() {
    std::error_code ec;
    for (auto& l : listeners_)
      for (int fd; accepting_ && ((fd = sys::accept_connection(l.fd, ec)) >= 0 || ec == std::errc::connection_aborted);)
        if (fd >= 0) start(fd);
  }

  worker& worker_;
  const handler& handler_;
  const http_options& options_;
  // One thread only: no locking in the scheduler and the reactor.
  asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE};
  std::list<listener> listeners_;
  asio::posix::basic_stream_descriptor<executor> events_{io_};  // the connections' epoll set
  std::shared_ptr<mailbox> box_ = std::make_shared<mailbox>();  // answers given later
  asio::posix::basic_stream_descriptor<executor> mail_{io_};    // its eventfd
  asio::posix::basic_stream_descriptor<executor> nudge_{io_};   // the pool's, for spreading connections
  std::vector<sys::epoll_registration> nudge_registrations_;  // out of the loop's set while every socket is (set_aside)
  std::unordered_map<int, std::shared_ptr<deferred::state>> waiting_;  // by connection fd
  std::unordered_map<int, connection_ends> ends_;                     // by connection fd, once asked
  std::optional<asio_worker> attached_;
  timer_type tick_{io_}, linger_{io_};
  bool ticking_ = false;  // the deadline tick is armed (while connections are open)
  bool accepting_ = true;        // the acceptors are open (stop_accepting)
  bool later_posted_ = false;
  bool finished_ = false;
  std::chrono::milliseconds period_;
  std::list<connection> conns_;
  std::vector<connection*> by_fd_;  // the epoll set's events name a connection by its fd
  std::vector<int> later_;          // see later()
  http_date date_;
  // Scratch, shared by the connections one at a time: the answers being
  // made, a streamed body's latest piece.
  std::string out_, piece_;
  beast::flat_buffer scratch_{read_size};  // what take() read: see there
  bool stopping_ = false;
  bool lingered_ = false;
  int reactor_fd_ = -1;  // Asio's epoll set, for options_.drive
};

}  // namespace

std::optional<peer> current_peer() {
  if (t_connection < 0 || !t_server) return std::nullopt;
  return t_server->ends(t_connection).remote;
}

bool current_body_streamed() { return t_streamed; }

std::optional<peer> current_local() {
  if (t_connection < 0 || !t_server) return std::nullopt;
  return t_server->ends(t_connection).local;
}

struct server::state {
  handler h;
  http_options options;
  // Bound here, in the arbiter, before any fork: a bad address or a port in
  // use is one exception for the caller, not a crash loop of workers.
  std::vector<net::bound> shared;
  std::vector<int> shared_fds;  // the workers' copies: taken before any stop
  sys::unique_fd nudge;  // the workers' eventfd for spreading connections (worker_server::step_aside)
  std::vector<std::string> addresses;
  arbiter* log = nullptr;
  bool attached = false;

  state(handler handler, const std::vector<std::string>& endpoints, http_options o)
      : h(std::move(handler)), options(std::move(o)) {
    if (endpoints.empty()) throw_invalid("an HTTP server needs an address to listen on");
    try {
      for (const auto& e : endpoints) {
        shared.push_back(net::bind_endpoint(e, options.reuseport, !options.reuseport, options.backlog));
        shared_fds.push_back(shared.back().fd.get());
        addresses.push_back(shared.back().address);
      }
      if (!options.reuseport) {
        auto made = sys::make_eventfd(true);
        if (!made) throw error(made.error(), "eventfd");
        nudge = std::move(made).value();
        sys::disown_fd(nudge.get());  // the workers' (ufork's own fds are closed in a new worker)
      }
    } catch (...) {
      let_go();
      throw;
    }
  }
  state(const state&) = delete;
  state& operator=(const state&) = delete;
  ~state() { let_go(); }

  // The arbiter's copies closed, and the unix socket files it made removed.
  void let_go() noexcept {
    for (auto& b : shared) {
      b.fd.reset();
      std::error_code ignored;
      if (!b.file.empty()) std::filesystem::remove(b.file, ignored);
      b.file.clear();
    }
  }

  void say(const std::string& text) const {
    if (log)
      log->log(text);
    else
      std::fprintf(stderr, "ufork http: %s\n", text.c_str());
  }
};

server::server(handler h, const std::string& endpoint, http_options options)
    : server(std::move(h), std::vector<std::string>{endpoint}, std::move(options)) {}
server::server(handler h, const std::vector<std::string>& endpoints, http_options options)
    : state_(std::make_unique<state>(std::move(h), endpoints, std::move(options))) {}
server::~server() = default;

const std::string& server::address() const noexcept { return state_->addresses.front(); }
const std::vector<std::string>& server::addresses() const noexcept { return state_->addresses; }

void server::log_to(arbiter& a) noexcept { state_->log = &a; }

void server::attach(options& pool, hooks& hk) {
  if (std::exchange(state_->attached, true)) throw_invalid("an HTTP server is attached to one arbiter");
  state* st = state_.get();
  // Once stopping, the arbiter turns new connections away (see
  // worker_server::begin_stop) and lets go of the sockets, so that each
  // closes when the last worker has taken its queue.
  hk.parent_pre_stop = [st, before = std::move(hk.parent_pre_stop)] {
    if (before) before();
    for (const auto& b : st->shared)
      if (!st->options.reuseport && b.fd && !net::drop_new_connections(b.fd.get()))
        st->say("stop: cannot filter new connections on " + b.address + ": " + std::generic_category().message(errno));
    st->let_go();
  };
  // With reforking, a worker may become the mold, whose children serve on
  // the sockets again: the acceptors get copies, and the worker keeps its own.
  bool keep = !pool.refork_after.empty();
  hk.post_fork = [st, keep, before = std::move(hk.post_fork)](worker& w) {
    if (before) before(w);
    // The acceptors own the worker's only copies: closing them at stop
    // closes the worker's hold on the sockets.
    std::vector<int> fds = st->shared_fds;
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (st->options.reuseport)  // each worker its own queue; the arbiter's holds the port
        fds[i] = net::bind_endpoint(st->addresses[i], true, true, st->options.backlog).fd.release();
      else if (keep)
        fds[i] = sys::duplicate(fds[i]).value().release();
    int nudge = !st->nudge ? -1 : keep ? sys::duplicate(st->nudge.get()).value().release() : st->nudge.get();
    worker_server server(w, st->h, st->options, fds, nudge);
    server.run();
  };
  if (pool.strict_fds) {
    pool.keep_fds.insert(pool.keep_fds.end(), st->shared_fds.begin(), st->shared_fds.end());
    if (st->nudge) pool.keep_fds.push_back(st->nudge.get());
  }
}

int serve(handler h, const std::string& endpoint, server_options options) {
  server web(std::move(h), endpoint, options);
  if (options.on_listening) options.on_listening(web.address());
  hooks hk = options.hooks;
  web.attach(options.pool, hk);
  arbiter a(options.pool, hk);
  web.log_to(a);
  a.log("listening on http://" + web.address() + "/" + net::every_interface_note(web.address()));
  if (options.configure) options.configure(a);
  return a.run();
}

}  // namespace ufork::http
