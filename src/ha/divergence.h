// Whether our WAL went past the point where the leader's timeline forked from ours: then streaming
// from the leader would fail or, worse, follow divergent data, so we must be rewound first
// (invariant 4). Read from the cluster's "history" key, whose entries are
// [timeline, switch position, reason, timestamp, new leader]: timeline T ended at `switch
// position`.
#pragma once

#include "dcs/cluster_view.h"
#include "postgres/state.h"
#include "postgres/timeline.h"

#include <optional>
#include <string>
#include <vector>

namespace pgf {

// True when our timeline is older than the leader's and our WAL position is beyond the position
// where our timeline ended in the leader's history, or when our own lineage left an ancestor
// timeline at another position than the leader's history says. False when it cannot tell (no
// position, no history entry for our timeline).
bool divergedFromLeader(const ClusterView& cluster, const LocalPostgres& pg);

// Who and when, for history entries the leader adds.
struct HistoryAuthor {
  std::string reason;
  std::string time;
  std::string node;
};

// The cluster's history completed from `lineage`, the leader's own timeline history file: a
// switch the history lacks (its write after a promotion failed, or the promotion before it ran
// on a member that never wrote one) is added with `author`, a position that differs from the
// file is replaced (with `author`), entries are kept in timeline order. nullopt when the history
// already agrees.
std::optional<nlohmann::json> completedHistory(const nlohmann::json& history,
                                               const std::vector<TimelineSwitch>& lineage,
                                               const HistoryAuthor& author);

}  // namespace pgf
