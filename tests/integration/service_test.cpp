// ufork under systemd and Kubernetes: socket activation, sd_notify to its
// own manager (a datagram socket in the test stands in for systemd), the
// readiness probe through a drain, PID 1 in a PID namespace, and workers
// that drop their privileges.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <memory>
#include <fstream>
#include <regex>
#include <thread>

#include "cli_support.hpp"

namespace ufork::test {
namespace {

// A port nobody listens on now (bound and closed: another process could take
// it meanwhile, as with any such test).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  (void)::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

int check(const std::string& control) {
  return run_program(UFORK_CLI_PATH, {"ctl", "--socket", control, "status", "--check"}).code;
}

// `systemd-socket-activate -l 127.0.0.1:PORT ufork ARGS...`: it starts ufork
// at the first connection, which waits in the socket's queue for a worker.
struct activated {
  std::unique_ptr<pool_process> pool;
  std::string answer;  // to that first request
};
activated socket_activated(std::vector<std::string> args) {
  int port = free_port();
  auto pool = std::make_unique<pool_process>([port, args] {
    std::vector<std::string> all = {"/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:" + std::to_string(port),
                                    UFORK_CLI_PATH};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    return 127;
  });
  pool->wait_for("Listening on 127\\.0\\.0\\.1:" + std::to_string(port));
  std::string answer = ask(port);
  return {std::move(pool), answer};
}

TEST(service, socket_activation_hands_the_managers_socket_to_the_workers) {
  if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0) GTEST_SKIP() << "no systemd-socket-activate";
  auto [pool, answer] = socket_activated({"run", "--workers", "2", "--notify", "--", notify_worker, "serve"});
  EXPECT_EQ(answer.rfind("worker ", 0), 0u) << answer;
  pool->wait_for("listening on 127\\.0\\.0\\.1:\\d+ \\(from the service manager\\)");
  pool->wait_count("\\] sd_listen_fds 1$", 2);
  EXPECT_EQ(pool->count("cannot listen"), 0u);
  pool->signal(SIGTERM);
  EXPECT_EQ(pool->wait_exit(), 0);
}

TEST(service, socket_activation_serves_ufork_hello_on_the_managers_socket) {
  if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0) GTEST_SKIP() << "no systemd-socket-activate";
  auto [pool, answer] = socket_activated({"hello", "--workers", "2"});
  EXPECT_EQ(answer.rfind("Hello, World! (from PID ", 0), 0u) << answer;
  pool->wait_for("listening on http://127\\.0\\.0\\.1:\\d+/");
  pool->signal(SIGTERM);
  EXPECT_EQ(pool->wait_exit(), 0);
}

