// Names for exits and the cgroup's OOM counter. Nothing here forks or waits.
#include "exit_status.hpp"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "ufork/arbiter.hpp"

namespace ufork {

const char* sysexits_name(int code) noexcept {
  static constexpr const char* names[] = {
      "EX_USAGE",    "EX_DATAERR",  "EX_NOINPUT",  "EX_NOUSER",   "EX_NOHOST",
      "EX_UNAVAILABLE", "EX_SOFTWARE", "EX_OSERR", "EX_OSFILE",   "EX_CANTCREAT",
      "EX_IOERR",    "EX_TEMPFAIL", "EX_PROTOCOL", "EX_NOPERM",   "EX_CONFIG"};
  if (code == 0) return "EX_OK";
  if (code >= 64 && code <= 78) return names[code - 64];
  return nullptr;
}

std::string signal_name(int signo) {
  if (const char* abbrev = ::sigabbrev_np(signo)) return fmt::format("SIG{}", abbrev);
  return fmt::format("SIG{}", signo);
}

std::optional<std::uint64_t> parse_counter(std::string_view text, std::string_view key) {
  std::istringstream in{std::string(text)};
  std::string k;
  std::uint64_t v;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The path of this process's cgroup for `controller` ("" = the v2 hierarchy).
std::optional<std::string> cgroup_path(std::string_view controller) {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    // "0::/path" (v2) or "4:memory:/path" (v1)
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    auto controllers = std::string_view(line).substr(a + 1, b - a - 1);
    bool match = controller.empty() ? line.compare(0, a, "0") == 0 && controllers.empty()
                                    : controllers.find(controller) != std::string_view::npos;
    if (match) return line.substr(b + 1);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> oom_kill_count() {
  if (auto p = cgroup_path(""))
    if (auto text = read_file("/sys/fs/cgroup" + *p + "/memory.events"))
      return parse_counter(*text, "oom_kill");
  if (auto p = cgroup_path("memory"))
    if (auto text = read_file("/sys/fs/cgroup/memory" + *p + "/memory.oom_control"))
      return parse_counter(*text, "oom_kill");
  return std::nullopt;
}

const char* to_string(worker_state s) noexcept {
  switch (s) {
    case worker_state::spawning: return "spawning";
    case worker_state::starting: return "starting";
    case worker_state::ready: return "ready";
    case worker_state::stopping: return "stopping";
    case worker_state::exited: return "exited";
  }
  return "?";
}

const char* to_string(exit_reason r) noexcept {
  switch (r) {
    case exit_reason::exited: return "exited";
    case exit_reason::crashed: return "crashed";
    case exit_reason::hung: return "hung";
    case exit_reason::stopped: return "stopped";
    case exit_reason::shrunk: return "shrunk";
    case exit_reason::killed: return "killed";
    case exit_reason::replaced: return "replaced";
  }
  return "?";
}

std::string exit_info::status_text() const {
  std::string s;
  if (signal != 0) {
    s = fmt::format("killed by {}", signal_name(signal));
    if (core_dumped) s += " (core dumped)";
    if (oom_killed) s += " (OOM killer)";
  } else if (const char* name = sysexits_name(code)) {
    s = fmt::format("exit {} ({})", code, name);
  } else {
    s = fmt::format("exit {}", code);
  }
  return s;
}

std::string exit_info::describe() const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(uptime).count();
  std::string s = fmt::format("worker {} pid {} gen {} {}: {}, after {}.{:03} s", worker, pid,
                              generation, to_string(reason), status_text(), ms / 1000, ms % 1000);
  if (!detail.empty()) s += fmt::format(" ({})", detail);
  return s;
}

}  // namespace ufork
