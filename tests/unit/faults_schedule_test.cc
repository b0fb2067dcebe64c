// The fault-injection suite's schedules: a seed always gives the same schedule (so a printed
// seed replays a failing run), different seeds give different ones, every schedule is bounded in
// time, and the catalogue's scenarios are well formed.
#include <set>

#include <gtest/gtest.h>

#include "faults/schedule.h"

namespace pgf::faults {
namespace {

TEST(FaultSchedule, TheSameSeedGivesTheSameSchedule) {
  for (uint64_t seed : {1ULL, 42ULL, 20261201ULL}) {
    auto a = randomSchedule(seed);
    auto b = randomSchedule(seed);
    EXPECT_EQ(describe(a), describe(b));
    EXPECT_EQ(a.seed, seed);
  }
}

TEST(FaultSchedule, SeedsOfARunDifferAndSoDoTheirSchedules) {
  std::set<uint64_t> seeds;
  std::set<std::string> schedules;
  for (int n = 0; n < 100; ++n) {
    seeds.insert(scheduleSeed(7, n));
    schedules.insert(describe(randomSchedule(scheduleSeed(7, n))));
  }
  EXPECT_EQ(seeds.size(), 100u);
  EXPECT_GT(schedules.size(), 95u);
  EXPECT_NE(scheduleSeed(7, 0), scheduleSeed(8, 0));
}

TEST(FaultSchedule, RandomSchedulesAreBoundedAndUseEveryKind) {
  std::set<FaultKind> kinds;
  for (int n = 0; n < 500; ++n) {
    auto s = randomSchedule(scheduleSeed(99, n));
    ASSERT_GE(s.steps.size(), 1u);
    ASSERT_LE(s.steps.size(), 3u);
    EXPECT_LE(s.endMs(), 40000) << describe(s);
    int previous = -1;
    for (const auto& step : s.steps) {
      kinds.insert(step.kind);
      EXPECT_GE(step.duration_ms, 2000);
      EXPECT_LE(step.duration_ms, 12000);
      EXPECT_GT(step.start_ms, previous);
      previous = step.start_ms;
      EXPECT_GE(step.member, 0);
      EXPECT_LE(step.member, 2);
      const bool etcd_only =
          step.kind == FaultKind::kEtcdMemberDown || step.kind == FaultKind::kEtcdMajorityDown;
      EXPECT_EQ(step.target == Target::kNone, etcd_only) << describe(s);
    }
  }
  EXPECT_EQ(kinds.size(), 14u);
}

TEST(FaultSchedule, DescribeNamesEveryStep) {
  Schedule s;
  s.steps.push_back({FaultKind::kFreezeAgent, Target::kPrimary, 3000, 4500, 0});
  s.steps.push_back({FaultKind::kEtcdMemberDown, Target::kNone, 5000, 2000, 1});
  EXPECT_EQ(describe(s),
            "  +3.0s for 4.5s freeze-agent primary\n"
            "  +5.0s for 2.0s etcd-member-down etcd2\n");
  EXPECT_EQ(s.endMs(), 7500);
  EXPECT_FALSE(s.freezesANode());
  s.steps.push_back({FaultKind::kFreezeNode, Target::kReplica, 0, 1000, 0});
  EXPECT_TRUE(s.freezesANode());
}

TEST(FaultSchedule, TheCatalogueHasUniqueNamedScenarios) {
  std::set<std::string> names;
  for (const auto& s : catalogue()) {
    EXPECT_FALSE(s.name.empty());
    EXPECT_NE(s.name, "random");
    EXPECT_FALSE(s.steps.empty()) << s.name;
    EXPECT_TRUE(names.insert(s.name).second) << s.name << " twice";
  }
  EXPECT_TRUE(names.count("primary-node-frozen"));
  EXPECT_TRUE(names.count("primary-with-etcd-minority"));
}

}  // namespace
}  // namespace pgf::faults
