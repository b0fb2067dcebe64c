#include "postgres/timeline.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "postgres/lsn.h"

namespace pgf {

std::optional<int64_t> parseTimelineSwitch(const std::string& history_text) {
  std::optional<int64_t> last;
  std::istringstream in(history_text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#')
      continue;
    std::istringstream fields(line);
    std::string parent, position;
    if (!(fields >> parent >> position))
      continue;
    auto lsn = parseLsn(position);
    if (lsn.ok())
      last = *lsn;
  }
  return last;
}

std::optional<int64_t> readTimelineSwitch(const std::string& data_dir, int timeline) {
  if (timeline <= 1)
    return std::nullopt;
  std::ifstream file(fmt::format("{}/pg_wal/{:08X}.history", data_dir, timeline));
  if (!file)
    return std::nullopt;
  std::stringstream text;
  text << file.rdbuf();
  return parseTimelineSwitch(text.str());
}

}  // namespace pgf
