// Names for the ways a process ends: sysexits codes, signals, OOM kills.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ufork {

// "EX_SOFTWARE" for 70, "EX_OK" for 0, nullptr for codes sysexits.h lacks.
const char* sysexits_name(int code) noexcept;
// "SIGKILL", or "SIG42" for a number without a name.
std::string signal_name(int signo);

// "1 worker", "2 workers", "0 workers": for the log's sentences.
inline std::string workers_count(std::size_t n) { return std::to_string(n) + (n == 1 ? " worker" : " workers"); }

// Parses "key value" lines, as both files have. Pure, for tests.
std::optional<std::uint64_t> parse_counter(std::string_view text, std::string_view key);

}  // namespace ufork
