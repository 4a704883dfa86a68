// The upgrade state's text: what one image writes, the next reads the same;
// anything else is refused with a reason.
#include <gtest/gtest.h>

#include "core/upgrade.hpp"

namespace ufork::upgrade {
namespace {

state sample() {
  state s;
  s.from = 4242;
  s.board = 5;
  s.notify_rx = 6;
  s.notify_tx = 7;
  s.notify_name = "@ufork-4242-0-abc";
  s.exec_notify = 8;
  s.nofile = {1024, 524288};
  s.size = 2;
  s.generations = {3, 1};
  s.counters.spawned = 4;
  s.counters.requests = 17;
  s.requests_of_exited = 9;
  worker_record w;
  w.slot = 1;
  w.generation = 1;
  w.pid = 4251;
  w.state = 2;
  w.started = 123456789;
  w.pidfd = 9;
  w.out = 10;
  w.err = 11;
  w.out_pending = "half a line with spaces: and\ta colon";
  w.detail = "two\nlines";
  s.workers.push_back(w);
  exit_info d;
  d.id = 0;
  d.pid = 4249;
  d.signal = 9;
  d.reason = exit_reason::crashed;
  d.detail = "killed";
  d.uptime = std::chrono::milliseconds(5);
  s.dead.push_back(d);
  return s;
}

TEST(upgrade_state, reads_back_what_it_wrote) {
  std::string text = encode(sample());
  auto back = decode(text);
  ASSERT_TRUE(std::holds_alternative<state>(back)) << std::get<std::string>(back);
  const state& s = std::get<state>(back);
  EXPECT_EQ(s.from, 4242);
  EXPECT_EQ(s.notify_name, "@ufork-4242-0-abc");
  EXPECT_EQ(s.generations, (std::vector<unsigned>{3, 1}));
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_EQ(s.workers[0].out_pending, "half a line with spaces: and\ta colon");
  EXPECT_EQ(s.workers[0].detail, "two\nlines");
  EXPECT_EQ(s.workers[0].started, 123456789);
  ASSERT_EQ(s.dead.size(), 1u);
  EXPECT_EQ(s.dead[0].detail, "killed");
  EXPECT_EQ(s.dead[0].uptime, std::chrono::milliseconds(5));
  EXPECT_EQ(encode(s), text);
}

std::string refusal(const std::string& text) {
  auto r = decode(text);
  return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "(accepted)";
}

TEST(upgrade_state, refuses_another_version_a_cut_and_fds_it_may_not_name) {
  std::string text = encode(sample());
  std::string v2 = text;
  v2.replace(0, v2.find('\n'), "ufork-upgrade 2");
  EXPECT_EQ(refusal(v2), "its format is version 2; this build reads version 1");
  EXPECT_EQ(refusal(text.substr(0, text.size() / 2)), refusal(text.substr(0, text.size() / 2)));
  EXPECT_NE(refusal(text.substr(0, text.size() / 2)), "(accepted)");
  EXPECT_EQ(refusal(text.substr(0, text.rfind("end"))), "it ends before its end record");
  std::string stdio = text;
  stdio.replace(stdio.find("board 5"), 7, "board 1");
  EXPECT_EQ(refusal(stdio), "fd 1 is not one the state may name");
  EXPECT_EQ(refusal("GET / HTTP/1.1\r\n"), "not an upgrade state");
  EXPECT_EQ(refusal(""), "a field is missing");
}

}  // namespace
}  // namespace ufork::upgrade
