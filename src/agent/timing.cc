#include "agent/timing.h"

#include <algorithm>

namespace pgf {

AgentTiming deriveTiming(const HaSettings& settings) {
  AgentTiming t;
  t.ttl = Millis(std::max(1, settings.ttl) * 1000LL);
  t.loop_wait = Millis(std::max(1, settings.loop_wait) * 1000LL);
  t.safety_margin = std::max(Millis(500), t.ttl / 10);
  Millis usable = t.ttl - t.safety_margin;
  Millis third = std::max(Millis(100), usable / 3);
  t.renew_interval = std::min(t.loop_wait, third);
  t.loop_interval = std::min(t.loop_wait, std::max(Millis(100), usable / 2));
  t.request_timeout = std::min(Millis(std::max(1, settings.retry_timeout) * 1000LL), third);
  return t;
}

}  // namespace pgf
