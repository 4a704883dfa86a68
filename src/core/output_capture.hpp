// Output capture: the workers' stdout and stderr pipes, and in daemon mode
// the arbiter's own fd 1 and 2, cut into whole lines (line_splitter.hpp),
// each handed to `emit` with its slot, pid and stream. One read per event
// and pipe, so a flooding worker cannot starve the others or the loop.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "core/reactor.hpp"
#include "core/worker_table.hpp"
#include "ufork/log.hpp"

namespace ufork {

class output_capture {
 public:
  using emit_fn = std::function<void(const log_line&)>;
  // The pipe of a worker still in the table, and its slot (nullptr: gone;
  // its pipe is not read again).
  using find_fn = std::function<output*(pid_t pid, stream_kind s, int& slot)>;
  output_capture(reactor& loop, std::size_t max_line, emit_fn emit, find_fn find);
  ~output_capture();
  output_capture(const output_capture&) = delete;
  output_capture& operator=(const output_capture&) = delete;

  // Reads the pid's pipes (those open) whenever they are readable, from now on.
  void watch(pid_t pid, output& out, output& err);
  // The worker has exited: everything it wrote is already in its pipes;
  // read to the end, the last line even without its newline, and close.
  // What its leftover children might still write is cut off.
  void drain(int slot, pid_t pid, output& out, output& err);
  // Daemon mode: fd 1 and 2 become a pipe this reads (a library's warning,
  // an uncaught exception's message become log lines); after an upgrade,
  // the pipe the old image made (carried as "capture"). Throws ufork::error.
  void capture_own();

 private:
  void watch(pid_t pid, output& o, stream_kind s);
  bool read_once(int slot, pid_t pid, output& o, stream_kind s);
  void close(int slot, pid_t pid, output& o, stream_kind s);

  reactor& loop_;
  std::size_t max_line_;
  emit_fn emit_;
  find_fn find_;
  std::vector<char> buf_;
  std::unique_ptr<output> own_;  // capture_own()
};

}  // namespace ufork
