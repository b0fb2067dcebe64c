#include "postgres/timeline.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "postgres/lsn.h"

namespace pgf {

std::vector<TimelineSwitch> parseTimelineHistory(const std::string& history_text) {
  std::vector<TimelineSwitch> switches;
  std::istringstream in(history_text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#')
      continue;
    std::istringstream fields(line);
    int parent = 0;
    std::string position;
    if (!(fields >> parent >> position) || parent <= 0)
      continue;
    auto lsn = parseLsn(position);
    if (lsn.ok())
      switches.push_back({parent, *lsn});
  }
  return switches;
}

std::optional<int64_t> parseTimelineSwitch(const std::string& history_text) {
  auto switches = parseTimelineHistory(history_text);
  if (switches.empty())
    return std::nullopt;
  return switches.back().position;
}

std::optional<std::vector<TimelineSwitch>> readTimelineHistory(const std::string& data_dir,
                                                               int timeline) {
  if (timeline <= 1)
    return std::nullopt;
  std::ifstream file(fmt::format("{}/pg_wal/{:08X}.history", data_dir, timeline));
  if (!file)
    return std::nullopt;
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad())
    return std::nullopt;
  return parseTimelineHistory(text.str());
}

std::optional<int64_t> readTimelineSwitch(const std::string& data_dir, int timeline) {
  auto switches = readTimelineHistory(data_dir, timeline);
  if (!switches || switches->empty())
    return std::nullopt;
  return switches->back().position;
}

}  // namespace pgf
