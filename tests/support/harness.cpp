#include "harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>

namespace ufork::test {
namespace {

using clock = std::chrono::steady_clock;

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int ms_until(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Under make check-asan: a sanitizer's report in what a pool or a program
// printed (a worker's, or a CLI's) fails the test that saw it. UBSan writes
// its reports to stderr whatever log_path says; ASan's go to files as well
// (check-asan looks there for the processes no test reads).
void fail_on_sanitizer_report(const std::string& text) {
  for (const char* mark : {"runtime error: ", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer"})
    if (auto at = text.find(mark); at != std::string::npos)
      ADD_FAILURE() << "a sanitizer's report: " << text.substr(at, 400);
}

}  // namespace

void beat_until_stopped(worker& w) {
  while (!w.stopping()) {
    w.heartbeat();
    pollfd pfd{w.stop_fd(), POLLIN, 0};
    (void)::poll(&pfd, 1, 50);
  }
}

void say(const std::string& text) {
  std::string line = text + "\n";
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::shared_ptr<log_sink> say_sink() {
  return make_callback_sink([](const log_line& l) { say(format_prefix(l) + std::string(l.text)); });
}

hooks with_events(hooks h) {
  auto event = [](const char* what, const worker_info& w) {
    say("event " + std::string(what) + " slot=" + std::to_string(w.id) + " gen=" + std::to_string(w.generation) +
        " pid=" + std::to_string(w.pid));
  };
  h.on_worker_spawn = [event](const worker_info& w) { event("spawn", w); };
  h.on_worker_ready = [event](const worker_info& w) { event("ready", w); };
  h.on_worker_exit = [](const exit_info& e) { say("event exit " + e.describe()); };
  return h;
}

int run_pool_or_report(options o, hooks h) {
  try {
    return arbiter(std::move(o), with_events(std::move(h))).run();
  } catch (const std::exception& e) {
    say(std::string("arbiter failed: ") + e.what());
    return 1;
  }
}

options test_options(int workers) {
  options o;
  o.workers = workers;
  o.timeout = 2s;
  o.startup_timeout = 10s;
  o.graceful_timeout = 10s;
  o.abort_timeout = 500ms;
  o.max_starting = workers > 0 ? workers : 1;
  o.backoff.min_interval = 10ms;
  o.backoff.initial = 10ms;
  o.backoff.cap = 100ms;
  o.sink = say_sink();
  return o;
}

pool_process::pool_process(std::function<int()> body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  std::fflush(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork");
  if (pid_ == 0) {
    (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no pool behind
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    int code = 99;
    try {
      code = body();
    } catch (const std::exception& e) {
      say(std::string("body threw: ") + e.what());
    }
    say("body returned in pid " + std::to_string(::getpid()));
    std::fflush(nullptr);
    ::_exit(code);
  }
  ::close(fds[1]);
  out_ = fds[0];
  pidfd_ = pidfd_open(pid_);
}

pool_process::~pool_process() {
  if (pidfd_ >= 0) {
    siginfo_t si{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0) {
      (void)::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
      (void)::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &si, WEXITED);
    }
    ::close(pidfd_);
  }
  if (out_ >= 0) {
    // What is already in the pipe (up to 1 MiB), for fail_on_sanitizer_report.
    for (int i = 0; i < 16 && read_more(clock::now()); ++i) {
    }
    ::close(out_);
  }
}

void pool_process::signal(int sig) const { (void)::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0); }

bool pool_process::read_more(clock::time_point deadline) {
  pollfd pfd{out_, POLLIN, 0};
  int r = ::poll(&pfd, 1, ms_until(deadline));
  if (r <= 0) return false;
  char buf[65536];
  ssize_t n = ::read(out_, buf, sizeof buf);
  if (n <= 0) return false;
  partial_.append(buf, static_cast<std::size_t>(n));
  std::size_t start = 0, nl;
  while ((nl = partial_.find('\n', start)) != std::string::npos) {
    lines_.emplace_back(partial_, start, nl - start);
    fail_on_sanitizer_report(lines_.back());
    start = nl + 1;
  }
  partial_.erase(0, start);
  return true;
}

void pool_process::drain_for(milliseconds d) {
  auto deadline = clock::now() + d;
  while (read_more(deadline)) {
  }
}

std::smatch pool_process::wait_for(const std::string& re, milliseconds timeout) {
  std::regex pattern(re);
  auto deadline = clock::now() + timeout;
  for (;;) {
    while (next_ < lines_.size()) {
      held_ = lines_[next_++];
      std::smatch m;
      if (std::regex_search(held_, m, pattern)) return m;
    }
    if (!read_more(deadline)) break;
  }
  ADD_FAILURE() << "no line matching /" << re << "/ within " << timeout.count() << " ms; last lines:\n"
                << [&] {
                     std::string s;
                     for (std::size_t i = lines_.size() > 15 ? lines_.size() - 15 : 0; i < lines_.size(); ++i)
                       s += "  " + lines_[i] + "\n";
                     return s;
                   }();
  // A ready match of nothing: m[1] of it is an empty unmatched group, not
  // the undefined behaviour of indexing a default-constructed match.
  held_.clear();
  std::smatch none;
  std::regex_search(held_, none, std::regex("^"));
  return none;
}

std::vector<std::string> pool_process::wait_count(const std::string& re, std::size_t n, milliseconds timeout) {
  std::regex pattern(re);
  std::vector<std::string> found;
  wait_count(
      [&](const std::string& line) {
        std::smatch m;
        if (!std::regex_search(line, m, pattern)) return false;
        found.push_back(m.size() > 1 ? m[1].str() : m[0].str());
        return true;
      },
      n, timeout);
  return found;
}

std::size_t pool_process::wait_count(const std::function<bool(const std::string&)>& match, std::size_t n,
                                     milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  std::size_t found = 0, scanned = 0;
  for (;;) {
    for (; scanned < lines_.size(); ++scanned) found += match(lines_[scanned]);
    if (found >= n) return found;
    if (!read_more(deadline)) break;
  }
  ADD_FAILURE() << found << " of " << n << " expected lines within " << timeout.count() << " ms; last: "
                << (lines_.empty() ? "" : lines_.back());
  return found;
}

int pool_process::wait_exit(milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  while (read_more(deadline)) {
  }
  if (!partial_.empty()) lines_.push_back(std::exchange(partial_, {}));
  pollfd pfd{pidfd_, POLLIN, 0};
  if (::poll(&pfd, 1, ms_until(deadline)) != 1) {
    ADD_FAILURE() << "pool did not exit within " << timeout.count() << " ms";
    return -1;
  }
  siginfo_t si{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &si, WEXITED) != 0) return -1;
  ::close(pidfd_);
  pidfd_ = -1;
  return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

std::size_t pool_process::count(const std::string& re) const {
  std::regex pattern(re);
  std::size_t n = 0;
  for (const auto& l : lines_) n += std::regex_search(l, pattern);
  return n;
}

program_result run_program(const std::string& path, std::vector<std::string> args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {-1, ""};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    std::vector<char*> argv{const_cast<char*>(path.c_str())};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  // Ends when the program and whatever it left behind close the pipe (a
  // daemon's fds are /dev/null).
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  fail_on_sanitizer_report(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool reap(pid_t pid, milliseconds timeout) {
  int fd = pidfd_open(pid);
  if (fd < 0) return errno == ESRCH;
  pollfd pfd{fd, POLLIN, 0};
  bool exited = ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1;
  siginfo_t si{};
  // Reap it if it is ours (an orphan adopted by this subreaper); ECHILD
  // means someone else's child, already gone from our view.
  if (exited) (void)::waitid(P_PIDFD, static_cast<id_t>(fd), &si, WEXITED | WNOHANG);
  ::close(fd);
  return exited;
}

bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace ufork::test
