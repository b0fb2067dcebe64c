// Time is injected. MonoTime (steady clock) measures intervals and deadlines; WallTime is only for
// display and for timestamps other tools read. Decision code never calls a clock itself: it
// receives `now` as input.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pgf {

using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonoTime now() const = 0;
  virtual WallTime wallNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  MonoTime now() const override { return std::chrono::steady_clock::now(); }
  WallTime wallNow() const override { return std::chrono::system_clock::now(); }
};

// Milliseconds since an arbitrary monotonic epoch, for logs and metrics.
inline long long toMillis(MonoTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

// ISO 8601 with milliseconds and the local UTC offset, as Patroni writes timestamps.
std::string formatIsoTime(WallTime t);

// Parses an ISO 8601 time with a zone: "2026-12-01T10:00:00+00:00", "...T10:00:00.250Z",
// "...T10:00:00+0100" (a space may replace the T). nullopt when the text is not such a time or
// has no zone (a time without one is ambiguous, so it is refused rather than guessed).
std::optional<WallTime> parseIsoTime(std::string_view text);

}  // namespace pgf
