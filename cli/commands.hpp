// The ufork command's subcommands and its exit codes.
#pragma once

#include <string>
#include <vector>

namespace ufork::cli {

// ctl: 0 ok, 1 the arbiter answered an error, 2 usage, 3 nothing answers.
inline constexpr int exit_error_answer = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_unreachable = 3;

int run_ctl(const std::string& socket, const std::vector<std::string>& words, bool json);
int run_console(const std::string& socket);

}  // namespace ufork::cli
