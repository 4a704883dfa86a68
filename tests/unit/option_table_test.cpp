// The option table (core/option_table.hpp), alone: one entry per key, each
// setting its field with its own conversion and range, and validate()
// holding a struct to the same ranges.
#include <gtest/gtest.h>

#include <set>

#include "core/option_table.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {

TEST(option_table, keys_are_unique_and_found_either_spelling) {
  std::set<std::string> keys;
  for (const auto& e : option_table()) {
    EXPECT_TRUE(keys.insert(e.key).second) << e.key;
    EXPECT_TRUE(e.set && e.number && e.show) << e.key;
    EXPECT_NE(std::string(e.flags).find(std::string("--") + e.key), std::string::npos) << e.key << ": " << e.flags;
    EXPECT_STRNE(e.help, "") << e.key;
  }
  EXPECT_EQ(find_option("max_requests"), find_option("max-requests"));
  ASSERT_NE(find_option("max-requests"), nullptr);
  EXPECT_EQ(find_option("max-request"), nullptr);
}

TEST(option_table, each_number_lands_in_its_field_converted_once) {
  options o;
  find_option("graceful-timeout")->set(o, "2.5");
  EXPECT_EQ(o.graceful_timeout, std::chrono::milliseconds(2500));
  find_option("max-rss")->set(o, "512");
  EXPECT_EQ(o.recycle.max_rss, 512UL << 20);
  find_option("workers")->set(o, "7");
  EXPECT_EQ(o.workers, 7);
  find_option("watchdog")->set(o, "0.3");
  EXPECT_EQ(o.exec.watchdog, std::chrono::milliseconds(300));
  find_option("env")->set(o, "A=1");
  find_option("env")->set(o, "B=2");
  EXPECT_EQ(o.exec.env, (std::vector<std::string>{"A=1", "B=2"}));
  find_option("rlimit")->set(o, "nofile=1024:4096");
  ASSERT_EQ(o.rlimits.size(), 1u);
  EXPECT_EQ(o.rlimits[0].hard, 4096u);
  find_option("notify")->set(o, "true");
  EXPECT_TRUE(o.exec.notify);
  EXPECT_EQ(find_option("graceful-timeout")->show(o), "2.5");
  EXPECT_EQ(find_option("max-rss")->show(o), "512");
}

TEST(option_table, each_range_is_held_at_both_ends_by_the_setter_and_by_validate) {
  for (const auto& e : option_table()) {
    if (e.kind != option_kind::count && e.kind != option_kind::seconds && e.kind != option_kind::mib) continue;
    options o;
    auto text = [&e](double v) {
      return e.kind == option_kind::seconds ? std::to_string(v) : std::to_string(static_cast<long long>(v));
    };
    EXPECT_NO_THROW(e.set(o, text(e.lo))) << e.key;
    EXPECT_NO_THROW(e.set(o, text(e.hi))) << e.key;
    EXPECT_THROW(e.set(o, "abc"), std::invalid_argument) << e.key;
    double below = e.kind == option_kind::seconds && e.lo > 0 ? e.lo / 2 : e.lo - 1;
    if (below != 0 || !e.zero_is_none) {
      EXPECT_THROW(e.set(o, text(below)), std::invalid_argument) << e.key << " " << text(below);
    }
    EXPECT_THROW(e.set(o, text(e.hi * 2 + 1)), std::invalid_argument) << e.key;
    if (e.zero_is_none) {
      EXPECT_NO_THROW(e.set(o, "0")) << e.key;
    }
  }
  options o;
  o.recycle.max_fds_percent = 101;
  try {
    validate(o);
    ADD_FAILURE() << "max_fds_percent 101 accepted";
  } catch (const error& x) {
    EXPECT_NE(std::string(x.what()).find("--max-fds-percent: expected a whole number from 1 to 100 (or 0: none), not 101"),
              std::string::npos)
        << x.what();
  }
  options fine;
  EXPECT_NO_THROW(validate(fine));
  fine.workers = 0;
  EXPECT_THROW(validate(fine), error);
  fine.allow_empty = true;
  EXPECT_NO_THROW(validate(fine));
}

TEST(option_table, options_that_do_not_go_together_are_refused) {
  options o;
  o.exec.argv = {"/bin/true"};
  o.exec.watchdog = std::chrono::milliseconds(500);
  EXPECT_THROW(validate(o), error);  // needs notify
  o.exec.notify = true;
  EXPECT_NO_THROW(validate(o));
  o.recycle.max_requests = 10;
  EXPECT_THROW(validate(o), error);  // no request counter in an exec'd worker
  options library;
  library.exec.env = {"A=1"};
  EXPECT_THROW(validate(library), error);  // exec options without a program
}

}  // namespace
}  // namespace ufork
