#include "agent/timing.h"

#include <gtest/gtest.h>

namespace pgf {
namespace {

HaSettings settings(int ttl, int loop_wait, int retry_timeout) {
  HaSettings s;
  s.ttl = ttl;
  s.loop_wait = loop_wait;
  s.retry_timeout = retry_timeout;
  return s;
}

TEST(AgentTiming, DefaultsRenewWellBeforeTheDeadline) {
  auto t = deriveTiming(settings(30, 10, 10));
  EXPECT_EQ(t.safety_margin, Millis(3000));
  EXPECT_EQ(t.renew_interval, Millis(10000));
  EXPECT_EQ(t.request_timeout, Millis(8500));
  EXPECT_EQ(t.loop_interval, Millis(10000));
}

TEST(AgentTiming, ShortLeaseStillAllowsTwoBoundedAttempts) {
  auto t = deriveTiming(settings(2, 1, 2));
  EXPECT_EQ(t.safety_margin, Millis(500));
  EXPECT_EQ(t.renew_interval, Millis(750));
  EXPECT_EQ(t.request_timeout, Millis(375));
}

TEST(AgentTiming, RuleHoldsForEveryAcceptedCombination) {
  for (int ttl = 2; ttl <= 60; ++ttl) {
    for (int loop_wait = 1; loop_wait <= 20; ++loop_wait) {
      for (int retry = 1; retry <= 20; ++retry) {
        auto t = deriveTiming(settings(ttl, loop_wait, retry));
        Millis usable = t.ttl - t.safety_margin;
        // One failed attempt plus a second complete attempt still end before the deadline.
        EXPECT_LE(t.renew_interval + t.request_timeout + t.request_timeout, usable)
            << ttl << "/" << loop_wait << "/" << retry;
        EXPECT_GE(t.safety_margin, Millis(500));
        EXPECT_LE(t.renew_interval, t.loop_wait);
        // A member's key (same lease) is refreshed well before it can expire.
        EXPECT_LT(t.loop_interval, t.ttl - t.safety_margin);
        EXPECT_LE(t.loop_interval, t.loop_wait);
      }
    }
  }
}

}  // namespace
}  // namespace pgf
