// ufork: the command line. Subcommands: run, ctl, console, top, and hello (the
// HTTP example).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "ufork/options.hpp"
#include "ufork/version.hpp"

namespace {

// Numbers in the program's own words: "--workers: expected a whole number
// from 1 to 4096, not 'abc'" (CLI11's would say "not in range", or print a
// 300-digit bound).
CLI::Validator whole(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& v) -> std::string {
        long long n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec == std::errc() && end == v.data() + v.size() && n >= lo && n <= hi) return {};
        return "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", not '" + v + "'";
      },
      "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}
CLI::Validator seconds(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& v) -> std::string {
        char* end = nullptr;
        double x = std::strtod(v.c_str(), &end);
        if (!v.empty() && end == v.c_str() + v.size() && x >= lo && x <= hi) return {};
        return fmt::format("expected seconds from {} to {}, not '{}'", lo, hi, v);
      },
      fmt::format("SECONDS in [{}, {}]", lo, hi));
}
// HOST:PORT, [V6]:PORT or fd:N, its syntax only (binding says the rest).
CLI::Validator endpoint() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        if (v.starts_with("fd:") && v.size() > 3 && v.find_first_not_of("0123456789", 3) == std::string::npos) return {};
        auto colon = v.rfind(':');
        std::string port = colon == std::string::npos ? "" : v.substr(colon + 1);
        if (!port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos &&
            std::stoi(port) <= 65535)
          return {};
        return "expected HOST:PORT, [IPV6]:PORT or fd:N (a port from 0 to 65535), not '" + v + "'";
      },
      "HOST:PORT");
}

// The flags of service_options, on hello and run alike.
void add_service_flags(CLI::App* app, ufork::cli::service_options& o, const char* ready_means,
                       const char* starting_default) {
  app->add_option("--workers,-w", o.workers, "worker processes")->check(whole(1, 4096))->capture_default_str();
  app->add_flag("--allow-empty", o.allow_empty, "allow size 0 (ufork ctl size 0, SIGTTOU at 1): connections wait unanswered");
  app->add_option("--control,-c", o.control, "a control socket for ufork ctl / ufork console");
  app->add_option("--metrics", o.metrics,
                  "HOST:PORT: the arbiter serves /metrics (Prometheus), /status and a live status page at /")
      ->check(endpoint());
  app->add_flag("--daemon,-d", o.daemon, ready_means);
  app->add_option("--pidfile", o.pidfile, "write and lock a pidfile");
  app->add_option("--log", o.log, "log every line to this size-rotated file set");
  app->add_option("--log-max-size", o.log_max_size, "bytes per log file")->check(whole(1, 1LL << 40))->capture_default_str();
  app->add_option("--log-files", o.log_files, "log files kept")->check(whole(1, 1000))->capture_default_str();
  app->add_flag("--log-json", o.log_json, "log JSON lines: time, id, pid, stream, line");
  app->add_flag("--syslog", o.syslog, "log to syslog too");
  app->add_option("--min-ready", o.min_ready,
                  "the pool is ready (ctl status --check, READY=1 and WATCHDOG=1 to systemd) with this many ready workers")
      ->check(whole(0, 4096))->capture_default_str();
  app->add_option("--drain-delay", o.drain_delay_seconds,
                  "on SIGTERM, say not ready but keep serving this many seconds, then stop (a load balancer's time)")
      ->check(seconds(0, 3600))->capture_default_str();
  app->add_flag("--subreaper", o.subreaper, "reap every orphan re-parented to ufork, not only workers (always as PID 1)");
  app->add_option("--user", o.user, "workers drop to this user (and its groups) after the fork");
  app->add_option("--group", o.group, "workers drop to this group after the fork");
  app->add_option("--max-rss", o.max_rss_mib, "MiB: a worker using more is recycled (its successor ready first)")
      ->check(whole(1, 1 << 30));
  app->add_option("--max-fds-percent", o.max_fds_percent, "a worker using more of its fd limit is recycled (uFork: 90)")
      ->check(whole(1, 100));
  app->add_option("--max-requests", o.max_requests, "a worker that has answered this many is recycled")
      ->check(whole(1, 1LL << 62));
  app->add_option("--max-requests-jitter", o.max_requests_jitter, "plus a random 0..N per worker")
      ->check(whole(0, 1LL << 62));
  app->add_option("--max-lifetime", o.max_lifetime_seconds, "seconds: an older worker is recycled")
      ->check(seconds(0.001, 31536000.0));
  app->add_option("--max-lifetime-jitter", o.max_lifetime_jitter_seconds, "plus a random 0..S seconds per worker")
      ->check(seconds(0, 31536000.0));
  app->add_option("--recycle-at-once", o.recycle_at_once, "slots recycling at once (a reload: one at a time)")
      ->check(whole(1, 4096))->capture_default_str();
  app->add_option("--max-starting", o.max_starting,
                  std::string("workers starting (forked, not yet ready) at once; default: ") + starting_default)
      ->check(whole(1, 4096));
  app->add_flag("--pin-cpus", o.pin_cpus, "worker i runs on the i-th usable CPU (mod their number)");
  app->add_option("--nice", o.nice, "added to the workers' nice value")->check(whole(-40, 40));
  app->add_option("--rlimit", o.rlimits, "NAME=SOFT[:HARD] for every worker: core=0, nofile=65536, as=unlimited, ...");
}

