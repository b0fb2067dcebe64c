#include "ha/divergence.h"

#include <algorithm>

namespace pgf {

namespace {

bool wellFormed(const nlohmann::json& entry) {
  return entry.is_array() && entry.size() >= 2 && entry[0].is_number_integer() &&
         entry[1].is_number_integer();
}

std::optional<int64_t> leaderSwitch(const nlohmann::json& history, int timeline) {
  if (!history.is_array())
    return std::nullopt;
  for (const auto& entry : history)
    if (wellFormed(entry) && entry[0].get<int>() == timeline)
      return entry[1].get<int64_t>();
  return std::nullopt;
}

}  // namespace

bool divergedFromLeader(const ClusterView& cluster, const LocalPostgres& pg) {
  const MemberInfo* leader = cluster.leaderMember();
  if (leader == nullptr || leader->timeline <= 0 || pg.timeline <= 0 || pg.wal_position <= 0)
    return false;
  // An ancestor timeline we left at another position than the leader did: our timeline, even
  // when it has the leader's number, is another branch (two members promoted apart from each
  // other to the same timeline number).
  for (const auto& sw : pg.lineage) {
    if (sw.parent >= leader->timeline)
      continue;
    auto end = leaderSwitch(cluster.history, sw.parent);
    if (end && *end != sw.position)
      return true;
  }
  if (pg.timeline >= leader->timeline)
    return false;
  auto end = leaderSwitch(cluster.history, pg.timeline);
  return end && pg.wal_position > *end;
}

std::optional<nlohmann::json> completedHistory(const nlohmann::json& history,
                                               const std::vector<TimelineSwitch>& lineage,
                                               const HistoryAuthor& author) {
  nlohmann::json merged = history.is_array() ? history : nlohmann::json::array();
  bool changed = !history.is_array();
  for (const auto& sw : lineage) {
    auto known = std::find_if(merged.begin(), merged.end(), [&](const nlohmann::json& entry) {
      return wellFormed(entry) && entry[0].get<int>() == sw.parent;
    });
    if (known == merged.end()) {
      merged.push_back({sw.parent, sw.position, author.reason, author.time, author.node});
      changed = true;
    } else if ((*known)[1].get<int64_t>() != sw.position) {
      *known = {sw.parent, sw.position, author.reason, author.time, author.node};
      changed = true;
    }
  }
  if (!changed)
    return std::nullopt;
  std::stable_sort(merged.begin(), merged.end(),
                   [](const nlohmann::json& a, const nlohmann::json& b) {
                     int ta = wellFormed(a) ? a[0].get<int>() : 0;
                     int tb = wellFormed(b) ? b[0].get<int>() : 0;
                     return ta < tb;
                   });
  return merged;
}

}  // namespace pgf
