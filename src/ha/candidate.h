// Failover candidacy: may this standby take the free leader lease? A pure check over what the
// snapshot and the peers' REST APIs said during this loop (DESIGN.md invariant 3): our timeline
// must be the newest the cluster is known to have reached, our WAL position within
// maximum_lag_on_failover of the last known leader position, no reachable peer may still run as
// a primary, and no reachable peer that may fail over may be further ahead. "Ahead" compares the
// timeline first: WAL on an older timeline is a branch the cluster left, however far it goes.
//
// An unreachable peer is left out of every comparison: we cannot know its position, and waiting for
// it would block failover whenever the old primary's host is the one that died. Equal positions do
// not disqualify anybody; the compare-and-create on the leader key settles such a tie.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dcs/cluster_view.h"
#include "ha/decision.h"

namespace pgf {

// The last WAL position the leader is known to have reached: the "status" key's optime, falling
// back to the highest xlog_location of a member whose role is primary. 0 when unknown.
int64_t lastKnownLeaderPosition(const ClusterView& cluster);

// The newest timeline the cluster is known to have reached: after the last one the history key
// records, and the highest any member key or reachable peer reports. 0 when nothing says.
int newestKnownTimeline(const ClusterView& cluster, const std::vector<PeerStatus>& peers);

// Orders failover candidates best first: reachable before unreachable, still-primary before
// standby (it has everything), newer timeline, then higher WAL position first, then name for a
// stable tie-break.
bool betterCandidate(const PeerStatus& a, const PeerStatus& b);

struct Candidacy {
  bool eligible = false;
  std::string reason;         // why not, or the sentence for promoting ourselves
  int reachable_members = 0;  // reachable peers plus ourselves
};

// Why `peer` cannot take over the lease in a switchover from a leader at `leader_position` (0:
// unknown), or nullopt when it can: it must be reachable, running as a standby, not tagged
// nofailover, and within maximum_lag_on_failover of the leader.
std::optional<std::string> candidateLimitation(const PeerStatus& peer, int64_t leader_position,
                                               const HaSettings& settings);

// `self`, `our_position` and `our_timeline` (0: unknown) describe this standby; `peers` may
// include an entry for ourselves, which is ignored.
Candidacy checkCandidacy(const std::string& self, int64_t our_position, int our_timeline,
                         const HaSettings& settings, const ClusterView& cluster,
                         const std::vector<PeerStatus>& peers);

}  // namespace pgf
