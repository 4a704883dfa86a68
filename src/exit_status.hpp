// Names for the ways a process ends: sysexits codes, signals, OOM kills.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ufork {

// "EX_SOFTWARE" for 70, "EX_OK" for 0, nullptr for codes sysexits.h lacks.
const char* sysexits_name(int code) noexcept;
// "SIGKILL", or "SIG42" for a number without a name.
std::string signal_name(int signo);

// The oom_kill counter of this process's memory cgroup: memory.events on
// cgroup v2, memory.oom_control on v1. Empty where neither can be read.
std::optional<std::uint64_t> oom_kill_count();
// Parses "key value" lines, as both files have. Pure, for tests.
std::optional<std::uint64_t> parse_counter(std::string_view text, std::string_view key);

}  // namespace ufork
