// A worker for `ufork run` tests, written as a systemd service would be:
// libsystemd's sd_listen_fds() for its socket and sd_notify() for its health.
//   notify_worker serve   READY=1, then answers each connection on fd 3 with
//                         its pid, sending WATCHDOG=1 as sd_watchdog_enabled says
//   notify_worker silent  READY=1, then never a WATCHDOG=1 (it hangs)
//   notify_worker wait    never READY=1 (stays starting)
//   notify_worker serve-then-wait   serve in generations 1 and 2, wait from 3 on
// Each first prints what it was given: its fds, LISTEN_*, WATCHDOG_*.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace {

volatile sig_atomic_t g_stop = 0;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "<unset>";
}

void report() {
  std::string fds;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) fds += " " + e.path().filename().string();
  // The directory iterator's own fd is among them: the test knows it is the highest.
  std::printf("fds:%s\n", fds.c_str());
  std::printf("pid %d LISTEN_FDS=%s LISTEN_PID=%s LISTEN_FDNAMES=%s NOTIFY_SOCKET=%s WATCHDOG_USEC=%s WATCHDOG_PID=%s "
              "UFORK_WORKER_ID=%s UFORK_WORKER_GENERATION=%s EXTRA=%s\n",
              ::getpid(), env("LISTEN_FDS").c_str(), env("LISTEN_PID").c_str(), env("LISTEN_FDNAMES").c_str(),
              env("NOTIFY_SOCKET").c_str(), env("WATCHDOG_USEC").c_str(), env("WATCHDOG_PID").c_str(),
              env("UFORK_WORKER_ID").c_str(), env("UFORK_WORKER_GENERATION").c_str(), env("EXTRA").c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "serve";
  if (mode == "serve-then-wait") mode = std::atoi(env("UFORK_WORKER_GENERATION").c_str()) >= 3 ? "wait" : "serve";
  report();
  int n = sd_listen_fds(0);  // 0: leave the environment as it was for report() above
  std::printf("sd_listen_fds %d\n", n);
  std::fflush(stdout);
  if (mode == "wait") {
    for (;;) ::pause();
  }
  sd_notifyf(0, "READY=1\nSTATUS=serving as %d", ::getpid());
  if (mode == "silent") {
    for (;;) ::pause();
  }
  // SIGTERM: finish the connection in hand, then exit (accept and poll are
  // interrupted: no SA_RESTART). Queued connections wait for the others.
  // Blocked but inside ppoll, so one that comes just before it is not lost.
  struct sigaction term{};
  term.sa_handler = [](int) { g_stop = 1; };
  ::sigaction(SIGTERM, &term, nullptr);
  sigset_t blocked, open;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &blocked, &open);
  sigdelset(&open, SIGTERM);
  std::uint64_t usec = 0;
  int watchdog = sd_watchdog_enabled(0, &usec);
  std::printf("sd_watchdog_enabled %d\n", watchdog);
  std::fflush(stdout);
  timespec every{static_cast<time_t>(usec / 4'000'000), static_cast<long>(usec / 4 % 1'000'000 * 1000)};
  while (!g_stop) {
    if (watchdog > 0) sd_notify(0, "WATCHDOG=1");
    pollfd pfd{SD_LISTEN_FDS_START, POLLIN, 0};  // no socket (n < 1): the signal or the timeout only
    if (::ppoll(&pfd, n < 1 ? 0 : 1, watchdog > 0 ? &every : nullptr, &open) <= 0) continue;
    int c = ::accept(SD_LISTEN_FDS_START, nullptr, nullptr);
    if (c < 0) continue;
    char buf[1024];
    (void)::read(c, buf, sizeof buf);
    std::string answer = "HTTP/1.0 200 OK\r\n\r\nworker " + std::to_string(::getpid()) + "\n";
    // A client gone before the answer (a reset) must not end the worker by SIGPIPE.
    (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
    ::close(c);
  }
  return 0;
}
