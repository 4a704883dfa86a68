// The syscall layer, events: epoll, timerfd, eventfd, signalfd.
#pragma once

#include <signal.h>
#include <poll.h>
#include <sys/epoll.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/export.hpp"

namespace ufork::sys {

UFORK_API result<unique_fd> make_epoll();
result<unique_fd> make_timerfd();
// Exported from a shared libufork, as the ones below: ufork-http's mailbox.
UFORK_API result<unique_fd> make_eventfd(bool nonblocking);
result<unique_fd> make_signalfd(const sigset_t& set);
// inotify_init1(2), non-blocking; and a watch of a directory on it
// (IN_ONLYDIR added): the watch descriptor.
result<unique_fd> make_inotify();
result<int> watch_directory(int inotify_fd, const std::string& path, std::uint32_t mask) noexcept;

// epoll_wait(2), with no timeout unless one is given (the reactor's
// timerfd is its clock; 0: what is ready now).
UFORK_API result<int> epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms = -1) noexcept;
// epoll_ctl(2): ADD, MOD, DEL. Exported from a shared libufork for
// ufork-http.
UFORK_API std::error_code epoll_add(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept;
std::error_code epoll_modify(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept;
UFORK_API std::error_code epoll_remove(int epfd, int fd) noexcept;
// Makes every epoll set of this process that watches fd watch it with
// EPOLLEXCLUSIVE (registered again with the same data), so that an event
// (a new connection on a listening socket) wakes one of the processes
// waiting on it, not all of them. For an event loop that registered the fd
// itself and does not modify it afterwards (Asio's accept). The sets are
// found in /proc/self/fdinfo. The registrations made, each as epoll_add
// would make it again after an epoll_remove; none if none could be.
struct epoll_registration {
  int epfd;
  std::uint32_t events;
  std::uint64_t data;
};
UFORK_API std::vector<epoll_registration> watch_exclusively(int fd);

// poll(2), once: EINTR is returned, not retried (a caller whose signal
// handler set a flag looks at it). The number of fds with events.
UFORK_API result<int> poll_once(pollfd* fds, std::size_t n, int timeout_ms) noexcept;

// Arms fd (a timerfd) at an absolute CLOCK_MONOTONIC time; epoch = disarm.
std::error_code timerfd_arm(int fd, std::chrono::steady_clock::time_point at) noexcept;
// Reads a timerfd or eventfd counter; EAGAIN is not an error (returns 0).
UFORK_API std::uint64_t drain_counter(int fd) noexcept;
// Adds to an eventfd; async-signal-safe.
UFORK_API void eventfd_signal(int fd) noexcept;

}  // namespace ufork::sys
