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

TEST(Divergence, AnAncestorLeftElsewhereIsAnotherBranchEvenOnTheLeadersTimelineNumber) {
  // Two members promoted apart from each other out of timeline 3, both to timeline 4.
  auto c = clusterLedOnTimeline(4, nlohmann::json::array({{1, 1000, "a", "t", "node2"},
                                                          {2, 2000, "b", "t", "node2"},
                                                          {3, 3000, "c", "t", "node2"}}));
  LocalPostgres other_branch = standbyAt(4, 3500);
  other_branch.lineage = {{1, 1000}, {2, 2000}, {3, 3200}};
  EXPECT_TRUE(divergedFromLeader(c, other_branch));
  LocalPostgres same_branch = standbyAt(4, 3500);
  same_branch.lineage = {{1, 1000}, {2, 2000}, {3, 3000}};
  EXPECT_FALSE(divergedFromLeader(c, same_branch));
  // An ancestor the history does not name, or one at or after the leader's timeline, tells
  // nothing.
  LocalPostgres unnamed = standbyAt(4, 3500);
  unnamed.lineage = {{1, 1000}, {2, 2000}, {3, 3000}, {7, 9000}};
  EXPECT_FALSE(divergedFromLeader(c, unnamed));
  auto no_history = clusterLedOnTimeline(4, nlohmann::json::array());
  EXPECT_FALSE(divergedFromLeader(no_history, other_branch));
}

TEST(ClusterHistory, TheLeaderAddsTheSwitchesItsHistoryLacks) {
  HistoryAuthor author{"found", "2026-12-01T00:00:00Z", "node3"};
  auto history = nlohmann::json::array({{1, 1000, "a", "t", "node2"}});
  auto completed = completedHistory(history, {{1, 1000}, {2, 2000}, {3, 3000}}, author);
  ASSERT_TRUE(completed.has_value());
  EXPECT_EQ(*completed,
            nlohmann::json::array({{1, 1000, "a", "t", "node2"},
                                   {2, 2000, "found", "2026-12-01T00:00:00Z", "node3"},
                                   {3, 3000, "found", "2026-12-01T00:00:00Z", "node3"}}));
  EXPECT_EQ(completedHistory(*completed, {{1, 1000}, {2, 2000}, {3, 3000}}, author), std::nullopt);
}

TEST(ClusterHistory, APositionThatDiffersFromTheLeadersFileIsReplacedAndOrderKept) {
  HistoryAuthor author{"found", "t2", "node3"};
  auto history = nlohmann::json::array({{3, 2900, "lower bound", "t", "node1"},
                                        {1, 1000, "a", "t", "node2"},
                                        {5, 9000, "another branch", "t", "node1"}});
  auto completed = completedHistory(history, {{1, 1000}, {2, 2000}, {3, 3000}}, author);
  ASSERT_TRUE(completed.has_value());
  EXPECT_EQ(*completed, nlohmann::json::array({{1, 1000, "a", "t", "node2"},
                                               {2, 2000, "found", "t2", "node3"},
                                               {3, 3000, "found", "t2", "node3"},
                                               {5, 9000, "another branch", "t", "node1"}}));
  auto from_nothing = completedHistory(nlohmann::json(), {{1, 1000}}, author);
  ASSERT_TRUE(from_nothing.has_value());
  EXPECT_EQ(*from_nothing, nlohmann::json::array({{1, 1000, "found", "t2", "node3"}}));
  EXPECT_EQ(completedHistory(nlohmann::json::array(), {}, author), std::nullopt);
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

TEST(TimelineHistory, EverySwitchOfTheFileInOrder) {
  auto switches = parseTimelineHistory(
      "1\t0/3000000\tno recovery target specified\n"
      "junk line\n"
      "\n"
      "2\t0/5000A10\tno recovery target specified\n");
  ASSERT_EQ(switches.size(), 2u);
  EXPECT_EQ(switches[0].parent, 1);
  EXPECT_EQ(switches[0].position, 0x3000000);
  EXPECT_EQ(switches[1].parent, 2);
  EXPECT_EQ(switches[1].position, 0x5000A10);
  EXPECT_EQ(readTimelineHistory("/nonexistent", 3), std::nullopt);
  EXPECT_EQ(readTimelineHistory("/nonexistent", 1), std::nullopt);
}

}  // namespace
}  // namespace pgf
