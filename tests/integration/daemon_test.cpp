// Daemon mode and the log pipeline: `ufork hello --daemon` as a user runs it,
// and the file sink on its own.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>

#include "client.hpp"
#include "harness.hpp"

namespace ufork::test {
namespace {

namespace fs = std::filesystem;

program_result run_ufork(std::vector<std::string> args) { return run_program(UFORK_CLI_PATH, std::move(args)); }

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Waits until the file holds a match for re; returns the first group.
std::string wait_in_file(const fs::path& p, const std::string& re, std::chrono::milliseconds timeout = 20s) {
  std::regex pattern(re);
  // Woken by any write, creation or rename in the file's directory (the log
  // rotates), watched before the first look so that no write slips by.
  int watch = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  EXPECT_GE(::inotify_add_watch(watch, p.parent_path().c_str(), IN_MODIFY | IN_CREATE | IN_MOVED_TO), 0)
      << std::strerror(errno);
  for (auto deadline = std::chrono::steady_clock::now() + timeout;;) {
    std::string text = slurp(p);
    std::smatch m;
    if (std::regex_search(text, m, pattern)) {
      ::close(watch);
      return m.size() > 1 ? m[1].str() : m[0].str();
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{watch, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
    char events[4096];
    while (::read(watch, events, sizeof events) > 0) {
    }
  }
  ::close(watch);
  ADD_FAILURE() << "no /" << re << "/ in " << p << ":\n" << slurp(p);
  return {};
}

// Whatever fails in a test, the daemon (adopted by this subreaper) goes.
struct daemon_guard {
  pid_t pid;
  ~daemon_guard() {
    if (gone(pid)) return;
    ::kill(pid, SIGKILL);
    (void)reap(pid, 10s);
  }
};

class daemon_dir : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ufork-daemon-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// A pidfile that is a symlink is refused: its target is left as it was.
TEST_F(daemon_dir, refuses_a_pidfile_that_is_a_symlink) {
  auto target = dir_ / "precious", link = dir_ / "hello.pid";
  std::ofstream(target) << "keep me\n";
  std::filesystem::create_symlink(target, link);
  auto r = run_ufork({"hello", "--daemon", "--workers", "1", "--bind", "127.0.0.1:0", "--pidfile", link.string(),
                      "--log", (dir_ / "hello.log").string()});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("pidfile " + link.string() + " is a symbolic link (refused"), std::string::npos) << r.out;
  std::string kept;
  std::getline(std::ifstream(target), kept);
  EXPECT_EQ(kept, "keep me");
}

TEST_F(daemon_dir, takes_over_a_stale_pidfile_reports_ready_logs_reopens_and_stops) {
  auto log = dir_ / "hello.log", pidfile = dir_ / "hello.pid", sock = dir_ / "hello.sock";
  std::ofstream(pidfile) << "99999\n";  // stale: left by a crash, nobody holds its lock
  auto started = run_ufork({"hello", "--daemon", "--workers", "2", "--bind", "127.0.0.1:0", "--pidfile",
                            pidfile.string(), "--log", log.string(), "--control", sock.string()});
  ASSERT_EQ(started.code, 0) << started.out;
  pid_t pid = static_cast<pid_t>(std::stoi(slurp(pidfile)));
  daemon_guard guard{pid};
  EXPECT_NE(started.out.find("daemon pid " + std::to_string(pid) + " ready"), std::string::npos) << started.out;

  // The arbiter's own stdout reached the log, and its port.
  wait_in_file(log, "\\[ufork\\] ufork hello: ready, 2 workers");
  std::string port = wait_in_file(log, "listening on http://127\\.0\\.0\\.1:(\\d+)/");
  ASSERT_FALSE(port.empty());
  int code = 0;  // the reason is on stderr
  auto ctl = cli::control_client::connect(sock.string(), "test", code);
  ASSERT_TRUE(ctl) << "exit " << code;

  // A second daemon with the same pidfile is refused while this one lives.
  auto second = run_ufork({"hello", "--daemon", "--bind", "127.0.0.1:0", "--pidfile", pidfile.string(), "--log",
                           (dir_ / "second.log").string()});
  EXPECT_EQ(second.code, 1);
  EXPECT_NE(second.out.find("is held by running pid " + std::to_string(pid)), std::string::npos) << second.out;

  // A worker's stderr reaches the file: its stack trace, after a SIGABRT.
  ASSERT_TRUE(ctl->request("kill 0 ABRT", 10s));
  wait_in_file(log, "\\[worker 0 pid \\d+ err\\] ufork: SIGABRT in worker; stack:");

  // logrotate: rename, SIGUSR1, and the next lines go to a new file.
  fs::rename(log, dir_ / "hello.log.old");
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  ASSERT_TRUE(ctl->request("kill 1 KILL", 10s));
  wait_in_file(log, "kill: SIGKILL to worker 1");

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_TRUE(reap(pid, 20s)) << "the daemon did not stop";
  EXPECT_FALSE(fs::exists(pidfile)) << "the pidfile outlived the daemon";
  wait_in_file(log, "all workers stopped");
}

// A daemon started by a relative path (./ufork from its directory) works in
// /, where that path leads nowhere: an upgrade, and the one after it, still
// exec the program's file (the path the first image found is handed on).
TEST_F(daemon_dir, a_daemon_started_by_a_relative_path_upgrades_twice) {
  auto log = dir_ / "up.log", pidfile = dir_ / "up.pid", sock = dir_ / "up.sock";
  fs::path cli = fs::canonical(UFORK_CLI_PATH);
  std::string line = "cd '" + cli.parent_path().string() + "' && exec ./" + cli.filename().string() +
                     " hello --daemon --workers 1 --bind 127.0.0.1:0 --pidfile '" + pidfile.string() + "' --log '" +
                     log.string() + "' --control '" + sock.string() + "'";
  auto started = run_program("/bin/sh", {"-c", line});
  ASSERT_EQ(started.code, 0) << started.out;
  pid_t pid = static_cast<pid_t>(std::stoi(slurp(pidfile)));
  daemon_guard guard{pid};
  for (int i = 0; i < 2; ++i) {
    auto up = run_ufork({"ctl", "--socket", sock.string(), "upgrade"});
    EXPECT_EQ(up.code, 0) << up.out;
    EXPECT_NE(up.out.find("runs " + cli.string() + ";"), std::string::npos) << up.out;
    // The reload onto the new image has ended: another upgrade may start.
    wait_in_file(log, "(reload: done[\\s\\S]*){" + std::to_string(i + 1) + "}");
  }
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_TRUE(reap(pid, 20s)) << "the daemon did not stop";
}

// A daemon started with relative paths (--config app.toml, whose control
// socket is relative too) works in /: an upgrade execs the new image where
// the program started, so it reads the same file (before: it could not, and
// neither could the old image it went back to: the service died), then goes
// back to /. Its workers are adopted and replaced as ever.
TEST_F(daemon_dir, a_daemon_with_a_relative_config_file_upgrades_and_works_in_root) {
  std::ofstream(dir_ / "app.toml") << "workers = 1\nbind = \"127.0.0.1:0\"\ncontrol = \"up.sock\"\n"
                                   << "pidfile = \"up.pid\"\nlog = \"up.log\"\n";
  std::string line = "cd '" + dir_.string() + "' && exec '" + UFORK_CLI_PATH + "' hello --daemon --config app.toml";
  auto started = run_program("/bin/sh", {"-c", line});
  ASSERT_EQ(started.code, 0) << started.out;
  pid_t pid = static_cast<pid_t>(std::stoi(slurp(dir_ / "up.pid")));
  daemon_guard guard{pid};
  auto up = run_ufork({"ctl", "--socket", (dir_ / "up.sock").string(), "upgrade"});
  EXPECT_EQ(up.code, 0) << up.out;
  wait_in_file(dir_ / "up.log", "upgraded: pid " + std::to_string(pid) + " runs [\\s\\S]*reload: done");
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd"), fs::path("/"));
  auto status = run_ufork({"ctl", "--socket", (dir_ / "up.sock").string(), "status"});
  EXPECT_EQ(status.code, 0) << status.out;
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_TRUE(reap(pid, 20s)) << "the daemon did not stop";
}

// Every fd of a worker, as "N -> target".
std::vector<std::string> fds_of(pid_t pid) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    out.push_back(e.path().filename().string() + " -> " + fs::read_symlink(e.path(), ec).string());
  }
  return out;
}

// With every feature on, a worker holds the program's socket and its own
// fds, and nothing of ufork's or of the shell's.
TEST_F(daemon_dir, workers_inherit_none_of_ufork_fds_with_every_feature_on) {
  auto log = dir_ / "hello.log", pidfile = dir_ / "hello.pid", sock = dir_ / "hello.sock";
  auto shell = dir_ / "shell.txt";
  int inherited = ::open(shell.c_str(), O_WRONLY | O_CREAT, 0644);  // no O_CLOEXEC: the daemon inherits it
  ASSERT_GE(inherited, 0);
  auto started = run_ufork({"hello", "--daemon", "--workers", "2", "--bind", "127.0.0.1:0", "--pidfile",
                            pidfile.string(), "--log", log.string(), "--syslog", "--control", sock.string()});
  ::close(inherited);
  ASSERT_EQ(started.code, 0) << started.out;
  pid_t pid = static_cast<pid_t>(std::stoi(slurp(pidfile)));
  daemon_guard guard{pid};
  int code = 0;  // the reason is on stderr
  auto ctl = cli::control_client::connect(sock.string(), "test", code);
  ASSERT_TRUE(ctl) << "exit " << code;
  // A rotated log: the file is opened again, and a worker forked after that.
  fs::rename(log, dir_ / "hello.log.1");
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  ASSERT_TRUE(ctl->request("kill 0 KILL", 10s));
  wait_in_file(log, "kill: SIGKILL to worker 0");
  wait_in_file(log, "worker 0 pid \\d+ gen 1 .*restarting");
  std::vector<pid_t> workers;
  std::string last;
  // Until slot 0's next worker is ready (the log does not say): each
  // question is answered in one turn of the arbiter's loop.
  for (auto deadline = std::chrono::steady_clock::now() + 20s;
       workers.size() < 2 && std::chrono::steady_clock::now() < deadline;) {
    workers.clear();
    auto answer = ctl->request("workers --json", 10s);
    ASSERT_TRUE(answer);
    last = *answer;
    auto parsed = nlohmann::json::parse(*answer);  // a range-for over a temporary's member would dangle
    for (const auto& w : parsed["data"])
      if (w["state"] == "ready") workers.push_back(w["pid"].get<pid_t>());
  }
  ASSERT_EQ(workers.size(), 2u) << slurp(log) << last;
  for (pid_t w : workers) {
    auto fds = fds_of(w);
    std::string all;
    for (const auto& f : fds) all += f + "\n";
    for (const auto& f : fds) {
      EXPECT_EQ(f.find(dir_.string()), std::string::npos) << "worker " << w << " holds " << f << "\n" << all;
      if (f.find("/dev/null") != std::string::npos) {
        EXPECT_EQ(f.rfind("0 -> ", 0), 0u) << f << "\n" << all;
      }
    }
    // stdin, stdout, stderr; the listening socket and the notify socket;
    // the stop eventfd; the HTTP server's own (Asio's epoll, eventfd and
    // timerfd, its dup of the stop fd, the connections' epoll set, the
    // pool's eventfd for spreading connections): nothing else.
    std::size_t sockets = std::count_if(fds.begin(), fds.end(), [](auto& f) { return f.find("socket:") != std::string::npos; });
    EXPECT_EQ(sockets, 2u) << all;
    EXPECT_LE(fds.size(), 12u) << all;
  }
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_TRUE(reap(pid, 20s)) << "the daemon did not stop";
}

TEST_F(daemon_dir, the_launcher_reports_why_a_daemon_could_not_start) {
  // A port in use: a listening socket of this test's own.
  int busy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  ::getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string endpoint = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto in_use = run_ufork({"hello", "--daemon", "--bind", endpoint, "--log", (dir_ / "a.log").string()});
  EXPECT_EQ(in_use.code, 1);
  EXPECT_NE(in_use.out.find("cannot listen on " + endpoint + ": bind: Address already in use"), std::string::npos)
      << in_use.out;
  ::close(busy);

  auto bad_log = run_ufork({"hello", "--daemon", "--bind", "127.0.0.1:0", "--log", "/proc/no/such/dir/x.log"});
  EXPECT_EQ(bad_log.code, 1);
  EXPECT_NE(bad_log.out.find("log: Failed opening file /proc/no/such/dir/x.log"), std::string::npos) << bad_log.out;

  auto no_log = run_ufork({"hello", "--daemon", "--bind", "127.0.0.1:0"});
  EXPECT_EQ(no_log.code, 2);
  EXPECT_NE(no_log.out.find("--daemon needs --log"), std::string::npos) << no_log.out;
}

std::vector<fs::path> log_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

TEST_F(daemon_dir, a_rotated_file_set_keeps_exactly_its_files_and_the_newest_lines_in_order) {
  auto sink = make_file_sink({(dir_ / "pool.log").string(), 2048, 3, log_format::plain});
  const int lines = 2000;
  for (int i = 0; i < lines; ++i) {
    std::string text = "line " + std::to_string(i);
    sink->write({i % 4, 100 + i % 4, stream_kind::out, text});
    if (i % 100 == 0) sink->flush();
  }
  sink->flush();
  auto files = log_files(dir_);
  ASSERT_EQ(files.size(), 3u);
  // Oldest file first: the numbers run on without a gap up to the last one.
  std::vector<int> seen;
  for (const char* name : {"pool.2.log", "pool.1.log", "pool.log"}) {
    ASSERT_TRUE(fs::exists(dir_ / name)) << name;
    EXPECT_LE(fs::file_size(dir_ / name), 2048u + 100u);
    std::ifstream f(dir_ / name);
    for (std::string l; std::getline(f, l);) seen.push_back(std::stoi(l.substr(l.rfind(' ') + 1)));
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), lines - 1);
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_EQ(seen[i], seen[i - 1] + 1) << "a gap in the log";
  EXPECT_EQ(sink->lost(), 0u);
}

