// The pool's phase (core/pool_phase.hpp) and the signal table
// (core/signal_table.hpp), alone.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/pool_phase.hpp"
#include "core/signal_table.hpp"

namespace ufork {
namespace {

using enum pool_phase;
using ev = pool_event;

TEST(pool_phase, every_allowed_transition) {
  struct row {
    pool_phase from;
    ev e;
    bool drains;
    pool_phase to;
  };
  const row allowed[] = {
      {running, ev::terminate, true, draining},    {running, ev::terminate, false, stopping},
      {running, ev::interrupt, true, stopping},    {running, ev::quit, true, stopping_fast},
      {running, ev::give_up, true, stopping},      {draining, ev::terminate, true, stopping},
      {draining, ev::interrupt, true, stopping},   {draining, ev::drain_over, true, stopping},
      {draining, ev::give_up, true, stopping},     {draining, ev::quit, true, stopping_fast},
      {stopping, ev::interrupt, true, stopping_fast}, {stopping, ev::quit, false, stopping_fast},
  };
  for (const auto& r : allowed)
    EXPECT_EQ(after(r.from, r.e, r.drains), r.to) << to_string(r.from) << " event " << static_cast<int>(r.e);
}

TEST(pool_phase, what_changes_nothing_is_refused) {
  EXPECT_EQ(after(running, ev::drain_over, true), std::nullopt);  // a drain that never began
  EXPECT_EQ(after(stopping, ev::terminate, true), std::nullopt);  // a second SIGTERM while stopping
  EXPECT_EQ(after(stopping, ev::give_up, true), std::nullopt);
  EXPECT_EQ(after(stopping, ev::drain_over, true), std::nullopt);
  for (ev e : {ev::terminate, ev::interrupt, ev::quit, ev::drain_over, ev::give_up})
    EXPECT_EQ(after(stopping_fast, e, true), std::nullopt);  // nothing comes after a fast stop
}

TEST(pool_phase, a_stop_never_goes_back) {
  for (pool_phase from : {stopping, stopping_fast})
    for (ev e : {ev::terminate, ev::interrupt, ev::quit, ev::drain_over, ev::give_up})
      for (bool drains : {false, true}) {
        if (auto to = after(from, e, drains)) {
          EXPECT_TRUE(is_stopping(*to));
        }
      }
}

TEST(signal_table, one_verb_per_signal_and_every_one_described) {
  std::set<int> seen;
  for (const auto& e : signal_table) {
    EXPECT_TRUE(seen.insert(e.signal).second) << e.name;
    EXPECT_EQ(verb_of(e.signal), e.verb);
    EXPECT_STRNE(e.does, "");
  }
  EXPECT_EQ(verb_of(SIGCHLD), std::nullopt);
  EXPECT_EQ(verb_of(SIGKILL), std::nullopt);
}

// docs/control.md's table of signals says what the table says, row for row.
TEST(signal_table, docs_control_md_has_the_same_table) {
  std::ifstream in(UFORK_DOCS_DIR "/control.md");
  ASSERT_TRUE(in) << UFORK_DOCS_DIR "/control.md";
  std::stringstream text;
  text << in.rdbuf();
  std::string rows;
  for (std::string line; std::getline(text, line);)
    if (line.rfind("| SIG", 0) == 0) rows += line + "\n";
  std::string expected;
  for (const auto& e : signal_table) expected += std::string("| SIG") + e.name + " | " + e.does + " |\n";
  EXPECT_EQ(rows, expected);
}

}  // namespace
}  // namespace ufork
