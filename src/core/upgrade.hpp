// The in-place upgrade: the arbiter execs its program again (by the path it
// was started from, so a new build at that path runs), keeping its pid, its
// children and every fd they need; the new image adopts the pool from a
// state it reads from a memfd, then replaces the workers as a reload does.
// Until it has adopted the pool, a failure it can see (a state it cannot
// read, an exception or exit before run(), a fatal signal) execs the old
// image again with the same state, and the old image adopts the pool back.
//
// The state is text in a small versioned format: a header line, then one
// record per line, each a word and its fields; a string field is LEN:BYTES.
// Internal.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/worker_record.hpp"
#include "ufork/arbiter.hpp"

namespace ufork::upgrade {

// 2: the worker's fields through one list (core/worker_record.hpp), enums by name.
inline constexpr const char* state_header = "ufork-upgrade";
inline constexpr int format_version = 2;

enum class worker_role { current, incoming, outgoing };  // in its slot (worker_table.hpp)
const char* to_string(worker_role r) noexcept;

// An fd the state names: -1 (none) or one above stdio.
struct carried_fd {
  int fd = -1;
  bool operator==(const carried_fd&) const = default;
};

// A worker as the old image had it: what it carries (worker_persisted), its
// place, its scoreboard cell and its fds. Written and read through
// for_each_field alone.
struct worker_record {
  worker_persisted saved;
  worker_state state = worker_state::starting;
  worker_role role = worker_role::current;
  std::uint64_t cell = 0;  // its scoreboard cell
  carried_fd pidfd, out, err, setup;
  std::string out_pending, err_pending;  // a line half-written when the exec came

  bool operator==(const worker_record&) const = default;
};

template <class R, class F>  // R: worker_record, const or not
void for_each_field(R& r, F&& f) {
  auto& [saved, state, role, cell, pidfd, out, err, setup, out_pending, err_pending] = r;
  ufork::for_each_field(saved, f);
  f("state", state);
  f("role", role);
  f("cell", cell);
  f("pidfd", pidfd);
  f("out", out);
  f("err", err);
  f("setup", setup);
  f("out_pending", out_pending);
  f("err_pending", err_pending);
}

struct state {
  pid_t from = 0;           // the arbiter's pid: the same after the exec, or the state is not ours
  int board = -1;           // the scoreboard's memfd
  int notify_rx = -1, notify_tx = -1;
  int exec_notify = -1;     // exec mode's NOTIFY_SOCKET, and its name
  std::string notify_name;
  rlimit nofile{};          // the fd limit before the first image raised it
  int reply = -1;           // the control client that asked, answered by the image that adopts
  int size = 0;
  std::vector<unsigned> generations;
  pool_counters counters;
  std::uint64_t requests_of_exited = 0;
  std::vector<worker_record> workers;
  std::vector<exit_info> dead;
  std::string failure;      // not in the text: set when a new image gave up (UFORK_UPGRADE_FAILED)

  // Every fd the state names, for the exec.
  std::vector<int> fds() const;
};

std::string encode(const state& s);
// The state, or why it is rejected.
std::variant<state, std::string> decode(std::string_view text);

// This process was exec'd by an upgrade (UFORK_UPGRADE_STATE): the state it
// was given, decoded once; null otherwise. A state it cannot read rolls
// back at once (does not return).
const state* incoming();
// A close-on-exec copy of an fd the state names, one of ufork's own (-1
// for -1): the original stays as it came until commit(), so that a new image
// that fails after taking it can still hand the state back whole. Throws
// ufork::error.
int take(int fd);
// The pool is adopted: no way back from here. Every fd that came (the
// state's, the carried sockets, the state itself) is closed: this image
// holds copies of those it took. Returns the names of the carried sockets
// nobody took; UFORK_UPGRADE_* leave the environment.
std::vector<std::string> commit();
// Before commit(): the old image again, with the state and the reason.
// Returns only if that exec failed.
void roll_back(const std::string& why) noexcept;

// The path the program was started from (argv[0] found as the shell found
// it, made absolute at start), or empty.
const std::string& program_path();
// The argv the program started with (taken before main()).
const std::vector<std::string>& program_argv();
// Before the exec: the file at program_path() run in a child as the exec
// would run it, but told (UFORK_UPGRADE_CHECK) to say which state format it
// reads, before main(), and end. "" if it answered as this image writes;
// else why not: it does not load or run (a truncated file, a crash before
// ufork's code, a script), ends without answering, reads another format,
// or says nothing within 5 s (it is killed). Blocks the caller meanwhile.
std::string check_new_image();
// The old image's side: execs program_path() with the argv and environment
// the process started with, the state in a memfd, and every fd the state
// and sys::carried_fds() name kept open. Returns only on failure: why.
std::string exec_new_image(const state& s);

}  // namespace ufork::upgrade
