// The daemon's sinks: a size-rotated file set and syslog, on spdlog used
// synchronously (the arbiter forks: no logger threads), in plain or JSON-lines
// format. A write that fails (a full disk) is counted, never thrown, and the
// file is tried again a second later: a line the failure cut short is cut
// off the file at once, and the first line written after is "N lines lost".
// At the end (the arbiter stops) the file is tried once more for that line;
// lines it still cannot take are counted on stderr.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/syslog_sink.h>
#include <syslog.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <chrono>

#include "sys/fd.hpp"
#include "sys/unique_fd.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"
#include "ufork/log.hpp"

namespace ufork {
namespace {

// A log file whose last line was cut short (a write that failed part-way: a
// full disk) ends at its last newline again. Nothing is done to a missing or
// empty file, or one that ends in a newline; best effort.
void cut_torn_tail(const std::string& path) {
  auto opened = sys::open_file(path.c_str(), O_RDWR);
  if (!opened) return;
  int fd = opened->get();
  auto size = sys::file_size(fd);
  if (!size || size.value() == 0) return;
  std::uint64_t end = size.value(), at = end;
  char buf[4096];
  while (at > 0) {  // back to the last newline, a block at a time
    std::uint64_t from = at > sizeof buf ? at - sizeof buf : 0;
    auto n = sys::read_at(fd, buf, at - from, from);
    if (!n) return;
    for (std::size_t i = n.value(); i-- > 0;)
      if (buf[i] == '\n') {
        if (from + i + 1 != end) (void)sys::truncate(fd, from + i + 1);
        return;
      }
    at = from;
  }
  (void)sys::truncate(fd, 0);  // no newline at all: one torn line
}

}  // namespace


std::string format_line(const log_line& line, log_format format) {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  if (format == log_format::json) {
    const char* s = line.stream == stream_kind::out ? "out" : line.stream == stream_kind::err ? "err" : "arbiter";
    nlohmann::json j{{"time", fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(now), ms)},
                     {"id", line.id >= 0 ? nlohmann::json(line.id) : nlohmann::json(nullptr)},
                     {"pid", line.pid},
                     {"stream", s},
                     {"line", line.text}};
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z {}{}", fmt::gmtime(now), ms, format_prefix(line), line.text);
}

namespace {

using clock = std::chrono::steady_clock;

// Shared by both sinks: an spdlog sink made (and made again) by make_, lines
// counted as lost while it cannot write.
class spdlog_sink : public log_sink {
 public:
  using factory = std::function<std::shared_ptr<spdlog::sinks::sink>()>;
  // make opens it; repair (may be empty) runs after a failed write closed it;
  // where names it on stderr.
  spdlog_sink(factory make, std::function<void()> repair, std::string where, log_format format)
      : make_(std::move(make)), repair_(std::move(repair)), where_(std::move(where)), format_(format) {
    try {
      open();
    } catch (const spdlog::spdlog_ex& e) {
      int saved = errno != 0 ? errno : EIO;  // what fopen or syslog left, as spdlog does
      // spdlog's text ends with errno's, which the error adds again.
      std::string what = e.what(), errno_text = ": " + std::system_category().message(saved);
      if (what.ends_with(errno_text)) what.resize(what.size() - errno_text.size());
      throw error(saved, std::system_category(), "log: " + what);
    }
  }

  spdlog_sink(const spdlog_sink&) = delete;
  spdlog_sink& operator=(const spdlog_sink&) = delete;

  ~spdlog_sink() override {
    if (sys::own_pid() != owner_) return;  // a worker's copy: the file is the arbiter's
    try {
      flush();
      if (unreported_ > 0 && !sink_) {  // one last try, not a second later
        retry_at_ = {};
        if (retry()) flush();
      }
      if (unreported_ == 0) return;
      std::string said = fmt::format("ufork: {} log lines lost at the end: {} could not be written\n", unreported_, where_);
      (void)sys::write_all(STDERR_FILENO, said.data(), said.size());  // best effort: nowhere else is left
    } catch (...) {  // a destructor: nothing is left to tell
    }
  }

  void write(const log_line& line) override {
    if (!sink_ && !retry()) {
      lose(1);
      return;
    }
    try {
      put(line);
      ++pending_;
    } catch (const spdlog::spdlog_ex&) {
      broken();
      lose(1);
    }
  }

  void flush() override {
    if (!sink_) return;
    try {
      sink_->flush();
      pending_ = 0;
      if (std::exchange(marker_pending_, false)) unreported_ = 0;  // the marker is in the file
    } catch (const spdlog::spdlog_ex&) {
      broken();
    }
  }

