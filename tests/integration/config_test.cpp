// --config FILE (cli/config.cpp): a TOML file of the serving subcommands'
// flags, read through the same parser as typed flags; `ufork config show`
// and `check`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "cli_support.hpp"

namespace ufork::test {
namespace {

// Each test's files, removed after it.
class config : public ::testing::Test {
 protected:
  std::string write_file(const std::string& name, const std::string& text) {
    auto path = temp_path(name);
    std::ofstream(path) << text;
    made_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& path : made_) std::filesystem::remove(path);
  }

 private:
  std::vector<std::string> made_;
};

// `key = value  # source` lines of `ufork config show` -> key -> {value, source}.
std::map<std::string, std::pair<std::string, std::string>> settings(const std::string& shown) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  std::istringstream lines(shown);
  static const std::regex line("^([a-z-]+) = (.*)  # (flag|file|default)$");
  for (std::string l; std::getline(lines, l);) {
    std::smatch m;
    if (std::regex_match(l, m, line)) out[m[1]] = {m[2], m[3]};
  }
  return out;
}

// Every kind of key: a count, seconds with a fraction, a flag, a text, a
// repeated flag (an array), another name of a flag (timeout, --watchdog's),
// and the command; typed flags win over the file's keys.
TEST_F(config, each_kind_of_key_reaches_the_options_and_typed_flags_win) {
  auto file = write_file("kinds.toml", R"(workers = 3
timeout = 2.5
notify = true
control = "/run/x.sock"
env = ["A=1", "B=two words"]
bind = ["127.0.0.1:0", "unix:/tmp/kinds.sock"]
max-private-mem = 64
command = ["/bin/sleep", "1000"]
)");
  auto shown = run_program(UFORK_CLI_PATH, {"config", "show", "--config", file});
  ASSERT_EQ(shown.code, 0) << shown.out;
  auto s = settings(shown.out);
  using v = std::pair<std::string, std::string>;
  EXPECT_EQ(s["workers"], v("3", "file"));
  EXPECT_EQ(s["watchdog"], v("2.5", "file"));
  EXPECT_EQ(s["notify"], v("true", "file"));
  EXPECT_EQ(s["control"], v("\"/run/x.sock\"", "file"));
  EXPECT_EQ(s["env"], v("[\"A=1\", \"B=two words\"]", "file"));
  EXPECT_EQ(s["bind"], v("[\"127.0.0.1:0\", \"unix:/tmp/kinds.sock\"]", "file"));
  EXPECT_EQ(s["max-private-mem"], v("64", "file"));
  EXPECT_EQ(s["command"], v("[\"/bin/sleep\", \"1000\"]", "file"));
  EXPECT_EQ(s["graceful-timeout"], v("10", "default"));
  EXPECT_EQ(s["daemon"], v("false", "default"));

  // Typed: after the file's words, before them, short and long, and -- CMD.
  auto typed = run_program(UFORK_CLI_PATH, {"config", "show", "-w", "5", "--config", file, "--env=C=3",
                                            "--graceful-timeout", "4", "--", "/bin/true"});
  ASSERT_EQ(typed.code, 0) << typed.out;
  s = settings(typed.out);
  EXPECT_EQ(s["workers"], v("5", "flag"));
  EXPECT_EQ(s["env"], v("[\"C=3\"]", "flag")) << "a typed repeatable flag replaces the file's array";
  EXPECT_EQ(s["graceful-timeout"], v("4", "flag"));
  EXPECT_EQ(s["command"], v("[\"/bin/true\"]", "flag"));
  EXPECT_EQ(s["watchdog"], v("2.5", "file"));

  // --config=FILE; and a --config after `--` is the command's own.
  auto own = run_program(UFORK_CLI_PATH,
                         {"config", "show", "--config=" + file, "--", "/bin/echo", "--config", "theirs.toml"});
  ASSERT_EQ(own.code, 0) << own.out;
  s = settings(own.out);
  EXPECT_EQ(s["command"], v("[\"/bin/echo\", \"--config\", \"theirs.toml\"]", "flag"));
  EXPECT_EQ(s["workers"], v("3", "file"));
}

