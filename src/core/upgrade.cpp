// The in-place upgrade's state, its exec, and the way back (upgrade.hpp).
#include "core/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "core/exit_status.hpp"
#include "sys/process.hpp"
#include "sys/sys.hpp"
#include "ufork/error.hpp"

namespace ufork::upgrade {
namespace {

constexpr const char* header = "ufork-upgrade";
constexpr std::size_t max_state = 64UL * 1024 * 1024;
constexpr const char* state_var = "UFORK_UPGRADE_STATE";  // the state's memfd
constexpr const char* image_var = "UFORK_UPGRADE_IMAGE";  // the old image, for the way back
constexpr const char* path_var = "UFORK_UPGRADE_PATH";    // the program's path, as the first image found it
constexpr const char* fds_var = "UFORK_UPGRADE_FDS";      // the carried sockets (sys::take_carried)
constexpr const char* failed_var = "UFORK_UPGRADE_FAILED";  // set for the old image when the new one gave up
constexpr const char* check_var = "UFORK_UPGRADE_CHECK";    // the fd a checked image answers on (check_new_image)
constexpr int check_fd = 3;
constexpr auto check_deadline = std::chrono::seconds(5);

// ---- the text --------------------------------------------------------------

class writer {
 public:
  writer& word(std::string_view w) {
    if (!out_.empty() && out_.back() != '\n') out_ += ' ';
    out_ += w;
    return *this;
  }
  template <class T>
  writer& num(T v) { return word(fmt::format("{}", v)); }
  writer& str(std::string_view v) { return word(fmt::format("{}:", v.size())).raw(v); }
  writer& fd(int v) { return num(v); }
  void end() { out_ += '\n'; }
  std::string take() { return std::move(out_); }

 private:
  writer& raw(std::string_view v) {
    out_ += v;
    return *this;
  }
  std::string out_;
};

struct bad_state : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class reader {
 public:
  explicit reader(std::string_view text) : rest_(text) {}
  bool done() const noexcept { return rest_.empty(); }
  // The next field is "-", an optional field's none: taken.
  bool none() {
    std::string_view r = rest_;
    if (!r.empty() && r.front() == ' ') r.remove_prefix(1);
    if (r.empty() || r.front() != '-' || (r.size() > 1 && r[1] != ' ' && r[1] != '\n')) return false;
    r.remove_prefix(1);
    rest_ = r;
    return true;
  }
  std::string_view word() {
    if (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
    std::size_t n = 0;
    while (n < rest_.size() && rest_[n] != ' ' && rest_[n] != '\n') ++n;
    if (n == 0) throw bad_state("a field is missing");
    std::string_view w = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return w;
  }
  template <class T>
  T num() {
    std::string_view w = word();
    T v{};
    auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), v);
    if (ec != std::errc() || end != w.data() + w.size()) throw bad_state("not a number: '" + std::string(w) + "'");
    return v;
  }
  std::string str() {
    if (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
    auto colon = rest_.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 10) throw bad_state("a string field is malformed");
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(rest_.data(), rest_.data() + colon, n);
    if (ec != std::errc() || end != rest_.data() + colon || n > rest_.size() - colon - 1)
      throw bad_state("a string field is malformed");
    std::string s(rest_.substr(colon + 1, n));
    rest_.remove_prefix(colon + 1 + n);
    return s;
  }
  // An fd field: -1 (none) or one above stdio.
  int fd() {
    int v = num<int>();
    if (v != -1 && v < 3) throw bad_state("fd " + std::to_string(v) + " is not one the state may name");
    return v;
  }
  void end() {
    if (rest_.empty() || rest_.front() != '\n') throw bad_state("a record has more fields than it should");
    rest_.remove_prefix(1);
  }

