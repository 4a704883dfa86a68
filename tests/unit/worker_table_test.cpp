// The worker table's slots and the life cycle, without processes.
#include <gtest/gtest.h>

#include <set>

#include "core/worker_table.hpp"

namespace ufork {
namespace {

std::unique_ptr<process> worker(int slot, pid_t pid) {
  auto p = std::make_unique<process>(1024);
  p->slot = slot;
  p->pid = pid;
  return p;
}

TEST(worker_table, every_state_is_reachable_and_only_along_the_life_cycle) {
  using ws = worker_state;
  const ws all[] = {ws::spawning, ws::starting, ws::ready, ws::stopping, ws::exited};
  std::set<std::pair<ws, ws>> expected = {{ws::spawning, ws::starting}, {ws::starting, ws::ready},
                                          {ws::starting, ws::stopping}, {ws::ready, ws::stopping},
                                          {ws::spawning, ws::exited},   {ws::starting, ws::exited},
                                          {ws::ready, ws::exited},      {ws::stopping, ws::exited}};
  for (ws from : all)
    for (ws to : all)
      EXPECT_EQ(worker_table::allowed(from, to), expected.count({from, to}) == 1)
          << to_string(from) << " -> " << to_string(to);
  worker_table t;
  t.resize(1);
  process& p = t.insert(worker(0, 100), false);
  EXPECT_TRUE(t.set_state(p, ws::starting));
  EXPECT_FALSE(t.set_state(p, ws::starting));
  EXPECT_TRUE(t.set_state(p, ws::ready));
  EXPECT_FALSE(t.set_state(p, ws::starting));
  EXPECT_EQ(p.state, ws::ready);  // a refused transition changes nothing
  EXPECT_TRUE(t.set_state(p, ws::stopping));
  EXPECT_TRUE(t.set_state(p, ws::exited));
}

TEST(worker_table, a_dead_current_worker_leaves_its_slot_empty) {
  worker_table t;
  t.resize(2);
  process& a = t.insert(worker(1, 100), false);
  EXPECT_EQ(t.current(1), &a);
  EXPECT_TRUE(t.release(a));
  EXPECT_EQ(t.slot(1).current, 0);
  EXPECT_FALSE(t.release(a));  // already outgoing
  EXPECT_TRUE(t.remove(100));
  EXPECT_TRUE(t.empty());
}

TEST(worker_table, a_reload_successor_takes_over_when_ready_or_when_the_old_one_dies) {
  worker_table t;
  t.resize(1);
  process& old = t.insert(worker(0, 100), false);
  process& next = t.insert(worker(0, 101), true);
  EXPECT_EQ(t.slot(0).current, 100);
  EXPECT_EQ(t.slot(0).incoming, 101);
  EXPECT_EQ(t.promote(next), 100);  // ready: the old one is returned, to be stopped
  EXPECT_EQ(t.slot(0).current, 101);
  EXPECT_EQ(t.slot(0).incoming, 0);
  EXPECT_FALSE(t.release(old));     // outgoing: the slot does not need anyone

  process& third = t.insert(worker(0, 102), true);
  EXPECT_FALSE(t.release(*t.find(101)));  // the current one dies: the incoming one takes over
  EXPECT_EQ(t.slot(0).current, 102);
  EXPECT_EQ(t.promote(third), 0);         // nothing left to replace

  process& failed = t.insert(worker(0, 103), true);
  EXPECT_FALSE(t.release(failed));  // a successor that dies leaves the slot as it was
  EXPECT_EQ(t.slot(0).current, 102);
  EXPECT_EQ(t.slot(0).incoming, 0);
}

TEST(worker_table, growing_keeps_the_slots_generations) {
  worker_table t;
  t.resize(2);
  t.slot(1).generation = 7;
  t.resize(1);  // shrinking keeps the slots: they may grow back
  t.resize(4);
  EXPECT_EQ(t.slot_count(), 4);
  EXPECT_EQ(t.slot(1).generation, 7u);
}

}  // namespace
}  // namespace ufork
