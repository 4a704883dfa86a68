// The ufork command line's parser: each subcommand's flags (the pool's from
// the option table) and the runner it calls (main.cpp's, or the Python
// module's for `python3 -m ufork wsgi`).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "config.hpp"
#include "docs.hpp"
#include "core/option_table.hpp"
#include "net/address.hpp"
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
// HOST:PORT, [V6]:PORT or fd:N (and unix:PATH), its syntax only (binding
// says the rest).
CLI::Validator endpoint(bool unix_too = false) {
  return CLI::Validator(
      [unix_too](std::string& v) -> std::string {
        if (v.starts_with("fd:") && v.size() > 3 && v.find_first_not_of("0123456789", 3) == std::string::npos) return {};
        if (unix_too && v.starts_with("unix:") && v.size() > 5) return {};
        if (ufork::net::split_host_port(v)) return {};
        return std::string("expected HOST:PORT, [IPV6]:PORT") + (unix_too ? ", unix:PATH" : "") +
               " or fd:N (a port from 0 to 65535), not '" + v + "'";
      },
      "HOST:PORT");
}

// The pool's flags, from the option table: those `use` says, each parsed
// by its entry (the value checked against its range, seconds into
// milliseconds, MiB into bytes) straight into the options; and the flags of
// daemon mode and the log.
void add_service_flags(CLI::App* app, ufork::cli::service_options& o, unsigned use, const char* ready_means,
                       const char* starting_default) {
  const ufork::options defaults = o.pool;
  for (const auto& e : ufork::option_table()) {
    if (!(e.use & use)) continue;
    std::string help = e.help;
    if (std::string_view(e.key) == "max-starting") help += std::string("; default: ") + starting_default;
    auto check = CLI::Validator(
        [&e](std::string& v) -> std::string {
          ufork::options scratch;
          try {
            e.set(scratch, v);
          } catch (const std::invalid_argument& x) {
            return x.what();
          }
          return {};
        },
        ufork::range_help(e));
    CLI::Option* flag = nullptr;
    if (e.kind == ufork::option_kind::flag) {
      flag = app->add_flag_callback(e.flags, [&o, &e] { e.set(o.pool, "true"); }, help);
    } else if (e.kind == ufork::option_kind::texts) {
      flag = app->add_option_function<std::vector<std::string>>(
          e.flags, [&o, &e](const std::vector<std::string>& vs) { for (const auto& v : vs) e.set(o.pool, v); }, help);
      flag->allow_extra_args(false);  // one value per flag: `--rlimit core=0 app:app` leaves app:app alone
      flag->check(check);
    } else {
      flag = app->add_option_function<std::string>(e.flags, [&o, &e](const std::string& v) { e.set(o.pool, v); }, help);
      flag->check(check);
      if (e.kind != ufork::option_kind::text && !e.zero_is_none && std::string_view(e.key) != "max-starting")
        flag->default_str(e.show(defaults));
    }
    static const char* const type_names[] = {"INT", "FLOAT", "INT", "", "TEXT", "TEXT"};
    bool counts = e.kind == ufork::option_kind::texts && e.hi > 0;  // a list of whole numbers (--refork-after)
    flag->type_name(counts ? "INT[,INT...]" : type_names[static_cast<int>(e.kind)]);
    if (std::string_view(e.key) == "metrics") flag->check(endpoint());
  }
  app->add_option("--config,-c", o.config,
                   "a TOML file of settings, a key per long flag (ufork.toml(5)); a flag typed here wins over its key");
  app->add_flag("--daemon,-d", o.daemon, ready_means);
  app->add_option("--pidfile", o.pidfile, "write and lock a pidfile");
  app->add_option("--log", o.log, "log every line to this size-rotated file set");
  app->add_option("--log-max-size", o.log_max_size, "bytes per log file")->check(whole(1, 1LL << 40))->capture_default_str();
  app->add_option("--log-files", o.log_files, "log files kept")->check(whole(1, 1000))->capture_default_str();
  app->add_flag("--log-json", o.log_json, "log JSON lines: time, id, pid, stream, line");
  app->add_flag("--syslog", o.syslog, "log to syslog too");
}