// What `config show` prints is itself a config file that gives the same
// settings: every key with a value round-trips, for each subcommand.
TEST_F(config, what_config_show_prints_reads_back_as_the_same_settings) {
  for (std::string sub : {"run", "hello", "wsgi", "asgi"}) {
    std::string first = sub == "run" ? "command = [\"/bin/true\"]\n" : sub == "hello" ? "" : "app = \"app:app\"\n";
    auto file = write_file("first-" + sub + ".toml", first + "workers = 4\n");
    auto once = run_program(UFORK_CLI_PATH, {"config", "show", sub, "--config", file});
    ASSERT_EQ(once.code, 0) << sub << ": " << once.out;
    auto again_file = write_file("again-" + sub + ".toml", once.out);
    auto again = run_program(UFORK_CLI_PATH, {"config", "show", sub, "--config", again_file});
    ASSERT_EQ(again.code, 0) << sub << ": " << again.out;
    auto a = settings(once.out), b = settings(again.out);
    EXPECT_GT(a.size(), 20u) << once.out;
    ASSERT_EQ(a.size(), b.size()) << sub;
    for (const auto& [key, value] : a) {
      EXPECT_EQ(b[key].first, value.first) << sub << ": " << key;
      EXPECT_EQ(b[key].second, "file") << sub << ": " << key;
    }
    auto checked = run_program(UFORK_CLI_PATH, {"config", "check", sub, "--config", again_file});
    EXPECT_EQ(checked.code, 0) << checked.out;
  }
}

// Every key of every serving subcommand, set in a file (to its default, or
// for one without, to a value), comes back from `config show` as the
// file's, with that value.
TEST_F(config, every_key_of_every_subcommand_round_trips) {
  const std::map<std::string, std::string> unset = {
      {"watchdog", "5"}, {"chdir", "\"/tmp\""}, {"env", "[\"A=1\"]"}, {"control", "\"/tmp/rt.sock\""},
      {"metrics", "\"127.0.0.1:0\""}, {"user", "\"nobody\""}, {"group", "\"nogroup\""}, {"max-rss", "512"},
      {"max-private-mem", "256"}, {"max-fds-percent", "90"}, {"max-lifetime", "3600"}, {"max-workers", "8"},
      {"max-pool-memory", "1024"}, {"max-starting", "2"}, {"rlimit", "[\"core=0\"]"}, {"pidfile", "\"/tmp/rt.pid\""},
      {"log", "\"/tmp/rt.log\""}, {"bind", "[\"127.0.0.1:0\"]"}, {"max-requests", "1000"},
      {"refork-after", "[\"1000\"]"}, {"access-log", "\"-\""}};
  for (std::string sub : {"run", "hello", "wsgi", "asgi"}) {
    std::string first = sub == "run" ? "command = [\"/bin/true\"]\nnotify = true\n"
                        : sub == "hello" ? "" : "app = \"app:app\"\n";
    auto defaults = run_program(UFORK_CLI_PATH, {"config", "show", sub, "--config", write_file("min-" + sub + ".toml", first)});
    ASSERT_EQ(defaults.code, 0) << sub << ": " << defaults.out;
    // Each line as a key with a value of the file's.
    std::string file;
    std::istringstream lines(defaults.out);
    static const std::regex not_set("^# ([a-z-]+) =  \\(not set\\)$");
    std::size_t keys = 0;
    for (std::string l; std::getline(lines, l);) {
      std::smatch m;
      if (std::regex_match(l, m, not_set)) {
        auto value = unset.find(m[1]);
        ASSERT_NE(value, unset.end()) << sub << ": no value in this test for " << m[1];
        file += std::string(m[1]) + " = " + value->second + "\n";
        ++keys;
      } else if (l.front() != '#') {
        file += l.substr(0, l.rfind("  # ")) + "\n";
        ++keys;
      }
    }
    auto path = write_file("every-" + sub + ".toml", file);
    auto shown = run_program(UFORK_CLI_PATH, {"config", "show", sub, "--config", path});
    ASSERT_EQ(shown.code, 0) << sub << ": " << shown.out << "\nfrom:\n" << file;
    auto s = settings(shown.out);
    EXPECT_EQ(s.size(), keys) << sub << ": " << shown.out;
    std::istringstream written(file);
    for (std::string l; std::getline(written, l);) {
      auto eq = l.find(" = ");
      std::string key = l.substr(0, eq), value = l.substr(eq + 3);
      EXPECT_EQ(s[key], std::make_pair(value, std::string("file"))) << sub << ": " << key;
    }
  }
}

