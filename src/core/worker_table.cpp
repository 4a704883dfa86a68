#include "core/worker_table.hpp"

namespace ufork {

void worker_table::resize(int n) {
  if (n > slot_count()) slots_.resize(static_cast<std::size_t>(n));
}

process& worker_table::insert(std::unique_ptr<process> p, bool incoming) {
  slot_state& s = slot(p->slot);
  (incoming ? s.incoming : s.current) = p->pid;
  process& ref = *p;
  procs_.emplace(p->pid, std::move(p));
  return ref;
}

process& worker_table::insert_outgoing(std::unique_ptr<process> p) {
  process& ref = *p;
  procs_.emplace(p->pid, std::move(p));
  return ref;
}

process* worker_table::find(pid_t pid) noexcept {
  auto it = procs_.find(pid);
  return it == procs_.end() ? nullptr : it->second.get();
}

const process* worker_table::find(pid_t pid) const noexcept {
  auto it = procs_.find(pid);
  return it == procs_.end() ? nullptr : it->second.get();
}

process* worker_table::current(int i) noexcept {
  if (i < 0 || i >= slot_count()) return nullptr;
  return find(slot(i).current);
}

std::unique_ptr<process> worker_table::remove(pid_t pid) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return nullptr;
  auto p = std::move(it->second);
  procs_.erase(it);
  return p;
}

bool worker_table::release(const process& p) noexcept {
  slot_state& s = slot(p.slot);
  if (s.incoming == p.pid) {
    s.incoming = 0;
    return false;
  }
  if (s.current != p.pid) return false;  // outgoing already
  s.current = std::exchange(s.incoming, 0);
  return s.current == 0;
}

pid_t worker_table::promote(const process& p) noexcept {
  slot_state& s = slot(p.slot);
  if (s.incoming != p.pid) return 0;
  s.incoming = 0;
  return std::exchange(s.current, p.pid);
}

bool worker_table::allowed(worker_state from, worker_state to) noexcept {
  using ws = worker_state;
  switch (to) {
    case ws::spawning: return false;
    case ws::starting: return from == ws::spawning;
    case ws::ready: return from == ws::starting;
    case ws::stopping: return from == ws::starting || from == ws::ready;
    case ws::exited: return from != ws::exited;
  }
  return false;
}

bool worker_table::set_state(process& p, worker_state to) noexcept {
  if (!allowed(p.state, to)) return false;
  p.state = to;
  return true;
}

}  // namespace ufork
