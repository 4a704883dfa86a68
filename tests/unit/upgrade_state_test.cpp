// The upgrade state's text: what one image writes, the next reads the same;
// anything else is refused with a reason.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <tuple>
#include <type_traits>

#include "core/upgrade.hpp"

namespace ufork::upgrade {
namespace {

using clock = std::chrono::steady_clock;

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
  w.saved.slot = 1;
  w.saved.generation = 1;
  w.saved.pid = 4251;
  w.state = worker_state::starting;
  w.saved.started = clock::time_point(std::chrono::nanoseconds(123456789));
  w.pidfd = {9};
  w.out = {10};
  w.err = {11};
  w.out_pending = "half a line with spaces: and\ta colon";
  w.saved.detail = "two\nlines";
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
  EXPECT_EQ(s.workers[0], sample().workers[0]);
  EXPECT_EQ(s.workers[0].out_pending, "half a line with spaces: and\ta colon");
  EXPECT_EQ(s.workers[0].saved.detail, "two\nlines");
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
  v2.replace(0, v2.find('\n'), "ufork-upgrade 3");
  EXPECT_EQ(refusal(v2), "its format is version 3; this build reads version 2");
  EXPECT_EQ(refusal(text.substr(0, text.size() / 2)), refusal(text.substr(0, text.size() / 2)));
  EXPECT_NE(refusal(text.substr(0, text.size() / 2)), "(accepted)");
  EXPECT_EQ(refusal(text.substr(0, text.rfind("end"))), "it ends before its end record");
  std::string stdio = text;
  stdio.replace(stdio.find("board 5"), 7, "board 1");
  EXPECT_EQ(refusal(stdio), "fd 1 is not one the state may name");
  EXPECT_EQ(refusal("GET / HTTP/1.1\r\n"), "not an upgrade state");
  EXPECT_EQ(refusal(""), "a field is missing");
}


// Field k of whatever a field list visits, set to a value unlike its
// default (each type's own); the others as they were.
struct set_field {
  int k;
  int i = 0;
  template <class T>
  void operator()(const char*, T& v) {
    if (i++ == k) set(v);
  }
  template <class T>
  static void set(T& v) {
    if constexpr (requires { typename T::value_type; v.has_value(); }) {  // an optional: some value
      typename T::value_type x{};
      set(x);
      v = x;
    } else if constexpr (std::is_same_v<T, bool>)
      v = true;
    else if constexpr (std::is_enum_v<T>)
      v = static_cast<T>(2);  // ready, hung, outgoing: in every enum's range
    else if constexpr (std::is_same_v<T, std::string>)
      v = "a field: with spaces\nand a newline";
    else if constexpr (std::is_same_v<T, carried_fd>)
      v.fd = 40;
    else if constexpr (requires { typename T::clock; })
      v = T(std::chrono::duration_cast<typename T::duration>(std::chrono::nanoseconds(123456789012)));
    else if constexpr (requires { typename T::period; })
      v = T(77);
    else
      v = 7;
  }
};

struct count_fields {
  int n = 0;
  void operator()(const char*, const auto&) { ++n; }
};

// Every field of a worker's record, each in turn, set unlike what a record
// starts with: read back as it was written, so no field is lost across an
// upgrade (the list is the struct's: a field left out of it does not build).
TEST(upgrade_state, every_field_of_a_worker_travels) {
  count_fields count;
  const worker_record base = sample().workers[0];
  for_each_field(base, count);
  EXPECT_EQ(count.n, 24);
  for (int k = 0; k < count.n; ++k) {
    state s = sample();
    s.generations.resize(8);
    worker_record& w = s.workers[0];
    for_each_field(w, set_field{k});
    ASSERT_NE(w, base) << "field " << k << " kept its value";
    auto back = decode(encode(s));
    ASSERT_TRUE(std::holds_alternative<state>(back)) << "field " << k << ": " << std::get<std::string>(back);
    EXPECT_EQ(std::get<state>(back).workers.at(0), w) << "field " << k;
  }
}

// The same for the pool's counters and an exit.
TEST(upgrade_state, every_counter_and_every_field_of_an_exit_travels) {
  state s = sample();
  s.counters = {};
  int k = 0;
  for (auto* c : {&s.counters.spawned, &s.counters.exited, &s.counters.hung, &s.counters.backoffs,
                  &s.counters.spawn_errors, &s.counters.wakeups, &s.counters.stalls, &s.counters.log_lost,
                  &s.counters.requests, &s.counters.notify_ignored, &s.counters.orphans_reaped})
    *c = 100 + static_cast<std::uint64_t>(k++);
  exit_info& d = s.dead[0];
  d = exit_info{};
  d.id = 1;
  d.pid = 2;
  d.generation = 3;
  d.code = 4;
  d.signal = 5;
  d.core_dumped = d.oom_killed = d.oom_possible = d.was_ready = true;
  d.reason = exit_reason::recycled;
  d.detail = "a detail: with spaces";
  d.uptime = std::chrono::nanoseconds(6);
  d.when = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  auto back = decode(encode(s));
  ASSERT_TRUE(std::holds_alternative<state>(back)) << std::get<std::string>(back);
  const state& b = std::get<state>(back);
  EXPECT_EQ(b.counters.spawned, 100u);
  EXPECT_EQ(b.counters.orphans_reaped, 110u);
  const exit_info& e = b.dead.at(0);
  EXPECT_EQ(std::tie(e.id, e.pid, e.generation, e.code, e.signal, e.core_dumped, e.oom_killed, e.oom_possible,
                     e.was_ready, e.reason, e.detail, e.uptime, e.when),
            std::tie(d.id, d.pid, d.generation, d.code, d.signal, d.core_dumped, d.oom_killed, d.oom_possible,
                     d.was_ready, d.reason, d.detail, d.uptime, d.when));
  EXPECT_EQ(encode(b), encode(s));
}

// The fuzzer starts from a state this build reads (tests/fuzz/corpus).
TEST(upgrade_state, the_fuzz_corpus_is_in_this_format) {
  std::ifstream in(UFORK_FUZZ_CORPUS_DIR "/upgrade_state/valid");
  ASSERT_TRUE(in);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto back = decode(text);
  ASSERT_TRUE(std::holds_alternative<state>(back)) << std::get<std::string>(back);
  EXPECT_EQ(std::get<state>(back).workers.size(), 2u);
  EXPECT_EQ(encode(std::get<state>(back)), text);
}

TEST(upgrade_state, an_enum_travels_by_name_and_an_unknown_one_is_refused) {
  std::string text = encode(sample());
  EXPECT_NE(text.find(" starting "), std::string::npos) << text;
  EXPECT_NE(text.find(" current "), std::string::npos) << text;
  std::string bad = text;
  bad.replace(bad.find(" current "), 9, " sideways ");
  EXPECT_EQ(refusal(bad), "role: unknown 'sideways'");
  std::string exited = text;
  exited.replace(exited.find(" starting "), 10, " exited ");
  EXPECT_EQ(refusal(exited), "a worker's state is exited");
}

}  // namespace
}  // namespace ufork::upgrade
