// The syscall layer, terminals.
#pragma once

#include <termios.h>

#include <optional>

#include "ufork/export.hpp"

namespace ufork::sys {

// isatty(3); the settings now (tcgetattr); set them back (tcsetattr
// TCSANOW, async-signal-safe).
UFORK_API bool is_terminal(int fd) noexcept;
UFORK_API std::optional<termios> terminal_settings(int fd) noexcept;
UFORK_API void set_terminal(int fd, const termios& settings) noexcept;
// The terminal's columns and rows (TIOCGWINSZ); nullopt if it will not say.
struct terminal_size {
  int columns = 0, rows = 0;
};
UFORK_API std::optional<terminal_size> size_of_terminal(int fd) noexcept;

}  // namespace ufork::sys
