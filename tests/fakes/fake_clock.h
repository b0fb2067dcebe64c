// FakeClock: a Clock that moves only when a test moves it. Thread-safe, so a test thread may
// advance it while agents or a MemoryStore read it from other threads. It never goes backwards
// through advance(); set() is for tests that need an exact instant and must keep it monotonic
// themselves.
#pragma once

#include <chrono>
#include <mutex>

#include "common/clock.h"

namespace pgf {

class FakeClock final : public Clock {
 public:
  // Starts at an arbitrary, non-zero monotonic instant (so "time_since_epoch() == 0" never looks
  // like "unset") and at a fixed wall-clock date, 2024-01-01T00:00:00Z.
  FakeClock()
      : mono_(MonoTime{} + std::chrono::hours(1000)),
        wall_(WallTime{} + std::chrono::seconds(1704067200)) {}

  MonoTime now() const override {
    std::lock_guard lock(mu_);
    return mono_;
  }
  WallTime wallNow() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }

  // Moves both clocks forward by `d` (negative values are ignored).
  void advance(Millis d) {
    if (d.count() <= 0)
      return;
    std::lock_guard lock(mu_);
    mono_ += d;
    wall_ += d;
  }
  // Sets the monotonic clock to `t`; the wall clock moves by the same amount.
  void set(MonoTime t) {
    std::lock_guard lock(mu_);
    wall_ += std::chrono::duration_cast<WallTime::duration>(t - mono_);
    mono_ = t;
  }
  void setWall(WallTime t) {
    std::lock_guard lock(mu_);
    wall_ = t;
  }

 private:
  mutable std::mutex mu_;
  MonoTime mono_;
  WallTime wall_;
};

}  // namespace pgf
