#include "ha/divergence.h"

namespace pgf {

bool divergedFromLeader(const ClusterView& cluster, const LocalPostgres& pg) {
  const MemberInfo* leader = cluster.leaderMember();
  if (leader == nullptr || leader->timeline <= 0 || pg.timeline <= 0 || pg.wal_position <= 0)
    return false;
  if (pg.timeline >= leader->timeline)
    return false;
  if (!cluster.history.is_array())
    return false;
  for (const auto& entry : cluster.history) {
    if (!entry.is_array() || entry.size() < 2 || !entry[0].is_number_integer() ||
        !entry[1].is_number_integer())
      continue;
    if (entry[0].get<int>() == pg.timeline)
      return pg.wal_position > entry[1].get<int64_t>();
  }
  return false;
}

}  // namespace pgf
