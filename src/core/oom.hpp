// oom_witness: whether a SIGKILLed worker was the OOM killer's victim, and
// not just killed while the OOM killer was busy elsewhere.
// - The kernel log (/dev/kmsg, readable as root) names each victim's pid:
//   where it can be read, it alone decides.
// - Else a worker in a memory cgroup of its own (learnt when it became
//   ready: a zombie's /proc/PID/cgroup already shows the root) is an OOM
//   victim if that cgroup's oom_kill counter rose.
// - Else, if the counter of the cgroup it shares with the arbiter rose, it
//   is "possibly" one: never a plain yes.
// cgroup v1, v2, and the hybrid layout (v1 controllers, v2 under
// /sys/fs/cgroup/unified).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "sys/unique_fd.hpp"

namespace ufork {

enum class oom_verdict { no, yes, possibly };

class oom_witness {
 public:
  oom_witness();
  // The worker became ready: note its memory cgroup if it is not ours.
  void watch(pid_t pid);
  // At the worker's exit; SIGKILL only. Forgets the worker.
  oom_verdict judge(pid_t pid, bool sigkill);

  // For tests: the pid a kernel log record names as killed, if any.
  static std::optional<pid_t> killed_pid(std::string_view record);
  // The oom_kill counter file of a cgroup line set (/proc/PID/cgroup's text).
  static std::optional<std::string> counter_file(std::string_view proc_cgroup);

 private:
  void read_kernel_log();

  sys::unique_fd kmsg_;
  std::deque<pid_t> named_;  // the last victims the kernel log named
  struct own_cgroup {
    std::string file;
    std::uint64_t at_ready;
  };
  std::unordered_map<pid_t, own_cgroup> own_;
  std::optional<std::string> shared_file_;  // the arbiter's own
  std::optional<std::uint64_t> shared_count_;
};

// options::oom_score_adj: a worker's score is the arbiter's as found plus
// adj (clamped to the kernel's range); with adj > 0 under run(), the arbiter
// itself is lowered by adj (the OOM killer's last choice; refused without
// CAP_SYS_RESOURCE, which is fine) until restore().
class oom_scoring {
 public:
  explicit oom_scoring(int adj);
  // What a new worker writes to its oom_score_adj; nullptr: nothing.
  const char* worker_value() const noexcept { return worker_.empty() ? nullptr : worker_.c_str(); }
  void lower_own();
  void restore_own() noexcept;

 private:
  int adj_;
  std::optional<int> found_;  // the arbiter's as found
  std::string worker_;
  bool lowered_ = false;
};

}  // namespace ufork
