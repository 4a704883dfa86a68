// The syscall layer, /proc: what the kernel says of this process and of
// others (parents, children, memory, CPU, fds), and oom_score_adj.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "ufork/export.hpp"

namespace ufork::sys {

// The threads of this process (/proc/self/stat's num_threads); 0 if unknown.
int thread_count();
// The parent of pid, from /proc/PID/stat; 0 if it is gone.
pid_t parent_of(pid_t pid);
// The processes whose parent is `pid` (/proc scanned: for a stop, not a loop).
std::vector<pid_t> children_of(pid_t pid);
// How long this process has run (/proc/self/stat's start time, kept across
// an exec: an upgraded arbiter's age is the first image's); 0 if unknown.
std::chrono::nanoseconds own_age();
// The CPUs this process may run on (sched_getaffinity); 1 if unknown.
int usable_cpus() noexcept;
// Their numbers, in order.
std::vector<int> cpu_list();
// Resident set size of pid from /proc/PID/statm, in bytes; 0 if unreadable.
std::uint64_t rss_bytes(pid_t pid);
// The process's CPU time so far (user + system, /proc/PID/stat), in seconds.
UFORK_API double cpu_seconds(pid_t pid);
// The resident memory of every process in process group pgid (a worker and
// what it started), in bytes: /proc scanned, so for a periodic check only.
std::uint64_t group_rss_bytes(pid_t pgid);
// A process's memory, from /proc/PID/smaps_rollup, in bytes: resident
// (rss: every page it maps in RAM, shared or not), proportional (pss: each
// page divided by the processes that share it, so a pool's sum is what it
// really holds) and unique (uss: Private_Clean + Private_Dirty, what the
// process alone holds: freed if it exits). nullopt if it cannot be read (gone,
// or another user's). The kernel walks the page tables for it: read when
// someone asks, not in a loop.
struct memory_use {
  std::uint64_t rss = 0, pss = 0, uss = 0;
};
std::optional<memory_use> memory_of(pid_t pid);
// Summed over every process of process group pgid (a worker and what it started).
memory_use group_memory(pid_t pgid);
// pid's open fds (/proc/PID/fd) and its soft RLIMIT_NOFILE (prlimit); 0s if unknown.
struct fd_count {
  std::uint64_t open = 0, limit = 0;
};
fd_count fd_usage(pid_t pid);
// Every fd open in this process now (/proc/self/fd), sorted. (Declared in
// fd.hpp too, for own_new_fds.)
std::vector<int> open_fds();
// /proc/self/oom_score_adj: read it; write it (false if refused).
std::optional<int> oom_score_adj();
bool set_oom_score_adj(int value);

}  // namespace ufork::sys
