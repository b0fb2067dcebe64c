#include "ha/candidate.h"

#include <algorithm>

#include <fmt/format.h>

#include "postgres/lsn.h"

namespace pgf {

int64_t lastKnownLeaderPosition(const ClusterView& cluster) {
  int64_t optime = cluster.leaderOptime();
  if (optime > 0)
    return optime;
  // The status key is written by the leader only every loop; a member key with a primary role is
  // the next best record of how far the old primary got.
  int64_t best = 0;
  for (const auto& m : cluster.members)
    if (m.isPrimaryRole())
      best = std::max(best, m.xlog_location);
  return best;
}

bool betterCandidate(const PeerStatus& a, const PeerStatus& b) {
  if (a.reachable != b.reachable)
    return a.reachable;
  bool a_primary = a.running && !a.in_recovery;
  bool b_primary = b.running && !b.in_recovery;
  if (a_primary != b_primary)
    return a_primary;
  if (a.wal_position != b.wal_position)
    return a.wal_position > b.wal_position;
  return a.name < b.name;
}

std::optional<std::string> candidateLimitation(const PeerStatus& peer, int64_t leader_position,
                                               const HaSettings& settings) {
  if (!peer.reachable)
    return std::string("not reachable through its REST API");
  if (peer.nofailover)
    return std::string("tagged nofailover");
  if (!peer.running)
    return std::string("not running");
  if (!peer.in_recovery)
    return std::string("running as a primary");
  if (leader_position > 0 && leader_position - peer.wal_position > settings.maximum_lag_on_failover)
    return fmt::format("{} bytes behind the leader (maximum_lag_on_failover {})",
                       leader_position - peer.wal_position, settings.maximum_lag_on_failover);
  return std::nullopt;
}

Candidacy checkCandidacy(const std::string& self, int64_t our_position, const HaSettings& settings,
                         const ClusterView& cluster, const std::vector<PeerStatus>& peers) {
  Candidacy c;
  int64_t leader_position = lastKnownLeaderPosition(cluster);
  if (leader_position > 0 && leader_position - our_position > settings.maximum_lag_on_failover) {
    c.reason = fmt::format(
        "not promoting: WAL position {} is {} bytes behind the last known leader position {} "
        "(maximum_lag_on_failover {})",
        formatLsn(our_position), leader_position - our_position, formatLsn(leader_position),
        settings.maximum_lag_on_failover);
    return c;
  }

  std::vector<PeerStatus> reachable;
  for (const auto& p : peers)
    if (p.reachable && p.name != self)
      reachable.push_back(p);
  std::sort(reachable.begin(), reachable.end(), betterCandidate);
  c.reachable_members = static_cast<int>(reachable.size()) + 1;

  for (const auto& p : reachable) {
    if (p.running && !p.in_recovery) {
      c.reason = fmt::format("not promoting: {} still runs as a primary", p.name);
      return c;
    }
  }
  for (const auto& p : reachable) {
    if (!p.nofailover && p.wal_position > our_position) {
      c.reason = fmt::format("not promoting: {} is ahead ({} > our {})", p.name,
                             formatLsn(p.wal_position), formatLsn(our_position));
      return c;
    }
  }
  c.eligible = true;
  c.reason = fmt::format(
      "promoted self: leader key expired, highest WAL position {} among {} reachable members",
      formatLsn(our_position), c.reachable_members);
  return c;
}

}  // namespace pgf
