// The shared mapping behind the heartbeats. Pages are touched only as cells
// are used, so the capacity costs address space, not memory.
#include "core/scoreboard.hpp"

#include <algorithm>
#include <new>


#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork::detail {

scoreboard::scoreboard(std::size_t cells, int fd) : fd_(fd), size_(cells) {
  if (!fd_) {
    auto made = sys::make_shared_memory("ufork-scoreboard", cells * sizeof(cell));
    if (!made) throw error(made.error(), "memfd_create(scoreboard)");
    fd_ = std::move(made).value();
  }
  auto p = sys::map_shared(fd_.get(), cells * sizeof(cell));
  if (!p) throw error(p.error(), "mmap(scoreboard)");
  cells_ = static_cast<cell*>(p.value());
  free_.reserve(cells);
  for (std::size_t i = cells; i-- > 0;) free_.push_back(fd < 0 ? new (&cells_[i]) cell : &cells_[i]);
}

scoreboard::~scoreboard() { sys::unmap(cells_, size_ * sizeof(cell)); }

cell* scoreboard::acquire() noexcept {
  if (free_.empty()) return nullptr;
  cell* c = free_.back();
  free_.pop_back();
  c->beat_ns.store(0, std::memory_order_relaxed);
  c->requests.store(0, std::memory_order_relaxed);
  c->request_limit.store(0, std::memory_order_relaxed);
  c->refork_at.store(0, std::memory_order_relaxed);
  c->become_mold.store(false, std::memory_order_relaxed);
  c->in_flight.store(0, std::memory_order_relaxed);
  c->busy_wake.store(false, std::memory_order_relaxed);
  c->connections.store(0, std::memory_order_relaxed);
  c->accepting.store(false, std::memory_order_relaxed);
  return in_use(c);
}

// A worker that died accepting said nothing more: it takes no connection now.
void scoreboard::release(cell* c) noexcept {
  c->accepting.store(false, std::memory_order_relaxed);
  c->connections.store(0, std::memory_order_relaxed);
  free_.push_back(c);
}

cell* scoreboard::in_use(cell* c) noexcept {
  auto high = static_cast<std::uint32_t>(index(c) + 1);
  if (high > cells_[0].board_high.load(std::memory_order_relaxed))
    cells_[0].board_high.store(high, std::memory_order_relaxed);
  return c;
}

cell* scoreboard::adopt(std::size_t index) noexcept {
  if (index >= size_) return nullptr;
  auto it = std::find(free_.begin(), free_.end(), &cells_[index]);
  if (it == free_.end()) return nullptr;
  free_.erase(it);
  return in_use(&cells_[index]);
}

}  // namespace ufork::detail
