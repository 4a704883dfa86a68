// The worker side: the worker API, the signal handlers the library installs
// in every worker, and the worker's life after the spawn unit's setup
// (core/spawn.cpp): fresh random state, post_fork, heartbeats, the exit.
#include <execinfo.h>
#include <unistd.h>

#include <utility>  // before Boost (Boost 1.74 with g++ 12 in C++20)

#include <boost/stacktrace.hpp>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "core/mold.hpp"
#include "core/spawn.hpp"
#include "core/scoreboard.hpp"
#include "sys/event.hpp"
#include "sys/socket.hpp"
#include "sys/process.hpp"

namespace ufork {
namespace {

worker* g_worker = nullptr;
volatile std::sig_atomic_t g_stop = 0;
int g_stop_fd = -1;

void write_str(const char* s) noexcept { sys::child::write(STDERR_FILENO, s, std::strlen(s)); }

void on_sigterm(int) noexcept {
  int saved = errno;
  g_stop = 1;
  sys::eventfd_signal(g_stop_fd);
  errno = saved;
}

// One frame's address as "  0x7f5e2a1b3c4d\n", without allocating.
void write_address(const void* frame) noexcept {
  char text[2 + 2 + 2 * sizeof(void*) + 1] = {' ', ' ', '0', 'x'};
  auto v = reinterpret_cast<std::uintptr_t>(frame);
  std::size_t at = 4;
  for (int shift = 8 * sizeof(void*) - 4; shift >= 0; shift -= 4) text[at++] = "0123456789abcdef"[(v >> shift) & 0xf];
  text[at++] = '\n';
  sys::child::write(STDERR_FILENO, text, at);
}

// SIGABRT, from the arbiter when the worker is hung (or from abort()): write
// this thread's stack to stderr so the log shows where it hung, then die of
// SIGABRT. First the raw addresses (nothing here allocates), then the same
// frames with function names, files and lines, from the debug info
// (Boost.Stacktrace on libbacktrace). That second part allocates: a worker
// hung inside malloc may hang there too, with the addresses already out,
// and the arbiter's SIGKILL at kill_timeout ends it either way. (Not
// backtrace_symbols_fd: it names the program by its argv[0], which is the
// process title now, a whole command line on each frame.)
constexpr std::size_t symbolize_stack = 256UL << 10;

void on_sigabrt(int) noexcept {
  write_str("ufork: SIGABRT in worker; stack:\n");
  void* frames[64];
  int n = ::backtrace(frames, 64);
  for (int i = 1; i < n; ++i) write_address(frames[i]);  // from the frame that was interrupted
  // Symbolizing reads the debug info: deep frames. A handler of the
  // program's that runs ours on its own small signal stack leaves too little.
  char here = 0;
  if (sys::child::signal_stack_left(&here) < symbolize_stack) {
    write_str("ufork: not symbolized (too little signal stack left: a handler of the program's called this one)\n");
    return sys::reraise(SIGABRT);
  }
  try {
    write_str("ufork: the same, symbolized:\n");
    for (const auto& frame : boost::stacktrace::stacktrace(1, 64)) {
      std::string line = "  " + boost::stacktrace::to_string(frame) + "\n";
      sys::child::write(STDERR_FILENO, line.data(), line.size());
    }
  } catch (...) {  // out of memory: the addresses are out
  }
  sys::reraise(SIGABRT);
}

// The C and C++ random state came from the arbiter: every worker would draw
// the same numbers.
void reseed() noexcept {
  unsigned seed = sys::random_seed();
  std::srand(seed);
  ::srandom(seed);
}

template <class F>
void guarded(const char* what, F&& f) noexcept {
  try {
    f();
    return;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ufork: exception escaped %s: %s\n", what, e.what());
  } catch (...) {
    std::fprintf(stderr, "ufork: unknown exception escaped %s\n", what);
  }
  std::fflush(nullptr);
  sys::child::exit(70);  // EX_SOFTWARE
}

}  // namespace

worker* current_worker() noexcept { return g_worker; }

bool worker::stopping() const noexcept { return g_stop != 0; }

bool worker::pool_stopping() const noexcept { return pool_stopping_->load(std::memory_order_acquire); }

void worker::heartbeat() noexcept {
  beat_->store(detail::now_ns(), std::memory_order_relaxed);
  if (!ready_sent_.exchange(true, std::memory_order_relaxed)) {
    // The arbiter learns who sent it from SCM_CREDENTIALS, as with sd_notify.
    static constexpr char msg[] = "READY=1";
    (void)sys::send_waiting(notify_fd_, msg, sizeof msg - 1);  // arbiter gone: PDEATHSIG follows
  }
}

void worker::ready() noexcept { heartbeat(); }

void worker::count_requests(std::uint64_t n) noexcept {
  auto total = requests_->fetch_add(n, std::memory_order_relaxed) + n;
  if (request_limit_ != 0 && total >= request_limit_ && !recycle_asked_.exchange(true, std::memory_order_relaxed)) {
    static constexpr char msg[] = "UFORK_RECYCLE=requests";
    (void)sys::send_waiting(notify_fd_, msg, sizeof msg - 1);
  }
  if (auto at = refork_at_->load(std::memory_order_relaxed);
      at != 0 && total >= at && !mold_asked_.exchange(true, std::memory_order_relaxed)) {
    static constexpr char msg[] = "UFORK_MOLD=requests";
    (void)sys::send_waiting(notify_fd_, msg, sizeof msg - 1);
  }
}

void worker::begin_request() noexcept {
  in_flight_->fetch_add(1, std::memory_order_relaxed);
  if (busy_wake_->load(std::memory_order_relaxed) && busy_wake_->exchange(false, std::memory_order_relaxed)) {
    static constexpr char msg[] = "UFORK_BUSY=1";
    (void)sys::send_waiting(notify_fd_, msg, sizeof msg - 1);
  }
}

void worker::end_request() noexcept { in_flight_->fetch_sub(1, std::memory_order_relaxed); }

void worker::show_connections(int open) noexcept {
  connections_->store(open < 0 ? 0 : static_cast<std::uint32_t>(open), std::memory_order_relaxed);
  accepting_->store(open >= 0, std::memory_order_relaxed);
}

worker::pool_connections worker::connections_held() const noexcept {
  pool_connections pool;
  std::uint32_t high = board_->board_high.load(std::memory_order_relaxed);
  for (const detail::cell* c = board_; c != board_ + high; ++c)
    if (c->accepting.load(std::memory_order_relaxed)) {
      pool.held += c->connections.load(std::memory_order_relaxed);
      ++pool.workers;
    }
  return pool;
}

namespace detail {

// The worker's private fields are the library's to set.
struct child_setup {
  static worker& make(const spawn_plan& p, int stop_fd) noexcept {
    static worker w;  // lives as long as the process; never destroyed (we _exit)
    w.id_ = p.slot;
    w.generation_ = p.generation;
    w.beat_ = &p.beat_cell->beat_ns;
    w.requests_ = &p.beat_cell->requests;
    w.pool_stopping_ = &p.beat_cell->pool_stopping;
    w.refork_at_ = &p.beat_cell->refork_at;
    w.in_flight_ = &p.beat_cell->in_flight;
    w.busy_wake_ = &p.beat_cell->busy_wake;
    w.connections_ = &p.beat_cell->connections;
    w.accepting_ = &p.beat_cell->accepting;
    w.board_ = p.board;
    w.request_limit_ = p.beat_cell->request_limit.load(std::memory_order_relaxed);
    w.notify_fd_ = p.notify_fd;
    w.stop_fd_ = stop_fd;
    w.interval_ = p.heartbeat_interval;
    // Forked from the mold, which was a worker: what it had said is not this one's.
    w.recycle_asked_.store(false, std::memory_order_relaxed);
    w.mold_asked_.store(false, std::memory_order_relaxed);
    w.ready_sent_.store(false, std::memory_order_relaxed);
    return w;
  }
};

void install_worker_signals(int stop_fd) noexcept {
  g_stop = 0;  // a worker forked from the mold: the mold's own stop was set
  g_stop_fd = stop_fd;
  sys::child::default_signals();
  struct sigaction term{};
  term.sa_handler = on_sigterm;
  sys::set_action(SIGTERM, term, nullptr);
  struct sigaction abrt{};
  abrt.sa_handler = on_sigabrt;
  abrt.sa_flags = SA_RESETHAND | SA_ONSTACK;
  (void)sys::child::use_signal_stack(1UL << 20);  // for on_sigabrt's symbolizing, whoever's stack the signal came on
  sys::set_action(SIGABRT, abrt, nullptr);
  sys::ignore_signal(SIGINT, nullptr);  // the arbiter decides what a Ctrl-C means
}

void preload_backtrace() noexcept {
  void* frame[1];
  (void)::backtrace(frame, 1);  // loads libgcc in the arbiter: not in a worker's SIGABRT handler
}

[[noreturn]] void run_worker(const spawn_plan& p, int stop_fd) noexcept {
  // Per-process state the caller expects to be fresh.
  reseed();
  (void)std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach the log as printed
  worker& w = child_setup::make(p, stop_fd);
  g_worker = &w;
  const hooks& callbacks = *p.callbacks;
  if (callbacks.post_fork) guarded("post_fork", [&] { callbacks.post_fork(w); });
  // post_fork returned: the program serves from its own threads; this
  // thread vouches for the process until asked to stop.
  while (!w.stopping()) {
    w.heartbeat();
    sys::child::wait_readable(stop_fd, static_cast<int>(p.heartbeat_interval.count()));
  }
  // Asked to become the mold (core/mold.cpp): it does not return.
  if (p.beat_cell->become_mold.load(std::memory_order_acquire)) run_mold(p, stop_fd);
  if (callbacks.child_pre_exit) guarded("child_pre_exit", [&] { callbacks.child_pre_exit(w); });
  std::cout.flush();
  std::fflush(nullptr);
  sys::child::exit(0);
}

}  // namespace detail
}  // namespace ufork