TEST_F(daemon_dir, a_full_disk_loses_lines_counted_never_thrown) {
  auto sink = make_file_sink({"/dev/full", 1 << 30, 1, log_format::plain});
  for (int i = 0; i < 100; ++i) sink->write({0, 1, stream_kind::out, "a line for a full disk"});
  EXPECT_NO_THROW(sink->flush());
  EXPECT_EQ(sink->lost(), 100u);
  sink->write({0, 1, stream_kind::out, "and one more"});  // within the second: not retried yet
  EXPECT_EQ(sink->lost(), 101u);
}

// A disk that fills up mid-line (RLIMIT_FSIZE stands in for it: the write
// that crosses the limit is cut short, as on a full disk) and then has room
// again: the cut line is gone from the file, not left half-written before
// the next one, and the first line after says how many were lost.
TEST_F(daemon_dir, a_write_cut_short_by_a_full_disk_leaves_no_torn_line_and_says_how_many_were_lost) {
  std::string path = (dir_ / "pool.log").string();
  pool_process child([path] {
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead
    rlimit small{1000, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 2;
    auto sink = make_file_sink({path, 1 << 20, 1, log_format::plain});
    auto line = [&](int i) {
      sink->write({0, 1, stream_kind::out, "line " + std::to_string(i) + " padded to some length"});
      sink->flush();
    };
    for (int i = 0; i < 100; ++i) line(i);
    say("lost " + std::to_string(sink->lost()));
    rlimit room{RLIM_INFINITY, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &room) != 0) return 2;
    sink->reopen();  // as SIGUSR1 does (or the next write a second later)
    for (int i = 100; i < 110; ++i) line(i);
    say("lost " + std::to_string(sink->lost()));
    return 0;
  });
  int lost = std::stoi(child.wait_for("^lost (\\d+)$")[1]);
  EXPECT_GT(lost, 50);
  EXPECT_EQ(std::stoi(child.wait_for("^lost (\\d+)$")[1]), lost);  // none after
  EXPECT_EQ(child.wait_exit(), 0);

  std::ifstream f(path);
  std::regex worker_line(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[worker 0 pid 1\] line (\d+) padded to some length$)");
  std::regex marker(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[ufork\] (\d+) lines lost: the log could not be written$)");
  std::vector<int> numbers;
  int markers = 0;
  for (std::string l; std::getline(f, l);) {
    std::smatch m;
    if (std::regex_match(l, m, worker_line)) {
      numbers.push_back(std::stoi(m[1]));
    } else if (std::regex_match(l, m, marker)) {
      ++markers;
      EXPECT_EQ(std::stoi(m[1]), lost);
      EXPECT_EQ(numbers.size(), static_cast<std::size_t>(100 - lost)) << "the marker comes where the loss was";
    } else {
      ADD_FAILURE() << "a torn or foreign line: '" << l << "'";
    }
  }
  EXPECT_EQ(markers, 1);
  ASSERT_EQ(numbers.size(), static_cast<std::size_t>(100 - lost + 10));
  for (int i = 0; i < 100 - lost; ++i) EXPECT_EQ(numbers[static_cast<std::size_t>(i)], i);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(numbers[static_cast<std::size_t>(100 - lost + i)], 100 + i);
}

