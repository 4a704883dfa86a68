// Names for exits. Nothing here forks or waits.
#include "core/exit_status.hpp"

#include <fmt/format.h>

#include <cstring>
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
  if (code == 126) return "cannot execute";     // the shell's codes, which exec'd workers get too
  if (code == 127) return "command not found";
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
    case exit_reason::recycled: return "recycled";
  }
  return "?";
}

std::string exit_info::status_text() const {
  std::string s;
  if (signal != 0) {
    s = fmt::format("killed by {}", signal_name(signal));
    if (core_dumped) s += " (core dumped)";
    if (oom_killed) s += " (OOM killer)";
    if (oom_possible) s += " (possibly the OOM killer)";
  } else if (const char* name = sysexits_name(code)) {
    s = fmt::format("exit {} ({})", code, name);
  } else {
    s = fmt::format("exit {}", code);
  }
  return s;
}

std::string exit_info::describe() const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(uptime).count();
  std::string s = fmt::format("worker {} pid {} gen {} {}: {}, after {}.{:03} s", id, pid,
                              generation, to_string(reason), status_text(), ms / 1000, ms % 1000);
  if (!detail.empty()) s += fmt::format(" ({})", detail);
  return s;
}

}  // namespace ufork
