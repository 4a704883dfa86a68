#include "sys/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>

#include "sys/detail.hpp"

namespace ufork::sys {

using detail::fd_or_error;
using detail::retry_eintr;

pid_t own_pid() noexcept { return ::getpid(); }
pid_t parent_pid() noexcept { return ::getppid(); }
uid_t effective_uid() noexcept { return ::geteuid(); }

pid_t process_group_of(pid_t pid) noexcept {
  pid_t g = ::getpgid(pid);
  return g < 0 ? 0 : g;
}

result<pid_t> fork_blocking_signals() noexcept {
  sigset_t all, old;
  sigfillset(&all);
  (void)::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::fork();
  if (pid == 0) return pid;  // the child keeps every signal blocked
  int saved = errno;
  (void)::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return std::error_code(saved, std::system_category());
  return pid;
}

result<pid_t> fork_sibling_blocking_signals(int* pidfd) noexcept {
  sigset_t all, old;
  sigfillset(&all);
  (void)::pthread_sigmask(SIG_SETMASK, &all, &old);
  // (flags, stack, parent_tid, ...): the pidfd lands where parent_tid points.
  long pid = ::syscall(SYS_clone, CLONE_PARENT | CLONE_PIDFD, nullptr, pidfd, nullptr, 0);
  if (pid == 0) return 0;  // the child keeps every signal blocked
  int saved = errno;
  (void)::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return std::error_code(saved, std::system_category());
  own_fd(*pidfd);
  return static_cast<pid_t>(pid);
}

result<pid_t> fork() noexcept {
  pid_t pid = ::fork();
  if (pid < 0) return last_error();
  return pid;
}

void kill_and_reap(pid_t pid) noexcept {
  (void)::kill(pid, SIGKILL);
  reap(pid);
}

void reap(pid_t pid) noexcept {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void reap_pidfd(int pidfd) noexcept {
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
  }
}

std::error_code new_session() noexcept { return ::setsid() < 0 ? last_error() : std::error_code(); }

std::error_code set_process_group(pid_t pid, pid_t pgid) noexcept {
  return ::setpgid(pid, pgid) != 0 ? last_error() : std::error_code();
}

std::error_code block_signals(const sigset_t& set, sigset_t* old) noexcept {
  int rc = ::pthread_sigmask(SIG_BLOCK, &set, old);
  return rc != 0 ? std::error_code(rc, std::system_category()) : std::error_code();
}

void set_signal_mask(const sigset_t& mask) noexcept { (void)::pthread_sigmask(SIG_SETMASK, &mask, nullptr); }

void set_action(int sig, const struct sigaction& action, struct sigaction* old) noexcept {
  (void)::sigaction(sig, &action, old);
}

void ignore_signal(int sig, struct sigaction* old) noexcept {
  struct sigaction ign{};
  ign.sa_handler = SIG_IGN;
  (void)::sigaction(sig, &ign, old);
}

void reraise(int sig) noexcept {
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

rlimit fd_limit() noexcept {
  rlimit limit{};
  (void)::getrlimit(RLIMIT_NOFILE, &limit);
  return limit;
}

std::error_code set_fd_limit(const rlimit& limit) noexcept {
  return ::setrlimit(RLIMIT_NOFILE, &limit) != 0 ? last_error() : std::error_code();
}

result<unique_fd> make_shared_memory(const char* name, std::size_t bytes) noexcept {
  int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return last_error();
  own_fd(fd);
  unique_fd owned(fd);
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) return last_error();
  return owned;
}

result<void*> map_shared(int fd, std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return last_error();
  return p;
}

std::error_code keep_across_exec(int fd, bool keep) noexcept {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return last_error();
  int want = keep ? flags & ~FD_CLOEXEC : flags | FD_CLOEXEC;
  if (want != flags && ::fcntl(fd, F_SETFD, want) != 0) return last_error();
  return {};
}

result<unique_fd> memory_file(const char* name, const std::string& text) noexcept {
  int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return last_error();
  own_fd(fd);
  unique_fd owned(fd);
  if (auto ec = write_all(fd, text.data(), text.size())) return ec;
  if (::lseek(fd, 0, SEEK_SET) != 0) return last_error();
  return owned;
}

result<std::string> read_whole(int fd, std::size_t limit) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return last_error();
    if (n == 0) return out;
    if (out.size() + static_cast<std::size_t>(n) > limit) return std::make_error_code(std::errc::file_too_large);
    out.append(buf, static_cast<std::size_t>(n));
  }
}

