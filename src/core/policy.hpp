// The restart policy and the worker clocks as plain functions of a slot's
// record and a time: no processes and no clock of their own, so every rule
// is unit-tested on made-up times. supervise.cpp applies them to workers.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include "ufork/arbiter.hpp"

namespace ufork::policy {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How a slot lost its current worker, as the policy sees it.
enum class end {
  served,        // it had become ready: a crash, an outside kill, an OOM kill, `kill`
  failed_start,  // it ended before it was ready, hit startup_timeout, or could not be forked
  hung,          // it was ready and stopped beating
};

struct slot {
  int failed_starts = 0;  // in a row: what backoff and give-up count
  int bad = 0;            // workers in a row that failed to start or hung
  clock::time_point last_fork{};
  clock::time_point next_fork{};  // no fork before this
};

// A worker of the slot was forked at `now`.
void forked(slot& s, clock::time_point now) noexcept;

// The slot lost its current worker at `now`: decides when its successor may
// be forked (s.next_fork) and returns the wait from now.
// - never sooner than min_interval after the slot's previous fork;
// - a worker that had become ready (served, hung) is replaced at once;
// - the first failed start in a row waits only for the minimum interval,
//   the n-th (n >= 2) initial * 2^(n-2), at most cap.
clock::duration ended(slot& s, end how, clock::time_point now, const restart_backoff& r) noexcept;

// The slot's current worker beat a full timeout after it became ready: the
// slot is healthy again, whatever came before. True if that changed it.
bool proven(slot& s) noexcept;
bool has_proven(std::optional<clock::time_point> ready_at, clock::time_point beat, milliseconds timeout) noexcept;

// A slot is failing while its last two workers failed to start or hung (and
// none has proven itself since).
bool failing(const slot& s) noexcept;

// The storm: more than half of the slots failing.
bool storm(std::size_t failing, std::size_t slots) noexcept;

// This slot failed max_boot_failures starts in a row (0: never). When every
// slot has and no worker ever became ready, the pool gives up.
bool out_of_starts(const slot& s, int max_boot_failures) noexcept;

// The clocks of one worker process.
struct worker_clock {
  worker_state state = worker_state::spawning;
  clock::time_point started{}, beat{};
  std::optional<clock::time_point> kill_at;  // SIGKILL due
  // After a stall of the arbiter, every clock restarts from here (the
  // epoch: no stall yet, and max() with it is the clock's own start).
  clock::time_point window_from{};
};
struct timeouts {
  milliseconds timeout, startup_timeout;  // timeout 0: a ready worker has no deadline
};
// When this worker's clock fires: hung (starting, ready) or SIGKILL due
// (stopping); nullopt for none.
std::optional<clock::time_point> deadline(const worker_clock& w, const timeouts& t) noexcept;

// How late the loop woke after a deadline (the most overdue one it knows of
// on waking). Past max(1 s, timeout / 4), a long stall: the arbiter itself
// was not running (the tree frozen, the VM paused, a sink that blocked), and
// what it sees now says nothing about the workers. Past short_stall, a short
// one: a freeze that ended just after the deadline looks like this (the
// workers thawed with it have not beaten yet), and so does a loaded machine.
enum class stall { none, brief, long_ };
inline constexpr milliseconds short_stall{2};
stall stalled(std::optional<clock::time_point> due, clock::time_point woke, milliseconds timeout) noexcept;

}  // namespace ufork::policy
