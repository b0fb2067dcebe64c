// Whether our WAL went past the point where the leader's timeline forked from ours: then streaming
// from the leader would fail or, worse, follow divergent data, so we must be rewound first
// (invariant 4). Read from the cluster's "history" key, whose entries are
// [timeline, switch position, reason, timestamp, new leader]: timeline T ended at `switch
// position`.
#pragma once

#include "dcs/cluster_view.h"
#include "postgres/state.h"

namespace pgf {

// True when our timeline is older than the leader's and our WAL position is beyond the position
// where our timeline ended in the leader's history. False when it cannot tell (no position, no
// history entry for our timeline).
bool divergedFromLeader(const ClusterView& cluster, const LocalPostgres& pg);

}  // namespace pgf