 private:
  std::string_view rest_;
};

template <class T>
T in_range(T v, T lo, T hi, const char* what) {
  if (v < lo || v > hi) throw bad_state(fmt::format("{} {} is out of range", what, v));
  return v;
}

// ---- a field's text, by its type -------------------------------------------

template <class E>
constexpr E last_of();
template <>
constexpr worker_state last_of<worker_state>() { return worker_state::exited; }
template <>
constexpr exit_reason last_of<exit_reason>() { return exit_reason::recycled; }
template <>
constexpr worker_role last_of<worker_role>() { return worker_role::outgoing; }

// An enum travels by its name: a reordered enum cannot change a value's meaning.
template <class E>
E named(std::string_view word, const char* what) {
  for (int i = 0; i <= static_cast<int>(last_of<E>()); ++i)
    if (word == to_string(static_cast<E>(i))) return static_cast<E>(i);
  throw bad_state(fmt::format("{}: unknown '{}'", what, word));
}

template <class T>
struct is_time_point : std::false_type {};
template <class C, class D>
struct is_time_point<std::chrono::time_point<C, D>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_duration : std::false_type {};
template <class R, class P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};

using nanoseconds = std::chrono::nanoseconds;

// Writes the fields a for_each_field visits; field_reader reads them back.
struct field_writer {
  writer& w;
  template <class T>
  void operator()(const char* name, const T& v) const {
    if constexpr (is_optional<T>::value) {
      if (v)
        (*this)(name, *v);
      else
        w.word("-");  // none: no value of any field's type is "-"
    } else if constexpr (std::is_same_v<T, bool>)
      w.num(v ? 1 : 0);
    else if constexpr (std::is_enum_v<T>)
      w.word(to_string(v));
    else if constexpr (std::is_same_v<T, std::string>)
      w.str(v);
    else if constexpr (std::is_same_v<T, carried_fd>)
      w.fd(v.fd);
    else if constexpr (is_time_point<T>::value)
      w.num(std::chrono::duration_cast<nanoseconds>(v.time_since_epoch()).count());
    else if constexpr (is_duration<T>::value)
      w.num(v.count());
    else
      w.num(v);
  }
};

struct field_reader {
  reader& r;
  template <class T>
  void operator()(const char* name, T& v) const {
    if constexpr (is_optional<T>::value) {
      if (r.none()) {
        v.reset();
      } else {
        typename T::value_type value{};
        (*this)(name, value);
        v = std::move(value);
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      v = in_range(r.num<int>(), 0, 1, name) == 1;
    } else if constexpr (std::is_enum_v<T>) {
      v = named<T>(r.word(), name);
    } else if constexpr (std::is_same_v<T, std::string>) {
      v = r.str();
    } else if constexpr (std::is_same_v<T, carried_fd>) {
      v.fd = r.fd();
    } else if constexpr (is_time_point<T>::value) {
      v = T(std::chrono::duration_cast<typename T::duration>(nanoseconds(r.num<std::int64_t>())));
    } else if constexpr (is_duration<T>::value) {
      v = T(r.num<typename T::rep>());
    } else {
      v = r.num<T>();
    }
  }
};

// The pool's counters and an exit, field by field: as for_each_field, a
// field added to them and not here does not compile.
template <class C, class F>
void for_each_counter(C& c, F&& f) {
  auto& [spawned, exited, hung, backoffs, spawn_errors, wakeups, stalls, log_lost, requests, notify_ignored,
         orphans_reaped] = c;
  for (auto* v : {&spawned, &exited, &hung, &backoffs, &spawn_errors, &wakeups, &stalls, &log_lost, &requests,
                  &notify_ignored, &orphans_reaped})
    f("counter", *v);
}

template <class X, class F>
void for_each_exit_field(X& x, F&& f) {
  auto& [id, pid, generation, code, signal, core_dumped, oom_killed, oom_possible, was_ready, reason, detail, uptime,
         when] = x;
  f("id", id);
  f("pid", pid);
  f("generation", generation);
  f("code", code);
  f("signal", signal);
  f("core_dumped", core_dumped);
  f("oom_killed", oom_killed);
  f("oom_possible", oom_possible);
  f("was_ready", was_ready);
  f("reason", reason);
  f("detail", detail);
  f("uptime", uptime);
  f("when", when);
}

// A record of one word and the fields `visit` names.
template <class T, class Visit>
void write_record(writer& w, const char* word, const T& v, Visit visit) {
  w.word(word);
  visit(v, field_writer{w});
  w.end();
}

// ---- the process as it started --------------------------------------------

// What the process started with, as the C runtime hands it to an
// .init_array function (glibc passes argc, argv and envp): pointers only,
// and the working directory, in every program that links the library; the
// strings are copied at first use (started()), which run() makes before it
// writes the process title over argv. The environment's pointers are kept
// as they came: unsetenv() shifts the array (the command forgets
// LISTEN_FDS), never the strings, which an upgraded image needs again.
struct start_pointers {
  int argc = 0;
  char** argv = nullptr;
  std::vector<char*> env;
  std::string cwd;  // a relative argv[0] is found from here (a daemon works in /)
};

start_pointers& at_exec() {
  static auto* p = new start_pointers;  // never destroyed: an atexit handler of ours may run late
  return *p;
}

void capture(int argc, char** argv, char** envp) {
  start_pointers& p = at_exec();
  p.argc = argc;
  p.argv = argv;
  for (char** e = envp; e && *e; ++e) p.env.push_back(*e);
  std::error_code ec;
  p.cwd = std::filesystem::current_path(ec).string();
}
// Early (priority 101): before this file's own initializers, which may ask
// for started() in an upgraded image.
[[gnu::section(".init_array.00101"), gnu::used]] void (*capture_at_start)(int, char**, char**) = &capture;

// The argv and environment the program started with, and the path to exec.
struct start_info {
  std::vector<std::string> argv, env;
  std::string path;
};

std::vector<std::string> split_nul(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\0', at);
    if (end == std::string::npos) end = text.size();
    out.emplace_back(text, at, end - at);
    at = end + 1;
  }
  return out;
}