// Stands in for systemd: a datagram socket at NOTIFY_SOCKET.
class manager {
 public:
  explicit manager(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    ::unlink(path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  }
  ~manager() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  // The next datagram within the timeout, or "".
  std::string next(milliseconds timeout = 20s) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return {};
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  // Datagrams until one contains `what`; all of them, joined.
  std::string until(const std::string& what) {
    std::string all;
    for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;) {
      std::string d = next(1s);
      all += d + "|";
      if (d.find(what) != std::string::npos) return all;
    }
    ADD_FAILURE() << "no " << what << " from ufork; got " << all;
    return all;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(service, tells_its_manager_ready_status_reloading_stopping_and_watchdog_while_min_ready) {
  auto path = temp_path("manager.sock");
  auto control = temp_path("manager-control.sock");
  manager systemd(path);
  // WATCHDOG=1 every 50 ms (half of WATCHDOG_USEC, as sd_watchdog_enabled advises).
  auto pool = ufork({"run", "--workers", "2", "--min-ready", "2", "--notify", "--control", control, "--",
                     notify_worker, "serve-then-wait"},
                    {"NOTIFY_SOCKET=" + path, "WATCHDOG_USEC=100000"});
  std::string first = systemd.until("READY=1");
  EXPECT_NE(first.find("MAINPID=" + std::to_string(pool.pid())), std::string::npos) << first;
  EXPECT_NE(first.find("STATUS=2 of 2 workers ready"), std::string::npos) << first;
  systemd.until("WATCHDOG=1");
  systemd.until("WATCHDOG=1");  // again: at its rate

  ASSERT_TRUE(ctl(control, "reload")["ok"]);
  auto reload = systemd.until("RELOADING=1");
  EXPECT_TRUE(std::regex_search(reload, std::regex("RELOADING=1\nMONOTONIC_USEC=\\d+"))) << reload;
  systemd.until("READY=1");  // both successors (generation 2) ready

  // Generation 3 never says READY=1: one worker short of min_ready, the
  // watchdog stops, so a real manager would restart the service.
  auto workers = ctl(control, "workers");
  ASSERT_TRUE(workers["ok"]) << workers;
  // A ready one of generation 2 (the reload's last predecessor may still be
  // listed while it stops, on a slow machine: killing it changes nothing).
  pid_t victim = 0;
  for (const auto& w : workers["data"])
    if (!victim && w["state"] == "ready") victim = w["pid"].get<pid_t>();
  ASSERT_NE(victim, 0) << workers;
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  systemd.until("STATUS=1 of 2 workers ready");
  std::string after;
  for (std::string d; !(d = systemd.next(500ms)).empty();) after += d + "|";
  EXPECT_EQ(after.find("WATCHDOG=1"), std::string::npos) << after;
  EXPECT_EQ(check(control), 1);

  pool.signal(SIGTERM);
  systemd.until("STOPPING=1");
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(service, status_check_fails_through_a_drain_while_requests_are_still_answered) {
  auto control = temp_path("drain.sock");
  auto pool = ufork({"run", "--workers", "2", "--bind", "127.0.0.1:0", "--notify", "--drain-delay", "5", "--control",
                     control, "--", notify_worker, "serve"});
  int port = port_of(pool);
  pool.wait_for("ufork run: ready, 2 workers");
  EXPECT_EQ(check(control), 0);
  pool.signal(SIGTERM);
  pool.wait_for("draining for 5\\.000 s");  // generous: the checks below fall inside it
  EXPECT_EQ(check(control), 1);
  EXPECT_EQ(ask(port).rfind("worker ", 0), 0u) << "not answered while draining";
  EXPECT_EQ(ctl(control, "status")["data"]["draining"], true);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(check(control), 3);  // nothing answers
}

TEST(service, ctl_check_is_for_status_alone) {
  EXPECT_EQ(run_program(UFORK_CLI_PATH, {"ctl", "--socket", "/nonexistent", "workers", "--check"}).code, 2);
}

// With --subreaper, an orphan the pool adopted (a worker's child that left
// the worker's group with setsid, as a daemon does) is stopped at the end,
// as PID 1 would stop it.
TEST(service, a_subreaper_stops_the_orphans_it_adopted) {
  auto pool = ufork({"run", "--subreaper", "--workers", "1", "--", "/bin/sh", "-c",
                     "setsid /bin/sh -c 'echo orphan $$; exec sleep 100' & exec sleep 100"});
  pid_t orphan = std::stoi(pool.wait_for("\\] orphan (\\d+)$")[1]);
  pool.wait_for("ufork run: ready, 1 worker");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("stopping the orphans it adopted: 1 "), 1u);
  EXPECT_TRUE(gone(orphan)) << "pid " << orphan << " outlived the pool";
}

// ufork as PID 1 of a new PID namespace, its worker starting short-lived
// grandchildren whose parent exits at once: each is re-parented to PID 1.
TEST(service, as_pid_1_it_reaps_every_orphan_and_stops_on_sigterm) {
  if (run_program("/usr/bin/unshare", {"--pid", "--fork", "--mount-proc", "true"}).code != 0)
    GTEST_SKIP() << "unshare --pid is not permitted here";
  auto control = temp_path("pid1.sock");
  pool_process pool([control] {
    std::vector<std::string> args = {"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                                     UFORK_CLI_PATH, "run", "--workers", "1", "--control", control, "--", "/bin/sh",
                                     "-c", "while :; do (sleep 0.01 &); sleep 0.02; done"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    return 127;
  });
  pool.wait_for("arbiter pid 1:");
  json status;
  for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;) {
    status = ctl(control, "status");
    if (status["ok"] == true && status["data"]["counters"]["orphans_reaped"].get<int>() >= 20) break;
  }
  EXPECT_GE(status["data"]["counters"]["orphans_reaped"].get<int>(), 20) << status;
  // SIGTERM to PID 1 itself, as `docker stop` sends it (unshare passes
  // nothing on): ufork is unshare's only child.
  std::ifstream children("/proc/" + std::to_string(pool.pid()) + "/task/" + std::to_string(pool.pid()) + "/children");
  pid_t pid1 = 0;
  children >> pid1;
  ASSERT_GT(pid1, 0);
  ASSERT_EQ(::kill(pid1, SIGTERM), 0);
  pool.wait_for("all workers stopped");
  EXPECT_EQ(pool.wait_exit(), 0);
}

TEST(service, workers_drop_to_the_user_before_the_program_runs_and_still_die_with_the_arbiter) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to change user";
  auto pool = ufork({"run", "--workers", "1", "--user", "nobody", "--", "/bin/sh", "-c", "id; echo pid $$; exec sleep 1000"});
  auto id = pool.wait_for("\\] (uid=.*)")[1].str();
  EXPECT_TRUE(std::regex_search(id, std::regex("^uid=65534\\(nobody\\) gid=65534\\(nogroup\\) groups=65534\\(nogroup\\)$")))
      << id;
  pid_t worker = std::stoi(pool.wait_for("\\] pid (\\d+)")[1]);
  pool.signal(SIGKILL);  // the arbiter: PR_SET_PDEATHSIG, set after the drop, kills the worker
  EXPECT_NE(pool.wait_exit(), 0);
  EXPECT_TRUE(reap(worker, 20s)) << "the worker outlived its arbiter";

  auto bad = run_program(UFORK_CLI_PATH, {"run", "--user", "no-such-user-here", "--", "true"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("no user 'no-such-user-here'"), std::string::npos) << bad.out;
}

// contrib/systemd's units, as systemd itself reads them: no warning either.
TEST(service, the_systemd_units_verify) {
  if (::access("/usr/bin/systemd-analyze", X_OK) != 0) GTEST_SKIP() << "no systemd-analyze";
  auto dir = temp_path("units");
  std::filesystem::create_directories(dir);
  for (const char* unit : {"ufork-app.service", "ufork-app.socket"}) {
    std::ifstream in(std::string(UFORK_CONTRIB_DIR) + "/systemd/" + unit);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(text.empty()) << unit;
    // verify checks that ExecStart's programs exist: these do here.
    text = std::regex_replace(text, std::regex("/usr/bin/ufork"), UFORK_CLI_PATH);
    std::ofstream(dir + "/" + unit) << text;
  }
  auto r = run_program("/usr/bin/systemd-analyze", {"verify", dir + "/ufork-app.socket", dir + "/ufork-app.service"});
  std::filesystem::remove_all(dir);
  if (r.out.find("Failed to") != std::string::npos && r.out.find("ufork-app") == std::string::npos)
    GTEST_SKIP() << "systemd-analyze cannot run here: " << r.out;
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "") << "systemd warns about the units";
}

}  // namespace
}  // namespace ufork::test

