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

int newestKnownTimeline(const ClusterView& cluster, const std::vector<PeerStatus>& peers) {
  int newest = 0;
  // History entries are [timeline, lsn, ...]: the timeline that ended; the next one followed.
  if (cluster.history.is_array() && !cluster.history.empty()) {
    const auto& last = cluster.history.back();
    if (last.is_array() && !last.empty() && last[0].is_number_integer())
      newest = last[0].get<int>() + 1;
  }
  for (const auto& m : cluster.members)
    newest = std::max(newest, m.timeline);
  for (const auto& p : peers)
    if (p.reachable)
      newest = std::max(newest, p.timeline);
  return newest;
}

namespace {

// Whether `a`'s WAL goes further than `b`'s along the cluster's history. A position on an older
// timeline is never ahead of one on a newer timeline. Unknown timelines (0) compare by position.
bool walAhead(int a_timeline, int64_t a_position, int b_timeline, int64_t b_position) {
  if (a_timeline > 0 && b_timeline > 0 && a_timeline != b_timeline)
    return a_timeline > b_timeline;
  return a_position > b_position;
}

}  // namespace

bool betterCandidate(const PeerStatus& a, const PeerStatus& b) {
  if (a.reachable != b.reachable)
    return a.reachable;
  bool a_primary = a.running && !a.in_recovery;
  bool b_primary = b.running && !b.in_recovery;
  if (a_primary != b_primary)
    return a_primary;
  if (walAhead(a.timeline, a.wal_position, b.timeline, b.wal_position))
    return true;
  if (walAhead(b.timeline, b.wal_position, a.timeline, a.wal_position))
    return false;
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

Candidacy checkCandidacy(const std::string& self, int64_t our_position, int our_timeline,
                         const HaSettings& settings, const ClusterView& cluster,
                         const std::vector<PeerStatus>& peers) {
  Candidacy c;
  // A standby still on an older timeline holds WAL the cluster already left behind (a former
  // primary that could not be rewound, a replica that never saw the last promotion): whatever
  // the newer timeline acknowledged would be lost if it took over.
  std::vector<PeerStatus> others;
  for (const auto& p : peers)
    if (p.name != self)
      others.push_back(p);
  const int newest = newestKnownTimeline(cluster, others);
  if (our_timeline > 0 && newest > our_timeline) {
    c.reason = fmt::format("not promoting: our timeline {} is behind the cluster's timeline {}",
                           our_timeline, newest);
    return c;
  }
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
    if (!p.nofailover && walAhead(p.timeline, p.wal_position, our_timeline, our_position)) {
      c.reason = p.timeline > 0 && our_timeline > 0 && p.timeline != our_timeline
                     ? fmt::format("not promoting: {} is ahead (timeline {} > our {})", p.name,
                                   p.timeline, our_timeline)
                     : fmt::format("not promoting: {} is ahead ({} > our {})", p.name,
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