std::string resolve(const std::string& arg0, const std::string& cwd) {
  std::error_code ec;
  std::filesystem::path found = arg0.find('/') != std::string::npos ? arg0 : sys::find_in_path(arg0);
  if (found.empty()) return {};
  if (found.is_relative() && !cwd.empty()) found = std::filesystem::path(cwd) / found;
  auto absolute = std::filesystem::absolute(found, ec);
  return ec ? std::string() : absolute.lexically_normal().string();
}

start_info& started() {
  static start_info* info = [] {
    auto* i = new start_info;  // never destroyed: an atexit handler of ours may run late
    const start_pointers& p = at_exec();
    if (p.argv) {
      // As the program left it: one that parses its flags may have moved
      // them out of argv (GoogleTest does), ending it with a null early.
      for (int n = 0; n < p.argc && p.argv[n]; ++n) i->argv.emplace_back(p.argv[n]);
      i->env.assign(p.env.begin(), p.env.end());
    } else {  // a C runtime that passes no arguments to .init_array: as the kernel has them now
      std::ifstream in("/proc/self/cmdline", std::ios::binary);
      i->argv = split_nul(std::string(std::istreambuf_iterator<char>(in), {}));
      for (char** e = environ; e && *e; ++e) i->env.emplace_back(*e);
    }
    // An upgraded image is told the path (its argv[0] may be relative to a
    // directory the process has left: a daemon works in /).
    std::string told = std::string(path_var) + "=";
    for (const auto& var : i->env)
      if (var.starts_with(told)) i->path = var.substr(told.size());
    if (i->path.empty() && !i->argv.empty()) i->path = resolve(i->argv[0], p.cwd);
    if (i->path.empty()) {  // as the kernel names it
      std::error_code ec;
      i->path = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    }
    return i;
  }();
  return *info;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  p.reserve(strings.size() + 1);
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

int env_fd(const char* var) {
  const char* v = std::getenv(var);
  int fd = -1;
  if (v) (void)std::from_chars(v, v + std::strlen(v), fd);
  return fd;
}

// ---- the way back -----------------------------------------------------------

// Armed in a new image until it commits. The environments for the signal
// handlers are made in advance: nothing is allocated in a handler.
constexpr int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
struct guard {
  bool armed = false;
  int image = -1;
  std::vector<std::string> argv;
  std::vector<char*> argv_p;
  struct for_signal {
    std::vector<std::string> env;
    std::vector<char*> env_p;
  } by_signal[std::size(fatal_signals)];
  std::terminate_handler old_terminate = nullptr;
};
guard& the_guard() {
  static guard* g = new guard;
  return *g;
}

std::vector<std::string> env_with_failure(const std::string& why) {
  std::vector<std::string> env = started().env;
  env.push_back(std::string(failed_var) + "=" + why);
  return env;
}

void on_fatal_signal(int sig) {
  guard& g = the_guard();
  for (std::size_t i = 0; i < std::size(fatal_signals); ++i)
    if (fatal_signals[i] == sig && g.armed) {
      g.armed = false;
      (void)sys::exec_image(g.image, g.argv_p.data(), g.by_signal[i].env_p.data());
    }
  sys::reraise(sig);
}

void on_exit_before_adoption() { roll_back("the new image exited before it adopted the pool"); }

void on_terminate() {
  std::string why = "the new image ended with an uncaught exception";
  if (auto e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      why += std::string(": ") + x.what();
    } catch (...) {
    }
  }
  roll_back(why);
  std::abort();
}

