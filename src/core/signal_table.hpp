// The signals the arbiter takes under run(), and what each does: one table
// that the handler (pool::on_signal), the `help` command and
// docs/control.md's table all read (a unit test holds the document to it).
// Internal.
#pragma once

#include <signal.h>

#include <optional>

namespace ufork {

enum class signal_verb { interrupt, terminate, quit, reload, grow, shrink, reopen, upgrade };

struct signal_entry {
  int signal;
  signal_verb verb;
  const char* name;  // as `kill -s` takes it
  const char* does;  // one line, for `help` and the docs
};

inline constexpr signal_entry signal_table[] = {
    {SIGINT, signal_verb::interrupt, "INT", "stop gracefully, with no drain; a second one stops fast"},
    {SIGTERM, signal_verb::terminate, "TERM", "stop gracefully, after the drain delay if one is set; a second one ends the drain"},
    {SIGQUIT, signal_verb::quit, "QUIT", "stop fast: SIGKILL to every worker"},
    {SIGHUP, signal_verb::reload, "HUP", "reload: replace every worker, one at a time, each successor ready first"},
    {SIGTTIN, signal_verb::grow, "TTIN", "one worker more"},
    {SIGTTOU, signal_verb::shrink, "TTOU", "one worker fewer (not below 1 unless allow_empty)"},
    {SIGUSR1, signal_verb::reopen, "USR1", "reopen the log files (for logrotate)"},
    {SIGUSR2, signal_verb::upgrade, "USR2", "upgrade: exec the program's file again in place, then reload"},
};

constexpr std::optional<signal_verb> verb_of(int sig) noexcept {
  for (const auto& e : signal_table)
    if (e.signal == sig) return e.verb;
  return std::nullopt;
}

}  // namespace ufork
