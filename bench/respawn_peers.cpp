// respawn_peers: what a user of any pre-forking server sees when its workers
// die, measured from outside, the same way for every server: this process
// sends the SIGKILL and watches the master's children in /proc.
//
//   respawn_peers respawn MASTER_PID KILLS GAP_MS
//       SIGKILL one worker, time until the master has forked a new child;
//       GAP_MS between kills.
//   respawn_peers respawn-exec MASTER_PID KILLS GAP_MS EXE
//       the same for a master whose workers exec a program (ufork run,
//       supervisord): until a new child runs EXE (its /proc/PID/exe).
//   respawn_peers outage MASTER_PID PORT KILLS GAP_MS
//       the master has one worker: SIGKILL it and send a request at once;
//       time until the answer (the service's outage).
//   respawn_peers killall MASTER_PID WORKERS ROUNDS
//       SIGKILL every worker at once, time until WORKERS new ones are forked;
//       the next round 1 s later (the pool is back and serving).
//   respawn_peers hang MASTER CONTROL_SOCKET TIMEOUT_MS SAMPLES
//       ufork only: SIGSTOP a ready worker, ask the control socket how old
//       its last heartbeat is, and time from that heartbeat + TIMEOUT_MS to
//       the fork of its successor.
//
// Prints "median MS p99 MS max MS n N". Busy-polls /proc (with sched_yield):
// a benchmark, not a pattern for the library.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;

std::set<pid_t> children(pid_t master) {
  std::set<pid_t> out;
  std::string path = "/proc/" + std::to_string(master) + "/task/" + std::to_string(master) + "/children";
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    int pid;
    while (std::fscanf(f, "%d", &pid) == 1) out.insert(pid);
    std::fclose(f);
  }
  return out;
}

// Until `count` children not in `old` exist; the time it took.
bool wait_new_children(pid_t master, const std::set<pid_t>& old, std::size_t count, clock_type::time_point deadline) {
  while (clock_type::now() < deadline) {
    std::size_t fresh = 0;
    for (pid_t p : children(master)) fresh += !old.count(p);
    if (fresh >= count) return true;
    sched_yield();
  }
  return false;
}

// The program pid runs now ("" while it has not exec'd yet, or is gone).
std::string exe_of(pid_t pid) {
  char buf[4096];
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Until a child not in `old` runs exe.
bool wait_new_exec(pid_t master, const std::set<pid_t>& old, const std::string& exe, clock_type::time_point deadline) {
  while (clock_type::now() < deadline) {
    for (pid_t p : children(master))
      if (!old.count(p) && exe_of(p) == exe) return true;
    sched_yield();
  }
  return false;
}

// One GET on a new connection; true on a 200.
bool request(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[512];
    if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) > 0) {
      ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      ok = n > 12 && std::strncmp(buf + 9, "200", 3) == 0;
    }
  }
  ::close(fd);
  return ok;
}

// One request on a control socket (ufork ctl's client): the answer as JSON,
// null on failure.
nlohmann::json ask(const std::string& path, const std::string& line) {
  int code = 0;  // the reason is on stderr
  auto client = ufork::cli::control_client::connect(path, "test", code);
  auto answer = client ? client->request(line, std::chrono::seconds(10)) : std::nullopt;
  return answer ? nlohmann::json::parse(*answer, nullptr, false) : nlohmann::json();
}

void report(std::vector<double> v) {
  if (v.empty()) {
    std::printf("no samples\n");
    return;
  }
  std::sort(v.begin(), v.end());
  std::printf("median %.3f ms p99 %.3f ms max %.3f ms n %zu\n", v[v.size() / 2],
              v[std::min(v.size() - 1, v.size() * 99 / 100)], v.back(), v.size());
}