void arm() {
  guard& g = the_guard();
  g.image = env_fd(image_var);
  if (g.image < 0 || env_fd(state_var) < 0 || std::getenv(failed_var)) return;  // a way back needs both; none from the way back
  g.argv = started().argv;
  g.argv_p = pointers(g.argv);
  for (std::size_t i = 0; i < std::size(fatal_signals); ++i) {
    auto& s = g.by_signal[i];
    s.env = env_with_failure(fmt::format("the new image was killed by {}", signal_name(fatal_signals[i])));
    s.env_p = pointers(s.env);
    struct sigaction sa{};
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_NODEFER | SA_RESETHAND;
    sys::set_action(fatal_signals[i], sa, nullptr);
  }
  g.old_terminate = std::set_terminate(on_terminate);
  std::atexit(on_exit_before_adoption);
  g.armed = true;
}

void disarm() {
  guard& g = the_guard();
  if (!std::exchange(g.armed, false)) return;
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int sig : fatal_signals) sys::set_action(sig, dfl, nullptr);
  std::set_terminate(g.old_terminate);
}

// A new image run to be checked (check_new_image): it says it can read
// this format of the state, and ends, before any code of the program's.
void answer_check() {
  int fd = env_fd(check_var);
  if (fd < 0) return;
  std::string answer = fmt::format("{} {}\n", header, format_version);
  sys::child::write(fd, answer.data(), answer.size());
  sys::child::exit(0);
}

// Before main(): a check answered, and in an upgraded image the way back
// armed (nothing else: what the process started with is copied at first use).
const bool at_start = [] {
  answer_check();
  arm();
  return true;
}();

std::optional<state> load() {
  int fd = env_fd(state_var);
  if (fd < 0) return std::nullopt;
  auto reject = [](const std::string& why) -> std::optional<state> {
    roll_back(why);
    throw error(std::make_error_code(std::errc::invalid_argument), "upgrade: " + why);
  };
  auto text = sys::read_whole(fd, max_state);
  if (!text) return reject("cannot read the state: " + text.error().message());
  auto decoded = decode(text.value());
  if (auto* why = std::get_if<std::string>(&decoded)) return reject("the state is rejected: " + *why);
  state s = std::get<state>(std::move(decoded));
  if (s.from != sys::own_pid()) return reject(fmt::format("the state is pid {}'s, not this process's", s.from));
  if (const char* f = std::getenv(failed_var)) s.failure = f;
  return s;
}

}  // namespace

const char* to_string(worker_role r) noexcept {
  switch (r) {
    case worker_role::current: return "current";
    case worker_role::incoming: return "incoming";
    case worker_role::outgoing: return "outgoing";
  }
  return "?";
}

