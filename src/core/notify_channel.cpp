#include "core/notify_channel.hpp"

#include <sys/epoll.h>

#include <atomic>
#include <utility>

#include <fmt/format.h>

#include "sys/process.hpp"
#include "sys/procfs.hpp"
#include "sys/socket.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {

template <class T>
T must(sys::result<T> r, const char* what) {
  if (!r) throw error(r.error(), what);
  return std::move(r).value();
}

}  // namespace

notify_channel::notify_channel(reactor& loop, const upgrade::state* up, bool named, bool exec_mode,
                               is_worker_fn is_worker, deliver_fn deliver)
    : is_worker_(std::move(is_worker)), deliver_(std::move(deliver)), exec_mode_(exec_mode) {
  if (up) {  // the workers' socket pair, as they know it
    rx_.reset(upgrade::take(up->notify_rx));
    tx_.reset(upgrade::take(up->notify_tx));
  } else {
    auto [rx, tx] = must(sys::make_notify_pair(), "socketpair(notify)");
    rx_ = std::move(rx);
    tx_ = std::move(tx);
  }
  loop.add(rx_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(rx_.get()); });
  if (!named) return;
  if (up && up->exec_notify >= 0) {  // the name the workers were given
    named_.reset(upgrade::take(up->exec_notify));
    name_ = up->notify_name;
  } else {
    static std::atomic<unsigned> pools{0};
    // Abstract names have no owner: a random part keeps another process
    // from taking it first (anyone may still send to it: worker_of checks).
    std::string name = fmt::format("ufork-{}-{}-{:08x}", sys::own_pid(), pools++, sys::random_seed());
    named_ = must(sys::make_notify_listener(name), "notify socket");
    name_ = "@" + name;
  }
  loop.add(named_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(named_.get()); });
}

void notify_channel::handover(upgrade::state& s) const {
  s.notify_rx = rx_.get();
  s.notify_tx = tx_.get();
  s.exec_notify = named_ ? named_.get() : -1;
  s.notify_name = name_;
}

// A batch at a time; what is left is read next turn (the fd stays readable).
void notify_channel::on_readable(int fd) {
  constexpr int batch = 64;
  char text[4096];
  for (int n = 0; n < batch; ++n) {
    sys::unique_fd passed;
    auto d = sys::receive_with_credentials(fd, text, sizeof text, &passed);
    if (!d) return;  // EAGAIN: all read
    deliver_(worker_of(d->sender), std::string_view(text, d->size), std::move(passed));
  }
}

// Who may speak for a slot: its worker, or a process the worker started;
// nobody else. The sender may be gone by now (0, or no /proc entry): it
// cannot be placed.
pid_t notify_channel::worker_of(pid_t sender) {
  if (sender <= 0) return 0;
  if (is_worker_(sender)) return sender;
  if (!exec_mode_) return 0;  // library workers speak for themselves
  // A process in a worker's group (one syscall), else up its parents (/proc),
  // unless it was found a stranger already (a flood costs a lookup each).
  if (pid_t group = sys::process_group_of(sender); is_worker_(group)) return group;
  if (strangers_.count(sender) != 0) return 0;
  for (pid_t up = sys::parent_of(sender), depth = 0; up > 1 && depth < 32; up = sys::parent_of(up), ++depth)
    if (is_worker_(up)) return up;
  if (strangers_.size() >= 1024) strangers_.clear();
  strangers_.insert(sender);
  return 0;
}

}  // namespace ufork
