// The syscall layer, carrying fds across an upgrade's exec (carry.hpp).
#include "sys/carry.hpp"

#include <fcntl.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <set>
#include <string_view>

#include "sys/detail.hpp"
#include "sys/fd.hpp"

namespace ufork::sys {

namespace {

struct carried_set {
  std::mutex mu;
  std::map<int, std::string> carried;   // carry(): fd -> name
  std::map<std::string, int> arrived;   // take_carried(): name -> fd, from arrivals()
  std::set<std::string> taken;
  const char* arrivals = nullptr;       // not read yet
};
carried_set& carried() {
  static carried_set* r = new carried_set;  // never destroyed: fds close during static destruction too
  return *r;
}

}  // namespace

using detail::retry_eintr;

void carry(int fd, const std::string& name) {
  if (fd < 0 || name.find('\n') != std::string::npos) return;  // one name per line in carried_text()
  auto& r = carried();
  std::lock_guard lock(r.mu);
  if (name.empty())
    r.carried.erase(fd);
  else
    r.carried[fd] = name;
}

std::vector<std::pair<int, std::string>> carried_fds() {
  auto& r = carried();
  std::lock_guard lock(r.mu);
  return {r.carried.begin(), r.carried.end()};
}

std::string carried_text() {
  std::string text;
  for (const auto& [fd, name] : carried_fds()) text += std::to_string(fd) + ' ' + name + '\n';
  return text;
}

void arrivals(const char* text) noexcept {
  auto& r = carried();
  std::lock_guard lock(r.mu);
  r.arrivals = text;
}

void forget_carried(int fd) noexcept {
  auto& r = carried();
  std::lock_guard lock(r.mu);
  r.carried.erase(fd);
}

namespace {

// carried_text() as the old image wrote it: "FD NAME" lines. Anything else
// in it is ignored (the upgrade's state is checked apart), as is an fd not
// open here.
void read_arrivals(carried_set& r) {
  const char* text = std::exchange(r.arrivals, nullptr);
  if (!text) return;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    auto space = line.find(' ');
    int fd = -1;
    auto [end, ec] = std::from_chars(line.data(), line.data() + std::min(space, line.size()), fd);
    if (ec == std::errc() && space != std::string_view::npos && fd > 2 && ::fcntl(fd, F_GETFD) >= 0)
      r.arrived.emplace(std::string(line.substr(space + 1)), fd);
  }
}

}  // namespace

// A copy: the fd that came stays open, as the old image left it, until the
// pool is adopted; until then a new image that fails (and closes what it
// took on its way out) can still hand it back.
int take_carried(const std::string& name, bool copy) {
  auto& r = carried();
  std::lock_guard lock(r.mu);
  read_arrivals(r);
  auto it = r.arrived.find(name);
  if (it == r.arrived.end() || r.taken.count(name)) return -1;
  int fd = it->second;
  if (!copy)
    r.arrived.erase(it);
  else if ((fd = retry_eintr([&] { return ::fcntl(it->second, F_DUPFD_CLOEXEC, 3); })) >= 0)
    r.taken.insert(name);
  return fd;
}

std::vector<std::string> close_arrivals() {
  auto& r = carried();
  std::unique_lock lock(r.mu);
  read_arrivals(r);
  std::vector<std::string> unclaimed;
  std::vector<int> fds;
  for (auto& [name, fd] : r.arrived) {
    if (!r.taken.count(name)) unclaimed.push_back(name);
    fds.push_back(fd);
  }
  r.arrived.clear();
  lock.unlock();
  for (int fd : fds) close_fd(fd);
  return unclaimed;
}

}  // namespace ufork::sys
