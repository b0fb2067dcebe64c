#include "ha/upstream.h"

namespace pgf {

std::string upstreamMember(const ClusterView& cluster, const std::string& self,
                           const std::string& replicatefrom, const std::string& leader) {
  if (replicatefrom.empty() || replicatefrom == self || replicatefrom == leader)
    return leader;
  const MemberInfo* m = cluster.member(replicatefrom);
  if (m == nullptr || m->conn_url.empty() || m->role != "replica" ||
      (m->state != "running" && m->state != "streaming"))
    return leader;
  return replicatefrom;
}

std::set<std::string> membersStreamingFrom(const ClusterView& cluster, const std::string& leader) {
  std::set<std::string> out;
  for (const auto& m : cluster.members)
    if (m.name != leader && upstreamMember(cluster, m.name, m.tags.replicatefrom, leader) == leader)
      out.insert(m.name);
  return out;
}

}  // namespace pgf
