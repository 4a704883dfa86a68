// `ufork run -- CMD` as a user runs it: real programs exec'd as workers, in
// C++ on libsystemd, in Python and in shell with systemd's own systemd-notify.
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "cli_support.hpp"
#include "harness.hpp"

namespace ufork::test {
namespace {

TEST(run, a_libsystemd_worker_gets_its_socket_and_environment_and_serves_once_ready) {
  auto control = temp_path("serve.sock");
  auto pool = ufork({"run", "--workers", "2", "--bind", "127.0.0.1:0,name=web", "--notify", "--watchdog", "10",
                     "--control", control, "--env", "EXTRA=yes", "--", notify_worker, "serve"},
                    // ufork's own manager's variables: none may reach a worker.
                    {"NOTIFY_SOCKET=/run/not-for-workers", "LISTEN_FDS=7", "LISTEN_PID=1", "WATCHDOG_USEC=5",
                     "WATCHDOG_PID=1"});
  int port = port_of(pool);
  pool.wait_for("ufork run: ready, 2 workers");
  // Output and READY=1 come on different fds: wait for the lines themselves.
  pool.wait_count("\\] pid \\d+ LISTEN_FDS", 2);
  pool.wait_count("\\] sd_watchdog_enabled 1$", 2);
  std::regex report("\\[worker (\\d) pid (\\d+)\\] pid \\d+ (LISTEN_FDS.*)");
  int reports = 0;
  for (const auto& line : pool.lines()) {
    std::smatch m;
    if (!std::regex_search(line, m, report)) continue;
    ++reports;
    std::string id = m[1], pid = m[2], vars = m[3];
    EXPECT_NE(vars.find("LISTEN_FDS=1 LISTEN_PID=" + pid + " LISTEN_FDNAMES=web NOTIFY_SOCKET=@ufork-"),
              std::string::npos)
        << vars;
    EXPECT_NE(vars.find("WATCHDOG_USEC=10000000 WATCHDOG_PID=" + pid), std::string::npos) << vars;
    EXPECT_NE(vars.find("UFORK_WORKER_ID=" + id + " UFORK_WORKER_GENERATION=1 EXTRA=yes"), std::string::npos) << vars;
  }
  EXPECT_EQ(reports, 2);
  // Only 0-2, the socket at 3, and the directory the worker listed them with.
  EXPECT_EQ(pool.count("\\] fds: 0 1 2 3 4$"), 2u);
  EXPECT_EQ(pool.count("\\] sd_listen_fds 1$"), 2u);

  std::string answer = ask(port);
  EXPECT_EQ(answer.rfind("worker ", 0), 0u) << answer;
  auto workers = ctl(control, "workers");
  ASSERT_TRUE(workers["ok"]) << workers;
  for (const auto& w : workers["data"]) {
    EXPECT_EQ(w["state"], "ready");
    EXPECT_EQ(w["status"], "serving as " + std::to_string(w["pid"].get<int>()));
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// Every word after `--` is the command's, whichever flag comes last before
// it (one that takes several values, too), the command's own flags included.
TEST(run, every_word_after_the_double_dash_is_the_commands) {
  for (std::vector<std::string> last : {std::vector<std::string>{"--bind", "127.0.0.1:0"}, {"--env", "A=1"},
                                        {"--rlimit", "nofile=1024"}, {"--graceful-timeout", "5"}}) {
    std::vector<std::string> args = {"run", "--workers", "1"};
    args.insert(args.end(), last.begin(), last.end());
    for (std::string word : {"--", "sh", "-c", "echo \"args:$*\"; exec sleep 100", "sh", "-w", "3", "-u",
                             "--notify", "--", "x"})
      args.push_back(word);
    auto pool = ufork(args);
    pool.wait_for("\\] args:-w 3 -u --notify -- x$");
    pool.signal(SIGTERM);
    EXPECT_EQ(pool.wait_exit(), 0) << last[0];
  }
}

// A program written for a Type=notify service without WatchdogSec= says
// READY=1 and nothing more: it is not hung for that, and it gets no
// WATCHDOG_USEC (systemd's way; --watchdog asks for one).
TEST(run, notify_without_watchdog_watches_readiness_only) {
  auto pool = ufork({"run", "--workers", "1", "--notify", "--", "sh", "-c",
                     "systemd-notify --ready; echo \"watchdog ${WATCHDOG_USEC-none}\"; "
                     "for i in 1 2 3; do sleep 1; echo tick $i; done; exec sleep 100"});
  pool.wait_for("arbiter pid \\d+: 1 worker, ready at READY=1, no watchdog");
  pool.wait_for("ufork run: ready, 1 worker");
  pool.wait_for("\\] watchdog none$");
  pool.wait_for("\\] tick 3$", 20s);
  EXPECT_EQ(pool.count("hung"), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("gen 1 stopped: killed by SIGTERM"), 1u);  // the one worker, stopped, never replaced
}

// A worker's STATUS= that is not UTF-8, or holds a terminal's escape
// sequences: /metrics stays valid (promtool), `ctl workers` shows the bytes
// escaped, the JSON answer has them as JSON does.
TEST(run, a_status_of_any_bytes_keeps_metrics_valid_and_the_terminal_clean) {
  auto control = temp_path("status-bytes.sock");
  auto pool = ufork({"run", "--workers", "1", "--notify", "--metrics", "127.0.0.1:0", "--control", control, "--",
                     "/usr/bin/python3", "-c",
                     "import os, socket, time\n"
                     "a = os.environ['NOTIFY_SOCKET']; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                     "s.connect('\\0' + a[1:])\n"
                     "s.send(b'READY=1\\nSTATUS=caf\\xe9 \\xff\\xfe \\x1b]0;title\\x07\\x1b[2J ok \\xc3\\xa9')\n"
                     "time.sleep(100)\n"});
  int port = std::stoi(pool.wait_for(R"(status page on http://127\.0\.0\.1:(\d+)/)")[1]);
  pool.wait_for("ufork run: ready, 1 worker");
  auto text = run_program(UFORK_CLI_PATH, {"ctl", "--socket", control, "workers"});
  EXPECT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("caf\\xe9 \\xff\\xfe \\x1b]0;title\\x07\\x1b[2J ok \xc3\xa9"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find('\x1b'), std::string::npos) << text.out;
  auto metrics = run_program("/bin/sh", {"-c", "/usr/bin/python3 -c \"import sys, urllib.request; "
                                               "sys.stdout.buffer.write(urllib.request.urlopen('http://127.0.0.1:" +
                                                   std::to_string(port) + "/metrics').read())\" > " +
                                                   temp_path("status-bytes.prom") + " && /usr/bin/promtool check metrics < " +
                                                   temp_path("status-bytes.prom") + " 2>&1 && grep status_info " +
                                                   temp_path("status-bytes.prom")});
  EXPECT_EQ(metrics.code, 0) << metrics.out;
  EXPECT_NE(metrics.out.find("status=\"caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd \x1b]0;title\x07\x1b[2J ok \xc3\xa9\""),
            std::string::npos) << metrics.out;
  std::filesystem::remove(temp_path("status-bytes.prom"));
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// ufork run starts every worker at once by default (each takes --ready-after
// to be ready without --notify: one at a time, 8 workers took 8 s);
// --max-starting limits it.
TEST(run, every_worker_starts_at_once_unless_max_starting_says_otherwise) {
  auto control = temp_path("starting.sock");
  auto all = ufork({"run", "--workers", "4", "--ready-after", "30", "--control", control, "--", "sh", "-c",
                    "echo started; exec sleep 100"});
  all.wait_count("\\] started$", 4);  // before, one: the next only once it was ready, 30 s later
  all.signal(SIGTERM);
  EXPECT_EQ(all.wait_exit(), 0);
  auto two = ufork({"run", "--workers", "4", "--ready-after", "30", "--max-starting", "2", "--control", control, "--",
                    "sh", "-c", "echo started; exec sleep 100"});
  two.wait_count("\\] started$", 2);
  auto workers = ctl(control, "workers")["data"];
  EXPECT_EQ(workers.size(), 2u) << workers.dump();
  two.signal(SIGTERM);
  EXPECT_EQ(two.wait_exit(), 0);
}

// --bind :PORT binds every interface: the log says so.
TEST(run, a_bind_to_every_interface_is_named_so) {
  auto run = ufork({"run", "--workers", "1", "--bind", ":0", "--", notify_worker, "serve"});
  run.wait_for("listening on 0\\.0\\.0\\.0:\\d+ \\(every interface: reachable from other hosts\\)");
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(), 0);
  auto hello = ufork({"hello", "--workers", "1", "--bind", ":0"});
  hello.wait_for("listening on http://0\\.0\\.0\\.0:\\d+/ \\(every interface: reachable from other hosts\\)");
  hello.signal(SIGTERM);
  EXPECT_EQ(hello.wait_exit(), 0);
}

// An in-place upgrade of ufork itself: the --bind socket (carry_socket) and
// the notify socket the workers were given go over the exec; the workers,
// exec'd programs, go on answering and are then replaced.
TEST(run, an_upgrade_keeps_the_bind_socket_and_the_notify_socket) {
  auto control = temp_path("upgrade-run.sock");
  auto pool = ufork({"run", "--workers", "1", "--notify", "--bind", "127.0.0.1:0", "--control", control, "--",
                     notify_worker, "serve"});
  int port = port_of(pool);
  pool.wait_for("ufork run: ready, 1 worker");
  std::string before = ask(port);
  EXPECT_EQ(before.rfind("worker ", 0), 0u) << before;
  auto answer = ctl(control, "upgrade");
  ASSERT_TRUE(answer["ok"]) << answer;
  pool.wait_for("worker 0 pid \\d+ gen 1 replaced");
  pool.wait_for("reload: done");  // after the last "replaced"
  auto workers = ctl(control, "workers");
  ASSERT_EQ(workers["data"].size(), 1u) << workers;
  EXPECT_EQ(workers["data"][0]["generation"], 2);
  EXPECT_EQ(workers["data"][0]["state"], "ready");  // READY=1 reached the carried notify socket
  std::string after = ask(port);
  EXPECT_EQ(after.rfind("worker ", 0), 0u) << after;
  EXPECT_NE(after, before);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(run, without_notify_a_worker_is_ready_after_its_exec_and_sees_no_notify_socket) {
  auto pool = ufork({"run", "--workers", "1", "--bind", "127.0.0.1:0", "--ready-after", "0.1", "--", notify_worker,
                     "serve"},
                    {"NOTIFY_SOCKET=/run/not-for-workers", "WATCHDOG_USEC=5"});
  int port = port_of(pool);
  pool.wait_for("ufork run: ready, 1 worker");
  auto line = pool.wait_count("\\] pid \\d+ (LISTEN_FDS.*)", 1).at(0);
  EXPECT_NE(line.find("LISTEN_FDNAMES=bind0 NOTIFY_SOCKET=<unset> WATCHDOG_USEC=<unset> WATCHDOG_PID=<unset>"),
            std::string::npos)
      << line;
  EXPECT_EQ(ask(port).rfind("worker ", 0), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(run, a_worker_that_stops_sending_watchdog_is_aborted_and_replaced) {
  auto pool = ufork({"run", "--workers", "1", "--notify", "--timeout", "0.3", "--", notify_worker, "silent"});
  pool.wait_for("ufork run: ready, 1 worker");
  pool.wait_for("worker 0 pid \\d+ hung: no heartbeat for .* \\(timeout\\); sending SIGABRT");
  pool.wait_for("worker 0 pid \\d+ gen 1 hung: killed by SIGABRT");  // as systemd's WatchdogSignal
  pool.wait_count("\\[worker 0 pid \\d+\\] fds:", 2);                // generation 2 runs
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A datagram to NOTIFY_SOCKET from this test process: not a worker, nor one
// of a worker's children. It must not make the starting worker ready.
TEST(run, a_notify_datagram_from_a_foreign_process_is_ignored_and_counted) {
  auto control = temp_path("foreign.sock");
  auto pool = ufork({"run", "--workers", "1", "--notify", "--control", control, "--", notify_worker, "wait"});
  auto address = pool.wait_for("NOTIFY_SOCKET=@(\\S+)")[1].str();
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, address.data(), address.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + address.size());
  ASSERT_EQ(::sendto(fd, "READY=1", 7, 0, reinterpret_cast<sockaddr*>(&addr), len), 7) << std::strerror(errno);
  ::close(fd);
  json status;
  for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;) {
    status = ctl(control, "status");
    if (status["data"]["counters"]["notify_ignored"] == 1) break;
  }
  EXPECT_EQ(status["data"]["counters"]["notify_ignored"], 1) << status;
  EXPECT_EQ(status["data"]["workers"]["starting"], 1) << status;
  EXPECT_EQ(pool.count("ready, 1 worker"), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A flood of datagrams on the notify socket from processes that are not
// workers (four threads here, sending without pause): the arbiter reads them
// a batch per turn, so the control socket answers, the worker's own
// WATCHDOG=1 keeps it ready, and a worker that stops beating is still caught.
TEST(run, a_notify_flood_from_strangers_starves_nothing) {
  auto control = temp_path("flood.sock");
  auto pool = ufork({"run", "--workers", "2", "--notify", "--watchdog", "1", "--bind", "127.0.0.1:0", "--control",
                     control, "--", notify_worker, "serve"});
  auto address = pool.wait_for("NOTIFY_SOCKET=@(\\S+)")[1].str();
  pool.wait_for("ufork run: ready, 2 workers");
  std::atomic<bool> done{false};
  std::vector<std::thread> flood;
  for (int i = 0; i < 4; ++i)
    flood.emplace_back([&] {
      int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path + 1, address.data(), address.size());
      auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + address.size());
      while (!done) (void)::sendto(fd, "WATCHDOG=1", 10, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&addr), len);
      ::close(fd);
    });
  struct stop_flood {
    std::atomic<bool>& done;
    std::vector<std::thread>& threads;
    ~stop_flood() {
      done = true;
      for (auto& t : threads) t.join();
    }
  } stopper{done, flood};
  json status;
  for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;) {
    status = ctl(control, "status");
    if (status["data"]["counters"]["notify_ignored"].get<long>() > 10'000) break;
  }
  EXPECT_GT(status["data"]["counters"]["notify_ignored"].get<long>(), 10'000) << status;
  EXPECT_EQ(status["data"]["workers"]["ready"], 2) << status;
  auto workers = ctl(control, "workers")["data"];
  ASSERT_EQ(workers.size(), 2u);
  pid_t stopped = workers[0]["pid"].get<pid_t>();
  ::kill(stopped, SIGSTOP);
  pool.wait_for("worker \\d pid " + std::to_string(stopped) + " hung: no heartbeat for");
  EXPECT_EQ(pool.count("hung: no heartbeat"), 1u);  // the other worker's beats got through the flood
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// As a shell: not found is 127, not executable 126, one line, no fork.
TEST(run, a_program_that_cannot_run_is_one_line_and_the_shells_exit_code_before_any_fork) {
  auto file = temp_path("not-executable");
  std::ofstream(file) << "#!/bin/sh\n";
  ::chmod(file.c_str(), 0644);
  struct {
    std::vector<std::string> args;
    int code;
    std::string said;
  } cases[] = {
      {{"run", "--", "/nonexistent/program", "--flag"}, 127, "ufork run: /nonexistent/program: No such file or directory\n"},
      {{"run", "--workers", "2", "--", "no-such-command-here"}, 127, "ufork run: no-such-command-here: command not found (in PATH)\n"},
      {{"run", "--chdir", "/nonexistent", "--", "./server"}, 127, "ufork run: /nonexistent/./server: No such file or directory\n"},
      {{"run", "--", file}, 126, "ufork run: " + file + ": not an executable file (Permission denied)\n"},
  };
  for (const auto& c : cases) {
    auto r = run_program(UFORK_CLI_PATH, c.args);
    EXPECT_EQ(r.code, c.code) << r.out;
    EXPECT_EQ(r.out, c.said);  // one line: no arbiter started, no worker forked
  }
  std::filesystem::remove(file);
}

// A program that goes away while the pool runs (a deploy in progress): its
// next starts fail, named with the errno, under the restart policy: they
// back off (no give-up: the pool had served), warned about once.
TEST(run, a_program_that_disappears_is_named_and_its_starts_back_off) {
  auto file = temp_path("going-away");
  std::ofstream(file) << "#!/bin/sh\nexec sleep 100\n";
  ::chmod(file.c_str(), 0755);
  auto control = temp_path("going-away.sock");
  auto pool = ufork({"run", "--workers", "1", "--ready-after", "0.05", "--control", control, "--", file});
  pool.wait_for("ufork run: ready, 1 worker");
  std::filesystem::remove(file);
  EXPECT_TRUE(ctl(control, "kill 0 KILL")["ok"]);
  pool.wait_count("gen \\d+ crashed: exit 127 .*\\(cannot exec " + file + ": No such file or directory\\); restarting in", 1);
  pool.wait_for("WARNING: 1 of 1 workers are failing to start");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_LE(pool.count("gen \\d+ crashed: exit 127"), 10u);  // a handful of forks, not a storm
}

TEST(run, a_python_worker_takes_fd_3_and_says_ready_with_a_plain_datagram) {
  auto pool = ufork({"run", "--workers", "2", "--bind", "127.0.0.1:0", "--notify", "--", "/usr/bin/python3",
                     programs + "/worker.py"});
  int port = port_of(pool);
  pool.wait_for("ufork run: ready, 2 workers");
  EXPECT_EQ(ask(port).rfind("python ", 0), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(run, notify_garbage_from_a_worker_harms_nothing) {
  auto control = temp_path("garbage.sock");
  auto pool = ufork({"run", "--workers", "1", "--notify", "--control", control, "--", "/usr/bin/python3",
                     programs + "/garbage_notify.py"});
  pool.wait_for("ufork run: ready, 1 worker");
  auto workers = ctl(control, "workers");
  ASSERT_TRUE(workers["ok"]) << workers;
  EXPECT_EQ(workers["data"][0]["status"], "still fine");
  EXPECT_EQ(workers["data"][0]["state"], "ready");
  EXPECT_EQ(pool.count("hung"), 0u);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(run, systemd_notify_says_ready_for_a_shell_worker) {
  if (::access("/usr/bin/systemd-notify", X_OK) != 0) GTEST_SKIP() << "no systemd-notify (Debian's systemd package)";
  auto control = temp_path("shell.sock");
  auto pool = ufork({"run", "--workers", "1", "--notify", "--control", control, "--",
                     programs + "/systemd_notify_worker.sh"});
  pool.wait_for("ufork run: ready, 1 worker");
  pool.wait_for("systemd-notify exit 0");  // its BARRIER=1 was answered
  auto workers = ctl(control, "workers");
  ASSERT_TRUE(workers["ok"]) << workers;
  EXPECT_EQ(workers["data"][0]["status"].get<std::string>().rfind("shell worker ", 0), 0u) << workers;
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// A deploy: the program's file replaced by a new one (here the Python
// worker), then `reload`: every slot runs the new program, and a client
// asking all along is never refused or dropped.
TEST(run, reload_deploys_a_new_program_one_slot_at_a_time_without_a_failed_request) {
  auto control = temp_path("reload.sock");
  auto program = temp_path("server");
  std::filesystem::copy_file(notify_worker, program);
  auto pool = ufork({"run", "--workers", "2", "--bind", "127.0.0.1:0", "--notify", "--control", control, "--",
                     program, "serve"});
  int port = port_of(pool);
  pool.wait_for("ufork run: ready, 2 workers");
  std::atomic<bool> done{false};
  std::atomic<int> answered{0}, failed{0}, python{0};
  std::thread client([&] {
    while (!done) {
      auto body = ask(port);
      ++(body.empty() ? failed : answered);
      python += body.rfind("python ", 0) == 0;
    }
  });
  auto next = program + ".new";
  std::ofstream(next) << "#!/bin/sh\nexec /usr/bin/python3 " << programs << "/worker.py\n";
  ::chmod(next.c_str(), 0755);
  std::filesystem::rename(next, program);  // as a package manager installs a file
  ASSERT_TRUE(ctl(control, "reload")["ok"]);
  pool.wait_count("gen 1 replaced: ", 2);  // how the old program ended is its own business
  pool.wait_count("python worker \\d+ ready", 2);
  for (auto deadline = std::chrono::steady_clock::now() + 20s; python == 0 && std::chrono::steady_clock::now() < deadline;)
    std::this_thread::sleep_for(1ms);
  done = true;
  client.join();
  EXPECT_GT(python, 0) << "the new program never answered";
  EXPECT_EQ(failed, 0) << "of " << answered + failed << " requests";
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  std::filesystem::remove(program);
}

TEST(run, bad_flags_and_addresses_get_a_clear_error_and_an_exit_code) {
  auto timeout = run_program(UFORK_CLI_PATH, {"run", "--timeout", "1", "--", "true"});
  EXPECT_EQ(timeout.code, 2);
  EXPECT_NE(timeout.out.find("--watchdog (--timeout) needs --notify"), std::string::npos) << timeout.out;
  auto bind = run_program(UFORK_CLI_PATH, {"run", "--bind", "nonsense", "--", "true"});
  EXPECT_EQ(bind.code, 2);
  EXPECT_NE(bind.out.find("--bind nonsense: expected HOST:PORT or [IPV6]:PORT"), std::string::npos) << bind.out;
  auto big = run_program(UFORK_CLI_PATH, {"run", "--bind", "127.0.0.1:70000", "--", "true"});
  EXPECT_EQ(big.code, 2);
  EXPECT_NE(big.out.find("(a port from 0 to 65535), or unix:PATH"), std::string::npos) << big.out;
  // A file that is not a socket is never replaced by a unix --bind.
  std::string file = testing::TempDir() + "not-a-socket-" + std::to_string(::getpid());
  std::ofstream(file) << "keep me\n";
  auto not_socket = run_program(UFORK_CLI_PATH, {"run", "--bind", "unix:" + file, "--", "true"});
  EXPECT_EQ(not_socket.code, 1);
  EXPECT_NE(not_socket.out.find("cannot listen on unix:" + file + ": it exists and is not a socket"), std::string::npos)
      << not_socket.out;
  std::string kept;
  std::getline(std::ifstream(file), kept);
  EXPECT_EQ(kept, "keep me");
  std::remove(file.c_str());
  auto option = run_program(UFORK_CLI_PATH, {"run", "--bind", "unix:/tmp/x,colour=red", "--", "true"});
  EXPECT_EQ(option.code, 2);
  EXPECT_NE(option.out.find("unknown option 'colour'"), std::string::npos) << option.out;
  EXPECT_EQ(run_program(UFORK_CLI_PATH, {"run"}).code, 2);
  auto env = run_program(UFORK_CLI_PATH, {"run", "--env", "NOEQUALS", "--", "true"});
  EXPECT_EQ(env.code, 2);
  EXPECT_NE(env.out.find("--env takes K=V"), std::string::npos) << env.out;

  auto taken = ufork({"run", "--workers", "1", "--bind", "127.0.0.1:0", "--", notify_worker, "serve"});
  int port = port_of(taken);
  auto in_use = run_program(UFORK_CLI_PATH, {"run", "--bind", "127.0.0.1:" + std::to_string(port), "--", "true"});
  EXPECT_EQ(in_use.code, 1);
  EXPECT_NE(in_use.out.find("cannot listen on 127.0.0.1:" + std::to_string(port) + ": bind: Address already in use"),
            std::string::npos)
      << in_use.out;
  taken.signal(SIGTERM);
  EXPECT_EQ(taken.wait_exit(), 0);
}

TEST(run, a_unix_socket_gets_its_mode_and_is_removed_at_the_end) {
  auto path = temp_path("app.sock");
  auto pool = ufork({"run", "--workers", "1", "--bind", "unix:" + path + ",mode=0660", "--ready-after", "0", "--",
                     notify_worker, "serve"});
  pool.wait_for("ufork run: ready, 1 worker");
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  (void)!::write(fd, "GET / HTTP/1.0\r\n\r\n", 18);
  char buf[256] = {};
  EXPECT_GT(::read(fd, buf, sizeof buf - 1), 0);
  EXPECT_NE(std::string(buf).find("worker "), std::string::npos);
  ::close(fd);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_FALSE(std::filesystem::exists(path));
}

// --pin-cpus, --nice and --rlimit, seen from inside each worker.
TEST(run, workers_are_pinned_reniced_and_limited_as_asked) {
  cpu_set_t set;
  ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  auto pool = ufork({"run", "--workers", "2", "--pin-cpus", "--nice", "5", "--rlimit", "core=0", "--rlimit",
                     "nofile=200:300", "--ready-after", "0", "--", "/bin/sh", "-c",
                     "echo cpu $(sed -n 's/^Cpus_allowed_list:\\t//p' /proc/self/status) nice $(cut -d' ' -f19 "
                     "/proc/self/stat) core $(ulimit -c) nofile $(ulimit -Sn):$(ulimit -Hn); exec sleep 1000"});
  for (int id = 0; id < 2; ++id) {
    auto line = pool.wait_count("\\[worker " + std::to_string(id) + " pid \\d+\\] (cpu .*)", 1).at(0);
    EXPECT_EQ(line, "cpu " + std::to_string(cpus[static_cast<std::size_t>(id) % cpus.size()]) +
                        " nice 5 core 0 nofile 200:300");
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(run_program(UFORK_CLI_PATH, {"run", "--rlimit", "bogus=1", "--", "true"}).code, 2);
}

}  // namespace
}  // namespace ufork::test
