// Where the lines of the pool go: each whole line that a worker writes to its
// stdout or stderr, and the arbiter's own messages, tagged with their origin.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string_view>

namespace ufork {

enum class stream { out, err, arbiter };

struct log_line {
  int worker;             // slot id 0..size-1, or -1 for the arbiter itself
  pid_t pid;              // the process that wrote it
  enum stream stream;
  std::string_view text;  // one line without its newline; valid during the call
};

// A sink is called on the arbiter's thread, one line at a time, synchronously:
// while it blocks, the arbiter reads no more output, so the workers' pipes
// fill and their writes block (backpressure). Nothing is dropped.
class log_sink {
 public:
  virtual ~log_sink() = default;
  virtual void write(const log_line& line) = 0;
  // Called after each batch of events: a buffering sink writes out here.
  virtual void flush() {}
  // SIGUSR1: a sink that owns a file reopens it (for logrotate).
  virtual void reopen() {}
};

// Writes "[worker 3 pid 4312] text" (stdout), "[worker 3 pid 4312 err] text"
// (stderr) and "[ufork] text" (the arbiter) to fd, buffered until flush().
// Does not take ownership of fd. Blocks when fd is full (backpressure).
std::shared_ptr<log_sink> make_fd_sink(int fd);

// Calls fn for each line; flush() and reopen() do nothing.
std::shared_ptr<log_sink> make_callback_sink(std::function<void(const log_line&)> fn);

// "[worker 3 pid 4312] " and friends: the prefix make_fd_sink writes.
std::string format_prefix(const log_line& line);

}  // namespace ufork