// The HTTP helper's deadlines (hello, wsgi, asgi).
void add_http_flags(CLI::App* app, ufork::cli::http_deadlines& d) {
  app->add_option("--keep-alive", d.keep_alive, "seconds an idle keep-alive connection is kept open")
      ->check(seconds(0.001, 86400))
      ->capture_default_str();
  app->add_option("--request-timeout", d.request_timeout,
                  "seconds from a request's first byte until its answer is written (an answer in parts: per part); "
                  "then the connection is closed")
      ->check(seconds(0.001, 86400))
      ->capture_default_str();
}

// A gunicorn flag typed to wsgi or asgi: what it is here, for the refusal.
std::string gunicorn_hint(const std::vector<std::string>& words) {
  static const std::map<std::string_view, std::string_view> here = {
      {"--access-logfile", "--access-log FILE (- for the log)"},
      {"--error-logfile", "--log FILE"},
      {"--log-file", "--log FILE"},
      {"--pid", "--pidfile FILE"},
      {"-p", "--pidfile FILE"},
      {"-D", "-d/--daemon"},
      {"--preload", "the default (--lazy for gunicorn's default)"},
      {"-k", "ufork asgi MODULE:APP for an ASGI app"},
      {"--worker-class", "ufork asgi MODULE:APP for an ASGI app"},
      {"--threads", "more workers (-w): a WSGI worker serves one request at a time, an ASGI worker many"},
      {"--certfile", "not there: TLS ends in a proxy in front"},
      {"--keyfile", "not there: TLS ends in a proxy in front"},
  };
  for (const auto& w : words) {
    auto name = std::string_view(w).substr(0, w.find('='));
    if (auto it = here.find(name); it != here.end())
      return fmt::format("; for gunicorn's {}: {}", it->first, it->second);
  }
  return {};
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
    if (who == "ufork wsgi" || who == "ufork asgi") what += gunicorn_hint(extra);
  }
  // "--workers: 1 required INT:INT in [1, 4096] missing"
  if (auto colon = what.find(": "); colon != std::string::npos && what.ends_with(" missing"))
    what = what.substr(0, colon) + ": a value is missing";
  if (what == "A subcommand is required")
    what = "a subcommand is required: run, hello, wsgi, asgi, config, ctl, console, top or version";
  std::cerr << who << ": " << what << " (see " << who << " --help)\n";
  return ufork::cli::exit_usage;
}

}  // namespace

