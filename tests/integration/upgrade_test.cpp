// The in-place upgrade, with real executables: a program (tests/programs/
// upgrade/) is started from a path, another build of it is put at that path
// (as a package upgrade does: a rename over the old file), and the arbiter
// is asked to upgrade, under client load.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <regex>
#include <functional>
#include <set>
#include <map>
#include <mutex>
#include <thread>

#include "cli_support.hpp"

namespace ufork::test {
namespace {

namespace fs = std::filesystem;

// A directory of its own, with the program's path in it; removed at the end.
struct install_dir {
  fs::path dir = temp_path("upgrade");
  fs::path program = dir / "server";
  fs::path control = dir / "control.sock";
  install_dir() { fs::create_directories(dir); }
  ~install_dir() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  // The build at `from` becomes the program, in one rename.
  void install(const std::string& from) const {
    fs::copy_file(from, dir / "server.new", fs::copy_options::overwrite_existing);
    fs::rename(dir / "server.new", program);
  }
};

pool_process start(const install_dir& d) {
  return pool_process([&d] {
    std::string path = d.program.string(), control = d.control.string();
    char* argv[] = {path.data(), control.data(), nullptr};
    ::execv(path.c_str(), argv);
    say(std::string("exec failed: ") + std::strerror(errno));
    return 127;
  });
}

int port_of_server(pool_process& pool) {
  return std::stoi(pool.wait_for("listening on http://127\\.0\\.0\\.1:(\\d+)/")[1]);
}

// A GET on a new connection: its body, or why it failed.
struct answer {
  bool ok = false;
  std::string body_or_error;
};
answer get(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval five{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  answer r;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    r.body_or_error = std::string("connect: ") + std::strerror(errno);
  } else {
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    std::string got;
    if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) > 0) {
      char buf[512];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<std::size_t>(n));
      if (errno == ECONNRESET) got += "<reset>";
    }
    auto body = got.find("\r\n\r\n");
    r.ok = got.rfind("HTTP/1.1 200", 0) == 0 && body != std::string::npos;
    r.body_or_error = r.ok ? got.substr(body + 4) : "answer: '" + got + "'";
  }
  ::close(fd);
  return r;
}

// Requests one after another until stopped: the bodies seen, and failures.
class load {
 public:
  explicit load(int port) : thread_([this, port] {
      while (!done_) {
        answer a = get(port);
        std::lock_guard lock(mu_);
        (a.ok ? bodies_ : failures_)[a.body_or_error]++;
        seen_.notify_all();
      }
    }) {}
  ~load() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // True once `body` has been answered to these clients.
  bool wait_for(const std::string& body, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return seen_.wait_for(lock, timeout, [&] { return bodies_.count(body) > 0; });
  }
  std::map<std::string, int> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }
  std::map<std::string, int> failures() {
    std::lock_guard lock(mu_);
    return failures_;
  }

 private:
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::condition_variable seen_;
  std::map<std::string, int> bodies_, failures_;
  std::thread thread_;
};

std::set<int> worker_pids(const std::string& control) {
  std::set<int> pids;
  json answer = ctl(control, "workers");
  for (const auto& w : answer["data"]) pids.insert(w["pid"].get<int>());
  return pids;
}

// Build A installed and serving, its two workers ready.
struct serving_a {
  install_dir d;
  pool_process pool = (d.install(UFORK_UPGRADE_A), start(d));
  int port = port_of_server(pool);
  std::string control = d.control.string();
  serving_a() { pool.wait_count("event ready slot=\\d+ pid=\\d+ build=A", 2); }
};

