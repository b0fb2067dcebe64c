// Cascading replication (the replicatefrom tag, Patroni's): a replica tagged `replicatefrom: n2`
// streams from member n2 instead of from the leader while n2 runs as a replica, and from the
// leader otherwise, so that losing n2 never leaves it without a source. The leader keeps a
// replication slot only for the members that stream from it; a member streaming from another
// replica uses none (a standby cannot keep one for it here), so that replica's wal_keep_size bounds
// how far it may fall behind.
#pragma once

#include <set>
#include <string>

#include "dcs/cluster_view.h"

namespace pgf {

// The member `self` streams from while `leader` leads: `replicatefrom` when that member is in the
// cluster view, is neither `self` nor `leader`, runs (state "running" or "streaming") as a replica
// and publishes a conn_url; otherwise `leader`.
std::string upstreamMember(const ClusterView& cluster, const std::string& self,
                           const std::string& replicatefrom, const std::string& leader);

// The other members that stream from `leader` (by their published replicatefrom tags).
std::set<std::string> membersStreamingFrom(const ClusterView& cluster, const std::string& leader);

}  // namespace pgf