std::vector<int> state::fds() const {
  std::vector<int> out;
  for (int fd : {board, notify_rx, notify_tx, exec_notify, reply})
    if (fd >= 0) out.push_back(fd);
  for (const auto& w : workers)
    for (carried_fd c : {w.pidfd, w.out, w.err, w.setup})
      if (c.fd >= 0) out.push_back(c.fd);
  return out;
}

std::string encode(const state& s) {
  writer w;
  w.word(header).num(format_version).end();
  w.word("from").num(s.from).end();
  w.word("board").fd(s.board).end();
  w.word("notify").fd(s.notify_rx).fd(s.notify_tx).fd(s.exec_notify).str(s.notify_name).end();
  w.word("nofile").num(s.nofile.rlim_cur).num(s.nofile.rlim_max).end();
  w.word("reply").fd(s.reply).end();
  w.word("size").num(s.size).end();
  w.word("generations").num(s.generations.size());
  for (unsigned g : s.generations) w.num(g);
  w.end();
  auto counters = [](const auto& c, auto f) { for_each_counter(c, f); };
  auto worker = [](const auto& p, auto f) { for_each_field(p, f); };
  auto dead = [](const auto& d, auto f) { for_each_exit_field(d, f); };
  write_record(w, "counters", s.counters, counters);
  w.word("requests_of_exited").num(s.requests_of_exited).end();
  for (const auto& p : s.workers) write_record(w, "worker", p, worker);
  for (const auto& d : s.dead) write_record(w, "dead", d, dead);
  w.word("end").end();
  return w.take();
}

std::variant<state, std::string> decode(std::string_view text) {
  try {
    reader r(text);
    if (r.word() != header) throw bad_state("not an upgrade state");
    int version = r.num<int>();
    if (version != format_version)
      throw bad_state(fmt::format("its format is version {}; this build reads version {}", version, format_version));
    r.end();
    state s;
    bool ended = false;
    while (!ended) {
      if (r.done()) throw bad_state("it ends before its end record");
      std::string_view what = r.word();
      if (what == "from") {
        s.from = r.num<pid_t>();
      } else if (what == "board") {
        s.board = r.fd();
      } else if (what == "notify") {
        s.notify_rx = r.fd();
        s.notify_tx = r.fd();
        s.exec_notify = r.fd();
        s.notify_name = r.str();
      } else if (what == "nofile") {
        s.nofile.rlim_cur = r.num<rlim_t>();
        s.nofile.rlim_max = r.num<rlim_t>();
      } else if (what == "reply") {
        s.reply = r.fd();
      } else if (what == "size") {
        s.size = in_range(r.num<int>(), 0, 1 << 20, "size");
      } else if (what == "generations") {
        auto n = in_range<std::size_t>(r.num<std::size_t>(), 0, 1 << 20, "slot count");
        for (std::size_t i = 0; i < n; ++i) s.generations.push_back(r.num<unsigned>());
      } else if (what == "counters") {
        for_each_counter(s.counters, field_reader{r});
      } else if (what == "requests_of_exited") {
        s.requests_of_exited = r.num<std::uint64_t>();
      } else if (what == "worker") {
        worker_record p;
        for_each_field(p, field_reader{r});
        in_range(p.saved.slot, 0, 1 << 20, "slot");
        in_range(p.saved.pid, 1, 1 << 30, "pid");
        // A table holds starting, ready and stopping workers (not one being forked, nor a reaped one).
        if (p.state < worker_state::starting || p.state > worker_state::stopping)
          throw bad_state(fmt::format("a worker's state is {}", to_string(p.state)));
        if (p.pidfd.fd < 0) throw bad_state("a worker has no pidfd");
        s.workers.push_back(std::move(p));
      } else if (what == "dead") {
        exit_info d;
        for_each_exit_field(d, field_reader{r});
        s.dead.push_back(std::move(d));
      } else if (what == "end") {
        ended = true;
      } else {
        throw bad_state("unknown record '" + std::string(what) + "'");
      }
      r.end();
    }
    if (!r.done()) throw bad_state("bytes after its end record");
    if (s.from <= 0 || s.board < 0 || s.notify_rx < 0 || s.notify_tx < 0) throw bad_state("a record is missing");
    if (s.generations.size() < static_cast<std::size_t>(s.size)) throw bad_state("fewer slots than its size");
    for (const auto& w : s.workers)
      if (static_cast<std::size_t>(w.saved.slot) >= s.generations.size()) throw bad_state("a worker's slot is past the slots");
    return s;
  } catch (const bad_state& e) {
    return std::string(e.what());
  }
}

