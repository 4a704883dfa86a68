// Chaos (ctest label `chaos`): an HTTP pool under load from a client here,
// while random workers get SIGKILL or SIGSTOP every 50-200 ms. After the
// last fault the pool must come back whole, and the arbiter must be as it
// was: no zombie, no fd or memory gained, every spawn and exit counted.
// UFORK_CHAOS_SECONDS sets the length of the faults (default 15; the long
// run is by hand).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "client.hpp"
#include "harness.hpp"
#include "ufork/http/server.hpp"

namespace ufork::test {
namespace {

std::set<pid_t> children_of(pid_t pid) {
  std::set<pid_t> out;
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (pid_t p; f >> p;) out.insert(p);
  return out;
}

char state_of(pid_t pid) {  // the letter after "(comm)" in /proc/PID/stat
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), {});
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}

std::size_t fd_count(pid_t pid) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) n += !e.path().empty();
  return n;
}

long rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

// One GET on a new connection, at most 2 s; true on a 200.
bool get(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval two{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two, sizeof two);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two, sizeof two);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[256];
    if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) > 0) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      ok = n > 12 && std::string_view(buf + 9, 3) == "200";
    }
  }
  ::close(fd);
  return ok;
}

nlohmann::json ask(cli::control_client& c, const std::string& line) {
  auto answer = c.request(line, 20s);
  return answer ? nlohmann::json::parse(*answer) : nlohmann::json{{"ok", false}};
}