int usage() {
  std::fprintf(stderr,
               "usage: respawn_peers respawn MASTER KILLS GAP_MS | respawn-exec MASTER KILLS GAP_MS EXE |"
               " outage MASTER PORT KILLS GAP_MS |"
               " killall MASTER WORKERS ROUNDS | hang MASTER CONTROL_SOCKET TIMEOUT_MS SAMPLES\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return usage();
  std::string mode = argv[1];
  pid_t master = std::atoi(argv[2]);
  std::vector<double> samples;
  if (mode == "respawn" && argc == 5) {
    int kills = std::atoi(argv[3]);
    auto gap = std::chrono::milliseconds(std::atoi(argv[4]));
    for (int i = 0; i < kills; ++i) {
      auto before = children(master);
      if (before.empty()) return std::fprintf(stderr, "no workers\n"), 1;
      auto t0 = clock_type::now();
      ::kill(*before.begin(), SIGKILL);
      if (!wait_new_children(master, before, 1, t0 + std::chrono::seconds(60)))
        return std::fprintf(stderr, "no new worker within 60 s\n"), 1;
      samples.push_back(ms(clock_type::now() - t0).count());
      std::this_thread::sleep_for(gap);
    }
  } else if (mode == "respawn-exec" && argc == 6) {
    int kills = std::atoi(argv[3]);
    auto gap = std::chrono::milliseconds(std::atoi(argv[4]));
    std::string exe = argv[5];
    for (int i = 0; i < kills; ++i) {
      auto before = children(master);
      pid_t victim = 0;
      for (pid_t p : before)
        if (exe_of(p) == exe) victim = p;
      if (victim == 0) return std::fprintf(stderr, "no worker runs %s\n", exe.c_str()), 1;
      auto t0 = clock_type::now();
      ::kill(victim, SIGKILL);
      if (!wait_new_exec(master, before, exe, t0 + std::chrono::seconds(60)))
        return std::fprintf(stderr, "no new worker running %s within 60 s\n", exe.c_str()), 1;
      samples.push_back(ms(clock_type::now() - t0).count());
      std::this_thread::sleep_for(gap);
    }
  } else if (mode == "outage" && argc == 6) {
    int port = std::atoi(argv[3]), kills = std::atoi(argv[4]);
    auto gap = std::chrono::milliseconds(std::atoi(argv[5]));
    for (int i = 0; i < kills; ++i) {
      auto before = children(master);
      if (before.size() != 1) return std::fprintf(stderr, "want one worker, found %zu\n", before.size()), 1;
      auto t0 = clock_type::now();
      ::kill(*before.begin(), SIGKILL);
      while (!request(port))
        if (clock_type::now() - t0 > std::chrono::seconds(60)) return std::fprintf(stderr, "no answer\n"), 1;
      samples.push_back(ms(clock_type::now() - t0).count());
      std::this_thread::sleep_for(gap);
    }
  } else if (mode == "hang" && argc == 6) {
    std::string control = argv[3];
    auto timeout = std::chrono::milliseconds(std::atoi(argv[4]));
    int hangs = std::atoi(argv[5]);
    while (static_cast<int>(samples.size()) < hangs) {
      pid_t victim = 0;
      auto workers = ask(control, "workers --json");  // a range-for over a temporary's member would dangle
      for (const auto& w : workers["data"])
        if (w["state"] == "ready" && !w["heartbeat_age"].is_null()) victim = w["pid"].get<pid_t>();
      if (victim == 0) {  // none ready yet: the last successor is starting
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      auto before = children(master);
      ::kill(victim, SIGSTOP);
      double age = -1;
      auto stopped = ask(control, "workers --json");
      for (const auto& w : stopped["data"])
        if (w["pid"] == victim && !w["heartbeat_age"].is_null()) age = w["heartbeat_age"].get<double>();
      auto asked = clock_type::now();
      if (age < 0) return std::fprintf(stderr, "worker %d not in the answer\n", victim), 1;
      auto deadline = asked - std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(age)) +
                      timeout;
      if (!wait_new_children(master, before, 1, deadline + std::chrono::seconds(60)))
        return std::fprintf(stderr, "no successor within 60 s of the deadline\n"), 1;
      samples.push_back(ms(clock_type::now() - deadline).count());
      while (children(master).count(victim)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } else if (mode == "killall" && argc == 5) {
    std::size_t workers = static_cast<std::size_t>(std::atoi(argv[3]));
    int rounds = std::atoi(argv[4]);
    for (int i = 0; i < rounds; ++i) {
      auto before = children(master);
      auto t0 = clock_type::now();
      for (pid_t p : before) ::kill(p, SIGKILL);
      if (!wait_new_children(master, before, workers, t0 + std::chrono::seconds(120)))
        return std::fprintf(stderr, "the pool did not come back within 120 s\n"), 1;
      samples.push_back(ms(clock_type::now() - t0).count());
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  } else {
    return usage();
  }
  report(samples);
  return 0;
}
