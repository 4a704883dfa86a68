// The ufork command's subcommands and its exit codes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ufork/options.hpp"

namespace ufork::cli {

// ctl: 0 ok, 1 the arbiter answered an error, 2 usage, 3 nothing answers.
inline constexpr int exit_error_answer = 1;
inline constexpr int exit_runtime = 1;  // hello: could not start (address in use, ...)
inline constexpr int exit_usage = 2;
inline constexpr int exit_unreachable = 3;

// What every serving subcommand takes: the pool's options (their flags come
// from the option table, src/core/option_table.hpp), and daemon mode and
// where the log goes.
struct service_options {
  options pool;
  bool daemon = false;
  std::string pidfile;
  std::string log;            // a rotated file set
  std::size_t log_max_size = 8UL * 1024 * 1024;
  std::size_t log_files = 8;
  bool log_json = false;
  bool syslog = false;
};

struct hello_options : service_options {
  std::string bind = "127.0.0.1:7777";
  bool reuseport = false;
  bool join = false;  // --reuseport onto a port another process listens on
};

struct run_options : service_options {
  std::vector<std::string> binds;  // host:port, [v6]:port, unix:PATH[,mode=..][,owner=..][,group=..][,name=..]
  std::vector<std::string> command;
};

int run_hello(hello_options o);
int run_program(run_options o);
// check: `status --check`, a readiness probe: 0 ready, 1 not, 3 unreachable.
int run_ctl(const std::string& socket, const std::vector<std::string>& words, bool json, bool check = false);
// `ctl follow`: the pool's lines until the arbiter closes the stream (0),
// drops this follower or refuses (1), or cannot be reached (3).
int run_follow(const std::string& socket, bool json, bool events, int worker);
// `top`: a live view of the pool until q (0), or the arbiter goes (3).
// Without a terminal: one frame, then 0.
int run_top(const std::string& socket, double interval);
int run_console(const std::string& socket);

}  // namespace ufork::cli
