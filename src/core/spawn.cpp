#include "core/spawn.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sys/fd.hpp"
#include "sys/result.hpp"
#include "sys/process.hpp"

namespace ufork::detail {
namespace {

// The steps of the child's setup that can fail, as the error pipe names them.
enum class step : int { pdeathsig = 1, dev_null, dup2, eventfd, chdir, exec, setgroups, setgid, setuid, affinity, nice, rlimit };

const char* name(step s) {
  switch (s) {
    case step::pdeathsig: return "prctl(PR_SET_PDEATHSIG)";
    case step::dev_null: return "open(/dev/null)";
    case step::dup2: return "dup2";
    case step::eventfd: return "eventfd";
    case step::chdir: return "chdir";
    case step::exec: return "execve";
    case step::setgroups: return "setgroups";
    case step::setgid: return "setgid";
    case step::setuid: return "setuid";
    case step::affinity: return "sched_setaffinity";
    case step::nice: return "nice";
    case step::rlimit: return "setrlimit";
  }
  return "?";
}

struct failure {
  int what;
  int err;
};

// The fds of an exec'd worker: the listening sockets moved to 3, 4, ...
// (through copies above them, as they may sit where others go), and every
// other fd but the error pipe (close-on-exec) closed. Returns the error
// pipe's fd, moved above them too.
int place_exec_fds(const exec_plan& x, int error_fd) noexcept {
  namespace c = sys::child;
  int n = static_cast<int>(x.listen_fds.size());
  int first_free = STDERR_FILENO + 1 + n;
  int err = c::dup_above(error_fd, first_free, true);
  if (err < 0) return -1;
  for (int i = 0; i < n; ++i)
    if ((x.scratch[i] = c::dup_above(x.listen_fds[static_cast<std::size_t>(i)], first_free, false)) < 0) return -1;
  for (int i = 0; i < n; ++i)
    if (c::dup_to(x.scratch[i], first_free - n + i) < 0) return -1;
  auto e = static_cast<unsigned>(err);
  c::close_range(static_cast<unsigned>(first_free), e - 1);
  c::close_range(e + 1, ~0U);
  return err;
}

// From here to run_worker or execve: async-signal-safe calls only (closelog
// aside, in library mode).
}  // namespace

[[noreturn]] void run_child(const spawn_plan& p, int error_fd, int error_reader) noexcept {
  namespace c = sys::child;
  if (error_reader >= 0) c::close(error_reader);  // the arbiter's end
  auto fail = [&error_fd](step s, int err, int code = 71) {  // EX_OSERR
    failure f{static_cast<int>(s), err ? err : errno};
    c::write(error_fd, &f, sizeof f);
    c::exit(code);
  };
  // 1. Process group first: a stop reaches what this worker spawns, and a
  //    terminal's Ctrl-C reaches only the arbiter. The arbiter also calls
  //    setpgid for us, so neither order races.
  (void)sys::set_process_group(0, 0);
  //    Its OOM score while it still may: after a drop to another user its
  //    /proc files are no longer its own.
  if (p.oom_score_adj) c::write_file("/proc/self/oom_score_adj", p.oom_score_adj);  // higher: always allowed
  //    Scheduling and limits, also while it still may (a lower nice value
  //    or a higher limit needs privileges).
  if (p.cpu >= 0)
    if (int err = c::pin_to_cpu(p.cpu)) fail(step::affinity, err);
  if (p.nice != 0)
    if (int err = c::add_nice(p.nice)) fail(step::nice, err);
  for (const auto& l : *p.rlimits)
    if (int err = c::set_limit(l.resource, l.soft, l.hard)) fail(step::rlimit, err);
  // 2. The user it runs as, each step checked: a worker that cannot drop its
  //    privileges never runs. Before PR_SET_PDEATHSIG: a change of
  //    credentials clears the parent-death signal.
  if (p.drop) {
    int failed = 0;
    if (int err = c::drop_privileges(*p.drop, p.drop_uid, &failed))
      fail(failed == 1 ? step::setgroups : failed == 2 ? step::setgid : step::setuid, err);
  }
  // 3. Never outlive the arbiter. If it died between fork and prctl, the
  //    signal will never come: the parent check catches that window.
  if (auto ec = c::set_parent_death_signal(SIGKILL)) fail(step::pdeathsig, ec.value());
  if (sys::parent_pid() != p.arbiter_pid) c::exit(1);
  // 4. fds: stdin from /dev/null, stdout and stderr onto the pipes, then the
  //    planned ones closed (no exec follows in library mode, so CLOEXEC
  //    alone would not do).
  int null_fd = c::open_dev_null();
  if (null_fd < 0) fail(step::dev_null, 0);
  if (c::dup_to(null_fd, STDIN_FILENO) < 0 || c::dup_to(p.out_fd, STDOUT_FILENO) < 0 ||
      c::dup_to(p.err_fd, STDERR_FILENO) < 0)
    fail(step::dup2, 0);
  for (int fd : {null_fd, p.out_fd, p.err_fd})
    if (fd > STDERR_FILENO) c::close(fd);
  if (p.exec) {
    if ((error_fd = place_exec_fds(*p.exec, error_fd)) < 0) c::exit(71);
  } else {
    if (p.close_syslog) c::close_syslog();  // glibc's socket is among ufork's fds
    auto e = static_cast<unsigned>(error_fd);
    for (auto [first, last] : *p.close_runs) {  // all but the error pipe
      if (first < e) c::close_range(first, std::min(last, e - 1));
      if (last > e) c::close_range(std::max(first, e + 1), last);
    }
  }
  // The program's own fd limit back, now that the setup's fds are done.
  if (p.nofile.rlim_max != 0) (void)sys::set_fd_limit(p.nofile);
  sigset_t none;
  sigemptyset(&none);
  if (p.exec) {
    // 5. The program: its own pid where the protocols want it, default
    //    signals and an empty mask (both survive exec), then execve.
    for (char* field : p.exec->pid_fields) c::write_decimal(field, sys::own_pid());
    c::default_signals();
    sys::set_signal_mask(none);
    if (p.exec->chdir)
      if (int err = c::change_dir(p.exec->chdir)) fail(step::chdir, err);
    int err = c::exec(p.exec->path, p.exec->argv, p.envp);
    fail(step::exec, err, err == ENOENT || err == ENOTDIR ? 127 : 126);  // the shell's codes
  }
  // 5. Signals: handlers reset, ours installed, then the mask the arbiter
  //    blocked around fork emptied: a SIGTERM sent meanwhile waited for us.
  int stop_fd = c::make_eventfd();
  if (stop_fd < 0) fail(step::eventfd, 0);
  install_worker_signals(stop_fd);
  sys::set_signal_mask(none);
  c::close(error_fd);  // set up: nothing more to report
  c::set_environment(p.envp);
  c::set_title(p.title, true);  // the environment's strings are free now: environ points at p.envp
  if (p.callbacks->after_fork_child) p.callbacks->after_fork_child();
  run_worker(p, stop_fd);
}

namespace {

constexpr std::string_view managers_own[] = {"NOTIFY_SOCKET=", "LISTEN_FDS=",    "LISTEN_PID=",
                                             "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID="};
constexpr std::string_view pid_room = "000000000000000000000";  // 21 bytes: any pid, and a NUL

std::string_view key_of(std::string_view var) { return var.substr(0, var.find('=') + 1); }

}  // namespace

worker_environment::worker_environment(char* const* base, const std::vector<std::string>& extra, const worker& w) {
  auto set = [this](std::string var) {
    auto key = key_of(var);
    std::erase_if(vars_, [&](const std::string& v) { return key_of(v) == key; });
    vars_.push_back(std::move(var));
  };
  for (char* const* e = base; e && *e; ++e) {
    std::string_view var(*e);
    if (std::find(std::begin(managers_own), std::end(managers_own), key_of(var)) == std::end(managers_own))
      vars_.emplace_back(var);
  }
  for (const auto& var : extra) set(var);
  set(fmt::format("UFORK_WORKER_ID={}", w.id));
  set(fmt::format("UFORK_WORKER_GENERATION={}", w.generation));
  if (w.listen_names && !w.listen_names->empty()) {
    set(fmt::format("LISTEN_FDS={}", w.listen_names->size()));
    set(fmt::format("LISTEN_FDNAMES={}", fmt::join(*w.listen_names, ":")));
    set(fmt::format("LISTEN_PID={}", pid_room));
  }
  if (!w.notify_socket.empty()) {
    set("NOTIFY_SOCKET=" + w.notify_socket);
  }
  if (!w.notify_socket.empty() && w.watchdog > std::chrono::milliseconds::zero()) {
    set(fmt::format("WATCHDOG_USEC={}", std::chrono::microseconds(w.watchdog).count()));
    set(fmt::format("WATCHDOG_PID={}", pid_room));
  }
  // Pointers only now: vars_ no longer moves.
  for (auto& v : vars_) {
    ptrs_.push_back(v.data());
    auto key = key_of(v);
    if ((key == "LISTEN_PID=" || key == "WATCHDOG_PID=") && v.size() == key.size() + pid_room.size())
      pid_fields_.push_back(v.data() + key.size());
  }
  ptrs_.push_back(nullptr);
}

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
  if (pid == 0) run_child(plan, errors->write.get(), errors->read.get());
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

std::string read_setup_error(int fd, const char* exec_path, bool* exec_done) {
  failure f{};
  auto n = sys::read(fd, &f, sizeof f);
  if (exec_done) *exec_done = n && n.value() == 0;
  if (!n || n.value() != sizeof f) return {};
  if (static_cast<step>(f.what) == step::exec && exec_path)
    return fmt::format("cannot exec {}: {}", exec_path, sys::error_text(f.err));
  return fmt::format("setup failed: {}: {}", name(static_cast<step>(f.what)), sys::error_text(f.err));
}

}  // namespace ufork::detail
