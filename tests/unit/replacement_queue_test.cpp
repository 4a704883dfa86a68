// The replacement queue (core/replacement_queue.hpp), alone.
#include <gtest/gtest.h>

#include <string>

#include "core/replacement_queue.hpp"

namespace ufork {
namespace {

TEST(replacement_queue, a_reload_takes_its_slots_in_order_one_at_a_time) {
  replacement_queue q;
  ASSERT_TRUE(q.reload({2, 0, 1}, "reload", 0));
  EXPECT_EQ(q.next(0, 4), 2);
  EXPECT_EQ(q.next(1, 4), std::nullopt);  // its successor is starting: the next waits, whatever recycling's at_once
  EXPECT_EQ(q.next(0, 4), 0);
  EXPECT_EQ(q.next(0, 4), 1);
  EXPECT_EQ(q.next(0, 4), std::nullopt);
}

TEST(replacement_queue, recycling_alone_starts_at_once_successors_and_queues_a_slot_once) {
  replacement_queue q;
  q.recycle(3);
  q.recycle(1);
  q.recycle(3);
  q.recycle(0);
  EXPECT_EQ(q.next(0, 2), 3);
  EXPECT_EQ(q.next(1, 2), 1);
  EXPECT_EQ(q.next(2, 2), std::nullopt);
  EXPECT_EQ(q.next(1, 0), std::nullopt);  // at_once 0 counts as 1
  EXPECT_EQ(q.next(0, 0), 0);
  EXPECT_EQ(q.next(0, 2), std::nullopt);
}

TEST(replacement_queue, a_reload_is_refused_while_slots_wait_or_a_successor_starts) {
  replacement_queue q;
  q.recycle(1);
  EXPECT_FALSE(q.reload({0}, "reload", 0));
  EXPECT_EQ(q.next(0, 1), 1);
  EXPECT_FALSE(q.reload({0}, "reload", 1));  // 1's successor still starting
  EXPECT_TRUE(q.reload({0}, "restart", 0));
  EXPECT_EQ(q.next(0, 1), 0);
}

TEST(replacement_queue, a_reload_says_its_name_once_when_nothing_is_left) {
  replacement_queue q;
  ASSERT_TRUE(q.reload({0, 1}, "restart", 0));
  EXPECT_EQ(q.finished(0, false), nullptr);  // slots wait
  (void)q.next(0, 1);
  (void)q.next(0, 1);
  EXPECT_EQ(q.finished(1, false), nullptr);  // a successor starts
  EXPECT_EQ(q.finished(0, true), nullptr);   // a predecessor is still stopping
  EXPECT_EQ(std::string(q.finished(0, false)), "restart");
  EXPECT_EQ(q.finished(0, false), nullptr);
}

TEST(replacement_queue, recycling_alone_never_says_done_and_abandon_forgets_everything) {
  replacement_queue q;
  q.recycle(0);
  (void)q.next(0, 1);
  EXPECT_EQ(q.finished(0, false), nullptr);
  ASSERT_TRUE(q.reload({0, 1, 2}, "reload", 0));
  (void)q.next(0, 1);
  q.abandon();
  EXPECT_FALSE(q.busy(0));
  EXPECT_EQ(q.next(0, 1), std::nullopt);
  EXPECT_EQ(q.finished(0, false), nullptr);
}

}  // namespace
}  // namespace ufork
