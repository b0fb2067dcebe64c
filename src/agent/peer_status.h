// Asking the other members how they are, through their REST APIs (GET <api_url>), when the leader
// key is gone and this member must decide whether it is the best candidate.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/status.h"
#include "common/clock.h"
#include "dcs/cluster_view.h"
#include "ha/decision.h"
#include "ha/failsafe.h"

namespace pgf {

// Interprets a member's /patroni document. An unparsable body gives reachable = false.
PeerStatus parsePeerStatus(const std::string& name, const std::string& body);

// Splits "http://host:port/path" into host, port and path. false when it is not such a URL.
bool splitHttpUrl(const std::string& url, std::string* host, int* port, std::string* path);

// Queries every member except `self` in parallel, each bounded by `timeout`. Unreachable members
// are returned with reachable = false.
// This member as a peer would see it through our REST API (for the REST actions, which weigh every
// member, ourselves included).
PeerStatus selfPeerStatus(const AgentStatus& s);

std::vector<PeerStatus> fetchPeerStatuses(const ClusterView& cluster, const std::string& self,
                                          Millis timeout);

// Sends `heartbeat` (JSON) to POST /failsafe of every member of `members` (name -> api_url) but
// `self`, in parallel, each bounded by `timeout`, with basic-auth credentials when `username` or
// `password` is set. A member accepts with 200 and the body "Accepted".
std::vector<FailsafeAck> postFailsafeHeartbeats(const std::map<std::string, std::string>& members,
                                                const std::string& self,
                                                const std::string& heartbeat,
                                                const std::string& username,
                                                const std::string& password, Millis timeout);

}  // namespace pgf
