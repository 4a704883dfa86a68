#include "core/spawn.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace ufork::detail {
namespace {

// The steps of the child's setup that can fail, as the error pipe names them.
enum class step : int { pdeathsig = 1, dev_null, dup2, eventfd };

const char* name(step s) {
  switch (s) {
    case step::pdeathsig: return "prctl(PR_SET_PDEATHSIG)";
    case step::dev_null: return "open(/dev/null)";
    case step::dup2: return "dup2";
    case step::eventfd: return "eventfd";
  }
  return "?";
}

struct failure {
  int what;
  int err;
};

// From here to run_worker: async-signal-safe calls only (closelog aside).
[[noreturn]] void child(const spawn_plan& p, int error_fd, int error_reader) noexcept {
  (void)::close(error_reader);  // the arbiter's end
  auto fail = [error_fd](step s) {
    failure f{static_cast<int>(s), errno};
    (void)!::write(error_fd, &f, sizeof f);
    ::_exit(71);  // EX_OSERR
  };
  // 1. Process group first: a stop reaches what this worker spawns, and a
  //    terminal's Ctrl-C reaches only the arbiter. The arbiter also calls
  //    setpgid for us, so neither order races.
  (void)::setpgid(0, 0);
  // 2. Never outlive the arbiter. If it died between fork and prctl, the
  //    signal will never come: the getppid() check catches that window.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(step::pdeathsig);
  if (::getppid() != p.arbiter_pid) ::_exit(1);
  // 3. fds: stdin from /dev/null, stdout and stderr onto the pipes, then the
  //    planned ones closed (no exec follows, so CLOEXEC alone would not).
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0) fail(step::dev_null);
  if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(p.out_fd, STDOUT_FILENO) < 0 ||
      ::dup2(p.err_fd, STDERR_FILENO) < 0)
    fail(step::dup2);
  for (int fd : {null_fd, p.out_fd, p.err_fd})
    if (fd > STDERR_FILENO) (void)::close(fd);
  if (p.close_syslog) ::closelog();  // glibc's socket is among ufork's fds
  auto e = static_cast<unsigned>(error_fd);
  for (auto [first, last] : *p.close_runs) {  // all but the error pipe
    if (first < e) (void)::close_range(first, std::min(last, e - 1), 0);
    if (last > e) (void)::close_range(std::max(first, e + 1), last, 0);
  }
  if (p.nofile.rlim_max != 0) (void)::setrlimit(RLIMIT_NOFILE, &p.nofile);
  if (p.oom_score_adj) {  // higher than the arbiter's: always allowed
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!::write(fd, p.oom_score_adj, std::strlen(p.oom_score_adj));
      (void)::close(fd);
    }
  }
  // 4. Signals: handlers reset, ours installed, then the mask the arbiter
  //    blocked around fork emptied: a SIGTERM sent meanwhile waited for us.
  int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) fail(step::eventfd);
  install_worker_signals(stop_fd);
  sigset_t none;
  sigemptyset(&none);
  (void)::sigprocmask(SIG_SETMASK, &none, nullptr);
  (void)::close(error_fd);  // set up: nothing more to report
  if (p.callbacks->after_fork_child) p.callbacks->after_fork_child();
  run_worker(p, stop_fd);
}

}  // namespace

fd_runs runs_of(std::vector<int> fds) {
  std::sort(fds.begin(), fds.end());
  fd_runs out;
  for (int fd : fds) {
    if (fd <= STDERR_FILENO) continue;
    auto u = static_cast<unsigned>(fd);
    if (!out.empty() && out.back().second + 1 >= u)
      out.back().second = u;
    else
      out.emplace_back(u, u);
  }
  return out;
}

fd_runs all_but(std::vector<int> keep) {
  fd_runs out;
  unsigned next = STDERR_FILENO + 1;
  for (auto [first, last] : runs_of(std::move(keep))) {
    if (first > next) out.emplace_back(next, first - 1);
    next = last + 1;
  }
  out.emplace_back(next, ~0U);
  return out;
}

sys::result<spawned> spawn(const spawn_plan& plan) {
  auto errors = sys::make_pipe(0);
  if (!errors) return errors.error();
  // All signals blocked across fork, so no handler of the host program runs
  // in the child before it has reset them (libuv does the same).
  sigset_t all, old;
  sigfillset(&all);
  (void)::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::fork();
  if (pid == 0) child(plan, errors->write.get(), errors->read.get());
  (void)::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return sys::last_error();
  errors->write.reset();
  (void)::setpgid(pid, pid);  // the child does the same: whichever runs first wins
  // Nobody else reaps our children, so the pid cannot be reused before this.
  auto pidfd = sys::pidfd_open(pid);
  if (!pidfd) {
    (void)::kill(pid, SIGKILL);
    (void)::waitpid(pid, nullptr, 0);
    return pidfd.error();
  }
  return spawned{pid, std::move(pidfd).value(), std::move(errors->read)};
}

std::string read_setup_error(int fd) {
  failure f{};
  auto n = sys::read(fd, &f, sizeof f);
  if (!n || n.value() != sizeof f) return {};
  return fmt::format("setup failed: {}: {}", name(static_cast<step>(f.what)), std::strerror(f.err));
}

}  // namespace ufork::detail
