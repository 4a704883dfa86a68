// The worker table: every worker process the arbiter has forked and not yet
// reaped, and the slots they fill. A slot has a current worker (serving, or
// starting to) and, during a reload, an incoming one that takes over once it
// is ready; the workers a slot has let go of (hung, replaced, shrunk) are
// outgoing until they are reaped. A worker's state changes in one place,
// set_state(), which refuses what the life cycle does not have.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/policy.hpp"
#include "core/line_splitter.hpp"
#include "core/reactor.hpp"
#include "core/scoreboard.hpp"
#include "core/worker_record.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/arbiter.hpp"

namespace ufork {

using clock = std::chrono::steady_clock;

struct output {
  sys::unique_fd fd;
  reactor::token token = 0;
  line_splitter lines;
  explicit output(std::size_t max_line) : lines(max_line) {}
};

// One forked worker process: what an upgrade carries (worker_persisted),
// and its fds and watches, which the upgrade hands over as fds.
struct process : worker_persisted {
  sys::unique_fd pidfd;
  sys::unique_fd setup_errors;         // the spawn unit's error pipe, until ready
  reactor::token setup_token = 0;      // exec mode: watched for the exec's outcome
  reactor::token exit_token = 0;
  detail::cell* beat = nullptr;
  worker_state state = worker_state::spawning;
  output out, err;
  explicit process(std::size_t max_line) : out(max_line), err(max_line) {}
};

struct slot_state {
  unsigned generation = 0;
  pid_t current = 0;   // the worker that serves the slot (or is starting to), or 0
  pid_t incoming = 0;  // a reload's successor, starting while `current` serves
  policy::slot rules;  // failed starts, when it may fork again
};

class worker_table {
 public:
  using map = std::unordered_map<pid_t, std::unique_ptr<process>>;

  // Slots 0..n-1; growing keeps the old ones (their generations go on).
  void resize(int n);
  int slot_count() const noexcept { return static_cast<int>(slots_.size()); }
  slot_state& slot(int i) { return slots_.at(static_cast<std::size_t>(i)); }
  const slot_state& slot(int i) const { return slots_.at(static_cast<std::size_t>(i)); }
  const std::vector<slot_state>& slots() const noexcept { return slots_; }

  // A forked worker (pid, slot, generation set) joins its slot: as its
  // current worker, or as the incoming one while the current one serves.
  process& insert(std::unique_ptr<process> p, bool incoming);
  // A worker the slot has let go of (hung, replaced) joins as outgoing: an
  // upgrade adopts it so.
  process& insert_outgoing(std::unique_ptr<process> p);
  process* find(pid_t pid) noexcept;
  const process* find(pid_t pid) const noexcept;
  process* current(int slot) noexcept;
  // The reaped worker leaves the table.
  std::unique_ptr<process> remove(pid_t pid);
  const map& processes() const noexcept { return procs_; }
  bool empty() const noexcept { return procs_.empty(); }

  // The slot lets go of p (it hung, or it is gone). If p was current, the
  // incoming worker, if any, takes over. True if the slot is left with no
  // current worker: it needs a new one.
  bool release(const process& p) noexcept;
  // p, the slot's incoming worker, is ready: it becomes current. Returns
  // the worker it replaces, or 0.
  pid_t promote(const process& p) noexcept;

  // spawning → starting → ready → stopping → exited, a starting worker may
  // be stopped, and any may exit.
  static bool allowed(worker_state from, worker_state to) noexcept;
  // The only place a worker's state changes; false (and no change) for a
  // transition the life cycle does not have.
  bool set_state(process& p, worker_state to) noexcept;

 private:
  std::vector<slot_state> slots_;
  map procs_;
};

}  // namespace ufork
