// ufork::error: what setup failures throw (a syscall that failed while
// building the arbiter, an invalid option). Supervision events - a worker that
// crashed, hung or failed to boot - are never exceptions.
#pragma once

#include "ufork/export.hpp"

#include <string>
#include <system_error>

namespace ufork {

class UFORK_API error : public std::system_error {
 public:
  using std::system_error::system_error;
};

// Throws ufork::error for errno with the text "WHAT failed: strerror".
[[noreturn]] UFORK_API void throw_errno(const std::string& what);
// Throws ufork::error (std::errc::invalid_argument) for a wrong option or
// argument, with the text "ufork: WHAT".
[[noreturn]] UFORK_API void throw_invalid(const std::string& what);

}  // namespace ufork
