// The worker side: the setup a child does before the caller's code, the
// worker API, and the signal handlers the library installs in every worker.
#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>

#include "child.hpp"
#include "scoreboard.hpp"
#include "sys/sys.hpp"

namespace ufork {
namespace {

worker* g_worker = nullptr;
volatile std::sig_atomic_t g_stop = 0;
int g_stop_fd = -1;

void write_str(const char* s) noexcept { (void)!::write(STDERR_FILENO, s, std::strlen(s)); }

void on_sigterm(int) noexcept {
  int saved = errno;
  g_stop = 1;
  sys::eventfd_signal(g_stop_fd);
  errno = saved;
}

// SIGABRT, from the arbiter when the worker is hung (or from abort()): write
// this thread's stack to stderr so the log shows where it hung, then die of
// SIGABRT. backtrace_symbols_fd does not allocate.
void on_sigabrt(int) noexcept {
  write_str("ufork: SIGABRT in worker; stack:\n");
  void* frames[64];
  int n = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
  ::signal(SIGABRT, SIG_DFL);
  ::raise(SIGABRT);
}

void reset_signals() noexcept {
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) (void)::sigaction(sig, &dfl, nullptr);  // EINVAL for 32, 33
  struct sigaction term{};
  term.sa_handler = on_sigterm;
  (void)::sigaction(SIGTERM, &term, nullptr);
  struct sigaction abrt{};
  abrt.sa_handler = on_sigabrt;
  abrt.sa_flags = SA_RESETHAND;
  (void)::sigaction(SIGABRT, &abrt, nullptr);
  ::signal(SIGINT, SIG_IGN);  // the arbiter decides what a Ctrl-C means
  void* frame[1];
  (void)::backtrace(frame, 1);  // loads libgcc now, not inside the handler
}

// The C and C++ random state came from the arbiter: every worker would draw
// the same numbers.
void reseed() noexcept {
  unsigned seed = 0;
  if (::getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
    seed = static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(detail::now_ns());
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
  ::_exit(70);  // EX_SOFTWARE
}

}  // namespace

worker* current_worker() noexcept { return g_worker; }

bool worker::stopping() const noexcept { return g_stop != 0; }

void worker::heartbeat() noexcept {
  beat_->store(detail::now_ns(), std::memory_order_relaxed);
  if (!ready_sent_.exchange(true, std::memory_order_relaxed)) {
    // The arbiter learns who sent it from SCM_CREDENTIALS, as with sd_notify.
    static constexpr char msg[] = "READY=1";
    (void)::send(notify_fd_, msg, sizeof msg - 1, MSG_NOSIGNAL);  // arbiter gone: PDEATHSIG follows
  }
}

void worker::ready() noexcept { heartbeat(); }

void worker::count_requests(std::uint64_t n) noexcept { requests_->fetch_add(n, std::memory_order_relaxed); }

namespace detail {

[[noreturn]] void child_setup::run() noexcept {
  // 1. Process group first: a stop reaches what this worker spawns, and a
  //    terminal's Ctrl-C reaches only the arbiter. The arbiter also calls
  //    setpgid for us, so neither order races.
  (void)::setpgid(0, 0);
  // 2. Never outlive the arbiter. If it died between fork and prctl, the
  //    signal will never come: the getppid() check catches that window.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != arbiter_pid) ::_exit(1);
  // 3. fds: stdin from /dev/null, stdout and stderr onto the pipes, then
  //    every fd of the arbiter closed (we do not exec, so CLOEXEC alone
  //    would not close them).
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0) ::_exit(71);  // EX_OSERR
  if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(out_fd, STDOUT_FILENO) < 0 ||
      ::dup2(err_fd, STDERR_FILENO) < 0)
    ::_exit(71);
  for (int fd : {null_fd, out_fd, err_fd})
    if (fd > STDERR_FILENO) (void)::close(fd);
  if (close_syslog) ::closelog();  // glibc's socket is among ufork's fds
  for (auto [first, last] : *close_runs) (void)::close_range(first, last, 0);
  (void)::setrlimit(RLIMIT_NOFILE, &nofile);
  if (oom_score_adj) {  // higher than the arbiter's: always allowed
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!::write(fd, oom_score_adj, std::strlen(oom_score_adj));
      (void)::close(fd);
    }
  }
  // 4. Signals: handlers reset, ours installed, then the mask the arbiter
  //    blocked around fork emptied: a SIGTERM sent meanwhile waited for us.
  g_stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);  // not sys::: the registry's lock is the arbiter's
  if (g_stop_fd < 0) ::_exit(71);
  reset_signals();
  sigset_t none;
  sigemptyset(&none);
  (void)::sigprocmask(SIG_SETMASK, &none, nullptr);
  // 5. Per-process state the caller expects to be fresh.
  reseed();
  (void)std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach the log as printed

  static worker w;  // lives as long as the process; never destroyed (we _exit)
  w.id_ = slot;
  w.generation_ = generation;
  w.beat_ = &beat_cell->beat_ns;
  w.requests_ = &beat_cell->requests;
  w.notify_fd_ = notify_fd;
  w.stop_fd_ = g_stop_fd;
  w.interval_ = heartbeat_interval;
  g_worker = &w;

  if (callbacks->post_fork) guarded("post_fork", [&] { callbacks->post_fork(w); });
  // post_fork returned: the program serves from its own threads; this
  // thread vouches for the process until asked to stop.
  while (!w.stopping()) {
    w.heartbeat();
    pollfd pfd{g_stop_fd, POLLIN, 0};
    (void)::poll(&pfd, 1, static_cast<int>(heartbeat_interval.count()));
  }
  if (callbacks->child_pre_exit) guarded("child_pre_exit", [&] { callbacks->child_pre_exit(w); });
  std::cout.flush();
  std::fflush(nullptr);
  ::_exit(0);
}

}  // namespace detail
}  // namespace ufork
