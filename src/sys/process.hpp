// The syscall layer, processes: fork, signals, limits, shared memory, and
// what a new worker calls between fork and its program. Everything marked
// async-signal-safe may run in a child forked from a threaded process: it
// allocates nothing and takes no lock.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/export.hpp"

namespace ufork::sys {

// getpgid(2): pid's process group; 0 if it is gone.
pid_t process_group_of(pid_t pid) noexcept;
// getpid(2), getppid(2), geteuid(2).
UFORK_API pid_t own_pid() noexcept;
pid_t parent_pid() noexcept;
uid_t effective_uid() noexcept;

// fork(2) with every signal blocked across it, so the child runs no handler
// of the parent's before it has set its own; the caller's mask is back in
// the parent, and the child starts with every signal still blocked.
result<pid_t> fork_blocking_signals() noexcept;
// fork(2) as it is (the daemon's double fork).
result<pid_t> fork() noexcept;
// clone(2) with CLONE_PARENT: a child of this process's parent, not of this
// process (a mold forks the arbiter's workers so: the arbiter reaps them,
// and their PR_SET_PDEATHSIG follows the arbiter), signals blocked across
// it as fork_blocking_signals blocks them. *pidfd: its pidfd (CLONE_PIDFD),
// in the caller. No fork handler of glibc's or the program's runs, and the
// child's thread id in glibc's thread record stays the caller's: for a
// single-threaded caller (procfs.hpp's thread_count() == 1), whose child calls no
// pthread function about its own thread.
result<pid_t> fork_sibling_blocking_signals(int* pidfd) noexcept;
// A child that failed to start: SIGKILL and reap it.
void kill_and_reap(pid_t pid) noexcept;
// waitpid(pid, 0) / waitid(P_PIDFD, WEXITED): block until it has exited, and reap it.
void reap(pid_t pid) noexcept;
void reap_pidfd(int pidfd) noexcept;
std::error_code new_session() noexcept;  // setsid(2)
std::error_code set_process_group(pid_t pid, pid_t pgid) noexcept;

// Signals. block: adds `set` to the thread's mask, the old mask to `old`.
std::error_code block_signals(const sigset_t& set, sigset_t* old) noexcept;
void set_signal_mask(const sigset_t& mask) noexcept;
// sigaction(2); old may be null.
UFORK_API void set_action(int sig, const struct sigaction& action, struct sigaction* old) noexcept;
void ignore_signal(int sig, struct sigaction* old) noexcept;
// Back to the default action and raised again: a handler's last step.
void reraise(int sig) noexcept;

std::error_code set_fd_limit(const rlimit& limit) noexcept;
rlimit fd_limit() noexcept;  // RLIMIT_NOFILE now ({0, 0} if unknown)

// A process by its pidfd: open one (pidfd_open), signal it, and
// WEXITED|WNOHANG on it (si_pid == 0 when it has not exited yet).
result<unique_fd> pidfd_open(pid_t pid) noexcept;
std::error_code pidfd_send_signal(int pidfd, int sig) noexcept;
result<siginfo_t> waitid_pidfd(int pidfd) noexcept;
// kill(-pgid, sig); ESRCH (nobody left) is success.
std::error_code kill_group(pid_t pgid, int sig) noexcept;

// Shared memory a forked child shares with this process, in a memfd of
// `bytes` (close-on-exec, one of ufork's), so that an exec can map it again.
result<unique_fd> make_shared_memory(const char* name, std::size_t bytes) noexcept;
// MAP_SHARED of the first `bytes` of fd.
result<void*> map_shared(int fd, std::size_t bytes) noexcept;
void unmap(void* p, std::size_t bytes) noexcept;

// For an exec of this process: the fd survives it (keep) or not.
std::error_code keep_across_exec(int fd, bool keep) noexcept;
// A memfd holding `text`, read from its start; close-on-exec.
result<unique_fd> memory_file(const char* name, const std::string& text) noexcept;
// The whole content of fd from offset 0 (pread), at most `limit` bytes.
result<std::string> read_whole(int fd, std::size_t limit);
// This process's executable as it runs now (/proc/self/exe), opened, even
// if its path has since been replaced.
result<unique_fd> open_own_image() noexcept;
// execveat(fd, "", AT_EMPTY_PATH): runs the image that fd holds. Returns
// only on failure, with errno's code.
std::error_code exec_image(int fd, char* const* argv, char* const* envp) noexcept;
std::error_code exec_path(const char* path, char* const* argv, char* const* envp) noexcept;

// A seed for the worker's random(3): getrandom(2), else the pid and time.
unsigned random_seed() noexcept;

// The process's environment (environ), as the arbiter found it.
char* const* environment() noexcept;
// An executable regular file (access X_OK).
UFORK_API bool executable(const std::string& path) noexcept;
// A program name without a '/' found as execvp would (PATH, or its default):
// "DIR/name", or empty if no directory holds it.
UFORK_API std::string find_in_path(const std::string& name);
// PR_SET_CHILD_SUBREAPER: orphans of our descendants become our children.
std::error_code become_subreaper() noexcept;
// The pid of a child that has exited and is not reaped yet (waitid P_ALL
// WNOWAIT), or 0.
pid_t exited_child() noexcept;
// Reaps exited children that `mine` does not claim, until none is left or
// the next one is claimed (its owner reaps it, and calls this again).
template <class Mine>
void reap_unclaimed(Mine&& mine) {
  for (pid_t pid; (pid = exited_child()) > 0 && !mine(pid);) reap(pid);
}

// A user's and a group's ids, from the passwd and group databases.
struct identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, the primary among them
};
// Throws std::invalid_argument naming what is unknown. An empty user keeps
// the uid (identity::uid is then unused); an empty group takes the user's.
identity lookup_identity(const std::string& user, const std::string& group);

