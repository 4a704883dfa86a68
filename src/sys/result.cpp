// The syscall layer's errors.
#include "sys/result.hpp"

#include <cerrno>
#include <cstring>

namespace ufork::sys {

std::string error_text(int err) {
  const char* text = ::strerrordesc_np(err);  // a static string (glibc 2.32)
  return text ? text : "Unknown error " + std::to_string(err);
}

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

bool would_block(std::error_code ec) noexcept {
  return ec == std::errc::resource_unavailable_try_again ||
         ec == std::errc::operation_would_block;
}

}  // namespace ufork::sys
