#include "common/clock.h"

#include <ctime>

#include <fmt/format.h>

namespace pgf {

std::string formatIsoTime(WallTime t) {
  auto ms = std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}+00:00", buf, static_cast<int>(ms % 1000));
}

}  // namespace pgf
