// When to start again a process that died (an instance's agent or HAProxy, which the broker
// supervises): at once the first time; then, while it keeps dying soon after each start, after a
// delay that doubles each time (1 s, 2 s, 4 s, ... up to a minute), so that a process that cannot
// run does not take the machine with it. A process that ran for `stable` before dying counts as a
// first death again. After `crash_loop` deaths in a row the streak is a crash loop, reported once.
// Pure code: the caller passes `now`.
#pragma once

#include <optional>

#include "common/clock.h"

namespace pgf {

struct RestartBackoffOptions {
  Millis base{1000};        // the delay before the second start of a streak
  Millis max_delay{60000};  // the delay never grows past this
  Millis stable{60000};     // a process that ran this long before dying starts a new streak
  int crash_loop = 5;       // deaths in a row that make a crash loop
};

class RestartBackoff {
 public:
  explicit RestartBackoff(RestartBackoffOptions options = {}) : options_(options) {}

  // The process was found dead at `now` (call once per death: while a start is pending, further
  // calls change nothing). Returns true when this death makes the streak a crash loop.
  bool died(MonoTime now);
  // Whether a start is pending and its time has come.
  bool due(MonoTime now) const { return pending_ && now >= next_start_; }
  // When the pending start may happen; nullopt when none is pending.
  std::optional<MonoTime> nextStart() const;
  // The process was started at `now`.
  void started(MonoTime now);
  // Deaths in the current streak.
  int streak() const { return streak_; }

 private:
  RestartBackoffOptions options_;
  bool pending_ = false;
  MonoTime next_start_{};
  std::optional<MonoTime> last_start_;
  int streak_ = 0;
};

}  // namespace pgf
