// The control socket, `ufork ctl` and the ufork>> prompt, with real
// processes, real sockets and a real pseudo-terminal.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <fstream>
#include <regex>

#include "client.hpp"
#include "harness.hpp"

namespace ufork::test {
namespace {

using json = nlohmann::json;
using cli::control_client;

std::string temp_socket(const std::string& name) {
  return "/tmp/ufork-test-" + std::to_string(::getpid()) + "-" + name + ".sock";
}

// A worker's body: beats until stopped, and prints `lines()`'s lines each
// time it is sent SIGUSR2 (a test's way to make it speak when it is ready).
void print_on_usr2(worker& w, const std::function<void(worker&)>& lines) {
  static volatile sig_atomic_t asked = 0;
  ::signal(SIGUSR2, [](int) { asked = 1; });
  while (!w.stopping()) {
    w.heartbeat();
    if (asked) {
      asked = 0;
      lines(w);
      std::fflush(stdout);
    }
    ::usleep(20'000);  // its heartbeat's pace, well inside the timeout
  }
}

options control_options(const std::string& path, int workers = 2) {
  auto o = test_options(workers);
  o.control_path = path;
  return o;
}

// A pool with a control socket and a command of the program's own.
pool_process control_pool(const std::string& path, int max_clients = 64) {
  return pool_process([path, max_clients] {
    auto o = control_options(path);
    o.max_control_clients = max_clients;
    hooks h;
    h.post_fork = [](worker& w) {
      while (!w.stopping()) {
        w.heartbeat();
        w.count_requests();
        ::usleep(20'000);
      }
    };
    arbiter a(o, with_events(h));
    a.add_command("greet", "says hello", [](const std::vector<std::string>& args) {
      return ok("hello " + (args.empty() ? std::string("world") : args[0]));
    });
    return a.run();
  });
}

control_client connect_or_fail(const std::string& path) {
  int code = 0;  // the reason is on stderr
  auto c = control_client::connect(path, "test", code);
  if (!c) throw std::runtime_error("connect " + path + ": exit " + std::to_string(code));
  return std::move(*c);
}

json ask(control_client& c, const std::string& line) {
  auto answer = c.request(line, 20s);
  if (!answer) return json{{"ok", false}, {"error", "no answer"}};
  return json::parse(*answer);
}

int count_fds(pid_t pid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) n += !e.path().empty();
  return n;
}

TEST(control, answers_every_command_in_json) {
  auto path = temp_socket("commands");
  auto pool = control_pool(path);
  pool.wait_count("event ready", 2);
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto c = connect_or_fail(path);
  auto help = ask(c, "help");
  EXPECT_TRUE(help["ok"]);
  EXPECT_GE(help["data"].size(), 11u);  // the built-ins and greet
  EXPECT_EQ(ask(c, "status")["data"]["size"], 2);
  auto workers = ask(c, "workers --json");
  ASSERT_EQ(workers["data"].size(), 2u);
  EXPECT_EQ(workers["data"][0]["state"], "ready");
  // Memory: a forked worker shares pages with the arbiter, so its share
  // (PSS) is below what it maps (RSS), and what it alone holds (USS) below that.
  for (const auto& w : workers["data"]) {
    auto rss = w["rss"].get<std::uint64_t>(), pss = w["pss"].get<std::uint64_t>(), uss = w["uss"].get<std::uint64_t>();
    EXPECT_GT(uss, 0u) << w;
    EXPECT_LE(uss, pss) << w;
    EXPECT_LT(pss, rss) << w;
  }
  EXPECT_NE(ask(c, "workers")["text"].get<std::string>().find("\npool: PSS "), std::string::npos);
  EXPECT_GT(ask(c, "status")["data"]["arbiter_memory"]["pss"].get<std::uint64_t>(), 0u);
  auto metrics = ask(c, "metrics");
  for (const char* family : {"\nufork_worker_pss_bytes{id=\"0\"", "\nufork_worker_uss_bytes{id=\"1\"", "\nufork_pool_pss_bytes "})
    EXPECT_NE(metrics["text"].get<std::string>().find(family), std::string::npos) << family;
  EXPECT_NE(metrics["text"].get<std::string>().find("ufork_workers{state=\"ready\"} 2"), std::string::npos);
  EXPECT_NE(metrics["text"].get<std::string>().find("# TYPE ufork_requests_total counter"), std::string::npos);
  EXPECT_EQ(ask(c, "greet you")["text"], "hello you");
  EXPECT_EQ(ask(c, "complete kill")["data"], json({"0", "1"}));  // a prompt's Tab
  auto names = ask(c, "complete")["data"];
  EXPECT_NE(std::find(names.begin(), names.end(), "greet"), names.end()) << names;
  EXPECT_EQ(ask(c, "complete status")["data"], json::array());

  EXPECT_TRUE(ask(c, "size 3")["ok"]);
  pool.wait_for("event ready slot=2 gen=1");
  auto killed = ask(c, "kill 2 KILL");
  EXPECT_TRUE(killed["ok"]) << killed.dump();
  pool.wait_for("event exit worker 2 .* killed: killed by SIGKILL");
  pool.wait_for("event ready slot=2 gen=2");
  auto dead = ask(c, "dead");
  ASSERT_EQ(dead["data"].size(), 1u);
  EXPECT_EQ(dead["data"][0]["reason"], "killed");
  EXPECT_EQ(dead["data"][0]["signal"], "SIGKILL");

  EXPECT_TRUE(ask(c, "restart 0")["ok"]);
  pool.wait_for("restart: worker 0, its successor ready first");  // before: "reload: 1 workers"
  pool.wait_for("event ready slot=0 gen=2");
  pool.wait_for("event exit worker 0 pid \\d+ gen 1 replaced");
  pool.wait_for("restart: done");
  EXPECT_TRUE(ask(c, "reload")["ok"]);
  pool.wait_count("reload: done", 1);
  pool.wait_count("event exit worker \\d .* replaced", 4);  // restart's one and reload's three

  for (const char* bad : {"nonsense", "size", "size -1", "size x", "kill", "kill 9", "kill 0 NOSUCHSIG", "restart x"}) {
    auto r = ask(c, bad);
    EXPECT_FALSE(r["ok"]) << bad;
    EXPECT_TRUE(r.contains("error")) << bad;
  }
  EXPECT_TRUE(ask(c, "stop")["ok"]);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_FALSE(std::filesystem::exists(path)) << "the socket file outlived the arbiter";
}

TEST(control, bad_clients_never_hurt_the_arbiter) {
  auto path = temp_socket("bad");
  auto pool = control_pool(path, 16);
  pool.wait_count("event ready", 2);
  pid_t arbiter = pool.pid();
  auto good = connect_or_fail(path);
  EXPECT_TRUE(ask(good, "status")["ok"]);
  int fds_before = count_fds(arbiter);

  {  // binary garbage, then a line over 64 KiB: an error each, then closed
    auto c = connect_or_fail(path);
    std::string garbage("\x01\xff\xfe\x00zz\x80", 7);
    auto r = ask(c, garbage);
    EXPECT_FALSE(r["ok"]);
    auto big = ask(c, std::string(70 * 1024, 'a'));
    EXPECT_FALSE(big["ok"]);
    EXPECT_NE(big["error"].get<std::string>().find("64 KiB"), std::string::npos);
  }
  // Half a line, then silence; many clients at once past the cap; a client
  // that never reads what it asked for.
  std::vector<int> held;
  auto raw_connect = [&] {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    held.push_back(fd);
    return fd;
  };
  (void)!::write(raw_connect(), "stat", 4);
  int greedy = raw_connect();  // within the cap, so it is served, and never reads
  std::string flood;
  // help: a large answer that reads nothing from /proc (metrics reads each worker's smaps_rollup,
  // slow under ASan, whose mappings are huge: a flood of it held the loop past ask's deadline)
  for (int i = 0; i < 20000; ++i) flood += "help\n";
  (void)!::send(greedy, flood.data(), flood.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  for (int i = 0; i < 1000; ++i) raw_connect();  // 1,000 at once: the cap, then refusals

  // Meanwhile supervision goes on: a killed worker is replaced, and the
  // connected client is answered.
  auto victim = ask(good, "workers")["data"][0]["pid"].get<pid_t>();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  pool.wait_for("event ready slot=0 gen=2");
  EXPECT_TRUE(ask(good, "status")["ok"]);
  pool.wait_count("control: refused pid \\d+: 16 clients connected already", 1);
  pool.wait_count("control: dropped a client that does not read its answers", 1);
  // Refusals are logged once a second at most, the rest counted in the next line.
  pool.wait_count("more refused since the last such line", 1);  // before or after the kill's lines
  EXPECT_LT(pool.count("control: refused"), 100) << "a line per refused client";

  for (int fd : held) ::close(fd);
  // Every connection the arbiter held for them is closed again.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (count_fds(arbiter) != fds_before && std::chrono::steady_clock::now() < deadline) {
    EXPECT_TRUE(ask(good, "status")["ok"]);  // each answer is one loop turn: no sleep needed
  }
  EXPECT_EQ(count_fds(arbiter), fds_before);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// The arbiter at its fd limit (`ulimit -n 64`, then more workers than fit):
// control clients beyond it are refused or wait, and meanwhile the loop goes
// on: a killed worker is reaped and SIGTERM stops the pool.
TEST(control, an_arbiter_out_of_fds_goes_on_supervising) {
  auto path = temp_socket("emfile");
  pool_process pool([path] {
    rlimit low{64, 64};
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) return 2;
    return run_pool_or_report(control_options(path), [] {
      hooks h;
      h.post_fork = [](worker& w) {
        while (!w.stopping()) {
          w.heartbeat();
          ::usleep(20'000);
        }
      };
      return h;
    }());
  });
  pid_t victim = static_cast<pid_t>(std::stoi(pool.wait_for("event ready slot=0 gen=1 pid=(\\d+)")[1]));
  pool.wait_count("event ready", 2);
  {
    auto c = connect_or_fail(path);
    EXPECT_TRUE(ask(c, "size 30")["ok"]);
  }
  pool.wait_for("cannot start worker \\d+: .*Too many open files");
  std::vector<int> clients;
  for (int i = 0; i < 10; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    (void)!::send(fd, "status\n", 7, MSG_NOSIGNAL);
    clients.push_back(fd);
  }
  pool.wait_for("control: out of file descriptors");
  EXPECT_EQ(::kill(victim, SIGKILL), 0);  // not ASSERT: the clients below must be closed
  pool.wait_for("event exit worker 0 pid " + std::to_string(victim));
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  for (int fd : clients) ::close(fd);
  // Said once for the whole time of want, not once per time the table
  // fills: the exits during the stop free fds, the queued clients take them.
  EXPECT_EQ(pool.count("control: out of file descriptors"), 1u);
  EXPECT_LE(pool.count("control: accepting clients again"), 1u);
}

TEST(control, refuses_other_users) {
  auto path = temp_socket("uid");
  auto pool = control_pool(path);
  pool.wait_count("event ready", 2);
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  {  // the socket file as it is (0600): the client says permission denied, exit 1, not "nothing answers" (3)
    pid_t other = ::fork();
    if (other == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
      int code = 0;
      auto c = control_client::connect(path, "ufork ctl", code);
      ::_exit(c ? 20 : code);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(other, &status, 0), other);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  }
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);  // let the file through: SO_PEERCRED must refuse
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    int code = 0;  // the reason is on stderr
    auto c = control_client::connect(path, "test", code);
    if (!c) ::_exit(11);
    auto answer = c->request("status", 10s);
    ::_exit(answer && answer->find("permission denied") != std::string::npos ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  pool.wait_for("control: refused pid \\d+ uid 65534");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(control, replaces_a_stale_socket_and_refuses_a_live_one) {
  auto path = temp_socket("stale");
  {  // a socket file nobody listens on, as a crashed arbiter leaves
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  auto first = control_pool(path);
  first.wait_count("event ready", 2);
  pool_process second([path] { return run_pool_or_report(control_options(path)); });
  second.wait_for("arbiter failed: cannot listen on control socket " + path + ": another process answers there");
  EXPECT_NE(second.wait_exit(), 0);
  auto c = connect_or_fail(path);
  EXPECT_TRUE(ask(c, "status")["ok"]) << "the first arbiter lost its socket";
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait_exit(), 0);
}

// `ufork ctl`, as a user runs it: its output and exit codes.
program_result run_cli(std::vector<std::string> args) { return run_program(UFORK_CLI_PATH, std::move(args)); }

TEST(control, ufork_ctl_exit_codes) {
  auto path = temp_socket("ctl");
  auto pool = control_pool(path);
  pool.wait_count("event ready", 2);

  auto workers = run_cli({"ctl", "--socket", path, "workers"});
  EXPECT_EQ(workers.code, 0);
  EXPECT_NE(workers.out.find("heartbeat"), std::string::npos) << workers.out;
  auto status = run_cli({"ctl", "--socket", path, "--json", "status"});
  EXPECT_EQ(status.code, 0);
  EXPECT_TRUE(json::parse(status.out)["ok"]) << status.out;
  EXPECT_EQ(run_cli({"ctl", "--socket", path, "size", "banana"}).code, 1);
  EXPECT_EQ(run_cli({"ctl", "--socket", path}).code, 2);
  EXPECT_EQ(run_cli({"ctl", "--bogus-flag"}).code, 2);
  EXPECT_EQ(run_cli({"frobnicate"}).code, 2);
  EXPECT_EQ(run_cli({"ctl", "--socket", path + ".nothing", "status"}).code, 3);
  EXPECT_EQ(run_cli({"ctl", "--socket", path, "stop"}).code, 0);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A follower that reads promptly: every line of a worker printing 10,000
// lines, in order, and the events of a kill, a hang and a reload, in order.
TEST(control, a_follower_sees_every_line_and_the_pools_events_in_order) {
  auto path = temp_socket("follow");
  pool_process pool([path] {
    auto o = control_options(path);
    o.timeout = 1s;
    hooks h;
    h.post_fork = [](worker& w) {
      print_on_usr2(w, [](worker&) {
        for (int i = 0; i < 10'000; ++i) std::printf("line %d\n", i);
      });
    };
    return run_pool_or_report(o, with_events(h));
  });
  pool.wait_count("event ready", 2);
  auto follower = connect_or_fail(path);
  auto live = ask(follower, "follow --events");
  ASSERT_TRUE(live["ok"]) << live.dump();
  EXPECT_EQ(live["data"]["following"], true);
  // The next line, while the pool's own output is read too: a full pipe
  // would block the arbiter's sink, and so what it sends the follower.
  auto next = [&]() -> std::optional<std::string> {
    for (auto until = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < until;) {
      if (follower.has_line()) return follower.read_line(0ms);
      if (auto l = follower.read_line(20ms)) return l;
      if (follower.closed()) return std::nullopt;
      pool.drain_for(0ms);
    }
    throw std::runtime_error("the stream stopped");
  };

  auto ctl = connect_or_fail(path);
  ASSERT_TRUE(ask(ctl, "kill 0 USR2")["ok"]);
  int expected = 0;
  while (expected < 10'000) {
    std::smatch m;
    std::string l = next().value();
    static const std::regex numbered(R"(^\[worker 0 pid \d+\] line (\d+)$)");
    if (!std::regex_match(l, m, numbered)) continue;  // the kill's own event line
    ASSERT_EQ(std::stoi(m[1]), expected) << l;
    ++expected;
  }

  // A kill: the exit, then the successor's fork and readiness.
  ASSERT_TRUE(ask(ctl, "kill 1 KILL")["ok"]);
  std::vector<std::string> want = {R"(worker 1 pid \d+ gen 1 killed: killed by SIGKILL)",
                                   R"(worker 1 pid \d+ gen 2 spawned)", R"(worker 1 pid \d+ gen 2 ready)"};
  // A hang (SIGSTOP): the clock that fired, then its replacement.
  auto follow_to = [&](const std::vector<std::string>& patterns) {
    for (const auto& p : patterns) {
      std::regex re(p);
      std::string l;
      do l = next().value();
      while (!std::regex_search(l, re));
    }
  };
  follow_to(want);
  auto workers = ask(ctl, "workers");
  ::kill(workers["data"][0]["pid"].get<pid_t>(), SIGSTOP);
  follow_to({R"(worker 0 pid \d+ hung: no heartbeat)", R"(worker 0 pid \d+ gen 2 spawned)",
             R"(worker 0 pid \d+ gen 2 ready)"});
  ASSERT_TRUE(ask(ctl, "reload")["ok"]);
  // Done once the last predecessor has exited (before: said before its "replaced").
  follow_to({R"(reload: 2 workers, one at a time)", R"(worker 0 pid \d+ gen 3 ready)",
             R"(worker 1 pid \d+ gen 3 ready)", R"(worker 1 pid \d+ gen \d+ replaced)", R"(reload: done)"});
  ASSERT_TRUE(ask(ctl, "stop")["ok"]);
  follow_to({R"(all workers stopped)"});
  EXPECT_FALSE(next()) << "the stream ends with the arbiter";
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A follower that never reads is dropped once 1 MiB of lines wait for it;
// the pool and the other clients go on.
TEST(control, a_follower_that_falls_behind_is_dropped_and_the_pool_goes_on) {
  auto path = temp_socket("slow-follow");
  pool_process pool([path] {
    auto o = control_options(path, 1);
    // The flood reaches the follower only: the test reads the arbiter's lines.
    o.sink = make_callback_sink([say = o.sink](const log_line& l) {
      if (l.stream == stream_kind::arbiter) say->write(l), say->flush();
    });
    hooks h;
    h.post_fork = [](worker& w) {
      print_on_usr2(w, [line = std::string(200, 'x')](worker&) {
        for (int i = 0; i < 10'000; ++i) std::printf("%s\n", line.c_str());  // 2 MB
      });
    };
    return run_pool_or_report(o, with_events(h));
  });
  pool.wait_count("event ready", 1);
  auto slow = connect_or_fail(path);
  ASSERT_TRUE(ask(slow, "follow")["ok"]);
  auto ctl = connect_or_fail(path);
  ASSERT_TRUE(ask(ctl, "kill 0 USR2")["ok"]);
  // Not reading: the arbiter drops it and says so; the others are answered.
  pool.wait_for("control: dropped 1 follower\\(s\\) more than 1 MiB of lines behind");
  EXPECT_TRUE(ask(ctl, "status")["ok"]);
  // What it finally reads ends with the reason, then the end of the stream.
  std::optional<std::string> l, last;
  while ((l = slow.read_line(30s))) last = l;
  ASSERT_TRUE(last);
  EXPECT_NE(last->find("dropped, more than 1 MiB of lines behind"), std::string::npos) << *last;
  ASSERT_TRUE(ask(ctl, "stop")["ok"]);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(control, ufork_ctl_follow_streams_json_lines_of_one_worker) {
  auto path = temp_socket("ctl-follow");
  pool_process pool([path] {
    hooks h;
    h.post_fork = [](worker& w) {
      print_on_usr2(w, [](worker& me) { std::printf("hello from worker %d\n", me.id()); });
    };
    return run_pool_or_report(control_options(path), with_events(h));
  });
  pool.wait_count("event ready", 2);
  // A follower in the background, ended by the pool's stop.
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  pid_t follower = ::fork();
  if (follower == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::execl(UFORK_CLI_PATH, "ufork", "ctl", "--socket", path.c_str(), "--json", "--worker", "1", "follow", nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* f = ::fdopen(out[0], "r");
  char buf[4096];
  ASSERT_TRUE(std::fgets(buf, sizeof buf, f));
  EXPECT_TRUE(json::parse(buf)["ok"]) << buf;  // live
  auto ctl = connect_or_fail(path);
  ASSERT_TRUE(ask(ctl, "kill 0 USR2")["ok"]);
  ASSERT_TRUE(ask(ctl, "kill 1 USR2")["ok"]);
  ASSERT_TRUE(std::fgets(buf, sizeof buf, f));  // worker 1's line, as JSON; worker 0's is not followed
  auto j = json::parse(buf);
  EXPECT_EQ(j["id"], 1) << buf;
  EXPECT_EQ(j["line"], "hello from worker 1") << buf;
  pool.wait_for("hello from worker 0");
  ASSERT_TRUE(ask(ctl, "stop")["ok"]);
  while (std::fgets(buf, sizeof buf, f)) ADD_FAILURE() << "not worker 1's: " << buf;
  std::fclose(f);
  int status = 0;
  ASSERT_EQ(::waitpid(follower, &status, 0), follower);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;  // the arbiter closed the stream
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(run_cli({"ctl", "--socket", path, "follow", "extra"}).code, 2);
  EXPECT_EQ(run_cli({"ctl", "--socket", path, "--events", "status"}).code, 2);
}

// A TCP connection to 127.0.0.1:port, or -1.
int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  ::close(fd);
  return -1;
}

// A pool with the status page on `address`.
pool_process status_pool(int workers, const std::string& address, std::chrono::milliseconds timeout = 2s) {
  return pool_process([workers, address, timeout] {
    auto o = test_options(workers);
    o.metrics_address = address;
    o.timeout = timeout;
    hooks h;
    h.post_fork = beat_until_stopped;
    return run_pool_or_report(o, with_events(h));
  });
}

// One HTTP/1.1 request to 127.0.0.1:port; the whole answer (the server closes).
std::string http_get(int port, const std::string& request) {
  int fd = connect_loopback(port);
  if (fd < 0) return "connect failed";
  (void)!::write(fd, request.data(), request.size());
  std::string out;
  char buf[65536];
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, 20'000) > 0) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}
std::string body_of(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }

// The status page's listener in the arbiter's loop: /metrics that promtool
// accepts, /status, /workers and /dead as JSON, the page itself, read-only,
// bad requests answered, and answers while every worker is stopped (hung).
TEST(status_page, serves_metrics_status_and_the_page_from_the_arbiters_loop) {
  auto pool = status_pool(2, "127.0.0.1:0", 60s);  // the SIGSTOPped workers below stay, hung but not yet killed
  int port = std::stoi(pool.wait_for(R"(status page on http://127\.0\.0\.1:(\d+)/)")[1]);
  pool.wait_count("event ready", 2);

  // One worker killed and replaced first: the exit's families have samples.
  auto before = json::parse(body_of(http_get(port, "GET /workers HTTP/1.1\r\n\r\n")));
  ::kill(before["data"][0]["pid"].get<pid_t>(), SIGKILL);
  pool.wait_count("event ready", 3);
  auto metrics = http_get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(metrics.starts_with("HTTP/1.1 200 OK\r\n")) << metrics;
  for (const char* sample : {"\nufork_exit_signals_total{signal=\"SIGKILL\"} 1\n", "\nufork_exits_total{reason=\"crashed\"} 1\n",
                             "\nufork_restarts_total 1\n", "\nufork_respawn_latency_seconds_count 1\n",
                             "\nufork_exit_uptime_seconds_bucket{le=\"+Inf\"} 1\n", "ufork_worker_cpu_seconds_total{id=\"1\"",
                             "ufork_worker_state{id=\"0\""})
    EXPECT_NE(metrics.find(sample), std::string::npos) << sample << " not in\n" << metrics;
  EXPECT_NE(metrics.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  {
    auto file = "/tmp/ufork-test-" + std::to_string(::getpid()) + "-metrics.txt";
    std::ofstream(file) << body_of(metrics);
    auto promtool = run_program("/bin/sh", {"-c", "/usr/bin/promtool check metrics < " + file + " 2>&1"});
    EXPECT_EQ(promtool.code, 0) << "promtool: " << promtool.out << "\n" << body_of(metrics);
    std::filesystem::remove(file);
  }
  auto status = json::parse(body_of(http_get(port, "GET /status HTTP/1.1\r\n\r\n")));
  EXPECT_TRUE(status["ok"]);
  EXPECT_EQ(status["data"]["size"], 2);
  auto workers = json::parse(body_of(http_get(port, "GET /workers HTTP/1.0\r\n\r\n")));
  ASSERT_EQ(workers["data"].size(), 2u) << workers.dump();
  EXPECT_TRUE(json::parse(body_of(http_get(port, "GET /dead HTTP/1.1\r\n\r\n")))["ok"]);
  auto page = http_get(port, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_NE(page.find("text/html"), std::string::npos);
  EXPECT_NE(page.find("<table>"), std::string::npos);
  EXPECT_TRUE(http_get(port, "HEAD /status HTTP/1.1\r\n\r\n").ends_with("\r\n\r\n"));

  // Read-only, and bad input gets an answer, never a hang.
  EXPECT_TRUE(http_get(port, "POST /status HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
  EXPECT_TRUE(http_get(port, "GET /size HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
  EXPECT_TRUE(http_get(port, "\x01\x02 garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(http_get(port, "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 431"));

  // Every worker stopped: the arbiter still answers.
  for (const auto& w : workers["data"]) ::kill(w["pid"].get<pid_t>(), SIGSTOP);
  EXPECT_TRUE(http_get(port, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
  for (const auto& w : workers["data"]) ::kill(w["pid"].get<pid_t>(), SIGCONT);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// 16 connections at once, the 17th answered 503; a connection that sends
// nothing is closed by the arbiter after its 10 s (a deadline of 30 s here).
TEST(status_page, limits_clients_and_their_time) {
  auto pool = status_pool(1, "127.0.0.1:0");
  int port = std::stoi(pool.wait_for(R"(status page on http://127\.0\.0\.1:(\d+)/)")[1]);
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) {
    idle.push_back(connect_loopback(port));
    ASSERT_GE(idle.back(), 0);
  }
  // The 17th: its answer, once the arbiter has taken the 16 (each accept is a turn of its loop).
  std::string busy;
  for (auto until = std::chrono::steady_clock::now() + 30s;
       !busy.starts_with("HTTP/1.1 503") && std::chrono::steady_clock::now() < until;)
    busy = http_get(port, "GET /status HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(busy.starts_with("HTTP/1.1 503")) << busy;
  pool.wait_for(R"(status page: closed \d+ connection\(s\) past 10 s)", 30s);  // in batches: accepted one per turn
  for (int fd : idle) {
    char c;
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 30'000), 1);
    EXPECT_EQ(::read(fd, &c, 1), 0) << "closed by the arbiter";
    ::close(fd);
  }
  EXPECT_TRUE(http_get(port, "GET /status HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(status_page, warns_when_not_on_a_loopback_address) {
  auto pool = status_pool(1, "0.0.0.0:0");
  pool.wait_for(R"(status page on http://0\.0\.0\.0:\d+/ .*WARNING: not a loopback address)");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// `ufork top` under a pseudo-terminal of 80x24: the workers on screen, a
// killed worker's successor on a later refresh, a restart asked with a
// key and confirmed, then q, and the terminal as it was.
TEST(top, shows_the_pool_live_and_q_restores_the_terminal) {
  auto path = temp_socket("top");
  auto pool = control_pool(path);
  pool.wait_count("event ready", 2);
  int master = -1;
  winsize size{24, 80, 0, 0};
  pid_t top = ::forkpty(&master, nullptr, nullptr, &size);
  ASSERT_GE(top, 0);
  if (top == 0) {
    ::execl(UFORK_CLI_PATH, "ufork", "top", "--socket", path.c_str(), "--interval", "0.2", nullptr);
    ::_exit(127);
  }
  std::string screen;
  std::size_t from = 0;
  auto see = [&](const std::string& pattern) {  // past what was seen last
    std::regex re(pattern);
    for (auto until = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < until;) {
      std::smatch m;
      if (std::regex_search(screen.cbegin() + static_cast<long>(from), screen.cend(), m, re)) {
        from += static_cast<std::size_t>(m.position(0) + m.length(0));
        return m.str(1);
      }
      pollfd p{master, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char buf[4096];
        ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) break;
        screen.append(buf, static_cast<std::size_t>(n));
      }
      pool.drain_for(0ms);
    }
    ADD_FAILURE() << "not on screen: " << pattern << "\nscreen:\n" << screen;
    return std::string();
  };
  see(R"(ufork top: arbiter pid (\d+))");
  see(R"(; pool PSS [0-9.]+[KMG], USS [0-9.]+[KMG])");
  see(R"(PSS +USS +REQ/S)");  // 80 columns: memory before the rate
  std::string first = see(R"(\n(?:\x1b\[1m)?[ >]\s+0\s+(\d+)\s+1 ready)");
  see(R"(\n(?:\x1b\[1m)?[ >]\s+1\s+\d+\s+1 ready)");
  ASSERT_FALSE(first.empty());
  ::kill(std::stoi(first), SIGKILL);  // a worker of the pool this test started
  std::string second = see(R"(\n(?:\x1b\[1m)?[ >]\s+0\s+(\d+)\s+2 ready)");
  EXPECT_NE(second, first);
  see(R"(worker 0 pid )" + first + R"( gen 1 crashed: killed by SIGKILL)");  // in the last exits
  (void)!::write(master, "r", 1);  // restart the selected worker (0): asks first
  see(R"(restart worker 0 pid \d+\? y/n)");
  (void)!::write(master, "y", 1);
  see(R"(done: ([^\x1b]*))");
  see(R"(\n(?:\x1b\[1m)?[ >]\s+0\s+(\d+)\s+3 ready)");
  (void)!::write(master, "q", 1);
  int status = 0;
  ASSERT_EQ(::waitpid(top, &status, 0), top);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  termios after{};
  ASSERT_EQ(::tcgetattr(master, &after), 0);
  EXPECT_TRUE((after.c_lflag & ICANON) && (after.c_lflag & ECHO)) << "the terminal is left raw";
  char buf[4096];
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) screen.append(buf, static_cast<std::size_t>(n));
  EXPECT_NE(screen.rfind("\x1b[?1049l"), std::string::npos) << "the alternate screen is left";
  ::close(master);
  auto ctl = connect_or_fail(path);
  ASSERT_TRUE(ask(ctl, "stop")["ok"]);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// The prompt under a pseudo-terminal: the arbiter's stdin and stdout are the
// pty's slave, as when a person runs the program in a terminal.
class pty_pool {
 public:
  explicit pty_pool(std::function<int()> body) {
    pid_ = ::forkpty(&master_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no pool behind
      termios before{};
      ::tcgetattr(0, &before);
      int code = body();
      termios after{};
      ::tcgetattr(0, &after);
      bool same = std::memcmp(&before, &after, sizeof before) == 0;
      std::string line = std::string("terminal ") + (same ? "restored" : "changed") + "\r\n";
      (void)!::write(1, line.data(), line.size());
      ::_exit(code);
    }
  }
  ~pty_pool() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  void type(const std::string& keys) { (void)!::write(master_, keys.data(), keys.size()); }
  pid_t pid() const { return pid_; }
  const std::string& screen() const { return screen_; }
  // The terminal's settings, as the program on it sees them (on Linux the
  // master side of a pty reports its slave's).
  termios settings() const {
    termios t{};
    EXPECT_EQ(::tcgetattr(master_, &t), 0) << std::strerror(errno);
    return t;
  }
  // Reads until every one of texts has appeared, in any order, anywhere;
  // later waits start after all that was read.
  bool wait_all(std::initializer_list<std::string> texts, std::chrono::milliseconds timeout = 20s) {
    std::size_t start = mark_;
    for (const auto& t : texts) {
      mark_ = start;
      if (!wait_for(t, timeout)) return false;
    }
    mark_ = screen_.size();
    return true;
  }
  // Reads until `text` has appeared after the last match.
  bool wait_for(const std::string& text, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto pos = screen_.find(text, mark_); pos != std::string::npos) {
        mark_ = pos + text.size();
        return true;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd pfd{master_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) break;
      screen_.append(buf, static_cast<std::size_t>(n));
    }
    ADD_FAILURE() << "no '" << text << "' on the terminal; it shows:\n" << screen_.substr(mark_);
    return false;
  }
  void hang_up() {
    ::close(master_);
    master_ = -1;
  }
  // Its exit code (128 + N for signal N), or -1 (and a failure) if it does
  // not exit in time.
  int wait_exit(std::chrono::milliseconds timeout = 20s) {
    // Meanwhile the terminal's output is read: a program leaving raw mode
    // waits (TCSADRAIN) until what it wrote has been read on this side.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    bool exited = false;
    for (auto deadline = std::chrono::steady_clock::now() + timeout; !exited;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd pfds[2] = {{pidfd, POLLIN, 0}, {master_, POLLIN, 0}};
      if (::poll(pfds, master_ >= 0 ? 2 : 1, static_cast<int>(left.count())) <= 0) break;
      exited = pfds[0].revents != 0;
      char buf[4096];
      if (master_ >= 0 && (pfds[1].revents & POLLIN)) {
        ssize_t n = ::read(master_, buf, sizeof buf);
        if (n > 0) screen_.append(buf, static_cast<std::size_t>(n));
      }
    }
    ::close(pidfd);
    if (!exited) {
      ADD_FAILURE() << "pid " << pid_ << " did not exit; the terminal shows:\n" << screen_.substr(mark_);
      return -1;
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  int master_ = -1;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string screen_;
  std::size_t mark_ = 0;
};

// Options for a pool on the pty: its log on the terminal, beside the prompt.
options on_terminal(options o, std::string history = "/dev/null") {
  o.sink = make_fd_sink(STDOUT_FILENO);
  o.history_file = std::move(history);
  return o;
}

TEST(console, a_prompt_on_the_terminal_runs_commands_and_ctrl_c_stops_cleanly) {
  auto history = "/tmp/ufork-test-history-" + std::to_string(::getpid());
  pty_pool pool([history] {
    auto o = on_terminal(test_options(2), history);
    hooks h;
    // say(), not printf: stdout's FILE came from the test process, fully
    // buffered, and nothing would flush it.
    h.on_worker_ready = [](const worker_info& w) { say("ready " + std::to_string(w.id)); };
    arbiter a(o, h);
    a.add_command("greet", "says hello", [](const std::vector<std::string>&) { return ok("hello there"); });
    return a.run();
  });
  // Both workers ready first: no hook output interleaves with what follows.
  ASSERT_TRUE(pool.wait_all({"ready 0", "ready 1"}));
  pool.type("workers\r");
  ASSERT_TRUE(pool.wait_for("heartbeat"));
  ASSERT_TRUE(pool.wait_for(" ready "));  // a row of the table
  ASSERT_TRUE(pool.wait_for("ufork>> "));
  pool.type("gre\t\r");  // tab completes the registered command
  ASSERT_TRUE(pool.wait_for("hello there"));
  ASSERT_TRUE(pool.wait_for("ufork>> "));
  pool.type("size nope\r");
  ASSERT_TRUE(pool.wait_for("error: usage: size N"));
  pool.type("\x03");  // Ctrl-C
  ASSERT_TRUE(pool.wait_for("all workers stopped"));
  ASSERT_TRUE(pool.wait_for("terminal restored"));
  EXPECT_EQ(pool.wait_exit(), 0);
  std::ifstream saved(history);
  std::string first;
  std::getline(saved, first);
  EXPECT_FALSE(first.empty()) << "no history was written";
  std::filesystem::remove(history);
}

TEST(console, an_arbiter_killed_by_a_fatal_signal_restores_the_terminal) {
  pty_pool pool([] {
    auto o = on_terminal(test_options(1));
    hooks h;
    h.on_worker_ready = [](const worker_info& w) { say("ready pid " + std::to_string(w.pid) + "."); };
    return arbiter(o, h).run();
  });
  ASSERT_TRUE(pool.wait_all({"ready pid ", "ufork>> "}));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(pool.screen(), m, std::regex("ready pid (\\d+)\\.")));
  pid_t worker = static_cast<pid_t>(std::stoi(m[1]));
  termios prompt = pool.settings();
  ASSERT_FALSE(prompt.c_lflag & ICANON) << "the prompt left the terminal as it was: nothing to restore";
  ASSERT_EQ(::kill(pool.pid(), SIGSEGV), 0);
  EXPECT_EQ(pool.wait_exit(), 128 + SIGSEGV);
  termios after = pool.settings();
  EXPECT_TRUE(after.c_lflag & ICANON) << "the terminal was left raw";
  EXPECT_TRUE(after.c_lflag & ECHO) << "the terminal was left without echo";
  EXPECT_TRUE(reap(worker, 20s)) << "the worker outlived its arbiter";
}

TEST(console, ctrl_d_closes_the_prompt_and_the_pool_keeps_running) {
  pty_pool pool([] {
    return arbiter(on_terminal(test_options(1)), {}).run();
  });
  ASSERT_TRUE(pool.wait_for("ufork>> "));
  pool.type("\x04");  // Ctrl-D
  ASSERT_TRUE(pool.wait_for("console closed; the pool keeps running"));
  pool.type("\x03");  // the terminal's Ctrl-C still reaches the arbiter
  ASSERT_TRUE(pool.wait_for("all workers stopped"));
  ASSERT_TRUE(pool.wait_for("terminal restored"));
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(console, a_terminal_that_hangs_up_closes_the_prompt_without_spinning) {
  auto path = temp_socket("hangup");
  pty_pool pool([path] {
    return arbiter(on_terminal(control_options(path, 1)), {}).run();
  });
  ASSERT_TRUE(pool.wait_for("ufork>> "));  // the control socket opens before the prompt
  pool.hang_up();
  auto c = connect_or_fail(path);
  auto before = ask(c, "status")["data"]["counters"]["wakeups"].get<std::uint64_t>();
  ::poll(nullptr, 0, 500);  // not a synchronisation: an interval to count wake-ups over
  auto after = ask(c, "status")["data"]["counters"]["wakeups"].get<std::uint64_t>();
  EXPECT_LT(after - before, 50u) << "the loop spins on a hung-up terminal";
  EXPECT_TRUE(ask(c, "stop")["ok"]);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(console, ufork_console_gives_the_prompt_of_a_running_arbiter) {
  auto path = temp_socket("remote");
  auto pool = control_pool(path);
  pool.wait_count("event ready", 2);
  pty_pool remote([path] {
    std::string socket = path;
    char* argv[] = {const_cast<char*>(UFORK_CLI_PATH), const_cast<char*>("console"), const_cast<char*>("--socket"),
                    socket.data(), nullptr};
    ::execv(UFORK_CLI_PATH, argv);
    return 127;
  });
  // Each time, the next prompt before typing: libedit may flush input typed
  // while it switches the terminal back to raw mode.
  ASSERT_TRUE(remote.wait_for("ufork>> "));
  remote.type("status\r");
  ASSERT_TRUE(remote.wait_for("size 2: 2 ready"));
  ASSERT_TRUE(remote.wait_for("ufork>> "));
  remote.type("greet console\r");
  ASSERT_TRUE(remote.wait_for("hello console"));
  // Tab completes from the arbiter's command table, the program's command
  // too (before: file names in the console's working directory).
  ASSERT_TRUE(remote.wait_for("ufork>> "));
  remote.type("gre\tTab\r");
  ASSERT_TRUE(remote.wait_for("hello Tab"));
  ASSERT_TRUE(remote.wait_for("ufork>> "));
  remote.type("stat\t\r");
  ASSERT_TRUE(remote.wait_for("size 2: 2 ready"));
  // The terminal goes away (its window closed): the console ends, the pool
  // keeps running. (Not Ctrl-D: one typed before the next prompt is drawn,
  // while libedit has the terminal in cooked mode, is (it seems) taken by the kernel's
  // line discipline as an empty line's end and lost; a script saw it 1 time
  // in 30. Known, not fixed.)
  remote.hang_up();
  int code = remote.wait_exit();
  EXPECT_TRUE(code == 0 || code == 128 + SIGHUP) << code;
  auto c = connect_or_fail(path);
  EXPECT_TRUE(ask(c, "status")["ok"]);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

}  // namespace
}  // namespace ufork::test
