#include "deploy/restart_backoff.h"

#include <vector>

#include <gtest/gtest.h>

namespace pgf {
namespace {

using std::chrono::seconds;

MonoTime at(int s) {
  return MonoTime{} + seconds(s);
}

TEST(RestartBackoff, AFirstDeathIsRestartedAtOnce) {
  RestartBackoff b;
  EXPECT_FALSE(b.due(at(0)));
  EXPECT_FALSE(b.died(at(100)));
  EXPECT_TRUE(b.due(at(100)));
  EXPECT_EQ(b.streak(), 1);
  b.started(at(100));
  EXPECT_FALSE(b.due(at(100)));
  EXPECT_EQ(b.nextStart(), std::nullopt);
}

TEST(RestartBackoff, DeathsSoonAfterStartsWaitTwiceAsLongEachTimeUpToTheMaximum) {
  RestartBackoff b({Millis(1000), Millis(8000), Millis(60000), 100});
  int now = 0;
  b.died(at(now));
  b.started(at(now));
  // Each death 1 s after its start: 1 s, 2 s, 4 s, 8 s, then 8 s again.
  for (int expected : {1, 2, 4, 8, 8}) {
    now += 1;
    b.died(at(now));
    ASSERT_TRUE(b.nextStart().has_value());
    EXPECT_EQ(*b.nextStart(), at(now + expected)) << "streak " << b.streak();
    EXPECT_FALSE(b.due(at(now + expected - 1)));
    EXPECT_TRUE(b.due(at(now + expected)));
    now += expected;
    b.started(at(now));
  }
}

TEST(RestartBackoff, AProcessThatRanLongEnoughStartsANewStreak) {
  RestartBackoff b({Millis(1000), Millis(60000), Millis(30000), 5});
  b.died(at(0));
  b.started(at(0));
  b.died(at(1));
  EXPECT_EQ(b.streak(), 2);
  b.started(at(2));
  b.died(at(40));  // ran 38 s
  EXPECT_EQ(b.streak(), 1);
  EXPECT_TRUE(b.due(at(40)));
}

TEST(RestartBackoff, ACrashLoopIsReportedOncePerStreak) {
  RestartBackoff b({Millis(1000), Millis(4000), Millis(60000), 3});
  int now = 0;
  std::vector<bool> reported;
  for (int i = 0; i < 5; ++i) {
    reported.push_back(b.died(at(now)));
    now = static_cast<int>(
        std::chrono::duration_cast<seconds>(b.nextStart()->time_since_epoch()).count());
    b.started(at(now));
    now += 1;
  }
  EXPECT_EQ(reported, (std::vector<bool>{false, false, true, false, false}));
  // A death while a start is pending is the same death.
  RestartBackoff c;
  c.died(at(0));
  c.started(at(0));
  c.died(at(1));
  const auto next = c.nextStart();
  EXPECT_FALSE(c.died(at(1)));
  EXPECT_EQ(c.nextStart(), next);
  EXPECT_EQ(c.streak(), 2);
}

}  // namespace
}  // namespace pgf
