// The syscall layer, terminals.
#include "sys/terminal.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

namespace ufork::sys {

bool is_terminal(int fd) noexcept { return ::isatty(fd) == 1; }

std::optional<termios> terminal_settings(int fd) noexcept {
  termios t{};
  if (::tcgetattr(fd, &t) != 0) return std::nullopt;
  return t;
}

void set_terminal(int fd, const termios& settings) noexcept { (void)::tcsetattr(fd, TCSANOW, &settings); }

std::optional<terminal_size> size_of_terminal(int fd) noexcept {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return std::nullopt;
  return terminal_size{ws.ws_col, ws.ws_row};
}

}  // namespace ufork::sys
