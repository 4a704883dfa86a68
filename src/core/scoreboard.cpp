// The shared mapping behind the heartbeats. Pages are touched only as cells
// are used, so the capacity costs address space, not memory.
#include "core/scoreboard.hpp"

#include <new>

#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork::detail {

scoreboard::scoreboard(std::size_t cells) : size_(cells) {
  auto p = sys::map_shared(cells * sizeof(cell));
  if (!p) throw error(p.error(), "mmap(scoreboard)");
  cells_ = static_cast<cell*>(p.value());
  free_.reserve(cells);
  for (std::size_t i = cells; i-- > 0;) free_.push_back(new (&cells_[i]) cell);
}

scoreboard::~scoreboard() { sys::unmap(cells_, size_ * sizeof(cell)); }

cell* scoreboard::acquire() noexcept {
  if (free_.empty()) return nullptr;
  cell* c = free_.back();
  free_.pop_back();
  c->beat_ns.store(0, std::memory_order_relaxed);
  c->requests.store(0, std::memory_order_relaxed);
  c->request_limit.store(0, std::memory_order_relaxed);
  return c;
}

void scoreboard::release(cell* c) noexcept { free_.push_back(c); }

}  // namespace ufork::detail
