// One line of an sd_notify datagram ("READY=1", "STATUS=...", ...), as the
// arbiter reads it: from a worker it does not trust, so every value is
// checked and bounded here. Pure, for the fuzzer too. Internal.
#pragma once

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace ufork {

struct notify_line {
  enum kind {
    ignored,    // not ours (MAINPID, FDSTORE, BARRIER, ...), malformed, or out of range
    ready,      // READY=1
    watchdog,   // WATCHDOG=1: a heartbeat
    trigger,    // WATCHDOG=trigger: hang me
    timeout,    // WATCHDOG_USEC=N: its own timeout, 1 ms to a day
    status,     // STATUS=text, at most 256 bytes
    error,      // ERRNO=N, 0..4095
    recycle,    // UFORK_RECYCLE=why
    mold,       // UFORK_MOLD=requests: past its refork_after threshold (worker::count_requests)
    busy,       // UFORK_BUSY=1: a request began in a pool the autoscaler stopped looking at (worker::begin_request)
    lifecycle,  // STOPPING=1, RELOADING=1: logged
  } what = ignored;
  std::chrono::milliseconds timeout_value{};
  int error_value = 0;
  std::string text;  // status's text, recycle's why
};

inline constexpr std::size_t max_status = 256;

inline notify_line parse_notify_line(std::string_view line) {
  auto eq = line.find('=');
  if (eq == std::string_view::npos) return {};
  std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
  auto number = [value]() -> std::optional<long long> {  // all of it, decimal
    long long v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return v;
  };
  notify_line n;
  if (key == "READY" && value == "1") {
    n.what = notify_line::ready;
  } else if (key == "WATCHDOG" && value == "1") {
    n.what = notify_line::watchdog;
  } else if (key == "WATCHDOG" && value == "trigger") {
    n.what = notify_line::trigger;
  } else if (key == "WATCHDOG_USEC") {  // at most a day, as --timeout
    if (auto usec = number(); usec && *usec > 0) {
      n.what = notify_line::timeout;
      long long ms = std::min<long long>(*usec / 1000, 86'400'000);
      n.timeout_value = std::chrono::milliseconds(std::max<long long>(ms, 1));
    }
  } else if (key == "STATUS") {
    n.what = notify_line::status;
    n.text = std::string(value.substr(0, max_status));
  } else if (key == "ERRNO") {
    if (auto err = number(); err && *err >= 0 && *err < 4096) {
      n.what = notify_line::error;
      n.error_value = static_cast<int>(*err);
    }
  } else if (key == "UFORK_RECYCLE") {  // past max_requests (worker::count_requests), or a program's own wish
    n.what = notify_line::recycle;
    n.text = std::string(value.substr(0, max_status));
  } else if (key == "UFORK_MOLD" && value == "requests") {
    n.what = notify_line::mold;
  } else if (key == "UFORK_BUSY" && value == "1") {
    n.what = notify_line::busy;
  } else if ((key == "STOPPING" || key == "RELOADING") && value == "1") {
    n.what = notify_line::lifecycle;
  }
  return n;
}

}  // namespace ufork