namespace ufork::cli {
namespace {

// Where --config's file is among a serving subcommand's words (from 2, to
// a `--`): the word and the offset of the path in it ("--config F": the
// next word, 0; "--config=F": that word, 9); the last one given. None: 0.
std::pair<std::size_t, std::size_t> config_word(const std::vector<std::string>& words) {
  std::pair<std::size_t, std::size_t> at{0, 0};
  for (std::size_t i = 2; i < words.size() && words[i] != "--"; ++i) {
    if ((words[i] == "--config" || words[i] == "-c") && i + 1 < words.size()) at = {i + 1, 0};
    if (words[i].starts_with("--config=")) at = {i, 9};
  }
  return at;
}

// The words as typed, --config's file made absolute: a reload parses them
// again wherever the arbiter then works (a daemon works in /).
std::vector<std::string> as_typed(int argc, char** argv) {
  std::vector<std::string> words(argv, argv + argc);
  if (auto [i, from] = config_word(words); i > 0)
    words[i] = words[i].substr(0, from) + std::filesystem::absolute(words[i].substr(from)).string();
  return words;
}

// `ufork config show|check`, once the subcommand's words are parsed: the
// pool's rules checked, then its settings with their sources, or "no problem".
int config_report(const std::string& mode, const CLI::App& sub, options pool, const config_file& file,
                  const std::vector<std::string>& positional, const std::string& path) {
  if (sub.get_name() == "run") {
    if (positional.empty()) {
      std::cerr << "ufork run: no program to run: command = [\"PROGRAM\", ...] in the file, or -- CMD [ARGS...]\n";
      return exit_usage;
    }
    pool.exec.argv = positional;  // as run_program sets it
  }
  try {
    validate(pool);
  } catch (const std::exception& e) {
    std::string what = e.what();  // "ufork: ..."
    std::cerr << "ufork " << sub.get_name() << ": " << what.substr(what.find(' ') + 1) << '\n';
    return exit_usage;
  }
  if (mode == "show")
    std::cout << show_config(sub, file, positional);
  else
    std::cout << path << ": no problem found for ufork " << sub.get_name() << '\n';
  return 0;
}

// service_options::reread: the same parse, whose runner keeps the options
// it is given; what it would say on stderr is the exception's text.
void reread(std::vector<std::string> words, service_options& fresh) {
  std::vector<char*> argv;
  argv.reserve(words.size());
  for (auto& w : words) argv.push_back(w.data());
  bool parsed = false;
  runners keep;
  keep.hello = [&](hello_options o) {
    static_cast<hello_options&>(fresh) = std::move(o);
    parsed = true;
    return 0;
  };
  keep.run = [&](run_options o) {
    static_cast<run_options&>(fresh) = std::move(o);
    parsed = true;
    return 0;
  };
  keep.python_app = [&](const app_options& o, int, char**) {
    static_cast<app_options&>(fresh) = o;
    parsed = true;
    return 0;
  };
  std::ostringstream said;
  auto* cerr = std::cerr.rdbuf(said.rdbuf());
  (void)parse_and_run(static_cast<int>(argv.size()), argv.data(), keep);
  std::cerr.rdbuf(cerr);
  if (!parsed) {
    std::string text = said.str();
    while (!text.empty() && text.back() == '\n') text.pop_back();
    std::replace(text.begin(), text.end(), '\n', ';');
    throw std::runtime_error(text.empty() ? "the command line no longer parses" : text);
  }
}

}  // namespace

int parse_and_run(int argc, char** argv, const runners& runner) {
  CLI::App app{"ufork: pre-forks worker processes and keeps them running"};
  app.require_subcommand(1);
  const std::string version = std::string("ufork ") + UFORK_VERSION_STRING;
  app.set_version_flag("--version", version);
  auto* version_cmd = app.add_subcommand("version", "print the version (as --version)");

  hello_options hello_opts;
  auto* hello = app.add_subcommand("hello", "a pre-forked HTTP server answering Hello, World! (from PID ...)");
  add_service_flags(hello, hello_opts, ufork::in_hello, "detach; exit 0 once the server answers, 1 with the error",
                    "1 (uFork's staggered start)");
  hello->add_option("--bind,-b", hello_opts.bind, "HOST:PORT to listen on")->check(endpoint())->capture_default_str();
  hello->add_flag("--reuseport", hello_opts.reuseport, "one SO_REUSEPORT socket per worker");
  hello->add_flag("--join", hello_opts.join,
                  "with --reuseport: share the port with the process already listening on it (refused without)");
  add_http_flags(hello, hello_opts);

  run_options run_opts;
  run_opts.pool.max_starting = 4096;  // no limit: 8 workers are ready after one --ready-after, not 8
  auto* run = app.add_subcommand("run", "supervise a pool of any program: ufork run [OPTIONS] -- CMD [ARGS...]");
  add_service_flags(run, run_opts, ufork::in_run, "detach; exit 0 once every worker is ready, 1 with the error",
                    "no limit (every worker starts at once: without --notify each takes --ready-after)");
  // Accepted (refused with why: a program run by ufork has no request
  // counter; exec replaces the image a mold would share), not advertised.
  for (const char* name : {"--max-requests", "--max-requests-jitter", "--refork-after"}) run->get_option(name)->group("");
  run->add_option("--bind,-b", run_opts.binds,
                  "HOST:PORT, [V6]:PORT or unix:PATH (,mode=0660,owner=U,group=G), and ,name=N: handed to each "
                  "worker as fds 3, 4, ... (LISTEN_FDS)")
      ->allow_extra_args(false);
  run->add_option("command", run_opts.command, "the program and its arguments, after --");

  // wsgi and asgi: a Python app, as gunicorn's users type it.
  auto add_app = [&](const char* name, const char* what, app_options& o) {
    auto* sub = app.add_subcommand(name, std::string("serve a Python ") + what + " application as gunicorn would: ufork " +
                                             name + " [OPTIONS] MODULE:APP (also python3 -m ufork " + name + ")");
    add_service_flags(sub, o, ufork::in_app, "detach; exit 0 once every worker is ready, 1 with the error",
                      "1 (uFork's staggered start)");
    sub->add_option("MODULE:APP", o.app,
                    "MODULE:APP, as gunicorn's (APP: a name in MODULE, default application), imported once before "
                    "the workers are forked (required: here, or as app in the --config file)");
    sub->add_option("--bind,-b", o.binds,
                    "HOST:PORT, [V6]:PORT, unix:PATH or fd:N to listen on; several -b: each (default: 127.0.0.1:8000)")
        ->check(endpoint(true))
        ->allow_extra_args(false);  // one address per -b: `-b A MODULE:APP` leaves the app alone
    sub->add_flag("--lazy", o.lazy, "import the app in each worker instead (gunicorn without --preload)");
    sub->add_flag("--reload", o.reload,
                  "development: replace the workers when a file under the app's directory changes (inotify; "
                  "implies --lazy)");
    sub->add_option("--chdir", o.chdir, "change to this directory (and import from it) before the import");
    sub->add_option("--env,-e", o.env, "K=V set in the environment before the import (repeatable)")
        ->allow_extra_args(false)
        ->check(CLI::Validator(
            [](std::string& v) -> std::string {
              return v.find('=') == std::string::npos || v.front() == '=' ? "expected K=V, not '" + v + "'" : "";
            },
            "K=V"));
    sub->add_option("--access-log", o.access_log,
                    "a line per request in the combined format, to this file, or - for the log (default: none)");
    sub->add_option("--forwarded-allow-ips", o.forwarded_allow_ips,
                    "proxies (a,b or *) whose Forwarded / X-Forwarded-For and -Proto headers are believed")
        ->capture_default_str();
    add_http_flags(sub, o);
    return sub;
  };
  app_options wsgi_opts, asgi_opts;
  asgi_opts.asgi = true;
  auto* wsgi = add_app("wsgi", "WSGI", wsgi_opts);
  auto* asgi = add_app("asgi", "ASGI", asgi_opts);

  // Handled before parsing (below): here for --help and the manuals.
  auto* config = app.add_subcommand(
      "config", "show or check a --config file: ufork config show|check [run|hello|wsgi|asgi] --config FILE [FLAGS] "
                "(run's by default): each setting with its source, or one line per problem (exit 2)");
  config->allow_extras();

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

  // The man pages and the bash completion, from the subcommands above (the
  // build runs it).
  if (argc == 3 && std::string_view(argv[1]) == "_docs") return write_docs(app, argv[2]);

  std::vector<std::string> args(argv, argv + argc);
  // `ufork config show|check [SUBCOMMAND] --config FILE [FLAGS]`: that
  // subcommand's parse (run's by default), then its settings or its problems.
  std::string config_mode;
  auto serving = [&](std::size_t i) -> CLI::App* {
    if (args.size() <= i) return nullptr;
    for (auto* sub : {hello, run, wsgi, asgi})
      if (sub->get_name() == args[i]) return sub;
    return nullptr;
  };
  bool config_help = args.size() > 2 && args[1] == "config" && (args[2] == "--help" || args[2] == "-h");
  if (args.size() > 1 && args[1] == "config" && !config_help) {
    if (args.size() < 3 || (args[2] != "show" && args[2] != "check")) {
      std::cerr << "ufork config: show or check: ufork config show|check [run|hello|wsgi|asgi] --config FILE [FLAGS]\n";
      return exit_usage;
    }
    config_mode = args[2];
    std::string sub = serving(3) ? args[3] : "run";
    args.erase(args.begin() + 1, args.begin() + (serving(3) ? 4 : 3));
    args.insert(args.begin() + 1, sub);
  }
  // An unknown word where the subcommand goes: say so (CLI11 would say "A
  // subcommand is required").
  auto known = app.get_subcommands([](CLI::App*) { return true; });
  if (args.size() > 1 && args[1][0] != '-' &&
      std::none_of(known.begin(), known.end(), [&](CLI::App* sub) { return sub->get_name() == args[1]; })) {
    std::cerr << "ufork: unknown subcommand '" << args[1]
              << "'; one of: run, hello, wsgi, asgi, config, ctl, console, top, version (see ufork --help)\n";
    return exit_usage;
  }
  // `ufork run [OPTIONS] -- CMD ARGS...`: every word after the first `--`
  // is the command's, whatever flag came before it (CLI11 would give words
  // after `--` to a flag that takes several values, and parse the command's
  // own flags as ufork's).
  if (args.size() > 1 && args[1] == "run")
    if (auto dashes = std::find(args.begin() + 2, args.end(), "--"); dashes != args.end()) {
      run_opts.command.assign(dashes + 1, args.end());
      args.erase(dashes, args.end());
    }
  // --config FILE: its keys as flags, before those typed (which win).
  config_file file;
  CLI::App* pool_sub = serving(1);
  std::string config_path;
  if (auto [i, from] = config_word(args); pool_sub && i > 0) config_path = args[i].substr(from);
  if (!config_mode.empty() && config_path.empty()) {
    std::cerr << "ufork config " << config_mode << ": --config FILE is missing (see ufork config --help)\n";
    return exit_usage;
  }
  if (!config_path.empty()) {
    file = read_config(*pool_sub, config_path, {args.begin() + 2, args.end()});
    for (const auto& p : file.problems) std::cerr << "ufork " << pool_sub->get_name() << ": " << p << '\n';
    if (!file.problems.empty()) return exit_usage;
    args.insert(args.begin() + 2, file.words.begin(), file.words.end());
  }
  std::vector<char*> words_typed;
  words_typed.reserve(args.size());
  for (auto& a : args) words_typed.push_back(a.data());
  try {
    app.parse(static_cast<int>(words_typed.size()), words_typed.data());
  } catch (const CLI::ParseError& e) {
    return usage_error(app, e, static_cast<int>(words_typed.size()), words_typed.data());
  }
  // The positional from the file, unless typed.
  bool typed_positional = !run_opts.command.empty() || !wsgi_opts.app.empty() || !asgi_opts.app.empty();
  if (typed_positional && !file.positional.empty()) file.keys[*run ? "command" : "app"] = "flag";
  if (*run && run_opts.command.empty()) run_opts.command = file.positional;
  for (auto* o : {&wsgi_opts, &asgi_opts})
    if (o->app.empty() && !file.positional.empty()) o->app = file.positional.front();
  for (auto [sub, o] : {std::pair{wsgi, &wsgi_opts}, std::pair{asgi, &asgi_opts}})
    if (*sub && o->app.empty()) {
      std::cerr << "ufork " << sub->get_name() << ": MODULE:APP is required (see ufork " << sub->get_name()
                << " --help)\n";
      return exit_usage;
    }
  service_options& chosen = *hello ? static_cast<service_options&>(hello_opts)
                            : *run  ? run_opts
                            : *wsgi ? static_cast<service_options&>(wsgi_opts)
                                    : asgi_opts;
  std::vector<std::string> positional = *run ? run_opts.command : std::vector<std::string>{};
  if (*wsgi || *asgi) positional = {*wsgi ? wsgi_opts.app : asgi_opts.app};
  if (!config_mode.empty()) return config_report(config_mode, *pool_sub, chosen.pool, file, positional, config_path);
  if (pool_sub && !config_path.empty()) {
    chosen.settings = show_config(*pool_sub, file, positional);
    chosen.reread = [typed = as_typed(argc, argv)](service_options& fresh) { reread(typed, fresh); };
  }
  if (*version_cmd) {
    std::cout << version << '\n';
    return 0;
  }
  // A runner this process lacks (python3 -m ufork runs wsgi and asgi alone).
  auto lacking = [](CLI::App* sub) {
    std::cerr << "ufork " << sub->get_name() << ": not served here: run it with the ufork command\n";
    return exit_usage;
  };
  if (*hello) return runner.hello ? runner.hello(hello_opts) : lacking(hello);
  if (*run) return runner.run ? runner.run(run_opts) : lacking(run);
  if (*wsgi) return runner.python_app ? runner.python_app(wsgi_opts, argc, argv) : lacking(wsgi);
  if (*asgi) return runner.python_app ? runner.python_app(asgi_opts, argc, argv) : lacking(asgi);
  if (*ctl && (!runner.ctl || !runner.follow)) return lacking(ctl);
  if (*ctl && words[0] == "follow" && words.size() == 1 && !check)
    return runner.follow(socket, json, events, follow_worker);
  if (*ctl && (events || follow_worker >= 0 || words[0] == "follow")) {
    std::cerr << (words[0] == "follow" ? "ufork ctl: follow takes no argument but --json, --events and --worker ID, "
                                         "and no --check\n"
                                       : "ufork ctl: --events and --worker ID go with follow (ufork ctl --socket S "
                                         "follow --worker ID)\n");
    return exit_usage;
  }
  if (*ctl) return runner.ctl(socket, words, json, check);
  if (*console) return runner.console ? runner.console(console_socket) : lacking(console);
  if (*top) return runner.top ? runner.top(top_socket, top_interval) : lacking(top);
  return exit_usage;
}

}  // namespace ufork::cli
