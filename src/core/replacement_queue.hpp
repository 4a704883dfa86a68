// The replacement queue that a reload, a restart, the upgrade's reload and
// recycling share: slots whose worker is replaced by a successor that is
// ready before it stops, in the order they came, an operator's reload one
// successor at a time, recycling alone options::recycle.at_once at a time.
// It holds the order and the reload's name; the pool forks (supervise.cpp)
// and tells it how many successors are starting. Pure. Internal.
#pragma once

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

namespace ufork {

class replacement_queue {
 public:
  // Slots wait, or `starting` successors are starting: another reload is refused.
  bool busy(int starting) const noexcept { return !slots_.empty() || starting > 0; }
  // An operator's reload ("reload", "restart"): false, and nothing changes, when busy.
  bool reload(const std::vector<int>& slots, const char* name, int starting) {
    if (busy(starting)) return false;
    slots_.assign(slots.begin(), slots.end());
    reload_ = name;
    return true;
  }
  // A worker past a recycling limit: its slot joins the end, once.
  void recycle(int slot) {
    if (std::find(slots_.begin(), slots_.end(), slot) == slots_.end()) slots_.push_back(slot);
  }
  // The next slot whose successor may start, with `starting` starting now;
  // nullopt: none yet.
  std::optional<int> next(int starting, int recycle_at_once) {
    int at_once = reload_ ? 1 : std::max(1, recycle_at_once);
    if (slots_.empty() || starting >= at_once) return std::nullopt;
    int slot = slots_.front();
    slots_.pop_front();
    return slot;
  }
  // A successor failed: the slots not replaced yet keep their workers.
  void abandon() noexcept {
    slots_.clear();
    reload_ = nullptr;
  }
  // The operator's reload has ended (no slot waits, no successor starts, no
  // predecessor it replaced is still stopping): its name, once; else null.
  const char* finished(int starting, bool predecessors_stopping) noexcept {
    if (!reload_ || busy(starting) || predecessors_stopping) return nullptr;
    return std::exchange(reload_, nullptr);
  }

 private:
  std::deque<int> slots_;
  const char* reload_ = nullptr;  // the operator's reload under way (its name in the log); null: recycling only
};

}  // namespace ufork
