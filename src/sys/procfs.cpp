// The syscall layer, /proc.
#include "sys/procfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "sys/fd.hpp"

namespace ufork::sys {

std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return fds;
  int own = ::dirfd(dir);
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && fd != own) fds.push_back(static_cast<int>(fd));
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

std::optional<int> oom_score_adj() {
  auto f = open_file("/proc/self/oom_score_adj", O_RDONLY);
  char buf[16] = {};
  if (!f) return std::nullopt;
  auto n = read(f->get(), buf, sizeof buf - 1);
  if (!n || n.value() == 0) return std::nullopt;
  return std::atoi(buf);
}

bool set_oom_score_adj(int value) {
  auto f = open_file("/proc/self/oom_score_adj", O_WRONLY);
  if (!f) return false;
  auto text = std::to_string(value);
  return !write_all(f->get(), text.data(), text.size());
}

std::vector<int> cpu_list() {
  cpu_set_t set;
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

namespace {

// The fields of /proc/PID/stat after the command's parenthesis (the command
// may hold spaces and ')'): fields[0] is field 3 (the state). Read with
// read(2): a process that exits meanwhile is ESRCH, not an exception.
// Empty if it cannot be read.
std::vector<std::string> stat_fields(const std::string& pid) {
  auto f = open_file(("/proc/" + pid + "/stat").c_str(), O_RDONLY);
  if (!f) return {};
  char buf[1024];
  auto n = read(f->get(), buf, sizeof buf - 1);
  if (!n) return {};
  std::string stat(buf, n.value());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(stat.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string field; rest >> field;) fields.push_back(std::move(field));
  return fields;
}

// Field `n` of /proc/PID/stat (man 5 proc numbers them from 1) as a number; 0 if absent.
long long stat_field(const std::vector<std::string>& fields, std::size_t n) {
  return n >= 3 && n - 3 < fields.size() ? std::atoll(fields[n - 3].c_str()) : 0;
}

}  // namespace

pid_t parent_of(pid_t pid) { return static_cast<pid_t>(stat_field(stat_fields(std::to_string(pid)), 4)); }

int thread_count() { return static_cast<int>(stat_field(stat_fields("self"), 20)); }

std::chrono::nanoseconds own_age() {
  auto fields = stat_fields("self");
  timespec boot{};
  if (fields.size() < 20 || ::clock_gettime(CLOCK_BOOTTIME, &boot) != 0) return {};
  auto since_boot = std::chrono::seconds(boot.tv_sec) + std::chrono::nanoseconds(boot.tv_nsec);
  auto started = std::chrono::nanoseconds(stat_field(fields, 22) * 1'000'000'000 / ::sysconf(_SC_CLK_TCK));  // starttime
  return std::max(since_boot - started, std::chrono::nanoseconds::zero());
}

int usable_cpus() noexcept {
  cpu_set_t set;
  return ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

std::uint64_t rss_bytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  std::uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

double cpu_seconds(pid_t pid) {
  auto fields = stat_fields(std::to_string(pid));
  auto ticks = stat_field(fields, 14) + stat_field(fields, 15);  // utime, stime
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

namespace {

// Calls f(pid) for each process of group pgid (/proc scanned).
template <class F>
void for_each_in_group(pid_t pgid, F f) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (auto fields = stat_fields(name); !fields.empty() && stat_field(fields, 5) == pgid)  // pgrp
      f(static_cast<pid_t>(std::stol(name)));
  }
}

}  // namespace

std::uint64_t group_rss_bytes(pid_t pgid) {
  std::uint64_t total = 0;
  for_each_in_group(pgid, [&](pid_t pid) { total += rss_bytes(pid); });
  return total;
}

std::optional<memory_use> memory_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!f) return std::nullopt;
  memory_use m;
  bool any = false;
  f.ignore(std::numeric_limits<std::streamsize>::max(), '\n');  // the range line
  for (std::string key; f >> key;) {
    std::uint64_t kb = 0;
    if (!(f >> kb)) break;
    f.ignore(std::numeric_limits<std::streamsize>::max(), '\n');  // " kB"
    if (key == "Rss:") {
      m.rss = kb << 10;
      any = true;
    } else if (key == "Pss:") {
      m.pss = kb << 10;
    } else if (key == "Private_Clean:" || key == "Private_Dirty:") {
      m.uss += kb << 10;
    }
  }
  if (!any) return std::nullopt;
  return m;
}

memory_use group_memory(pid_t pgid) {
  memory_use total;
  for_each_in_group(pgid, [&](pid_t pid) {
    if (auto m = memory_of(pid)) {
      total.rss += m->rss;
      total.pss += m->pss;
      total.uss += m->uss;
    }
  });
  return total;
}

fd_count fd_usage(pid_t pid) {
  fd_count c;
  rlimit limit{};
  if (::prlimit(pid, RLIMIT_NOFILE, nullptr, &limit) != 0) return c;
  c.limit = limit.rlim_cur;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++c.open;
  return c;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto child = static_cast<pid_t>(std::stol(name));
    if (parent_of(child) == pid) out.push_back(child);
  }
  return out;
}

}  // namespace ufork::sys
