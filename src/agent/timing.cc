#include "agent/timing.h"

#include <algorithm>

namespace pgf {

AgentTiming deriveTiming(const HaSettings& settings) {
  AgentTiming t;
  t.ttl = Millis(std::max(1, settings.ttl) * 1000LL);
  t.loop_wait = Millis(std::max(1, settings.loop_wait) * 1000LL);
  t.safety_margin = std::max(Millis(500), t.ttl / 10);
  Millis usable = t.ttl - t.safety_margin;
  const Millis half = std::max(Millis(100), usable / 2);
  t.renew_interval = std::min(t.loop_wait, half);
  t.loop_interval = std::min(t.loop_wait, half);
  t.request_timeout = std::min(Millis(std::max(1, settings.retry_timeout) * 1000LL),
                               std::max(Millis(50), (usable - t.renew_interval) / 2));
  return t;
}

}  // namespace pgf