result<unique_fd> open_own_image() noexcept {
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return last_error();
  own_fd(fd);
  return unique_fd(fd);
}

std::error_code exec_image(int fd, char* const* argv, char* const* envp) noexcept {
  ::syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
  return last_error();
}

std::error_code exec_path(const char* path, char* const* argv, char* const* envp) noexcept {
  ::execve(path, argv, envp);
  return last_error();
}

void unmap(void* p, std::size_t bytes) noexcept { (void)::munmap(p, bytes); }

unsigned random_seed() noexcept {
  unsigned seed = 0;
  if (::getrandom(&seed, sizeof seed, GRND_NONBLOCK) == sizeof seed) return seed;
  auto t = std::chrono::steady_clock::now().time_since_epoch().count();
  return static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(t);
}

char* const* environment() noexcept { return environ; }

bool executable(const std::string& path) noexcept {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    std::size_t end = std::min(dirs.find(':', start), dirs.size());
    std::string dir(dirs.substr(start, end - start));
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (executable(candidate)) return candidate;
    start = end + 1;
  }
  return {};
}

std::error_code become_subreaper() noexcept {
  return ::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0 ? last_error() : std::error_code();
}

pid_t exited_child() noexcept {
  siginfo_t si{};
  if (::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return 0;  // ECHILD: no child at all
  return si.si_pid;
}

identity lookup_identity(const std::string& user, const std::string& group) {
  identity who;
  std::vector<char> buf(16384);
  if (!user.empty()) {
    passwd pw{}, *found = nullptr;
    if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
      throw std::invalid_argument("no user '" + user + "'");
    who.uid = pw.pw_uid;
    who.gid = pw.pw_gid;
  }
  if (!group.empty()) {
    struct group gr{}, *found = nullptr;
    if (::getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
      throw std::invalid_argument("no group '" + group + "'");
    who.gid = gr.gr_gid;
  }
  who.groups = {who.gid};
  if (!user.empty()) {
    int n = 64;
    std::vector<gid_t> list(static_cast<std::size_t>(n));
    while (::getgrouplist(user.c_str(), who.gid, list.data(), &n) < 0) list.resize(static_cast<std::size_t>(n));
    list.resize(static_cast<std::size_t>(n));
    who.groups = list;
  }
  return who;
}

// Raw syscalls: glibc 2.36's <sys/pidfd.h> lacks extern "C", so its
// declarations do not link from C++.
result<unique_fd> pidfd_open(pid_t pid) noexcept {
  return fd_or_error(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

std::error_code pidfd_send_signal(int pidfd, int sig) noexcept {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0) return last_error();
  return {};
}

result<siginfo_t> waitid_pidfd(int pidfd) noexcept {
  siginfo_t info{};
  int r = retry_eintr([&] {
    return ::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
  });
  if (r != 0) return last_error();
  return info;
}

std::error_code kill_group(pid_t pgid, int sig) noexcept {
  if (::kill(-pgid, sig) != 0 && errno != ESRCH) return last_error();
  return {};
}

namespace {

// Where the strings of argv, and of the environment after them, lie: glibc
// hands an .init_array function main's argc, argv and envp (also in a
// shared object loaded later, as Python loads ufork). Only what is
// contiguous counts.
struct title_area {
  char* start = nullptr;
  std::size_t argv_only = 0, with_env = 0;
} g_title;

void find_title_area(int argc, char** argv, char** envp) {
  if (argc <= 0 || !argv || !argv[0]) return;
  char* end = argv[0];
  for (int i = 0; i < argc && argv[i] == end; ++i) end += std::strlen(argv[i]) + 1;
  g_title.start = argv[0];
  g_title.argv_only = static_cast<std::size_t>(end - argv[0]);
  for (char** e = envp; e && *e && *e == end; ++e) end += std::strlen(*e) + 1;
  g_title.with_env = static_cast<std::size_t>(end - argv[0]);
}

[[gnu::used, gnu::section(".init_array")]] void (*const find_title_area_at_start)(int, char**, char**) = &find_title_area;

}  // namespace

namespace child {

void exit(int code) noexcept { ::_exit(code); }

int dup_to(int fd, int target) noexcept {
  int rc;
  while ((rc = ::dup2(fd, target)) < 0 && (errno == EINTR || errno == EBUSY)) {
  }
  return rc;
}

void close(int fd) noexcept { (void)::close(fd); }

void close_range(unsigned first, unsigned last) noexcept { (void)::close_range(first, last, 0); }

void write(int fd, const void* buf, std::size_t len) noexcept {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
}

void write_file(const char* path, const char* value) noexcept {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  write(fd, value, std::strlen(value));
  (void)::close(fd);
}

int open_dev_null() noexcept { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

int make_eventfd() noexcept { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

std::error_code set_parent_death_signal(int sig) noexcept {
  return ::prctl(PR_SET_PDEATHSIG, sig) != 0 ? last_error() : std::error_code();
}

void close_syslog() noexcept { ::closelog(); }

bool wait_readable(int fd, int timeout_ms) noexcept {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, timeout_ms) > 0;
}

int dup_above(int fd, int min, bool cloexec) noexcept {
  return ::fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, min);
}

void default_signals() noexcept {
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) (void)::sigaction(sig, &dfl, nullptr);  // EINVAL for 32, 33
}

bool use_signal_stack(std::size_t bytes) noexcept {
  stack_t now{};
  if (::sigaltstack(nullptr, &now) == 0 && !(now.ss_flags & SS_DISABLE) && now.ss_size >= bytes) return true;
  void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (at == MAP_FAILED) return false;
  stack_t stack{};
  stack.ss_sp = at;
  stack.ss_size = bytes;
  if (::sigaltstack(&stack, nullptr) == 0) return true;
  (void)::munmap(at, bytes);
  return false;
}

std::size_t signal_stack_left(const void* here) noexcept {
  stack_t now{};
  if (::sigaltstack(nullptr, &now) != 0 || !(now.ss_flags & SS_ONSTACK)) return SIZE_MAX;
  auto low = reinterpret_cast<std::uintptr_t>(now.ss_sp), at = reinterpret_cast<std::uintptr_t>(here);
  return at > low && at - low <= now.ss_size ? at - low : 0;
}

int change_dir(const char* path) noexcept { return ::chdir(path) == 0 ? 0 : errno; }

void write_decimal(char* at, long v) noexcept {
  char digits[21];
  int n = 0;
  unsigned long u = v < 0 ? 0UL - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *at++ = '-';
  while (n > 0) *at++ = digits[--n];
  *at = '\0';
}

void set_environment(char* const* envp) noexcept { environ = const_cast<char**>(envp); }

void set_title(const char* title, bool with_env) noexcept {
  std::size_t room = with_env ? g_title.with_env : g_title.argv_only;
  if (g_title.start && room > 1) {
    std::size_t n = std::min(std::strlen(title), room - 1);
    std::memcpy(g_title.start, title, n);
    std::memset(g_title.start + n, 0, room - n);
  }
  char name[16] = {};  // comm: the title up to its " (", 15 bytes at most
  for (std::size_t i = 0; i < sizeof name - 1 && title[i] && !(title[i] == ' ' && title[i + 1] == '('); ++i)
    name[i] = title[i];
  (void)::prctl(PR_SET_NAME, name, 0, 0, 0);
}

int drop_privileges(const identity& who, bool set_uid, int* failed_step) noexcept {
  *failed_step = 1;
  if (::setgroups(who.groups.size(), who.groups.data()) != 0) return errno;
  *failed_step = 2;
  if (::setgid(who.gid) != 0) return errno;
  *failed_step = 3;
  if (set_uid && ::setuid(who.uid) != 0) return errno;
  *failed_step = 0;
  return 0;
}

int pin_to_cpu(int cpu) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

int add_nice(int increment) noexcept {
  errno = 0;
  return ::nice(increment) == -1 && errno != 0 ? errno : 0;  // -1 is also a valid new nice value
}

int set_limit(int resource, std::uint64_t soft, std::uint64_t hard) noexcept {
  rlimit r{static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)};
  return ::setrlimit(static_cast<__rlimit_resource_t>(resource), &r) == 0 ? 0 : errno;
}

int exec(const char* path, char* const* argv, char* const* envp) noexcept {
  ::execve(path, argv, envp);
  return errno;
}

}  // namespace child
}  // namespace ufork::sys
