// The in-place upgrade's exec, its check and the way back (upgrade.hpp); the
// state's text is upgrade_state.cpp.
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
#include "sys/carry.hpp"
#include "sys/fd.hpp"
#include "sys/result.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork::upgrade {
namespace {

constexpr std::size_t max_state = 64UL * 1024 * 1024;
constexpr const char* state_var = "UFORK_UPGRADE_STATE";  // the state's memfd
constexpr const char* image_var = "UFORK_UPGRADE_IMAGE";  // the old image, for the way back
constexpr const char* path_var = "UFORK_UPGRADE_PATH";    // the program's path, as the first image found it
constexpr const char* fds_var = "UFORK_UPGRADE_FDS";      // the carried sockets (sys::carried_text, sys::arrivals)
constexpr std::string_view fds_assign = "UFORK_UPGRADE_FDS=";  // as capture() finds it in envp
constexpr const char* failed_var = "UFORK_UPGRADE_FAILED";  // set for the old image when the new one gave up
constexpr const char* check_var = "UFORK_UPGRADE_CHECK";    // the fd a checked image answers on (check_new_image)
constexpr int check_fd = 3;
constexpr auto check_deadline = std::chrono::seconds(5);

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
  // One pass: the pointers, and what an upgrade carried, for
  // sys::take_carried (from environ under a C runtime that passes no
  // arguments here; started() reads environ then).
  for (char** e = envp ? envp : environ; e && *e; ++e) {
    if (envp) p.env.push_back(*e);
    if (std::string_view(*e).starts_with(fds_assign)) sys::arrivals(*e + fds_assign.size());
  }
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
  std::string cwd;  // this image's at its start: the old image's argv is read from there again
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
      (void)sys::child::change_dir(g.cwd.c_str());
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
  g.cwd = at_exec().cwd;
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
  std::string answer = fmt::format("{} {}\n", state_header, format_version);
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
    (void)sys::change_dir(g.cwd);
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
  std::string expected = fmt::format("{} {}\n", state_header, format_version);
  if (said == expected && end == "exit 0") return {};
  std::string what = said.starts_with(state_header + std::string(" ")) && said != expected
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
  for (const auto& [fd, name] : sys::carried_fds()) keep.push_back(fd);
  image_args args(start, {fmt::format("{}={}", state_var, mem->get()), fmt::format("{}={}", image_var, image->get()),
                          fmt::format("{}={}", fds_var, sys::carried_text()), fmt::format("{}={}", path_var, start.path)});
  auto argv_p = pointers(args.argv), env_p = pointers(args.env);

  std::string why;
  for (int fd : keep)
    if (auto ec = sys::keep_across_exec(fd, true)) {
      why = fmt::format("fd {}: {}", fd, ec.message());
      break;
    }
  // Exec'd where the program started (a daemon works in /): its argv's
  // relative paths (--config app.toml) mean what they meant then.
  std::error_code ec;
  auto here = std::filesystem::current_path(ec);
  (void)sys::change_dir(at_exec().cwd);
  if (why.empty()) why = "execve " + start.path + ": " + sys::exec_path(start.path.c_str(), argv_p.data(), env_p.data()).message();
  (void)sys::change_dir(here.string());
  for (int fd : keep) (void)sys::keep_across_exec(fd, false);
  return why;
}

}  // namespace ufork::upgrade
