// The syscall layer, carrying: the listening sockets (and the output
// capture's pipe) an in-place upgrade keeps open across its exec, by name
// ("tcp 127.0.0.1:7777", "unix /run/x.sock"). The mechanism only: when to
// carry and how the list reaches the new image is the upgrade's
// (core/upgrade.cpp).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ufork::sys {

// The old image lists what it carries (an empty name forgets fd; closing an
// fd forgets it too).
void carry(int fd, const std::string& name);
std::vector<std::pair<int, std::string>> carried_fds();
// The list as the new image reads it ("FD NAME" lines), and, in the new
// image, what came: arrivals(text) is told it once, before the first
// take_carried (text outlives the process: an environment string).
std::string carried_text();
void arrivals(const char* text) noexcept;
// The new one takes each back under the same name before it would bind
// again: a close-on-exec copy, or -1 if none came; with copy false, the fd
// itself, left open: one whose number is fixed, as a socket activation's at
// 3. What came is closed once the pool is adopted (close_arrivals: the
// names no one took).
int take_carried(const std::string& name, bool copy = true);
std::vector<std::string> close_arrivals();
// unique_fd's close: fd is carried no more.
void forget_carried(int fd) noexcept;

}  // namespace ufork::sys
