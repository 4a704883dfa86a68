#include "core/oom.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/exit_status.hpp"
#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "sys/procfs.hpp"

namespace ufork {
namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::optional<std::uint64_t> count_in(const std::optional<std::string>& file) {
  if (!file) return std::nullopt;
  auto text = read_file(*file);
  return text ? parse_counter(*text, "oom_kill") : std::nullopt;
}

std::optional<std::string> counter_file_of(pid_t pid) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/cgroup");
  return text ? oom_witness::counter_file(*text) : std::nullopt;
}

}  // namespace

std::optional<std::string> oom_witness::counter_file(std::string_view proc_cgroup) {
  std::optional<std::string> v2;
  std::istringstream in{std::string(proc_cgroup)};
  for (std::string line; std::getline(in, line);) {
    // "4:memory:/path" (v1; controllers comma-separated) or "0::/path" (v2)
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string_view controllers = std::string_view(line).substr(a + 1, b - a - 1);
    std::string_view path = std::string_view(line).substr(b + 1);
    if (path == "/") path = {};
    bool memory = false;  // among the comma-separated controllers
    for (std::size_t at = 0; at <= controllers.size();) {
      auto comma = std::min(controllers.find(',', at), controllers.size());
      memory |= controllers.substr(at, comma - at) == "memory";
      at = comma + 1;
    }
    if (memory)  // v1 wins: the hybrid layout keeps memory there
      return fmt::format("/sys/fs/cgroup/memory{}/memory.oom_control", path);
    if (controllers.empty() && line.compare(0, a, "0") == 0) {
      std::error_code ec;
      const char* root =
          std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers", ec) ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
      v2 = fmt::format("{}{}/memory.events", root, path);
    }
  }
  return v2;
}

std::optional<pid_t> oom_witness::killed_pid(std::string_view record) {
  // "6,1234,5678,-;Memory cgroup out of memory: Killed process 4312 (name) ..."
  constexpr std::string_view key = "Killed process ";
  auto at = record.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::string digits(record.substr(at + key.size(), 10));
  char* end = nullptr;
  long pid = std::strtol(digits.c_str(), &end, 10);
  if (end == digits.c_str() || pid <= 0) return std::nullopt;
  return static_cast<pid_t>(pid);
}

oom_witness::oom_witness() {
  if (auto k = sys::open_file("/dev/kmsg", O_RDONLY | O_NONBLOCK)) {
    kmsg_ = std::move(k).value();
    if (sys::seek_to_end(kmsg_.get())) kmsg_.reset();  // from now on only
  }
  shared_file_ = counter_file_of(sys::own_pid());
  shared_count_ = count_in(shared_file_);
}

void oom_witness::watch(pid_t pid) {
  if (kmsg_) return;  // the kernel log decides
  auto file = counter_file_of(pid);
  if (!file || file == shared_file_) return;
  if (auto n = count_in(file)) own_[pid] = {*file, *n};
}

void oom_witness::read_kernel_log() {
  char record[8192];
  for (;;) {
    auto n = sys::read(kmsg_.get(), record, sizeof record);
    if (!n) {
      if (n.error() == std::errc::broken_pipe) continue;  // records overwritten meanwhile
      return;                                            // EAGAIN: all read
    }
    if (n.value() == 0) return;
    if (auto pid = killed_pid({record, n.value()})) {
      named_.push_back(*pid);
      if (named_.size() > 256) named_.pop_front();
    }
  }
}

oom_verdict oom_witness::judge(pid_t pid, bool sigkill) {
  auto own = own_.find(pid);
  std::optional<own_cgroup> mine;
  if (own != own_.end()) {
    mine = own->second;
    own_.erase(own);
  }
  if (!sigkill) return oom_verdict::no;
  if (kmsg_) {
    read_kernel_log();
    auto named = std::find(named_.begin(), named_.end(), pid);
    if (named == named_.end()) return oom_verdict::no;
    named_.erase(named);  // a later worker may get this pid again
    return oom_verdict::yes;
  }
  if (mine) {
    auto n = count_in(mine->file);
    return n && *n > mine->at_ready ? oom_verdict::yes : oom_verdict::no;
  }
  auto n = count_in(shared_file_);
  bool rose = n && shared_count_ && *n > *shared_count_;
  shared_count_ = n;
  return rose ? oom_verdict::possibly : oom_verdict::no;
}

oom_scoring::oom_scoring(int adj) : adj_(adj) {
  if (adj_ != 0 && (found_ = sys::oom_score_adj())) worker_ = std::to_string(std::clamp(*found_ + adj_, -1000, 1000));
}

void oom_scoring::lower_own() {
  if (found_ && adj_ > 0) lowered_ = sys::set_oom_score_adj(std::max(*found_ - adj_, -999));
}

void oom_scoring::restore_own() noexcept {
  if (std::exchange(lowered_, false)) (void)sys::set_oom_score_adj(*found_);
}

}  // namespace ufork
