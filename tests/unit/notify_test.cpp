// The sd_notify line reader: what a worker may say, and what is refused.
#include <gtest/gtest.h>

#include "core/notify.hpp"

namespace ufork {
namespace {

using k = notify_line;

TEST(notify_line, reads_what_a_worker_may_say) {
  EXPECT_EQ(parse_notify_line("READY=1").what, k::ready);
  EXPECT_EQ(parse_notify_line("WATCHDOG=1").what, k::watchdog);
  EXPECT_EQ(parse_notify_line("WATCHDOG=trigger").what, k::trigger);
  auto t = parse_notify_line("WATCHDOG_USEC=2500000");
  EXPECT_EQ(t.what, k::timeout);
  EXPECT_EQ(t.timeout_value, std::chrono::milliseconds(2500));
  EXPECT_EQ(parse_notify_line("STATUS=serving 12 clients").text, "serving 12 clients");
  auto e = parse_notify_line("ERRNO=2");
  EXPECT_EQ(e.what, k::error);
  EXPECT_EQ(e.error_value, 2);
  EXPECT_EQ(parse_notify_line("UFORK_RECYCLE=requests").text, "requests");
  EXPECT_EQ(parse_notify_line("STOPPING=1").what, k::lifecycle);
}

TEST(notify_line, bounds_or_ignores_the_rest) {
  EXPECT_EQ(parse_notify_line("WATCHDOG_USEC=1").timeout_value, std::chrono::milliseconds(1));  // at least 1 ms
  EXPECT_EQ(parse_notify_line("WATCHDOG_USEC=9223372036854775807").timeout_value, std::chrono::hours(24));
  EXPECT_EQ(parse_notify_line("STATUS=" + std::string(10000, 'x')).text.size(), max_status);
  for (const char* line : {"READY=2", "READY", "WATCHDOG_USEC=0", "WATCHDOG_USEC=-5", "WATCHDOG_USEC=12abc",
                           "WATCHDOG_USEC=99999999999999999999", "ERRNO=4096", "ERRNO=-1", "MAINPID=1", "=1", ""})
    EXPECT_EQ(parse_notify_line(line).what, k::ignored) << line;
}

}  // namespace
}  // namespace ufork