const state* incoming() {
  static const std::optional<state> s = load();
  return s ? &*s : nullptr;
}

int take(int fd) {
  if (fd < 0) return -1;
  auto copy = sys::duplicate(fd);
  if (!copy) throw error(copy.error(), fmt::format("upgrade: cannot take fd {} of the state", fd));
  return copy->release();
}

std::vector<std::string> commit() {
  disarm();
  const state* s = incoming();
  if (!s) return {};
  for (int fd : s->fds()) sys::close_fd(fd);
  std::vector<std::string> unclaimed = sys::close_arrivals();
  for (const char* var : {state_var, image_var}) sys::close_fd(env_fd(var));
  // Under run() only (refused under start(), whose host has threads); glibc
  // never frees an environment string, so a thread of the program's own
  // that reads one now sees it or not, nothing torn.
  // NOLINTNEXTLINE(concurrency-mt-unsafe)
  for (const char* var : {state_var, image_var, fds_var, failed_var, path_var}) ::unsetenv(var);
  return unclaimed;
}

void roll_back(const std::string& why) noexcept {
  guard& g = the_guard();
  if (!std::exchange(g.armed, false)) return;
  try {
    std::vector<std::string> env = env_with_failure(why);
    auto env_p = pointers(env);
    auto ec = sys::exec_image(g.image, g.argv_p.data(), env_p.data());
    std::fprintf(stderr, "ufork: upgrade: %s; and the old image cannot be run again: %s\n", why.c_str(),
                 ec.message().c_str());
  } catch (...) {
  }
}

const std::string& program_path() { return started().path; }

const std::vector<std::string>& program_argv() { return started().argv; }

namespace {

// The new image's argv and environment, as it is exec'd: the program's own,
// with what the exec adds.
struct image_args {
  std::vector<std::string> argv, env;
  image_args(const start_info& start, const std::vector<std::string>& added) : argv(start.argv) {
    for (const auto& var : start.env)
      if (!var.starts_with("UFORK_UPGRADE_")) env.push_back(var);
    env.insert(env.end(), added.begin(), added.end());
  }
};

// How the checked child ended, if it has by `by` (else it is killed: "");
// its group is killed either way.
std::string ending(int pidfd, pid_t pid, std::chrono::steady_clock::time_point by) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(by - std::chrono::steady_clock::now());
  bool ended = sys::child::wait_readable(pidfd, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
  (void)sys::kill_group(pid, SIGKILL);  // before the reap: until then its pid (its group's id) is its own
  if (!ended) {
    (void)sys::pidfd_send_signal(pidfd, SIGKILL);
    sys::reap_pidfd(pidfd);
    return {};
  }
  auto si = sys::waitid_pidfd(pidfd);
  if (!si) return "waitid: " + si.error().message();
  return si->si_code == CLD_EXITED ? fmt::format("exit {}", si->si_status) : "killed by " + signal_name(si->si_status);
}

}  // namespace