// CLI11's refusal as one line in the program's own words, naming the
// subcommand: "ufork hello: unknown flag or argument: --frob (see ufork hello
// --help)". --help is CLI11's own.
int usage_error(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  if (dynamic_cast<const CLI::CallForVersion*>(&e)) {
    std::cout << e.what() << "\n";  // CLI11 ends it with no newline
    return 0;
  }
  if (e.get_exit_code() == 0) return app.exit(e);
  auto subs = app.get_subcommands();
  std::string who = subs.empty() ? "ufork" : "ufork " + subs.front()->get_name();
  std::string what = e.what();
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {  // CLI11 lists them last first: in the order typed
    std::multiset<std::string> listed;
    std::istringstream words(what.substr(what.find(": ") + 2));
    for (std::string w; words >> w;) listed.insert(w);
    std::vector<std::string> extra;
    for (int i = 1; i < argc; ++i)
      if (auto it = listed.find(argv[i]); it != listed.end()) {
        extra.emplace_back(argv[i]);
        listed.erase(it);
      }
    what = extra.size() == 1 ? "unknown flag or argument:" : "unknown flags or arguments:";
    for (const auto& w : extra) what += " " + w;
  }
  // "--workers: 1 required INT:INT in [1, 4096] missing"
  if (auto colon = what.find(": "); colon != std::string::npos && what.ends_with(" missing"))
    what = what.substr(0, colon) + ": a value is missing";
  if (what == "A subcommand is required") what = "a subcommand is required: run, hello, ctl, console or top";
  std::cerr << who << ": " << what << " (see " << who << " --help)\n";
  return ufork::cli::exit_usage;
}