namespace ufork::test {
namespace {

// Messages a new user meets first (issue 25.9).
TEST(cli, version_help_and_misplaced_flags_say_what_they_mean) {
  auto version = run_program(UFORK_CLI_PATH, {"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_TRUE(std::regex_match(version.out, std::regex("ufork \\d+\\.\\d+\\.\\d+\n"))) << version.out;
  auto word = run_program(UFORK_CLI_PATH, {"version"});  // as a subcommand too, the same line
  EXPECT_EQ(word.code, 0);
  EXPECT_EQ(word.out, version.out);
  auto help = run_program(UFORK_CLI_PATH, {"run", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_EQ(help.out.find("--max-requests"), std::string::npos) << "run refuses it: not in its help";
  EXPECT_NE(help.out.find("--watchdog"), std::string::npos);
  auto worker = run_program(UFORK_CLI_PATH, {"ctl", "--socket", "/nonexistent.sock", "--worker", "1", "workers"});
  EXPECT_EQ(worker.code, 2);
  EXPECT_EQ(worker.out, "ufork ctl: --events and --worker ID go with follow (ufork ctl --socket S follow --worker ID)\n");
  auto pool = ufork({"hello", "--workers", "1", "--bind", "127.0.0.1:0"});
  pool.wait_for("arbiter pid \\d+: 1 worker, timeout");  // one worker, not "1 workers"
  pool.wait_for("ufork hello: ready, 1 worker$");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("stopping 1 worker \\(graceful"), 1u);
}

// size 0 is refused naming the flag that allows it, and that flag exists
// (before: the refusal pointed at options.allow_empty, which no flag set).
TEST(cli, size_0_is_refused_naming_allow_empty_and_allowed_with_it) {
  for (bool allow : {false, true}) {
    auto control = temp_path(allow ? "empty-allowed.sock" : "empty-refused.sock");
    std::vector<std::string> args = {"hello", "--workers", "1", "--bind", "127.0.0.1:0", "--control", control};
    if (allow) args.insert(args.begin() + 1, "--allow-empty");
    auto pool = ufork(args);
    pool.wait_for("ufork hello: ready, 1 worker$");
    auto answer = ctl(control, "size 0");
    if (allow) {
      EXPECT_TRUE(answer["ok"]) << answer;
      pool.wait_for("worker 0 pid \\d+ gen 1 shrunk");
      EXPECT_EQ(ctl(control, "status")["data"]["size"], 0);
    } else {
      EXPECT_FALSE(answer["ok"]);
      EXPECT_NE(answer["error"].get<std::string>().find("--allow-empty"), std::string::npos) << answer;
    }
    pool.signal(SIGTERM);
    EXPECT_EQ(pool.wait_exit(), 0);
  }
}

// ps, top and htop show what each process is: the arbiter and each worker
// with its slot and generation (cmdline), their names (comm) likewise.
TEST(cli, process_titles_name_the_arbiter_and_each_worker) {
  auto control = temp_path("titles.sock");
  auto pool = ufork({"hello", "--workers", "2", "--bind", "127.0.0.1:0", "--control", control});
  pool.wait_for("ufork hello: ready, 2 workers");
  auto read = [](pid_t pid, const char* file) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return text.substr(0, text.find_first_of(std::string("\0\n", 2)));
  };
  std::string args = "(hello --workers 2 --bind 127.0.0.1:0 --control " + control + ")";
  EXPECT_EQ(read(pool.pid(), "cmdline"), ("ufork: arbiter " + args).substr(0, read(pool.pid(), "cmdline").size()));
  EXPECT_EQ(read(pool.pid(), "comm"), "ufork: arbiter");
  json workers = ctl(control, "workers")["data"];  // a name: iterating a temporary's part would outlive it
  for (const auto& w : workers) {
    pid_t pid = w["pid"].get<pid_t>();
    std::string id = std::to_string(w["id"].get<int>());
    EXPECT_EQ(read(pid, "cmdline").rfind("ufork: worker " + id + " gen 1 (hello", 0), 0u) << read(pid, "cmdline");
    EXPECT_EQ(read(pid, "comm"), "ufork: worker " + id);
  }
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// --syslog logs to syslog too: in the foreground the terminal keeps every
// line. Where /dev/log cannot be reached that is said once and the terminal
// goes on; a daemon with nothing else to log to is refused.
TEST(cli, syslog_is_a_log_too_and_one_that_cannot_be_reached_is_said_once) {
  auto pool = ufork({"hello", "--workers", "1", "--bind", "127.0.0.1:0", "--syslog"});
  pool.wait_for("\\[ufork\\] listening on http://127\\.0\\.0\\.1:\\d+/");
  pool.wait_for("\\[ufork\\] ufork hello: ready, 1 worker");
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
  EXPECT_EQ(pool.count("\\[ufork\\] all workers stopped"), 1u);
  if (std::filesystem::exists("/dev/log")) return;  // reachable or not, the above holds; below needs it absent
  EXPECT_EQ(pool.count("^ufork hello: syslog cannot be reached \\(/dev/log: No such file or directory\\); "
                       "the lines go to the terminal only$"), 1u);
  auto daemon = run_program(UFORK_CLI_PATH, {"hello", "--workers", "1", "--bind", "127.0.0.1:0", "--syslog", "-d"});
  EXPECT_EQ(daemon.code, 1);
  EXPECT_EQ(daemon.out, "ufork hello: --syslog: /dev/log cannot be reached (No such file or directory): the daemon "
                        "would log nothing (add --log PATH)\n");
}

// Bad input to the command line: one clear line naming what is wrong, exit 2,
// in the program's own words.
TEST(cli, bad_flags_get_one_clear_line_and_exit_2) {
  struct bad {
    std::vector<std::string> args;
    std::string says;
  };
  const bad cases[] = {
      {{"hello", "--workers", "abc"}, "--workers: expected a whole number from 1 to 4096, not 'abc'"},
      {{"hello", "--workers", "0"}, "--workers: expected a whole number from 1 to 4096, not '0'"},
      {{"hello", "--log-max-size", "0"}, "--log-max-size: expected a whole number from 1 to 1099511627776, not '0'"},
      {{"run", "--drain-delay", "soon", "--", "true"}, "--drain-delay: expected seconds from 0 to 3600, not 'soon'"},
      {{"hello", "--bind", "nonsense"}, "--bind: expected HOST:PORT, [IPV6]:PORT or fd:N"},
      {{"hello", "--bind", "127.0.0.1:70000"}, "--bind: expected HOST:PORT, [IPV6]:PORT or fd:N"},
      {{"hello", "--metrics", "nowhere"}, "--metrics: expected HOST:PORT"},
      {{"frobnicate"}, "ufork: unknown subcommand 'frobnicate'; one of: run, hello, wsgi, asgi, config, ctl, console, top, version"},
      {{"wsgi", "-b", "nonsense", "app:app"}, "--bind: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd:N"},
      {{"wsgi", "--env", "novalue", "app:app"}, "--env: expected K=V, not 'novalue'"},
      {{"wsgi", "-w", "2"}, "ufork wsgi: MODULE:APP is required (see ufork wsgi --help)"},
      {{"wsgi", "app:app", "--access-logfile=-"},
       "ufork wsgi: unknown flag or argument: --access-logfile=-; for gunicorn's --access-logfile: --access-log FILE (- "
       "for the log) (see ufork wsgi --help)"},
      {{"asgi", "--preload", "app:app"}, "; for gunicorn's --preload: the default (--lazy for gunicorn's default)"},
      {{"asgi", "--bind"}, "ufork asgi: --bind: a value is missing (see ufork asgi --help)"},
      {{"wsgi", "-b", "127.0.0.1:0", "app:app", "extra"}, "ufork wsgi: unknown flag or argument: extra"},
      {{"top", "--socket", "/nowhere", "--interval", "0"}, "--interval: expected seconds from 0.1 to 3600, not '0'"},
      // CLI11's own refusals, in one line and in the order typed (before: two
      // lines, the words listed last first)
      {{"hello", "extra", "more"}, "ufork hello: unknown flags or arguments: extra more (see ufork hello --help)"},
      {{"run", "--frob", "--", "true"}, "ufork run: unknown flag or argument: --frob (see ufork run --help)"},
      {{"hello", "--bind"}, "ufork hello: --bind: a value is missing (see ufork hello --help)"},
      {{}, "ufork: a subcommand is required: run, hello, wsgi, asgi, config, ctl, console, top or version (see ufork --help)"},
  };
  for (const auto& c : cases) {
    auto r = run_program(UFORK_CLI_PATH, c.args);
    EXPECT_EQ(r.code, 2) << c.says << ": " << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_LT(r.out.size(), 300u) << "one line, not a 300-digit bound: " << r.out;
  }
}

// Every flag of every subcommand, as its --help lists it, with a value of
// the wrong type, out of its range (each end), and none: exit 2 and one
// short line naming the flag. A flag added later is tried too.
TEST(cli, every_flag_with_a_wrong_value_or_none_gets_one_line_and_exit_2) {
  struct subcommand {
    std::vector<std::string> before, after;  // what a run needs around the flag
  };
  const std::map<std::string, subcommand> subcommands = {
      {"hello", {{"hello"}, {}}},
      {"run", {{"run"}, {"--", "true"}}},
      {"wsgi", {{"wsgi"}, {"app:app"}}},
      {"asgi", {{"asgi"}, {"app:app"}}},
      {"ctl", {{"ctl", "--socket", "/nonexistent/ufork.sock"}, {"status"}}},
      {"console", {{"console"}, {}}},
      {"top", {{"top"}, {}}},
  };
  // "  -w,--workers INT:INT in [1, 4096]=2", "  --drain-delay FLOAT:SECONDS in [0, 3600]=0", "  --log TEXT"
  const std::regex option(R"(^\s+(?:-\w,)?(--[a-z-]+) (INT|UINT|FLOAT|TEXT)(?::\S*(?: in \[(-?[0-9.]+), (-?[0-9.]+)\])?)?)");
  std::size_t tried = 0;
  for (const auto& [name, sub] : subcommands) {
    auto help = run_program(UFORK_CLI_PATH, {name, "--help"});
    ASSERT_EQ(help.code, 0) << help.out;
    std::istringstream lines(help.out);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (!std::regex_search(line, m, option)) continue;
      const std::string flag = m[1], type = m[2];
      std::vector<std::vector<std::string>> tries;
      auto with = [&](const std::string& value) {
        auto args = sub.before;
        args.push_back(flag);
        args.push_back(value);
        args.insert(args.end(), sub.after.begin(), sub.after.end());
        tries.push_back(args);
      };
      auto none = sub.before;
      none.push_back(flag);
      tries.push_back(none);
      if (type != "TEXT") with("abc");
      if (m[3].matched) {
        const std::string low = m[3], high = m[4];
        if (type == "FLOAT") {
          with(std::to_string(std::stod(low) - 1));
          with(std::to_string(std::stod(high) * 2 + 1));
        } else {
          with(std::to_string(std::stoll(low) - 1));
          with(std::to_string(std::stoull(high) + 1));
        }
      }
      if (line.find("HOST:PORT") != std::string::npos) with("nonsense");
      for (const auto& args : tries) {
        auto r = run_program(UFORK_CLI_PATH, args);
        std::string tried_text;
        for (const auto& a : args) tried_text += a + " ";
        EXPECT_EQ(r.code, 2) << tried_text << "-> " << r.out;
        EXPECT_NE(r.out.find(flag), std::string::npos) << tried_text << "-> " << r.out;
        EXPECT_LT(r.out.find('\n'), 200u) << tried_text << "-> " << r.out;
        EXPECT_LT(r.out.size(), 300u) << tried_text << "-> " << r.out;
        if (args.back() == flag) {
          EXPECT_NE(r.out.find(flag + ": a value is missing"), std::string::npos) << tried_text << "-> " << r.out;
        }
        ++tried;
      }
    }
  }
  EXPECT_GT(tried, 100u);  // the help's lines were read
}

// Addresses and files it cannot use: exit 1 and a line that names them and
// says why (the name below fails in the resolver without a DNS query).
TEST(cli, unusable_addresses_and_files_get_one_line_and_exit_1) {
  struct bad {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<bad> cases = {
      {{"hello", "--bind", "no..such..host:7777"},
       "ufork hello: cannot listen on no..such..host:7777: resolve no..such..host: "},
      {{"run", "--bind", "no..such..host:7777", "--", "true"}, "ufork run: cannot listen on no..such..host:7777: "},
      {{"hello", "--bind", "127.0.0.1:0", "--log", "/proc/self/nope/x.log"},
       "ufork hello: log: Failed opening file /proc/self/nope/x.log for writing: No such file or directory\n"},
      {{"hello", "--bind", "127.0.0.1:0", "--control", "/tmp/" + std::string(120, 'x')},
       "ufork hello: control socket path must be 1 to 107 bytes: /tmp/xxx"},
      {{"hello", "--bind", "127.0.0.1:0", "--pidfile", "/proc/self/nope/p.pid"},
       "ufork hello: pidfile /proc/self/nope/p.pid: "},
  };
  // A privileged port as another user than root: as nobody, if this runs as
  // root; not where the kernel lets anyone bind port 80 (the server would run).
  std::vector<std::string> as_nobody;
  if (::geteuid() == 0) as_nobody = {"--reuid=65534", "--regid=65534", "--clear-groups", UFORK_CLI_PATH};
  int unprivileged_from = 1024;
  std::ifstream("/proc/sys/net/ipv4/ip_unprivileged_port_start") >> unprivileged_from;
  for (const char* sub : {"hello", "run"}) {
    if (unprivileged_from <= 80) break;
    bad c{as_nobody, std::string("ufork ") + sub +
                         ": cannot listen on 127.0.0.1:80: bind (a port below 1024 needs root or "
                         "CAP_NET_BIND_SERVICE): Permission denied"};
    for (const char* a : {sub, "--bind", "127.0.0.1:80"}) c.args.emplace_back(a);
    if (std::string(sub) == "run") c.args.insert(c.args.end(), {"--", "true"});
    cases.push_back(c);
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    bool privileged = c.says.find("CAP_NET_BIND_SERVICE") != std::string::npos;
    auto r = run_program(privileged && !as_nobody.empty() ? "/usr/bin/setpriv" : UFORK_CLI_PATH, c.args);
    EXPECT_EQ(r.code, 1) << c.args[0] << " " << c.args[1] << ": " << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
  }
}

// A second `ufork hello --reuseport` on a port another process listens on
// is refused (it would share that process's traffic) unless it asks to join.
TEST(cli, reuseport_onto_a_busy_port_is_refused_without_join) {
  auto first = ufork({"hello", "--workers", "1", "--bind", "127.0.0.1:0", "--reuseport"});
  auto listening = first.wait_for(R"(listening on http://127\.0\.0\.1:(\d+)/)");
  ASSERT_FALSE(listening.empty());
  int port = std::stoi(listening[1]);
  first.wait_for("ufork hello: ready");  // its workers listen: the arbiter only holds the port, unlistened
  std::string addr = "127.0.0.1:" + std::to_string(port);
  auto refused = run_program(UFORK_CLI_PATH, {"hello", "--workers", "1", "--bind", addr, "--reuseport"});
  EXPECT_EQ(refused.code, 1) << refused.out;
  EXPECT_NE(refused.out.find(addr + " is in use by another process; --reuseport would share its connections"),
            std::string::npos)
      << refused.out;
  auto log = temp_path("join-dir") + "/hello.log";  // in a directory that does not exist yet
  auto joined = ufork({"hello", "--workers", "1", "--bind", addr, "--reuseport", "--join", "--log", log});
  joined.wait_for("ufork hello: logging to " + log);  // the terminal says where the lines went
  // Then its lines go to the file: stopped once it is ready there.
  auto ready_in_log = [&] {
    std::ifstream f(log);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return text.find("ufork hello: ready") != std::string::npos;
  };
  for (auto until = std::chrono::steady_clock::now() + 20s; !ready_in_log() && std::chrono::steady_clock::now() < until;)
    joined.drain_for(20ms);
  ASSERT_TRUE(ready_in_log());
  joined.signal(SIGTERM);
  EXPECT_EQ(joined.wait_exit(), 0);
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait_exit(), 0);
  std::filesystem::remove_all(temp_path("join-dir"));
}

}  // namespace
}  // namespace ufork::test