  void reopen() override {
    flush();
    close();  // the next line opens it by name again
    retry_at_ = {};
    (void)retry();
  }

  std::uint64_t lost() const override { return lost_; }

 private:
  void put(const log_line& line) {
    std::string text = format_line(line, format_);
    sink_->log(spdlog::details::log_msg(spdlog::string_view_t{}, spdlog::level::info, text));
  }

  void lose(std::uint64_t n) {
    lost_ += n;
    unreported_ += n;
  }

  void broken() {
    lose(pending_);  // buffered lines that never reached the file
    pending_ = 0;
    marker_pending_ = false;  // if one was among them, the next says it all again
    close();
    if (repair_) repair_();  // no half line stays in the file, even if it is never opened again
    retry_at_ = clock::now() + std::chrono::seconds(1);
  }

  // spdlog opens its file without telling us the fd: the registry learns it
  // from the fd table, so that no worker inherits the log file.
  void open() {
    fds_ = sys::own_new_fds([this] { sink_ = make_(); });
    sink_->set_pattern("%v");
  }

  void close() {
    sink_.reset();
    for (int fd : fds_) sys::disown_fd(fd);
    fds_.clear();
  }

  // Open again; the first line is then what was lost since the last such
  // line reached the file.
  bool retry() {
    if (clock::now() < retry_at_) return false;
    try {
      open();
      if (unreported_ > 0) {
        put({-1, sys::own_pid(), stream_kind::arbiter,
             fmt::format("{} lines lost: the log could not be written", unreported_)});
        marker_pending_ = true;
      }
      return true;
    } catch (const spdlog::spdlog_ex&) {
      if (sink_) close();
      retry_at_ = clock::now() + std::chrono::seconds(1);
      return false;
    }
  }

  factory make_;
  std::function<void()> repair_;
  std::string where_;
  log_format format_;
  pid_t owner_ = sys::own_pid();
  std::shared_ptr<spdlog::sinks::sink> sink_;
  std::vector<int> fds_;  // what the sink opened
  std::uint64_t pending_ = 0, lost_ = 0;
  std::uint64_t unreported_ = 0;  // lost, and not yet said in the file by a marker line
  bool marker_pending_ = false;   // a marker is written, not yet flushed
  clock::time_point retry_at_{};
};

class tee_sink final : public log_sink {
 public:
  explicit tee_sink(std::vector<std::shared_ptr<log_sink>> sinks) : sinks_(std::move(sinks)) {}
  void write(const log_line& line) override {
    for (auto& s : sinks_) s->write(line);
  }
  void flush() override {
    for (auto& s : sinks_) s->flush();
  }
  void reopen() override {
    for (auto& s : sinks_) s->reopen();
  }
  std::uint64_t lost() const override {
    std::uint64_t n = 0;
    for (const auto& s : sinks_) n += s->lost();
    return n;
  }

 private:
  std::vector<std::shared_ptr<log_sink>> sinks_;
};

}  // namespace

std::shared_ptr<log_sink> make_file_sink(const file_sink_options& o) {
  if (o.files < 1 || o.max_size < 1) throw_invalid("a log file set needs files >= 1 and max_size >= 1");
  auto repair = [path = o.path] { cut_torn_tail(path); };  // a line a failed write left half-written
  auto make = [o, repair] {
    repair();  // a process that died mid-write left it
    return std::make_shared<spdlog::sinks::rotating_file_sink_st>(o.path, o.max_size, o.files - 1);
  };
  return std::make_shared<spdlog_sink>(make, repair, o.path, o.format);
}

std::shared_ptr<log_sink> make_syslog_sink(const std::string& ident, log_format format) {
  // LOG_NDELAY: the socket is opened now, so the registry sees it; workers
  // close it with closelog() (glibc would otherwise write to, and later
  // close, an fd number the worker may have reused).
  auto make = [ident] {
    return std::make_shared<spdlog::sinks::syslog_sink_st>(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON, false);
  };
  auto sink = std::make_shared<spdlog_sink>(make, nullptr, "syslog", format);
  sys::syslog_open.store(true, std::memory_order_relaxed);
  return sink;
}

std::shared_ptr<log_sink> make_tee_sink(std::vector<std::shared_ptr<log_sink>> sinks) {
  return std::make_shared<tee_sink>(std::move(sinks));
}

}  // namespace ufork