// Async-signal-safe, for a new child before its program runs: no registry,
// no allocation, EINTR retried.
namespace child {
[[noreturn]] void exit(int code) noexcept;  // _exit(2)
int dup_to(int fd, int target) noexcept;     // dup2(2); -1 on failure
void close(int fd) noexcept;
void close_range(unsigned first, unsigned last) noexcept;
void write(int fd, const void* buf, std::size_t len) noexcept;  // best effort
// "value" into a file such as /proc/self/oom_score_adj; best effort.
void write_file(const char* path, const char* value) noexcept;
int open_dev_null() noexcept;                                   // O_RDONLY; -1 on failure
int make_eventfd() noexcept;                                    // CLOEXEC|NONBLOCK; -1 on failure
std::error_code set_parent_death_signal(int sig) noexcept;      // prctl(PR_SET_PDEATHSIG)
void close_syslog() noexcept;                                   // closelog(3)
// poll(2) for readability, at most timeout_ms: true if readable.
bool wait_readable(int fd, int timeout_ms) noexcept;
// fcntl(F_DUPFD / F_DUPFD_CLOEXEC): a copy at the lowest free fd >= min; -1 on failure.
int dup_above(int fd, int min, bool cloexec) noexcept;
// Every signal's action back to SIG_DFL (SIG_IGN survives exec otherwise).
void default_signals() noexcept;
// An alternate stack of at least `bytes` for the handlers that ask for one
// (SA_ONSTACK), mapped without reserving memory (pages only as they are
// touched); kept if the thread has one as large already. False if refused.
bool use_signal_stack(std::size_t bytes) noexcept;
// Bytes of the alternate signal stack left below `here` when the caller
// runs on it (a handler of the program's, Python's faulthandler, may have
// called us on its own small one); SIZE_MAX when it does not.
std::size_t signal_stack_left(const void* here) noexcept;
// chdir(2); 0 or the errno.
int change_dir(const char* path) noexcept;
// The decimal digits of v and a NUL at `at` (room for 21 bytes).
void write_decimal(char* at, long v) noexcept;
void set_environment(char* const* envp) noexcept;  // environ = envp
// The process's title, as ps, top and htop show it: written over the
// strings argv points to (and, with `with_env`, the environment strings
// after them: only once environ points elsewhere), the rest zeroed, cut to
// fit; and its name (comm: the title up to " (", 15 bytes) by prctl(PR_SET_NAME).
void set_title(const char* title, bool with_env) noexcept;
// setgroups, setgid, setuid (if set_uid), in that order; 0 or the errno
// and which step failed (1, 2, 3).
int drop_privileges(const identity& who, bool set_uid, int* failed_step) noexcept;
// sched_setaffinity to one CPU; nice(2) by `increment`; setrlimit. 0 or the errno.
int pin_to_cpu(int cpu) noexcept;
int add_nice(int increment) noexcept;
int set_limit(int resource, std::uint64_t soft, std::uint64_t hard) noexcept;
// execve(2); returns only on failure, with the errno.
int exec(const char* path, char* const* argv, char* const* envp) noexcept;
}  // namespace child

}  // namespace ufork::sys