// The pool stops while the disk is full (issue 26.8): the file still ends on
// a whole line, and what it could not take is counted on stderr. With room
// again by then, the "lines lost" line is written at the end, not a second
// later.
TEST_F(daemon_dir, a_full_disk_at_the_end_leaves_whole_lines_and_the_loss_counted) {
  for (bool room_at_the_end : {false, true}) {
    std::string path = (dir_ / (room_at_the_end ? "room.log" : "full.log")).string();
    pool_process child([path, room_at_the_end] {
      ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead
      rlimit small{1000, RLIM_INFINITY};
      if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 2;
      auto sink = make_file_sink({path, 1 << 20, 1, log_format::plain});
      for (int i = 0; i < 100; ++i) {
        sink->write({-1, 1, stream_kind::arbiter, "stopping line " + std::to_string(i) + " padded to some length"});
        sink->flush();
      }
      say("lost " + std::to_string(sink->lost()));
      rlimit room{RLIM_INFINITY, RLIM_INFINITY};
      if (room_at_the_end && ::setrlimit(RLIMIT_FSIZE, &room) != 0) return 2;
      sink.reset();  // the arbiter's end
      return 0;
    });
    int lost = std::stoi(child.wait_for("^lost (\\d+)$")[1]);
    EXPECT_GT(lost, 50);
    EXPECT_EQ(child.wait_exit(), 0);
    std::string said = "ufork: " + std::to_string(lost) + " log lines lost at the end: " + path + " could not be written";
    EXPECT_EQ(std::count(child.lines().begin(), child.lines().end(), said), room_at_the_end ? 0 : 1);

    std::ifstream f(path);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(all.back(), '\n') << "a torn last line: " << all.substr(all.rfind('\n') + 1);
    std::regex whole(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[ufork\] (stopping line \d+ padded to some length|(\d+) lines lost: the log could not be written)$)");
    std::istringstream lines(all);
    std::string last;
    for (std::string l; std::getline(lines, l); last = l) EXPECT_TRUE(std::regex_match(l, whole)) << l;
    EXPECT_EQ(last.ends_with(std::to_string(lost) + " lines lost: the log could not be written"), room_at_the_end) << last;
  }
}

TEST_F(daemon_dir, json_lines_carry_time_worker_pid_stream_and_line) {
  auto path = dir_ / "pool.json";
  auto sink = make_file_sink({path.string(), 1 << 20, 2, log_format::json});
  sink->write({3, 4312, stream_kind::err, "bad \xff byte and \"quotes\""});
  sink->write({-1, 1, stream_kind::arbiter, "from the arbiter"});
  sink->flush();
  std::ifstream f(path);
  std::string first, second;
  std::getline(f, first);
  std::getline(f, second);
  auto a = nlohmann::json::parse(first), b = nlohmann::json::parse(second);
  EXPECT_EQ(a["id"], 3);
  EXPECT_EQ(a["pid"], 4312);
  EXPECT_EQ(a["stream"], "err");
  EXPECT_NE(a["line"].get<std::string>().find("quotes"), std::string::npos);
  EXPECT_TRUE(a["time"].is_string());
  EXPECT_TRUE(b["id"].is_null());
  EXPECT_EQ(b["stream"], "arbiter");
}

}  // namespace
}  // namespace ufork::test
