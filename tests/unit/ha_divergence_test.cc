#include "ha/divergence.h"

#include <gtest/gtest.h>

namespace pgf {
namespace {

ClusterView clusterLedOnTimeline(int timeline, nlohmann::json history) {
  ClusterView c;
  c.leader = LeaderInfo{"node2", 1, 1};
  MemberInfo m;
  m.name = "node2";
  m.timeline = timeline;
  c.members.push_back(m);
  c.history = std::move(history);
  return c;
}

LocalPostgres standbyAt(int timeline, int64_t position) {
  LocalPostgres pg;
  pg.data_dir_empty = false;
  pg.running = true;
  pg.in_recovery = true;
  pg.timeline = timeline;
  pg.wal_position = position;
  return pg;
}

TEST(Divergence, AheadOfTheForkPointOnAnOlderTimelineIsDiverged) {
  auto c = clusterLedOnTimeline(2, nlohmann::json::array({{1, 1000, "promoted", "t", "node2"}}));
  EXPECT_TRUE(divergedFromLeader(c, standbyAt(1, 1001)));
  EXPECT_FALSE(divergedFromLeader(c, standbyAt(1, 1000)));
  EXPECT_FALSE(divergedFromLeader(c, standbyAt(1, 900)));
}

TEST(Divergence, SameTimelineOrUnknownIsNotDiverged) {
  auto c = clusterLedOnTimeline(2, nlohmann::json::array({{1, 1000, "promoted", "t", "node2"}}));
  EXPECT_FALSE(divergedFromLeader(c, standbyAt(2, 5000)));
  EXPECT_FALSE(divergedFromLeader(c, standbyAt(0, 5000)));
  auto no_history = clusterLedOnTimeline(3, nlohmann::json::array());
  EXPECT_FALSE(divergedFromLeader(no_history, standbyAt(1, 5000)));
  auto malformed = clusterLedOnTimeline(2, nlohmann::json::array({"x", {1}, {"1", 5}}));
  EXPECT_FALSE(divergedFromLeader(malformed, standbyAt(1, 5000)));
}

TEST(Divergence, UsesTheEntryOfOurOwnTimeline) {
  auto c = clusterLedOnTimeline(
      3, nlohmann::json::array({{1, 1000, "a", "t", "node2"}, {2, 3000, "b", "t", "node2"}}));
  EXPECT_TRUE(divergedFromLeader(c, standbyAt(2, 3500)));
  EXPECT_FALSE(divergedFromLeader(c, standbyAt(2, 2500)));
  EXPECT_TRUE(divergedFromLeader(c, standbyAt(1, 1500)));
}

}  // namespace
}  // namespace pgf

#include "postgres/timeline.h"

namespace pgf {
namespace {

TEST(TimelineHistory, TheLastLineGivesWhereTheParentTimelineEnded) {
  EXPECT_EQ(parseTimelineSwitch("1\t0/4038EA8\tno recovery target specified\n"), 0x4038EA8);
  EXPECT_EQ(parseTimelineSwitch("1\t0/3000000\tno recovery target specified\n\n"
                                "2\t0/5000A10\tno recovery target specified\n"),
            0x5000A10);
  EXPECT_EQ(parseTimelineSwitch(""), std::nullopt);
  EXPECT_EQ(parseTimelineSwitch("garbage\n"), std::nullopt);
  EXPECT_EQ(readTimelineSwitch("/nonexistent", 2), std::nullopt);
}

}  // namespace
}  // namespace pgf
