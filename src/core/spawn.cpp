#include "core/spawn.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "sys/process.hpp"

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
  namespace c = sys::child;
  c::close(error_reader);  // the arbiter's end
  auto fail = [error_fd](step s, std::error_code ec) {
    failure f{static_cast<int>(s), ec ? ec.value() : errno};
    c::write(error_fd, &f, sizeof f);
    c::exit(71);  // EX_OSERR
  };
  // 1. Process group first: a stop reaches what this worker spawns, and a
  //    terminal's Ctrl-C reaches only the arbiter. The arbiter also calls
  //    setpgid for us, so neither order races.
  (void)sys::set_process_group(0, 0);
  // 2. Never outlive the arbiter. If it died between fork and prctl, the
  //    signal will never come: the parent check catches that window.
  if (auto ec = c::set_parent_death_signal(SIGKILL)) fail(step::pdeathsig, ec);
  if (sys::parent_pid() != p.arbiter_pid) c::exit(1);
  // 3. fds: stdin from /dev/null, stdout and stderr onto the pipes, then the
  //    planned ones closed (no exec follows, so CLOEXEC alone would not).
  int null_fd = c::open_dev_null();
  if (null_fd < 0) fail(step::dev_null, {});
  if (c::dup_to(null_fd, STDIN_FILENO) < 0 || c::dup_to(p.out_fd, STDOUT_FILENO) < 0 ||
      c::dup_to(p.err_fd, STDERR_FILENO) < 0)
    fail(step::dup2, {});
  for (int fd : {null_fd, p.out_fd, p.err_fd})
    if (fd > STDERR_FILENO) c::close(fd);
  if (p.close_syslog) c::close_syslog();  // glibc's socket is among ufork's fds
  auto e = static_cast<unsigned>(error_fd);
  for (auto [first, last] : *p.close_runs) {  // all but the error pipe
    if (first < e) c::close_range(first, std::min(last, e - 1));
    if (last > e) c::close_range(std::max(first, e + 1), last);
  }
  if (p.nofile.rlim_max != 0) (void)sys::set_fd_limit(p.nofile);
  if (p.oom_score_adj) c::write_file("/proc/self/oom_score_adj", p.oom_score_adj);  // higher: always allowed
  // 4. Signals: handlers reset, ours installed, then the mask the arbiter
  //    blocked around fork emptied: a SIGTERM sent meanwhile waited for us.
  int stop_fd = c::make_eventfd();
  if (stop_fd < 0) fail(step::eventfd, {});
  install_worker_signals(stop_fd);
  sigset_t none;
  sigemptyset(&none);
  sys::set_signal_mask(none);
  c::close(error_fd);  // set up: nothing more to report
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
  auto forked = sys::fork_blocking_signals();
  if (!forked) return forked.error();
  pid_t pid = forked.value();
  if (pid == 0) child(plan, errors->write.get(), errors->read.get());
  errors->write.reset();
  (void)sys::set_process_group(pid, pid);  // the child does the same: whichever runs first wins
  // Nobody else reaps our children, so the pid cannot be reused before this.
  auto pidfd = sys::pidfd_open(pid);
  if (!pidfd) {
    sys::kill_and_reap(pid);
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
