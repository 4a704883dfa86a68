// The ufork command's subcommands and its exit codes.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
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
  std::string config;         // --config FILE (cli/config.hpp)
  // With --config, for a reload: the command line parsed again, the file
  // read anew, into `fresh` (of this object's own type); throws
  // std::runtime_error with the file's problems. Null without --config.
  std::function<void(service_options& fresh)> reread;
  std::string settings;  // `ufork config show`'s text for these options: what a reload compares
  bool daemon = false;
  std::string pidfile;
  std::string log;            // a rotated file set
  std::size_t log_max_size = 8UL * 1024 * 1024;
  std::size_t log_files = 8;
  bool log_json = false;
  bool syslog = false;
};

// The HTTP helper's deadlines (http_options), for the commands that serve
// HTTP: hello, wsgi, asgi.
struct http_deadlines {
  double keep_alive = 15;       // seconds an idle keep-alive connection is kept (gunicorn's --keep-alive)
  double request_timeout = 10;  // seconds from a request's first byte to its answer written (or per piece)
  std::chrono::milliseconds keep_alive_ms() const { return ms(keep_alive); }
  std::chrono::milliseconds request_timeout_ms() const { return ms(request_timeout); }

 private:
  static std::chrono::milliseconds ms(double s) { return std::chrono::milliseconds(std::llround(s * 1000)); }
};

struct hello_options : service_options, http_deadlines {
  std::string bind = "127.0.0.1:7777";
  bool reuseport = false;
  bool join = false;  // --reuseport onto a port another process listens on
};

struct run_options : service_options {
  std::vector<std::string> binds;  // host:port, [v6]:port, unix:PATH[,mode=..][,owner=..][,group=..][,name=..]
  std::vector<std::string> command;
};

// `ufork wsgi` and `ufork asgi`: a Python application, MODULE:APP, served
// by the HTTP helper in each worker. Run by the Python module (`python3 -m
// ufork wsgi|asgi`); the ufork command checks the flags, then execs that.
struct app_options : service_options, http_deadlines {
  bool asgi = false;  // else WSGI
  std::string app;  // MODULE:APP
  std::vector<std::string> binds;   // HOST:PORT, [V6]:PORT, unix:PATH, fd:N; none: 127.0.0.1:8000 (gunicorn's)
  bool lazy = false;               // import the app in each worker, not once before the fork
  bool reload = false;             // replace the workers when a source file changes (implies lazy)
  std::string chdir;               // before the import, in the arbiter (and on sys.path)
  std::vector<std::string> env;    // K=V, in the arbiter's environment before the import
  std::string access_log;          // "-": the workers' stdout (the log); else a file, appended
  std::string forwarded_allow_ips = "127.0.0.1";
};

// What the parser (parse.cpp) calls for each subcommand: the ufork command
// has every one; the Python module (`python3 -m ufork`) has wsgi and asgi alone.
// The one it lacks is refused with exit 2. argc/argv: as typed (wsgi: the
// ufork command passes them on to python3).
struct runners {
  std::function<int(hello_options)> hello;
  std::function<int(run_options)> run;
  std::function<int(const app_options&, int argc, char** argv)> python_app;  // wsgi, asgi
  std::function<int(const std::string& socket, const std::vector<std::string>& words, bool json, bool check)> ctl;
  std::function<int(const std::string& socket, bool json, bool events, int worker)> follow;
  std::function<int(const std::string& socket, double interval)> top;
  std::function<int(const std::string& socket)> console;
};
// Parses argv and runs the subcommand it names; exit_usage for bad flags
// (said in one line), else what the subcommand returns.
int parse_and_run(int argc, char** argv, const runners& r);

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
