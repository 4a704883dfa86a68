// The scoreboard's cells as the pool's workers read them (spreading
// connections): which cells a worker reads, and what a dead worker leaves.
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/scoreboard.hpp"

namespace ufork::detail {
namespace {

TEST(scoreboard, the_first_cell_names_how_far_the_cells_in_use_go) {
  scoreboard board(16);
  cell* a = board.acquire();
  cell* b = board.acquire();
  cell* c = board.acquire();
  EXPECT_EQ(board.cells()[0].board_high.load(), 3u);
  board.release(b);
  board.release(c);
  EXPECT_EQ(board.cells()[0].board_high.load(), 3u) << "a worker reads cells freed since: they say nothing";
  EXPECT_EQ(board.acquire(), c) << "the last freed is handed out first";
  EXPECT_EQ(board.cells()[0].board_high.load(), 3u);
  (void)a;
}

TEST(scoreboard, a_released_cell_takes_no_connection_and_holds_none) {
  scoreboard board(4);
  cell* a = board.acquire();
  a->accepting = true;
  a->connections = 40;
  board.release(a);  // its worker died accepting
  EXPECT_FALSE(a->accepting.load());
  EXPECT_EQ(a->connections.load(), 0u);
}

TEST(scoreboard, an_upgrade_adopting_a_high_cell_moves_the_mark) {
  scoreboard first(16);
  (void)first.acquire();
  (void)first.acquire();
  scoreboard again(16, ::dup(first.fd()));  // the same memory, as an upgraded arbiter maps it
  EXPECT_EQ(again.cells()[0].board_high.load(), 2u);
  ASSERT_NE(again.adopt(4), nullptr);
  EXPECT_EQ(again.cells()[0].board_high.load(), 5u);
}

}  // namespace
}  // namespace ufork::detail
