// Where the lines of the pool go: each whole line that a worker writes to its
// stdout or stderr, and the arbiter's own messages, tagged with their origin.
#pragma once

#include "ufork/export.hpp"

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>
#include <memory>
#include <string_view>

namespace ufork {

enum class stream_kind { out, err, arbiter };

struct log_line {
  int id;                 // slot id 0..size-1, or -1 for the arbiter itself
  pid_t pid;              // the process that wrote it
  stream_kind stream;
  std::string_view text;  // one line without its newline; valid during the call
};

// A sink is called on the arbiter's thread, one line at a time, synchronously:
// while it blocks, the arbiter reads no more output, so the workers' pipes
// fill and their writes block (backpressure). Nothing is dropped.
class UFORK_API log_sink {
 public:
  virtual ~log_sink() = default;
  virtual void write(const log_line& line) = 0;
  // Called after each batch of events: a buffering sink writes out here.
  virtual void flush() {}
  // SIGUSR1: a sink that owns a file reopens it (for logrotate).
  virtual void reopen() {}
  // Lines it could not write (a full disk, an unwritable file), so far.
  virtual std::uint64_t lost() const { return 0; }
};

enum class log_format { plain, json };

// "2026-11-25T21:40:00.123Z [worker 3 pid 4312] text", or one JSON object
// {"time","id","pid","stream","line"} per line.
UFORK_API std::string format_line(const log_line& line, log_format format);

struct file_sink_options {
  std::string path;
  std::size_t max_size = 8UL * 1024 * 1024;  // rotate past this many bytes
  std::size_t files = 8;                   // PATH, PATH.1 ... kept in all
  log_format format = log_format::plain;
};

// A size-rotated file set (uFork's default: 8 files of 8 MiB). Throws
// ufork::error if the file cannot be opened; later failures (a full disk)
// are counted in lost() and retried once a second. reopen() opens PATH
// again, for logrotate. Not for workers: the arbiter's thread only.
UFORK_API std::shared_ptr<log_sink> make_file_sink(const file_sink_options& options);
// syslog(3), facility LOG_DAEMON, as `ident`.
UFORK_API std::shared_ptr<log_sink> make_syslog_sink(const std::string& ident, log_format format = log_format::plain);
// Every line to each of sinks.
UFORK_API std::shared_ptr<log_sink> make_tee_sink(std::vector<std::shared_ptr<log_sink>> sinks);

// Writes "[worker 3 pid 4312] text" (stdout), "[worker 3 pid 4312 err] text"
// (stderr) and "[ufork] text" (the arbiter) to fd, buffered until flush().
// Does not take ownership of fd. Blocks when fd is full (backpressure).
UFORK_API std::shared_ptr<log_sink> make_fd_sink(int fd);

// Calls fn for each line; flush() and reopen() do nothing.
UFORK_API std::shared_ptr<log_sink> make_callback_sink(std::function<void(const log_line&)> fn);

// "[worker 3 pid 4312] " and friends: the prefix make_fd_sink writes.
UFORK_API std::string format_prefix(const log_line& line);

}  // namespace ufork
