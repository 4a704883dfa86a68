// The epoll loop. Handlers run one at a time on the loop's thread; a handler
// may add or remove registrations, its own included.
#include "core/reactor.hpp"

#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "sys/event.hpp"
#include "ufork/error.hpp"

namespace ufork {

reactor::reactor() {
  auto ep = sys::make_epoll();
  if (!ep) throw error(ep.error(), "epoll_create1");
  epoll_ = std::move(ep).value();
  auto tfd = sys::make_timerfd();
  if (!tfd) throw error(tfd.error(), "timerfd_create");
  timer_ = std::move(tfd).value();
  add(timer_.get(), EPOLLIN, [this](std::uint32_t) { (void)sys::drain_counter(timer_.get()); });
}

reactor::token reactor::add(int fd, std::uint32_t events, handler h) {
  token t = next_++;
  if (auto ec = sys::epoll_add(epoll_.get(), fd, events, t)) throw error(ec, "epoll_ctl(ADD)");
  entries_.emplace(t, std::make_unique<entry>(entry{fd, std::move(h)}));
  return t;
}

void reactor::remove(token t) noexcept {
  auto it = entries_.find(t);
  if (it == entries_.end()) return;
  // Our own bookkeeping says the fd is registered: failing here is our bug.
  if (auto ec = sys::epoll_remove(epoll_.get(), it->second->fd); ec && ec != std::errc::bad_file_descriptor) {
    std::perror("ufork: epoll_ctl(DEL)");
    std::abort();
  }
  removed_.push_back(std::move(it->second));
  entries_.erase(it);
}

void reactor::modify(token t, std::uint32_t events) {
  auto it = entries_.find(t);
  if (it == entries_.end()) return;
  if (auto ec = sys::epoll_modify(epoll_.get(), it->second->fd, events, t)) throw error(ec, "epoll_ctl(MOD)");
}

void reactor::arm(std::optional<clock::time_point> due) {
  clock::time_point at = due.value_or(clock::time_point{});  // the epoch: disarmed
  if (at == armed_) return;
  if (auto ec = sys::timerfd_arm(timer_.get(), at)) throw error(ec, "timerfd_settime");
  armed_ = at;
}

int reactor::run_once() {
  std::array<epoll_event, 64> events;
  auto waited = sys::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()));
  if (!waited) throw error(waited.error(), "epoll_wait");
  int n = waited.value();
  for (int i = 0; i < n; ++i) {
    auto it = entries_.find(events[i].data.u64);
    if (it == entries_.end()) continue;  // removed by an earlier handler
    if (it->second->fd == timer_.get()) armed_ = {};  // fired: disarmed by itself
    // A throwing handler (a user's sink, say) must not end supervision.
    try {
      it->second->fn(events[i].events);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ufork: event handler failed: %s\n", e.what());
    }
  }
  removed_.clear();
  return n;
}

}  // namespace ufork
