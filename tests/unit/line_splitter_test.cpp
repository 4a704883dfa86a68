#include "core/line_splitter.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ufork {
namespace {

std::vector<std::string> split(line_splitter& s, std::initializer_list<std::string_view> chunks, bool finish) {
  std::vector<std::string> out;
  auto emit = [&](std::string_view l) { out.emplace_back(l); };
  for (auto c : chunks) s.feed(c, emit);
  if (finish) s.finish(emit);
  return out;
}

TEST(line_splitter, joins_lines_across_reads) {
  line_splitter s(100);
  EXPECT_EQ(split(s, {"ab", "c\nde", "f\n\ng"}, false), (std::vector<std::string>{"abc", "def", ""}));
  EXPECT_EQ(split(s, {}, true), (std::vector<std::string>{"g"}));
}

TEST(line_splitter, splits_overlong_lines_into_pieces) {
  line_splitter s(4);
  EXPECT_EQ(split(s, {"abcdefghij\nxy"}, true), (std::vector<std::string>{"abcd", "efgh", "ij", "xy"}));
  EXPECT_EQ(split(s, {"ab", "cdef", "gh\n"}, false), (std::vector<std::string>{"abcd", "efgh"}));
  EXPECT_EQ(split(s, {"abcd\n"}, false), (std::vector<std::string>{"abcd"}));
}

TEST(line_splitter, finish_without_partial_emits_nothing) {
  line_splitter s(8);
  EXPECT_TRUE(split(s, {"a\n"}, true) == std::vector<std::string>{"a"});
}

}  // namespace
}  // namespace ufork