TEST(chaos, the_pool_comes_back_whole_after_random_kills_and_stops_under_load) {
  constexpr int workers = 4;
  const char* env = std::getenv("UFORK_CHAOS_SECONDS");
  const auto faults_for = std::chrono::seconds(env ? std::atoi(env) : 15);
  std::string sock = "/tmp/ufork-chaos-" + std::to_string(::getpid()) + ".sock";
  struct unlink_at_exit {  // a failed assertion SIGKILLs the pool, which cannot remove it
    std::string path;
    ~unlink_at_exit() { ::unlink(path.c_str()); }
  } socket_file{sock};
  pool_process pool([sock] {
    http::server_options o;
    o.pool = test_options(workers);
    o.pool.timeout = 500ms;
    o.pool.control_path = sock;
    o.on_listening = [](const std::string& address) { say("listening " + address); };
    o.hooks = with_events({});
    return http::serve([](const http::request& req) { return http::response{boost::beast::http::status::ok, req.version()}; },
                       "127.0.0.1:0", o);
  });
  int port = std::stoi(pool.wait_for("listening 127\\.0\\.0\\.1:(\\d+)")[1]);
  pool.wait_count("event ready", workers);
  pid_t arbiter = pool.pid();
  int code = 0;  // the reason is on stderr
  auto ctl = cli::control_client::connect(sock, "test", code);
  ASSERT_TRUE(ctl) << "exit " << code;
  ASSERT_TRUE(ask(*ctl, "status")["ok"]);  // the connection the end will use is open before the baseline
  std::size_t fds_before = fd_count(arbiter);
  long rss_before = rss_kib(arbiter);

  std::atomic<bool> done{false};
  std::atomic<long> served{0}, failed{0};
  std::thread load([&] {
    while (!done) (get(port) ? served : failed)++;
  });
  // Joined however the test body ends: an exception then reaches gtest as
  // itself, not as std::terminate for a joinable thread (seen once in CI).
  struct join_at_exit {
    std::atomic<bool>& done;
    std::thread& t;
    ~join_at_exit() {
      done = true;
      if (t.joinable()) t.join();
    }
  } load_joined{done, load};
  std::mt19937 random(std::random_device{}());
  int kills = 0, stops = 0;
  for (auto end = std::chrono::steady_clock::now() + faults_for; std::chrono::steady_clock::now() < end;) {
    auto live = children_of(arbiter);
    if (!live.empty()) {
      auto victim = std::next(live.begin(), static_cast<long>(random() % live.size()));
      bool stop = random() % 2;
      ::kill(*victim, stop ? SIGSTOP : SIGKILL);
      (stop ? stops : kills)++;
    }
    // The stimulus's interval, spent reading the pool's output: a full pipe
    // would block the arbiter's log and so its loop.
    pool.drain_for(std::chrono::milliseconds(50 + random() % 151));
  }

  // Back to `workers` ready workers: followed in the pool's events (the
  // newest generation of each slot is ready and has not exited).
  std::map<int, std::pair<unsigned, bool>> slots;  // slot -> (generation, ready)
  std::regex ready_re("^event ready slot=(\\d+) gen=(\\d+)"), exit_re("^event exit worker (\\d+) pid \\d+ gen (\\d+)");
  pool.wait_count(
      [&](const std::string& l) {
        std::smatch m;
        if (std::regex_search(l, m, ready_re)) {
          auto& s = slots[std::stoi(m[1])];
          unsigned gen = static_cast<unsigned>(std::stoul(m[2]));
          if (gen >= s.first) s = {gen, true};
        } else if (std::regex_search(l, m, exit_re)) {
          auto& s = slots[std::stoi(m[1])];
          if (static_cast<unsigned>(std::stoul(m[2])) == s.first) s.second = false;
        }
        int whole = 0;
        for (auto& [slot, s] : slots) whole += s.second;
        if (whole != workers) return false;
        // A worker stopped by the last faults still looks ready until its
        // timeout declares it hung: wait until none is left stopped.
        auto children = children_of(arbiter);
        return children.size() == static_cast<std::size_t>(workers) &&
               std::none_of(children.begin(), children.end(), [](pid_t c) { return state_of(c) == 'T'; });
      },
      1, 60s);
  done = true;
  load.join();

  // Asked from another thread while this one reads the pool's output: the
  // arbiter answers once it has written what it had to say. A SIGSTOP sent
  // last may reach its worker only after the check above (a loaded machine
  // runs it late): that worker is then found hung and replaced, so the pool
  // is asked again until it says it is whole: `workers` ready and nothing
  // else (the hung one's successor may be ready while it is still stopping).
  auto status_now = [&] {
    auto asked = std::async(std::launch::async, [&] { return ask(*ctl, "status --json"); });
    while (asked.wait_for(0s) != std::future_status::ready) pool.drain_for(20ms);
    return asked.get();
  };
  auto whole = [&](const nlohmann::json& s) {
    return s["data"]["workers"] == nlohmann::json{{"ready", workers}};
  };
  auto status = status_now();
  for (auto until = std::chrono::steady_clock::now() + 60s;
       status["ok"] && !whole(status) && std::chrono::steady_clock::now() < until;
       status = status_now())
    pool.drain_for(100ms);
  ASSERT_TRUE(status["ok"]) << status.dump();
  auto counters = status["data"]["counters"];
  EXPECT_TRUE(whole(status)) << status.dump();
  // Every spawn is a live worker or a counted exit.
  EXPECT_EQ(counters["spawned"].get<long>() - counters["exited"].get<long>(), workers) << status.dump();
  for (pid_t p : children_of(arbiter)) EXPECT_NE(state_of(p), 'Z') << "zombie " << p;
  EXPECT_EQ(fd_count(arbiter), fds_before);
  long rss_after = rss_kib(arbiter);
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine keeps what the arbiter freed (each hung worker's stack,
  // symbolized, is dozens of lines through it): its RSS grows with the churn,
  // not only with a leak. The unsanitized run holds it to 10 %.
  constexpr long growth_percent = 25;
#else
  constexpr long growth_percent = 10;
#endif
  EXPECT_LE(rss_after, rss_before * (100 + growth_percent) / 100) << rss_before << " KiB -> " << rss_after << " KiB";
  std::printf("chaos: %d SIGKILL, %d SIGSTOP in %lld s; %ld requests served, %ld failed; arbiter RSS %ld -> %ld KiB\n",
              kills, stops, static_cast<long long>(faults_for.count()), served.load(), failed.load(), rss_before,
              rss_after);
  EXPECT_GT(served.load(), 0);

  auto last = children_of(arbiter);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  for (pid_t p : last) {
    (void)reap(p, 10s);
    EXPECT_TRUE(gone(p)) << "worker " << p << " outlived the pool";
  }
}

}  // namespace
}  // namespace ufork::test