std::string check_new_image() {
  const start_info& start = started();
  if (start.argv.empty() || start.path.empty()) return "the program's path is unknown";
  image_args args(start, {fmt::format("{}={}", check_var, check_fd)});
  auto argv_p = pointers(args.argv), env_p = pointers(args.env);
  auto answer = sys::make_pipe(0);
  auto null = sys::open_dev_null(O_RDONLY);
  if (!answer || !null) return "cannot check the new image: " + (answer ? null.error() : answer.error()).message();
  const char* path = start.path.c_str();
  auto pid = sys::fork_blocking_signals();
  if (!pid) return "cannot check the new image: fork: " + pid.error().message();
  if (pid.value() == 0) {  // the child: the program as an upgrade would exec it, but for the check's fd
    namespace c = sys::child;
    c::default_signals();
    sigset_t none;
    sigemptyset(&none);
    (void)c::set_parent_death_signal(SIGKILL);
    (void)sys::set_process_group(0, 0);  // a group of its own, ended with it
    int w = c::dup_above(answer->write.get(), check_fd + 1, true);  // never check_fd itself: its dup clears CLOEXEC
    if (w >= 0 && c::dup_to(null->get(), STDIN_FILENO) >= 0 && c::dup_to(w, check_fd) >= 0) {
      sys::set_signal_mask(none);
      int err = c::exec(path, argv_p.data(), env_p.data());
      char text[32] = "exec ";
      c::write_decimal(text + 5, err);
      c::write(check_fd, text, std::strlen(text));
    }
    c::exit(127);
  }
  auto pidfd = sys::pidfd_open(pid.value());
  if (!pidfd) {
    sys::kill_and_reap(pid.value());
    return "cannot check the new image: pidfd_open: " + pidfd.error().message();
  }
  answer->write.reset();
  // Its answer: to the end of the pipe (the child's exit), or the deadline.
  auto by = std::chrono::steady_clock::now() + check_deadline;
  std::string said;
  for (char buf[64]; said.size() < 256;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(by - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    sys::child::wait_readable(answer->read.get(), static_cast<int>(left));
    auto n = sys::read(answer->read.get(), buf, sizeof buf);
    if (!n && sys::would_block(n.error())) continue;
    if (!n || n.value() == 0) break;
    said.append(buf, n.value());
  }
  std::string end = ending(pidfd->get(), pid.value(), by);
  if (said.starts_with("exec ")) return "execve " + start.path + ": " + sys::error_text(std::atoi(said.c_str() + 5));
  std::string expected = fmt::format("{} {}\n", header, format_version);
  if (said == expected && end == "exit 0") return {};
  std::string what = said.starts_with(header + std::string(" ")) && said != expected
                         ? fmt::format("it reads the state in another format ({})", said.substr(0, said.size() - 1))
                     : end.empty() ? fmt::format("it did not answer within {} s (killed)", check_deadline.count())
                                   : "it ended without answering (" + end + ")";
  return fmt::format("the new image at {} failed its check before the exec: {}", start.path, what);
}

std::string exec_new_image(const state& s) {
  const start_info& start = started();
  if (start.argv.empty() || start.path.empty()) return "the program's path is unknown";
  auto image = sys::open_own_image();
  if (!image) return "cannot open the running image (/proc/self/exe): " + image.error().message();
  auto mem = sys::memory_file("ufork-upgrade", encode(s));
  if (!mem) return "cannot write the state: " + mem.error().message();

  std::vector<int> keep = s.fds();
  keep.push_back(image->get());
  keep.push_back(mem->get());
  std::string carried;
  for (const auto& [fd, name] : sys::carried_fds()) {
    keep.push_back(fd);
    carried += fmt::format("{} {}\n", fd, name);
  }
  image_args args(start, {fmt::format("{}={}", state_var, mem->get()), fmt::format("{}={}", image_var, image->get()),
                          fmt::format("{}={}", fds_var, carried), fmt::format("{}={}", path_var, start.path)});
  auto argv_p = pointers(args.argv), env_p = pointers(args.env);

  std::string why;
  for (int fd : keep)
    if (auto ec = sys::keep_across_exec(fd, true)) {
      why = fmt::format("fd {}: {}", fd, ec.message());
      break;
    }
  if (why.empty()) why = "execve " + start.path + ": " + sys::exec_path(start.path.c_str(), argv_p.data(), env_p.data()).message();
  for (int fd : keep) (void)sys::keep_across_exec(fd, false);
  return why;
}

}  // namespace ufork::upgrade
