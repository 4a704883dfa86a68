#include "core/output_capture.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "sys/carry.hpp"
#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {

output_capture::output_capture(reactor& loop, std::size_t max_line, emit_fn emit, find_fn find)
    : loop_(loop), max_line_(max_line), emit_(std::move(emit)), find_(std::move(find)), buf_(256UL * 1024) {}

output_capture::~output_capture() {
  if (own_) loop_.remove(own_->token);
}

void output_capture::watch(pid_t pid, output& out, output& err) {
  if (out.fd) watch(pid, out, stream_kind::out);
  if (err.fd) watch(pid, err, stream_kind::err);
}

void output_capture::watch(pid_t pid, output& o, stream_kind s) {
  o.token = loop_.add(o.fd.get(), EPOLLIN, [this, pid, s](std::uint32_t) {
    int slot = -1;
    if (output* found = find_(pid, s, slot)) (void)read_once(slot, pid, *found, s);
  });
}

// One read; closes the stream at EOF or on an error. Returns whether the
// pipe may hold more.
bool output_capture::read_once(int slot, pid_t pid, output& o, stream_kind s) {
  auto n = sys::read(o.fd.get(), buf_.data(), buf_.size());
  if (!n && sys::would_block(n.error())) return false;
  if (!n || n.value() == 0) {
    close(slot, pid, o, s);
    return false;
  }
  o.lines.feed(std::string_view(buf_.data(), n.value()), [&](std::string_view line) { emit_({slot, pid, s, line}); });
  return true;
}

void output_capture::drain(int slot, pid_t pid, output& out, output& err) {
  for (auto [o, s] : {std::pair{&out, stream_kind::out}, std::pair{&err, stream_kind::err}}) {
    while (read_once(slot, pid, *o, s)) {
    }
    close(slot, pid, *o, s);
  }
}

void output_capture::close(int slot, pid_t pid, output& o, stream_kind s) {
  if (!o.fd) return;
  o.lines.finish([&](std::string_view line) { emit_({slot, pid, s, line}); });
  loop_.remove(o.token);
  o.fd.reset();
}

void output_capture::capture_own() {
  own_ = std::make_unique<output>(max_line_);
  if (int fd = sys::take_carried("capture"); fd >= 0) {  // after an upgrade: fd 1 and 2 write there already
    sys::own_fd(fd);
    own_->fd.reset(fd);
  } else {
    auto ends = sys::make_pipe(0);
    if (!ends) throw error(ends.error(), "pipe(capture_output)");
    std::fflush(nullptr);
    for (int target : {STDOUT_FILENO, STDERR_FILENO})
      if (auto ec = sys::dup_onto(ends->write.get(), target)) throw error(ec, "dup2(capture_output)");
    own_->fd = std::move(ends->read);
  }
  sys::carry(own_->fd.get(), "capture");
  own_->token = loop_.add(own_->fd.get(), EPOLLIN, [this](std::uint32_t) {
    (void)read_once(-1, sys::own_pid(), *own_, stream_kind::arbiter);
  });
}

}  // namespace ufork
