// The syscall layer, events: epoll, timerfd, eventfd, signalfd.
#include "sys/event.hpp"

#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <string_view>

#include "sys/detail.hpp"
#include "sys/procfs.hpp"

namespace ufork::sys {

using detail::fd_or_error;
using detail::retry_eintr;


std::vector<epoll_registration> watch_exclusively(int listen_fd) {
  std::vector<epoll_registration> made;
  for (int fd : open_fds()) {
    char link[64] = {};
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (::readlink(path.c_str(), link, sizeof link - 1) <= 0 || std::string_view(link) != "anon_inode:[eventpoll]")
      continue;
    std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
    // "tfd:        5 events:       19 data:     55d1c0a2b3c0  pos:0 ino:..."
    for (std::string word; info >> word;) {
      if (word != "tfd:") continue;
      int target = -1;
      std::string events_word, data_word;
      std::uint32_t events = 0;
      std::uint64_t data = 0;
      info >> target >> events_word >> std::hex >> events >> data_word >> data >> std::dec;
      if (!info || target != listen_fd || events_word != "events:" || data_word != "data:") continue;
      // EPOLLEXCLUSIVE takes these bits only (not EPOLLPRI, which a
      // listening socket never raises).
      std::uint32_t exclusive = (events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLET)) | EPOLLEXCLUSIVE;
      if (epoll_remove(fd, listen_fd)) break;
      if (epoll_add(fd, listen_fd, exclusive, data)) {
        (void)epoll_add(fd, listen_fd, events, data);  // as it was (a kernel before 4.5)
        break;
      }
      made.push_back({fd, exclusive, data});
      break;
    }
  }
  return made;
}

result<unique_fd> make_epoll() { return fd_or_error(::epoll_create1(EPOLL_CLOEXEC)); }

result<unique_fd> make_timerfd() {
  return fd_or_error(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
}

result<unique_fd> make_eventfd(bool nonblocking) {
  return fd_or_error(::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0)));
}

result<unique_fd> make_inotify() { return fd_or_error(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)); }

result<int> watch_directory(int inotify_fd, const std::string& path, std::uint32_t mask) noexcept {
  int wd = ::inotify_add_watch(inotify_fd, path.c_str(), mask | IN_ONLYDIR);
  if (wd < 0) return std::error_code(errno, std::generic_category());
  return wd;
}

result<unique_fd> make_signalfd(const sigset_t& set) {
  return fd_or_error(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
}

namespace {
std::error_code epoll_ctl(int epfd, int op, int fd, std::uint32_t events, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  return ::epoll_ctl(epfd, op, fd, &ev) != 0 ? last_error() : std::error_code();
}
}  // namespace

std::error_code epoll_add(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept {
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events, data);
}
std::error_code epoll_modify(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept {
  return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, events, data);
}
std::error_code epoll_remove(int epfd, int fd) noexcept { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0); }

result<int> epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) noexcept {
  int n = retry_eintr([&] { return ::epoll_wait(epfd, events, max, timeout_ms); });
  if (n < 0) return last_error();
  return n;
}

result<int> poll_once(pollfd* fds, std::size_t n, int timeout_ms) noexcept {
  int r = ::poll(fds, static_cast<nfds_t>(n), timeout_ms);
  if (r < 0) return last_error();
  return r;
}

std::error_code timerfd_arm(int fd, std::chrono::steady_clock::time_point at) noexcept {
  using namespace std::chrono;
  itimerspec spec{};
  if (at != steady_clock::time_point{}) {
    auto ns = duration_cast<nanoseconds>(at.time_since_epoch()).count();
    if (ns <= 0) ns = 1;  // 0 would disarm; "already due" fires at once
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  }
  if (::timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) return last_error();
  return {};
}

std::uint64_t drain_counter(int fd) noexcept {
  std::uint64_t value = 0;
  if (retry_eintr([&] { return ::read(fd, &value, sizeof value); }) != sizeof value) return 0;
  return value;
}

void eventfd_signal(int fd) noexcept {
  std::uint64_t one = 1;
  // EAGAIN means the counter is already huge: the reader wakes up anyway.
  (void)!::write(fd, &one, sizeof one);
}

}  // namespace ufork::sys
