// The syscall layer, clocks: the kernel's coarse clocks (read from the vDSO
// without the TSC), inline because the HTTP helper reads them per request.
#pragma once

#include <time.h>

#include <chrono>

namespace ufork::sys {

inline std::chrono::nanoseconds coarse_monotonic() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

inline time_t coarse_realtime_seconds() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

}  // namespace ufork::sys
