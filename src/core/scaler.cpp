#include "core/scaler.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <utility>

#include "sys/fd.hpp"
#include "sys/socket.hpp"

namespace ufork {

scaler::scaler(int min, int max, clock::duration idle)
    : min_(min), max_(max), idle_(idle), needed_at_(static_cast<std::size_t>(std::max(max, 0)) + 1) {}

int scaler::look(int busy, int queued, clock::time_point now) {
  int needed = std::min(busy + queued, max_);
  for (int k = 1; k <= needed; ++k) needed_at_[static_cast<std::size_t>(k)] = now;
  return target(now);
}

int scaler::target(clock::time_point now) const {
  int peak = 0;  // needed_at_ falls as k rises: the last k still within idle_
  while (peak < max_ && needed_at_[static_cast<std::size_t>(peak) + 1] != clock::time_point{} &&
         now - needed_at_[static_cast<std::size_t>(peak) + 1] < idle_)
    ++peak;
  return std::clamp(peak + 1, min_, max_);
}

std::optional<scaler::clock::time_point> scaler::shrink_at(int size) const {
  if (size <= min_) return std::nullopt;
  // target() < size once no look has needed size - 1 workers for idle_.
  auto last = needed_at_[static_cast<std::size_t>(std::min(size - 1, max_))];
  return last == clock::time_point{} ? clock::time_point{} : last + idle_;
}

listen_watch::listen_watch(reactor& loop, const std::function<void()>& on_connection) : loop_(loop) {
  auto own = sys::owned_fds();
  for (int fd : sys::open_fds()) {
    if (std::binary_search(own.begin(), own.end(), fd) || !sys::is_listening(fd)) continue;
    sockets_.push_back({fd, sys::address_of(fd), !sys::accept_queue(fd)});
  }
  for (auto& s : sockets_)
    s.token = loop_.add(s.fd, EPOLLIN | EPOLLONESHOT, [on_connection](std::uint32_t) { on_connection(); });
}

listen_watch::~listen_watch() {
  for (auto& s : sockets_) loop_.remove(s.token);
}

int listen_watch::look() {
  int sum = 0;
  for (auto& s : sockets_)
    if (auto n = sys::accept_queue(s.fd)) sum += s.queued = *n;
  return sum;
}

void listen_watch::arm() {
  for (auto& s : sockets_) loop_.modify(s.token, EPOLLIN | EPOLLONESHOT);
}

}  // namespace ufork
