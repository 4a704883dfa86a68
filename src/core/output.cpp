// The workers' stdout and stderr: read what is there, cut it into lines, hand
// each whole line to the sink. One read per event and pipe, so a flooding
// worker cannot starve the others or the loop.
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdio>

#include "core/pool.hpp"
#include "sys/carry.hpp"
#include "sys/fd.hpp"
#include "sys/result.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {

void pool::watch_output(process& p, output& o, stream_kind s) {
  pid_t pid = p.pid;
  o.token = loop_.add(o.fd.get(), EPOLLIN, [this, pid, &o, s](std::uint32_t) {
    if (process* p = table_.find(pid)) (void)on_output(p->slot, pid, o, s);
  });
}

// One read; closes the stream at EOF or on an error. Returns whether the
// pipe may hold more.
bool pool::on_output(int slot, pid_t pid, output& o, stream_kind s) {
  auto n = sys::read(o.fd.get(), buf_.data(), buf_.size());
  if (!n && sys::would_block(n.error())) return false;
  if (!n || n.value() == 0) {
    close_output(slot, pid, o, s);
    return false;
  }
  auto emit = [&](std::string_view line) { opts_.sink->write({slot, pid, s, line}); };
  o.lines.feed(std::string_view(buf_.data(), n.value()), emit);
  return true;
}

// The worker has exited: everything it wrote is already in the pipes. What
// its leftover children might still write is cut off (they die with it).
void pool::drain_output(process& p) {
  for (auto [o, s] : {std::pair{&p.out, stream_kind::out}, std::pair{&p.err, stream_kind::err}}) {
    while (on_output(p.slot, p.pid, *o, s)) {
    }
    close_output(p.slot, p.pid, *o, s);
  }
}

void pool::close_output(int slot, pid_t pid, output& o, stream_kind s) {
  if (!o.fd) return;
  o.lines.finish([&](std::string_view line) { opts_.sink->write({slot, pid, s, line}); });
  loop_.remove(o.token);
  o.fd.reset();
}

// Daemon mode: what the arbiter process itself writes to fd 1 and 2 (a
// library's warning, an uncaught exception's message) becomes log lines too.
void pool::capture_own_output() {
  own_output_ = std::make_unique<output>(opts_.max_line);
  if (int fd = sys::take_carried("capture"); fd >= 0) {  // after an upgrade: fd 1 and 2 write there already
    sys::own_fd(fd);
    own_output_->fd.reset(fd);
  } else {
    auto ends = sys::make_pipe(0);
    if (!ends) throw error(ends.error(), "pipe(capture_output)");
    std::fflush(nullptr);
    for (int target : {STDOUT_FILENO, STDERR_FILENO})
      if (auto ec = sys::dup_onto(ends->write.get(), target)) throw error(ec, "dup2(capture_output)");
    own_output_->fd = std::move(ends->read);
  }
  sys::carry(own_output_->fd.get(), "capture");
  own_output_->token = loop_.add(own_output_->fd.get(), EPOLLIN, [this](std::uint32_t) {
    (void)on_output(-1, sys::own_pid(), *own_output_, stream_kind::arbiter);
  });
}

}  // namespace ufork
