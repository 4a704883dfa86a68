// Test support: run an arbiter in a forked copy of the test process and read
// what it prints, line by line, with deadlines. No sleeps: every wait is on a
// line, an exit or a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "ufork/ufork.hpp"

namespace ufork::test {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// Writes text and a newline to fd 1 with one write: lines never interleave.
void say(const std::string& text);

// A sink for pools under test: each line, with its prefix, goes out at once.
std::shared_ptr<log_sink> say_sink();

// hooks that also print "event spawn|ready slot=S gen=G pid=P" and
// "event exit <describe()>" lines, for tests to wait on.
hooks with_events(hooks h);

// Runs an arbiter; a setup error is printed as "arbiter failed: WHAT" and
// returns 1, as a program would.
int run_pool_or_report(options o, hooks h = {});

// A post_fork body that keeps beating from its own loop until asked to stop.
void beat_until_stopped(worker& w);

// Options with short clocks for tests.
options test_options(int workers);

class pool_process {
 public:
  // Forks; the child runs body() with stdout and stderr on a pipe, then
  // prints "body returned in pid P" and _exits with what body returned.
  explicit pool_process(std::function<int()> body);
  ~pool_process();  // SIGKILLs the pool if still running, reaps it

  pid_t pid() const { return pid_; }
  void signal(int sig) const;

  // The next line matching re (searched from where the last wait stopped);
  // fails the test and returns empty after timeout.
  std::smatch wait_for(const std::string& re, milliseconds timeout = 20s);
  // Waits until n lines in all seen so far match re; returns their first
  // capture groups (fails the test after timeout).
  std::vector<std::string> wait_count(const std::string& re, std::size_t n, milliseconds timeout = 20s);
  // The same with a plain predicate, for floods a regex would check slowly.
  std::size_t wait_count(const std::function<bool(const std::string&)>& match, std::size_t n,
                         milliseconds timeout = 20s);
  // Reads what the pool prints for this long, whatever it is: a test that
  // does something else meanwhile keeps the pool's output pipe from filling
  // (the arbiter would block writing to it).
  void drain_for(milliseconds d);
  // Reads until the pool exits; returns its wait status code (or -1).
  int wait_exit(milliseconds timeout = 30s);
  const std::vector<std::string>& lines() const { return lines_; }
  std::size_t count(const std::string& re) const;

 private:
  bool read_more(std::chrono::steady_clock::time_point deadline);
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_ = -1;
  std::string partial_;
  std::vector<std::string> lines_;
  std::size_t next_ = 0;
  std::string held_;  // the matched line, which the smatch points into
};

// Runs a program to its end; its exit code and what it printed (stdout and
// stderr together).
struct program_result {
  int code;
  std::string out;
};
program_result run_program(const std::string& path, std::vector<std::string> args);

// Waits for pid (a child or an adopted orphan of this subreaper) to be reaped.
bool reap(pid_t pid, milliseconds timeout);
// True if no process with this pid exists (a zombie counts as existing).
bool gone(pid_t pid);

}  // namespace ufork::test