int parse_and_run(int argc, char** argv) {
  using namespace ufork::cli;
  CLI::App app{"ufork: pre-forks worker processes and keeps them running"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ufork ") + UFORK_VERSION_STRING);

  hello_options hello_opts;
  hello_opts.workers = ufork::default_workers();
  auto* hello = app.add_subcommand("hello", "a pre-forked HTTP server answering Hello, World! (from PID ...)");
  add_service_flags(hello, hello_opts, "detach; exit 0 once the server answers, 1 with the error",
                    "1 (uFork's staggered start)");
  hello->add_option("--bind,-b", hello_opts.bind, "HOST:PORT to listen on")->check(endpoint())->capture_default_str();
  hello->add_option("--timeout,-t", hello_opts.timeout_seconds, "seconds without a heartbeat before a worker is hung")
      ->check(seconds(0.001, 86400))->capture_default_str();
  hello->add_flag("--reuseport", hello_opts.reuseport, "one SO_REUSEPORT socket per worker");
  hello->add_flag("--join", hello_opts.join,
                  "with --reuseport: share the port with the process already listening on it (refused without)");

  run_options run_opts;
  run_opts.workers = ufork::default_workers();
  auto* run = app.add_subcommand("run", "supervise a pool of any program: ufork run [OPTIONS] -- CMD [ARGS...]");
  add_service_flags(run, run_opts, "detach; exit 0 once every worker is ready, 1 with the error",
                    "no limit (every worker starts at once: without --notify each takes --ready-after)");
  // Accepted (refused with why: a program run by ufork has no request counter), not advertised.
  for (const char* name : {"--max-requests", "--max-requests-jitter"}) run->get_option(name)->group("");
  run->add_option("--bind,-b", run_opts.binds,
                  "HOST:PORT, [V6]:PORT or unix:PATH (,mode=0660,owner=U,group=G), and ,name=N: handed to each "
                  "worker as fds 3, 4, ... (LISTEN_FDS)");
  run->add_flag("--notify", run_opts.notify,
                "workers speak sd_notify: READY=1 makes one ready, WATCHDOG=1 is its heartbeat (NOTIFY_SOCKET)");
  run->add_option("--watchdog,--timeout,-t", run_opts.watchdog_seconds,
                  "with --notify: a watchdog, as systemd's WatchdogSec=: WATCHDOG_USEC for each worker, which is hung "
                  "after this many seconds without WATCHDOG=1 (--timeout is another name for it; default: none, "
                  "only READY=1 and the worker's death are watched)")
      ->check(seconds(0.001, 86400));
  run->add_option("--startup-timeout", run_opts.startup_timeout_seconds, "seconds for a worker to become ready")
      ->check(seconds(0.001, 86400))->capture_default_str();
  run->add_option("--graceful-timeout", run_opts.graceful_timeout_seconds, "seconds from SIGTERM to SIGKILL")
      ->check(seconds(0.001, 86400))->capture_default_str();
  run->add_option("--ready-after", run_opts.ready_after_seconds,
                  "without --notify: seconds a worker must run after its exec to count as ready")
      ->check(seconds(0, 3600))->capture_default_str();
  run->add_option("--chdir", run_opts.chdir, "the workers' working directory");
  run->add_option("--env,-e", run_opts.env, "K=V added to the workers' environment (repeatable)");
  run->add_option("command", run_opts.command, "the program and its arguments, after --");

  std::string socket;
  std::vector<std::string> words;
  bool json = false;
  auto* ctl = app.add_subcommand("ctl", "send one command to a running arbiter's control socket");
  ctl->add_option("--socket,-s", socket, "the control socket")->required();
  ctl->add_flag("--json", json, "print the JSON answer");
  bool check = false;
  ctl->add_flag("--check", check, "with status: a readiness probe, exit 0 ready, 1 not ready, 3 unreachable");
  bool events = false;
  int follow_worker = -1;
  ctl->add_flag("--events", events, "with follow: the pool's events too (spawns, readiness, exits, hangs, reloads)");
  ctl->add_option("--worker", follow_worker, "with follow: only this worker's lines")->check(whole(0, 4095));
  ctl->add_option("command", words, "the command and its arguments (try: help; follow streams the pool's lines)")
      ->required();
  ctl->allow_extras(false);
  ctl->prefix_command(false);

  std::string console_socket;
  auto* console = app.add_subcommand("console", "the ufork>> prompt of a running arbiter");
  console->add_option("--socket,-s", console_socket, "the control socket")->required();

  std::string top_socket;
  double top_interval = 1.0;
  auto* top = app.add_subcommand("top", "a live view of a running arbiter: its workers, CPU, memory, requests, exits");
  top->add_option("--socket,-s", top_socket, "the control socket")->required();
  top->add_option("--interval,-i", top_interval, "seconds between refreshes")
      ->check(seconds(0.1, 3600))
      ->capture_default_str();

  // An unknown word where the subcommand goes: say so (CLI11 would say "A
  // subcommand is required").
  auto known = app.get_subcommands([](CLI::App*) { return true; });
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(known.begin(), known.end(), [&](CLI::App* sub) { return sub->get_name() == argv[1]; })) {
    std::cerr << "ufork: unknown subcommand '" << argv[1] << "'; one of: run, hello, ctl, console, top (see ufork --help)\n";
    return exit_usage;
  }
  // `ufork run [OPTIONS] -- CMD ARGS...`: every word after the first `--`
  // is the command's, whatever flag came before it (CLI11 would give words
  // after `--` to a flag that takes several values, and parse the command's
  // own flags as ufork's).
  if (argc > 1 && std::string_view(argv[1]) == "run")
    for (int i = 2; i < argc; ++i)
      if (std::string_view(argv[i]) == "--") {
        run_opts.command.assign(argv + i + 1, argv + argc);
        argc = i;
        break;
      }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return usage_error(app, e, argc, argv);
  }
  if (*hello) return run_hello(hello_opts);
  if (*run) return run_program(run_opts);
  if (*ctl && words[0] == "follow" && words.size() == 1 && !check)
    return run_follow(socket, json, events, follow_worker);
  if (*ctl && (events || follow_worker >= 0 || words[0] == "follow")) {
    std::cerr << (words[0] == "follow" ? "ufork ctl: follow takes no argument but --json, --events and --worker ID, "
                                         "and no --check\n"
                                       : "ufork ctl: --events and --worker ID go with follow (ufork ctl --socket S "
                                         "follow --worker ID)\n");
    return exit_usage;
  }
  if (*ctl) return run_ctl(socket, words, json, check);
  if (*console) return run_console(console_socket);
  if (*top) return run_top(top_socket, top_interval);
  return exit_usage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& e) {  // out of memory, or a bug: one line, not a core dump
    std::cerr << "ufork: " << e.what() << '\n';
    return ufork::cli::exit_runtime;
  }
}
