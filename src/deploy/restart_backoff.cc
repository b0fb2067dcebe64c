#include "deploy/restart_backoff.h"

#include <algorithm>

namespace pgf {

bool RestartBackoff::died(MonoTime now) {
  if (pending_)
    return false;
  const bool soon_after_start = last_start_ && now - *last_start_ < options_.stable;
  streak_ = soon_after_start ? streak_ + 1 : 1;
  Millis delay{0};
  if (streak_ > 1) {
    delay = options_.base;
    for (int i = 2; i < streak_ && delay < options_.max_delay; ++i)
      delay *= 2;
    delay = std::min(delay, options_.max_delay);
  }
  pending_ = true;
  next_start_ = now + delay;
  return streak_ == options_.crash_loop;
}

std::optional<MonoTime> RestartBackoff::nextStart() const {
  if (!pending_)
    return std::nullopt;
  return next_start_;
}

void RestartBackoff::started(MonoTime now) {
  pending_ = false;
  last_start_ = now;
}

}  // namespace pgf
