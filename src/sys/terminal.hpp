// The syscall layer, terminals.
#pragma once

#include <termios.h>

#include <optional>

namespace ufork::sys {

// isatty(3); the settings now (tcgetattr); set them back (tcsetattr
// TCSANOW, async-signal-safe).
bool is_terminal(int fd) noexcept;
std::optional<termios> terminal_settings(int fd) noexcept;
void set_terminal(int fd, const termios& settings) noexcept;

}  // namespace ufork::sys
