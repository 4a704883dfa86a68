// The pool's own life cycle, as a worker has its own (worker_table.hpp): one
// phase, changed in one place by after(), which says what each event does in
// each phase, or that it does nothing there. Pure. Internal.
//
//   running --terminate (a drain delay set)--> draining
//   running, draining --terminate, interrupt, give_up, drain_over--> stopping
//   stopping --interrupt (a second Ctrl-C)--> stopping_fast
//   any but stopping_fast --quit--> stopping_fast
#pragma once

#include <optional>

namespace ufork {

enum class pool_phase {
  running,
  draining,       // says it is not ready while its workers serve, then stops
  stopping,       // SIGTERM to every worker, SIGKILL after the graceful timeout
  stopping_fast,  // SIGKILL to every worker
};

enum class pool_event {
  terminate,   // SIGTERM, the `stop` command, arbiter::stop(): a graceful stop (a second ends a drain)
  interrupt,   // SIGINT: graceful, a second one fast; never a drain (a person is waiting)
  quit,        // SIGQUIT, stop(fast): fast
  drain_over,  // the drain delay has passed
  give_up,     // no worker ever became ready (options::max_boot_failures)
};

// The phase `e` leads to from `from`, or nullopt: it changes nothing there.
// drains: options::drain_delay is set.
constexpr std::optional<pool_phase> after(pool_phase from, pool_event e, bool drains) noexcept {
  using enum pool_phase;
  switch (from) {
    case running:
      if (e == pool_event::drain_over) return std::nullopt;
      if (e == pool_event::quit) return stopping_fast;
      return e == pool_event::terminate && drains ? draining : stopping;
    case draining:
      return e == pool_event::quit ? stopping_fast : stopping;
    case stopping:
      if (e == pool_event::interrupt || e == pool_event::quit) return stopping_fast;
      return std::nullopt;
    case stopping_fast:
      return std::nullopt;
  }
  return std::nullopt;
}

constexpr bool is_stopping(pool_phase p) noexcept { return p == pool_phase::stopping || p == pool_phase::stopping_fast; }

constexpr const char* to_string(pool_phase p) noexcept {
  switch (p) {
    case pool_phase::running: return "running";
    case pool_phase::draining: return "draining";
    case pool_phase::stopping: return "stopping";
    case pool_phase::stopping_fast: return "stopping fast";
  }
  return "?";
}

}  // namespace ufork