TEST(upgrade, new_code_same_pid_the_workers_replaced_under_load_with_nothing_lost) {
  serving_a a;
  auto& [d, pool, port, control] = a;
  // A death before the upgrade: its record must come through it.
  auto before = worker_pids(control);
  ASSERT_EQ(before.size(), 2u);
  int victim = *before.begin();
  ::kill(victim, SIGKILL);
  pool.wait_for("pid " + std::to_string(victim) + " gen \\d+ crashed: killed by SIGKILL");
  pool.wait_count("event ready slot=\\d+ pid=\\d+ build=A", 3);
  auto old_workers = worker_pids(control);
  auto status_before = ctl(control, "status")["data"];
  auto spawned_before = status_before["counters"]["spawned"].get<int>();

  load clients(port);
  d.install(UFORK_UPGRADE_B);
  json answer = ctl(control, "upgrade");
  ASSERT_TRUE(answer["ok"].get<bool>()) << answer.dump();
  EXPECT_NE(answer["text"].get<std::string>().find("upgraded: pid " + std::to_string(pool.pid())), std::string::npos)
      << answer.dump();
  pool.wait_for("reload: done");
  pool.wait_count("event ready slot=\\d+ pid=\\d+ build=B", 2);
  // The same process: its uptime goes on (before: it started again at 0).
  EXPECT_GE(ctl(control, "status")["data"]["uptime"].get<double>(), status_before["uptime"].get<double>());
  EXPECT_TRUE(clients.wait_for("build B", 20s));
  clients.stop();

  EXPECT_TRUE(clients.failures().empty()) << [&] {
    std::string s;
    for (auto& [why, n] : clients.failures()) s += why + " x" + std::to_string(n) + "\n";
    return s;
  }();
  auto bodies = clients.bodies();
  EXPECT_GT(bodies["build A"], 0);
  EXPECT_GT(bodies["build B"], 0);
  // The same process, running the new file; the old workers' half lines
  // arrived whole, their ends written after the exec.
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(pool.pid()) + "/exe"), d.program);
  for (int pid : old_workers)
    pool.wait_count("\\[worker \\d+ pid " + std::to_string(pid) + "\\] half a line from " + std::to_string(pid) +
                        ", and its end$", 1);
  pool.wait_count("worker \\d+ pid \\d+ gen \\d+ replaced", 2);
  EXPECT_EQ(get(port).body_or_error, "build B");  // every worker is B's now
  auto dead = ctl(control, "dead")["data"];
  EXPECT_TRUE(std::any_of(dead.begin(), dead.end(), [&](const json& e) { return e["pid"] == victim; })) << dead.dump();
  auto status = ctl(control, "status")["data"];
  EXPECT_EQ(status["counters"]["spawned"].get<int>(), spawned_before + 2) << status.dump();
  for (int pid : worker_pids(control)) EXPECT_EQ(old_workers.count(pid), 0u);

  ::kill(pool.pid(), SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  for (int pid : old_workers) EXPECT_TRUE(reap(pid, 5s) || gone(pid));
}

