// ufork_bench: the arbiter's own figures, printed as a table. Not a test:
// run it on a quiet machine (`make bench`). Each scenario drives a real pool
// through its hooks, with default options except what its line names.
// Respawn and outage against nginx and gunicorn: bench/respawn-vs-peers.sh.
#include <sys/mman.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "ufork/ufork.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;

struct stats {
  double median, p99;
};

stats summarize(std::vector<double> v) {
  if (v.empty()) return {0, 0};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)]};
}

// Default options but for a silent sink; a benchmark that needs another
// value sets it and prints it beside its figure.
ufork::options bench_options(int workers) {
  ufork::options o;
  o.workers = workers;
  o.sink = ufork::make_callback_sink([](const ufork::log_line&) {});
  return o;
}

// A worker beats once, records when, then hangs: stopped by a SIGSTOP (it
// sends itself, as another process would) or busy in a loop. Time from its
// deadline (last beat + timeout) to the fork of its successor.
void hang_overshoot(bool stopped, int samples) {
  auto* last_beat = static_cast<std::atomic<std::int64_t>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  auto timeout = 200ms;
  std::vector<double> late;
  ufork::arbiter* self = nullptr;
  ufork::hooks h;
  h.post_fork = [&](ufork::worker& w) {
    w.heartbeat();
    last_beat->store(clock_type::now().time_since_epoch().count());
    if (stopped) ::raise(SIGSTOP);
    for (;;) asm volatile("" ::: "memory");  // busy, never beats again
  };
  h.on_worker_spawn = [&](const ufork::worker_info& w) {
    if (w.generation == 1) return;
    auto deadline = clock_type::time_point(clock_type::duration(last_beat->load())) + timeout;
    late.push_back(ms(clock_type::now() - deadline).count());
    if (static_cast<int>(late.size()) == samples) self->stop();
  };
  auto o = bench_options(1);
  o.timeout = timeout;
  o.graceful_timeout = 100ms;  // the stop at the end: the last hung worker
  ufork::arbiter a(o, h);
  self = &a;
  a.run();
  ::munmap(last_beat, 4096);
  auto s = summarize(late);
  std::printf("| hung worker (%s): deadline -> successor forked, timeout %lld ms (%d hangs) | +%.3f ms | +%.3f ms |\n",
              stopped ? "SIGSTOP" : "busy loop", static_cast<long long>(timeout.count()), samples, s.median, s.p99);
}

// Recycling: from the limit to the successor's fork. max_lifetime: the
// deadline (the worker's fork + the lifetime) to the next fork of its slot;
// max_requests: the worker's count_requests() that reaches the limit (it
// sends one datagram) to that fork.
void recycle_overshoot(bool by_requests, int samples) {
  auto* reached = static_cast<std::atomic<std::int64_t>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  auto lifetime = 100ms;
  std::vector<double> late;
  ufork::arbiter* self = nullptr;
  ufork::hooks h;
  h.post_fork = [&](ufork::worker& w) {
    if (!by_requests) return;  // beats until stopped
    w.ready();
    std::this_thread::sleep_for(10ms);
    reached->store(clock_type::now().time_since_epoch().count());
    w.count_requests(1000);
  };
  clock_type::time_point last_fork;
  h.on_worker_spawn = [&](const ufork::worker_info& w) {
    auto now = clock_type::now();
    if (w.generation > 1) {
      auto from = by_requests ? clock_type::time_point(clock_type::duration(reached->load())) : last_fork + lifetime;
      late.push_back(ms(now - from).count());
      if (static_cast<int>(late.size()) == samples) self->stop();
    }
    last_fork = now;
  };
  auto o = bench_options(1);
  if (by_requests)
    o.recycle.max_requests = 1000;
  else
    o.recycle.max_lifetime = lifetime;
  ufork::arbiter a(o, h);
  self = &a;
  a.run();
  ::munmap(reached, 4096);
  auto s = summarize(late);
  std::printf("| recycle by %s: the limit -> successor forked (%d) | +%.3f ms | +%.3f ms |\n",
              by_requests ? "max_requests 1000 (the worker's count_requests reaching it)"
                          : "max_lifetime 100 ms (default: none)",
              samples, s.median, s.p99);
}

std::size_t fd_count() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n += !e.path().empty();
  return n;
}

long rss_kib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

// A worker that exits just after it is ready, replaced again and again: the
// arbiter's throughput and whether its memory or fds grow.
void endurance(int respawns) {
  int ready = 0;
  long rss_before = 0, rss_after = 0;
  std::size_t fds_before = 0, fds_after = 0;
  ufork::arbiter* self = nullptr;
  ufork::hooks h;
  h.post_fork = [](ufork::worker& w) {
    w.ready();
    ::_exit(0);
  };
  h.on_worker_ready = [&](const ufork::worker_info&) {
    if (++ready == 100) {  // warmed up: the dead-worker history is full
      rss_before = rss_kib();
      fds_before = fd_count();
    }
    if (ready == respawns + 100) {
      rss_after = rss_kib();
      fds_after = fd_count();
      self->stop();
    }
  };
  auto o = bench_options(1);
  o.backoff.min_interval = 0ms;
  ufork::arbiter a(o, h);
  self = &a;
  auto t0 = clock_type::now();
  a.run();
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("| endurance: %d respawns of a worker that exits when ready, min_interval 0 (default 100 ms) | "
              "%.0f respawns/s | arbiter RSS %ld -> %ld KiB, fds %zu -> %zu |\n",
              respawns, (respawns + 100) / secs, rss_before, rss_after, fds_before, fds_after);
}

