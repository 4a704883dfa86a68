// What the pool knows of a worker that outlives its image: the part of a
// worker's record (process, worker_table.hpp) that an in-place upgrade
// carries to the next image, and the one list of its fields that the
// upgrade's text is written and read through (core/upgrade.cpp). Internal.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "ufork/arbiter.hpp"

namespace ufork {

struct worker_persisted {
  using time_point = std::chrono::steady_clock::time_point;  // CLOCK_MONOTONIC: the same after an exec

  int slot = -1;
  unsigned generation = 0;
  pid_t pid = 0;
  bool reload = false;                // forked by a reload, to replace the slot's current worker
  time_point started{};
  std::optional<time_point> ready_at;  // once it was ready
  std::optional<time_point> kill_at;   // SIGKILL due
  time_point window_from{};            // clocks restart here after a stall of the arbiter (policy::worker_clock)
  std::optional<exit_reason> reason;  // set when the arbiter ends it
  std::string detail;
  // Exec mode: the program's own timeout (WATCHDOG_USEC=; 0: the pool's),
  // its STATUS=, and when a worker without --notify counts as ready.
  std::chrono::milliseconds timeout{};
  std::string status;
  std::optional<time_point> ready_due;
  // Recycling: why it is being replaced, once it is, and when its
  // max_lifetime ends, if it has one.
  std::optional<std::string> recycle_why;
  std::optional<time_point> lifetime_due;

  bool operator==(const worker_persisted&) const = default;
};

// f(name, field) for each field, in the order the upgrade's text has them.
// The structured binding does not compile once a field is added above and
// not here: a field added to the struct travels, or the build says so.
template <class P, class F>  // P: worker_persisted, const or not
void for_each_field(P& p, F&& f) {
  auto& [slot, generation, pid, reload, started, ready_at, kill_at, window_from, reason, detail, timeout, status,
         ready_due, recycle_why, lifetime_due] = p;
  f("slot", slot);
  f("generation", generation);
  f("pid", pid);
  f("reload", reload);
  f("started", started);
  f("ready_at", ready_at);
  f("kill_at", kill_at);
  f("window_from", window_from);
  f("reason", reason);
  f("detail", detail);
  f("timeout", timeout);
  f("status", status);
  f("ready_due", ready_due);
  f("recycle_why", recycle_why);
  f("lifetime_due", lifetime_due);
}

}  // namespace ufork