// A new build that fails before it has adopted the pool: the old image runs
// again in the same process, and the same workers go on serving.
void expect_way_back(const char* build, const std::string& why, bool by_signal) {
  serving_a a;
  auto& [d, pool, port, control] = a;
  auto workers = worker_pids(control);
  load clients(port);
  d.install(build);
  if (by_signal) {
    ::kill(pool.pid(), SIGUSR2);
  } else {
    json answer = ctl(control, "upgrade");
    EXPECT_FALSE(answer["ok"].get<bool>()) << answer.dump();
    EXPECT_NE(answer.value("error", "").find(why), std::string::npos) << answer.dump();
  }
  pool.wait_for("upgrade failed: .*" + why + ".*; pid " + std::to_string(pool.pid()) + " runs the old image again");
  EXPECT_EQ(get(port).body_or_error, "build A");
  clients.stop();
  EXPECT_TRUE(clients.failures().empty());
  EXPECT_EQ(worker_pids(control), workers);
  EXPECT_EQ(ctl(control, "status")["data"]["counters"]["spawned"].get<int>(), 2);
  ::kill(pool.pid(), SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(upgrade, a_new_build_that_throws_in_main_gives_the_pool_back) {
  expect_way_back(UFORK_UPGRADE_B_THROWS, "uncaught exception: B cannot start", false);
}

TEST(upgrade, a_new_build_that_rejects_the_state_gives_the_pool_back) {
  expect_way_back(UFORK_UPGRADE_B_REJECTS,
                  "the state is rejected: its format is version 1; this build reads version 2", true);
}

TEST(upgrade, a_new_build_that_exits_before_run_gives_the_pool_back) {
  expect_way_back(UFORK_UPGRADE_B_EXITS, "the new image exited before it adopted the pool", false);
}

TEST(upgrade, a_new_build_that_fails_after_taking_the_sockets_gives_them_back) {
  expect_way_back(UFORK_UPGRADE_B_FAILS_LATE, "the new image exited before it adopted the pool", false);
}

TEST(upgrade, a_new_build_killed_by_a_fatal_signal_gives_the_pool_back) {
  expect_way_back(UFORK_UPGRADE_B_CRASHES, "the new image was killed by SIGSEGV", false);
}

// An exec that fails returns in the old image, which goes on as it was.
TEST(upgrade, an_exec_that_fails_leaves_the_pool_as_it_was) {
  serving_a a;
  auto& [d, pool, port, control] = a;
  auto workers = worker_pids(control);
  {
    std::ofstream junk(d.dir / "server.new");
    junk << "not a program\n";
  }
  fs::permissions(d.dir / "server.new", fs::perms::owner_all);
  fs::rename(d.dir / "server.new", d.program);
  json answer = ctl(control, "upgrade");
  EXPECT_FALSE(answer["ok"].get<bool>()) << answer.dump();
  EXPECT_NE(answer.value("error", "").find("Exec format error"), std::string::npos) << answer.dump();
  pool.wait_for("upgrade failed: execve .*: Exec format error; this image goes on");
  EXPECT_EQ(get(port).body_or_error, "build A");
  EXPECT_EQ(worker_pids(control), workers);
  ::kill(pool.pid(), SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A new file that would die before ufork's code could give the pool back
// is found out by its check, before the exec: the pool serves throughout,
// in the same process, and the log and the answer say why.
void expect_check_refuses(const std::function<void(const fs::path&)>& make, const std::string& why) {
  serving_a a;
  auto& [d, pool, port, control] = a;
  auto workers = worker_pids(control);
  load clients(port);
  make(d.dir / "server.new");
  fs::permissions(d.dir / "server.new", fs::perms::owner_all);
  fs::rename(d.dir / "server.new", d.program);
  json answer = ctl(control, "upgrade");
  EXPECT_FALSE(answer.value("ok", true)) << answer.dump();
  std::string said = "upgrade failed: the new image at " + d.program.string() + " failed its check before the exec: ";
  EXPECT_EQ(answer.value("error", "").rfind(said, 0), 0u) << answer.dump();
  EXPECT_NE(answer.value("error", "").find(why), std::string::npos) << answer.dump();
  pool.wait_for("upgrade failed: .* failed its check before the exec: .*" +
                std::regex_replace(why, std::regex(R"([()])"), R"(\$&)") + ".*; this image goes on");
  EXPECT_TRUE(clients.wait_for("build A", 20s));
  EXPECT_EQ(get(port).body_or_error, "build A");
  clients.stop();
  EXPECT_TRUE(clients.failures().empty());
  EXPECT_EQ(worker_pids(control), workers);
  EXPECT_EQ(ctl(control, "status")["data"]["pid"].get<int>(), pool.pid());
  EXPECT_EQ(pool.count("upgrade: exec "), 0u) << "the exec was not tried";
  ::kill(pool.pid(), SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

void script(const fs::path& at, const std::string& body) { std::ofstream(at) << "#!/bin/sh\n" << body << "\n"; }

TEST(upgrade, a_truncated_file_is_refused_by_its_check) {
  expect_check_refuses(
      [](const fs::path& at) {
        fs::copy_file(UFORK_UPGRADE_B, at);
        fs::resize_file(at, 256 << 10);  // a copy cut short in its code, as a full disk leaves it
      },
      "it ended without answering (killed by SIG");
}

TEST(upgrade, a_program_that_crashes_before_main_is_refused_by_its_check) {
  expect_check_refuses([](const fs::path& at) { fs::copy_file(UFORK_UPGRADE_CRASHES_BEFORE_MAIN, at); },
                       "it ended without answering (killed by SIGSEGV)");
}

TEST(upgrade, a_script_that_exits_is_refused_by_its_check) {
  expect_check_refuses([](const fs::path& at) { script(at, "echo not today >&2; exit 1"); },
                       "it ended without answering (exit 1)");
}

TEST(upgrade, a_script_that_hangs_is_refused_by_its_check) {
  expect_check_refuses([](const fs::path& at) { script(at, "exec sleep 600"); },
                       "it did not answer within 5 s (killed)");
}

TEST(upgrade, is_refused_under_start) {
  options o = test_options(1);
  hooks h;
  h.post_fork = beat_until_stopped;
  arbiter a(o, h);
  a.start();
  reply r = a.execute("upgrade");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.text.find("needs run()"), std::string::npos) << r.text;
  a.stop();
  EXPECT_EQ(a.wait(), 0);
}

}  // namespace
}  // namespace ufork::test