void spawn(int n, int max_starting) {
  int ready = 0;
  ufork::arbiter* self = nullptr;
  ufork::hooks h;
  h.on_worker_ready = [&](const ufork::worker_info&) {
    if (++ready == n) self->stop();
  };
  auto o = bench_options(n);
  o.max_starting = max_starting;  // in the figure's name
  ufork::arbiter a(o, h);
  self = &a;
  auto t0 = clock_type::now();
  a.run();
  std::printf("| spawn: %d workers until all ready, max_starting %d | %.1f ms | |\n", n, max_starting,
              ms(clock_type::now() - t0).count());
}

// The kernel's own accounting of a process: nanoseconds on a CPU
// (/proc/PID/schedstat) and voluntary context switches, i.e. the times it
// went to sleep in epoll_wait (/proc/PID/status).
struct proc_usage {
  double cpu_ms = 0;
  long sleeps = 0;
};

proc_usage usage_of(pid_t pid) {
  proc_usage u;
  std::string dir = "/proc/" + std::to_string(pid);
  if (FILE* f = std::fopen((dir + "/schedstat").c_str(), "r")) {
    unsigned long long ns = 0;
    if (std::fscanf(f, "%llu", &ns) == 1) u.cpu_ms = static_cast<double>(ns) / 1e6;
    std::fclose(f);
  }
  if (FILE* f = std::fopen((dir + "/status").c_str(), "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "voluntary_ctxt_switches: %ld", &u.sleeps) == 1) break;
    std::fclose(f);
  }
  return u;
}

// 64 idle workers with the default 10 s timeout, the arbiter in run() in a
// child process of its own, measured from outside by the kernel's counters.
void idle(std::chrono::seconds span) {
  constexpr int workers = 64;
  int ready_pipe[2];
  if (::pipe(ready_pipe) != 0) return;
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready_pipe[0]);
    int ready = 0;
    ufork::hooks h;
    h.on_worker_ready = [&](const ufork::worker_info&) {
      if (++ready == workers) (void)!::write(ready_pipe[1], "r", 1);
    };
    auto o = bench_options(workers);
    ::_exit(ufork::arbiter(o, h).run());
  }
  ::close(ready_pipe[1]);
  char byte;
  if (::read(ready_pipe[0], &byte, 1) != 1) return;
  ::close(ready_pipe[0]);
  auto before = usage_of(pid);
  std::this_thread::sleep_for(span);
  auto after = usage_of(pid);
  ::kill(pid, SIGTERM);
  (void)::waitpid(pid, nullptr, 0);
  long sleeps = after.sleeps - before.sleeps;
  std::printf("| idle: %d workers, %lld s: arbiter CPU, wake-ups | %.3f ms | %ld (%.2f/s) |\n", workers,
              static_cast<long long>(span.count()), after.cpu_ms - before.cpu_ms, sleeps,
              static_cast<double>(sleeps) / static_cast<double>(span.count()));
}

// 4 workers flood their stdout; the arbiter writes every line to a file.
void output(int lines_per_worker) {
  char path[] = "/tmp/ufork-bench-XXXXXX";
  int fd = ::mkstemp(path);
  std::atomic<int> exited{0};
  ufork::arbiter* self = nullptr;
  ufork::hooks h;
  h.post_fork = [&](ufork::worker& w) {
    if (w.generation() > 1) return;
    static char buf[1 << 16];
    std::setvbuf(stdout, buf, _IOFBF, sizeof buf);
    for (int i = 0; i < lines_per_worker; ++i) std::printf("worker %d line %d of the flood\n", w.id(), i);
    std::fflush(stdout);
    ::_exit(0);
  };
  h.on_worker_exit = [&](const ufork::exit_info&) {
    if (++exited == 4) self->stop();
  };
  auto o = bench_options(4);
  o.sink = ufork::make_fd_sink(fd);
  ufork::arbiter a(o, h);
  self = &a;
  auto t0 = clock_type::now();
  a.run();
  o.sink->flush();
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  // Count what reached the file: every flood line, exactly.
  FILE* f = std::fopen(path, "r");
  long lines = 0, bytes = 0;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    bytes += static_cast<long>(std::strlen(line));
    lines += std::strstr(line, "of the flood") != nullptr;
  }
  std::fclose(f);
  ::unlink(path);
  ::close(fd);
  long expected = 4L * lines_per_worker;
  std::printf("| output: 4 workers x %d lines into a file | %.2f M lines/s | %.0f MB/s, %ld lost |\n",
              lines_per_worker, static_cast<double>(lines) / secs / 1e6, static_cast<double>(bytes) / secs / 1e6,
              expected - lines);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  std::printf("| figure | median | p99 / other |\n|---|---|---|\n");
  hang_overshoot(true, quick ? 20 : 100);
  hang_overshoot(false, quick ? 20 : 100);
  recycle_overshoot(false, quick ? 20 : 100);
  recycle_overshoot(true, quick ? 20 : 100);
  endurance(quick ? 10'000 : 100'000);
  for (int n : {1, 64, 1000}) {
    spawn(n, 1);
    if (n > 1) spawn(n, n);
  }
  idle(quick ? 2s : 10s);
  output(quick ? 100'000 : 1'000'000);
  return 0;
}