// Each problem one line, in the file's order, exit 2, and nothing started.
TEST_F(config, each_problem_in_a_file_is_one_line_and_exit_2) {
  auto file = write_file("bad.toml", R"(wokers = 3
timeout = "soon"
workers = 0
daemon = 1
bind = "127.0.0.1:0"
env = [["A=1"]]

[section]
x = 1
)");
  std::string p = file + ":";
  std::string expected = "ufork run: " + p + "1: unknown key 'wokers' (did you mean 'workers'?)\n" +
                         "ufork run: " + p + "2: timeout: expected seconds from 0.001 to 86400 (or 0: none), not 'soon'\n" +
                         "ufork run: " + p + "3: workers: expected a whole number from 1 to 4096, not '0'\n" +
                         "ufork run: " + p + "4: daemon: expected true or false, not a whole number\n" +
                         "ufork run: " + p + "6: env: expected an array of values, not one holding an array\n" +
                         "ufork run: " + p + "8: [section]: the file is one flat table of KEY = VALUE, without sections\n";
  for (std::vector<std::string> args : {std::vector<std::string>{"config", "check", "--config", file},
                                        {"run", "--config", file, "--", "/bin/true"},
                                        {"run", "-c", file, "--", "/bin/true"}}) {
    auto r = run_program(UFORK_CLI_PATH, args);
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_EQ(r.out, expected) << args[0];
  }
  // A value CLI11 checks (an address), and the whole pool's rules.
  auto hello = run_program(UFORK_CLI_PATH,
                           {"hello", "--config", write_file("bad-bind.toml", "bind = \"nowhere\"\nworkers = 2\n")});
  EXPECT_EQ(hello.code, 2);
  EXPECT_NE(hello.out.find("--bind: expected HOST:PORT"), std::string::npos) << hello.out;
  auto rules = run_program(UFORK_CLI_PATH, {"config", "check", "--config",
                                            write_file("rules.toml", "timeout = 5\ncommand = [\"/bin/true\"]\n")});
  EXPECT_EQ(rules.code, 2);
  EXPECT_EQ(rules.out, "ufork run: --watchdog (--timeout) needs --notify: without it a worker sends no WATCHDOG=1, "
                       "and only its death is watched: Invalid argument\n");
  // Not TOML, not there, and no --config for config.
  auto syntax = run_program(UFORK_CLI_PATH, {"config", "check", "--config", write_file("syntax.toml", "workers =\n")});
  EXPECT_EQ(syntax.code, 2);
  EXPECT_TRUE(std::regex_match(syntax.out, std::regex("ufork run: .*syntax.toml:1:10: .*expected value.*\n"))) << syntax.out;
  auto missing = run_program(UFORK_CLI_PATH, {"hello", "--config", "/nonexistent/ufork.toml"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_EQ(missing.out, "ufork hello: /nonexistent/ufork.toml: File could not be opened for reading\n");
  auto none = run_program(UFORK_CLI_PATH, {"config", "show"});
  EXPECT_EQ(none.code, 2);
  EXPECT_EQ(none.out, "ufork config show: --config FILE is missing (see ufork config --help)\n");
  auto what = run_program(UFORK_CLI_PATH, {"config", "frob"});
  EXPECT_EQ(what.code, 2);
}

// The files the project ships check clean.
TEST_F(config, the_files_in_contrib_check) {
  for (const char* file : {"/docker/app.toml", "/systemd/app.toml"}) {
    auto r = run_program(UFORK_CLI_PATH, {"config", "check", "--config", std::string(UFORK_CONTRIB_DIR) + file});
    EXPECT_EQ(r.code, 0) << file << ": " << r.out;
  }
}

// A pool started from a file: its workers, its control socket, with a
// typed flag over the file's.
TEST_F(config, a_pool_runs_as_its_file_says) {
  auto control = temp_path("from-file.sock");
  auto file = write_file("pool.toml", "workers = 3\nbind = \"127.0.0.1:0\"\ncontrol = \"" + control + "\"\n");
  auto pool = ufork({"hello", "--config", file, "--workers", "2"});
  pool.wait_for("ufork hello: ready, 2 workers$");
  EXPECT_EQ(ctl(control, "status")["data"]["size"], 2);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

// SIGHUP or the reload command reads the file again: what a reload can
// change takes effect (the size, the timeouts, the command), what it
// cannot (bind, user) is said to take a restart; a file gone bad refuses
// the reload and changes nothing.
TEST_F(config, a_reload_reads_the_file_again_and_applies_what_a_reload_can) {
  auto control = temp_path("reread.sock");
  auto version = [&](const std::string& v, int workers, int graceful, const std::string& more) {
    return "command = [\"/bin/sh\", \"-c\", \"echo " + v + " in $$; exec sleep 1000\"]\n"
           "workers = " + std::to_string(workers) + "\nready-after = 0\ngraceful-timeout = " +
           std::to_string(graceful) + "\ncontrol = \"" + control + "\"\n" + more;
  };
  auto file = write_file("reread.toml", version("v1", 2, 5, "bind = [\"127.0.0.1:0\"]\n"));
  auto pool = ufork({"run", "--config", file});
  pool.wait_for("ufork run: ready, 2 workers$");
  pool.wait_count("\\] v1 in \\d+$", 2);

  write_file("reread.toml", version("v2", 3, 7, "bind = [\"127.0.0.1:1\"]\nuser = \"nobody\"\n"));
  auto answer = ctl(control, "reload");
  EXPECT_TRUE(answer["ok"]) << answer;
  pool.wait_for("reload: bind changed, which takes a restart: not applied$");
  pool.wait_for("size 2 -> 3$");
  pool.wait_for("reload: with new workers, graceful-timeout, command$");
  pool.wait_for("reload: user changed, which takes a restart: not applied$");
  pool.wait_for("reload: done$");
  pool.wait_count("\\] v2 in \\d+$", 3);
  EXPECT_EQ(ctl(control, "status")["data"]["size"], 3);

  // Gone bad: refused, saying why, nothing replaced; SIGHUP the same.
  write_file("reread.toml", version("v3", 4, 9, "workers = 5\n"));
  answer = ctl(control, "reload");
  EXPECT_FALSE(answer["ok"]) << answer;
  EXPECT_NE(answer["error"].get<std::string>().find("reread.toml:6"), std::string::npos) << answer;
  pool.signal(SIGHUP);
  pool.wait_for("SIGHUP: not done: ufork run: .*reread\\.toml:6:.*workers");
  EXPECT_EQ(pool.count("\\] v3 in"), 0u);
  EXPECT_EQ(ctl(control, "status")["data"]["size"], 3);

  pool.signal(SIGTERM);
  pool.wait_for("stopping 3 workers \\(graceful: SIGTERM, SIGKILL after 7\\.000 s\\)");  // the new graceful-timeout
  EXPECT_EQ(pool.wait_exit(), 0);
}

// The same for ufork hello: its heartbeat timeout and size applied, its
// address not.
TEST_F(config, a_hello_reload_applies_workers_and_timeout_and_not_bind) {
  auto control = temp_path("hello-reread.sock");
  auto file = write_file("hello-reread.toml", "workers = 1\ntimeout = 10\nbind = \"127.0.0.1:0\"\ncontrol = \"" + control + "\"\n");
  auto pool = ufork({"hello", "--config", file});
  pool.wait_for("ufork hello: ready, 1 worker$");
  write_file("hello-reread.toml", "workers = 2\ntimeout = 3.5\nbind = \"127.0.0.1:1\"\ncontrol = \"" + control + "\"\n");
  pool.signal(SIGHUP);
  pool.wait_for("reload: bind changed, which takes a restart: not applied$");
  pool.wait_for("reload: with new workers, timeout$");
  pool.wait_for("reload: done$");
  EXPECT_EQ(ctl(control, "status")["data"]["size"], 2);
  pool.signal(SIGTERM);
  EXPECT_EQ(pool.wait_exit(), 0);
}

}  // namespace
}  // namespace ufork::test
