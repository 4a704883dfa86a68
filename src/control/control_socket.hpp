// control_server: the control socket. A unix stream socket, 0600, peers
// checked with SO_PEERCRED; one command per line in, one line out. It knows
// nothing of what the commands mean, and no client can block the loop: all
// I/O is non-blocking, lines and unread answers are capped, clients too.
// A client that sends `follow [--json] [--events] [--worker N]` is answered
// once, then sent the pool's lines as they come (publish), until it goes or
// falls more than max_unread behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/reactor.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/log.hpp"

namespace ufork {

// What `follow [--json] [--events] [--worker ID]` asks for.
struct follow_spec {
  bool json = false;    // one JSON object per line (format_line) instead of "[worker ...] text"
  bool events = false;  // the arbiter's own lines too: spawns, readiness, exits, hangs, reloads
  int worker = -1;      // only this worker's output; -1: every worker's
};
// The spec of a `follow` line, or why it is wrong. Pure, for the fuzzer too.
std::variant<follow_spec, std::string> parse_follow(std::string_view line);

class control_server {
 public:
  // One line, no newline; client_fd is the asking client's socket.
  using answer_fn = std::function<std::string(std::string_view line, int client_fd)>;
  using log_fn = std::function<void(const std::string&)>;

  static constexpr std::size_t max_line = 64UL * 1024;
  static constexpr std::size_t max_unread = 1024UL * 1024;  // answers a client has not read

  // Throws ufork::error: path too long, not a socket, another arbiter
  // answers there, or a failed syscall. A stale socket file is replaced.
  // After an in-place upgrade, the old image's listener is taken back.
  control_server(reactor& loop, std::string path, int max_clients, answer_fn answer, log_fn log);
  ~control_server();  // closes every connection and removes the socket file

  // Out of fds, the listener waits outside epoll; the loop calls this after
  // each turn (cheap unless out of fds lately) to take it back once an fd is
  // free, and says so once a second has passed without the table filling
  // again. It also logs the refusals counted since the last line, once a
  // second is up.
  void resume_if_fds_free();
  // One line of the pool to the followers that want it, queued; written by
  // flush_followers(), once per batch (the sink's flush).
  void publish(const log_line& line);
  void flush_followers();
  control_server(const control_server&) = delete;
  control_server& operator=(const control_server&) = delete;

 private:
  struct client {
    sys::unique_fd fd;
    std::optional<follow_spec> follow;
    reactor::token token = 0;
    std::string in, out;
    bool closing = false;  // close once `out` is written
    std::uint32_t events = 0;  // what its registration waits for
  };
  void on_accept();
  void out_of_fds();
  void on_client(std::uint64_t id, std::uint32_t events);
  void read_lines(client& c);
  std::string start_following(client& c, std::string_view line);  // the answer
  bool write_out(client& c);  // false: the client is gone
  void drop(std::uint64_t id);
  void refuse(sys::unique_fd fd, const std::string& why);
  // A refused client, logged at most once a second (a flood of clients must
  // not flood the log): the first at once, the rest counted.
  void log_refusal(const std::string& line);
  void log_refusals_due();

  reactor& loop_;
  std::string path_;
  int max_clients_;
  answer_fn answer_;
  log_fn log_;
  sys::unique_fd listen_, reserve_;
  reactor::token listen_token_ = 0;
  bool paused_ = false;   // out of fds: the listener is not watched
  bool starved_ = false;  // out of fds lately: said, and "accepting again" not yet said
  int pauses_ = 0;        // times the table filled while starved_
  std::chrono::steady_clock::time_point resumed_at_{};
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, client> clients_;
  int followers_ = 0;  // clients with `follow`: none, and a line costs nothing here
  std::uint64_t followers_dropped_ = 0;
  std::uint64_t refusals_unlogged_ = 0;
  std::string last_refusal_;
  std::chrono::steady_clock::time_point refusal_logged_{};  // since the last flush_followers(), which logs them
};

}  // namespace ufork
