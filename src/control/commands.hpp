// The verbs of the pool as command lines, one table for the ufork>> prompt,
// the control socket and arbiter::execute(). Each answers with text for
// people and JSON for programs. They read the pool through its view and act
// through its verbs; transport is not this part's business.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sys/procfs.hpp"
#include "ufork/arbiter.hpp"
#include "ufork/export.hpp"

namespace ufork {

class pool;

class commands {
 public:
  explicit commands(pool& p) : pool_(p) {}

  // Throws ufork::error if the name is taken or not a single word.
  void add(std::string name, std::string help, command_handler handler);
  std::vector<std::string> names() const;
  // On the pool's loop thread.
  reply execute(std::string_view line);
  // The control client whose line runs now (its fd), or -1: an upgrade
  // hands it over, and the image that adopts the pool answers it.
  void set_requester(int fd) noexcept { requester_ = fd; }
  // The words that may follow what was typed so far (the prompt's Tab).
  std::vector<std::string> completions(const std::string& so_far) const;

 private:
  using args = std::vector<std::string>;
  struct builtin {
    const char* name;
    const char* params;
    const char* help;
    reply (commands::*run)(const args&);
  };
  struct registered {
    std::string help;
    command_handler handler;
  };
  friend std::vector<std::string> ufork::builtin_commands();
  static const std::vector<builtin>& builtins();
  reply help(const args&);
  reply complete(const args&);
  reply status(const args&);
  reply workers(const args&);
  reply dead(const args&);
  reply metrics(const args&);
  reply size(const args&);
  reply kill(const args&);
  reply restart(const args&);
  reply reload(const args&);
  reply upgrade(const args&);
  reply reopen(const args&);
  reply stop(const args&);

  // A process's memory (sys::memory_of), read at most once per 100 ms: a
  // client that sends `metrics` a thousand times in one breath costs the
  // loop one smaps_rollup read per worker, not a thousand.
  std::optional<sys::memory_use> memory_of(pid_t pid);
  struct reading {
    std::chrono::steady_clock::time_point at;
    std::optional<sys::memory_use> use;
  };
  std::unordered_map<pid_t, reading> memory_;

  pool& pool_;
  int requester_ = -1;
  std::map<std::string, registered> registered_;
};

// "size 4" -> {"size", "4"}.
std::vector<std::string> split_words(std::string_view line);

// The protocol's answer, on one line: {"ok":true,"data":...,"text":"..."}
// or {"ok":false,"error":"..."}.
std::string answer_line(const reply& r);

}  // namespace ufork
