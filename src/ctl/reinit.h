// `pgfleetctl reinit`: make named replicas throw their data directory away and clone it again from
// the leader, through each member's REST API (POST /reinitialize), as patronictl does.
//
// Members are reinitialized one at a time, in the order given; each request is answered only when
// the member runs again as a streaming replica (or the agent gave up), which can take minutes. The
// first failure ends the verb: the members after it are not asked, so that an operator who named
// several replicas never loses all of them to one bad leader or network.
//
// Choosing and checking the members, the body and reading the answers are pure and unit-tested;
// runReinit() does the DCS read and the HTTP requests. Never: send a request to the leader (its
// data is the cluster's), send anything when a named member is unknown, send a request twice, or
// prompt (--force only sets "force" in the body; --wait changes nothing, since every answer
// already waits for the end).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctl/ctl_context.h"
#include "ctl/rest_client.h"
#include "ctl/restart.h"
#include "dcs/cluster_view.h"

namespace pgf::ctl {

// How long one POST /reinitialize may take to answer: the agent answers once the new copy of the
// leader's data runs as a streaming replica, and copying a database takes about as long as reading
// it from the leader's disk (a few minutes for tens of GiB). Ten minutes covers the clusters
// pgfleet is used for; --timeout lengthens it for bigger ones.
inline constexpr Millis kReinitTimeout{600000};

struct ReinitRequest {
  std::vector<std::string> members;  // at least one; in the order they are reinitialized
  bool force = false;                // --force: sends "force": true
  Millis timeout = kReinitTimeout;   // for each POST /reinitialize
};

// The members to reinitialize, in the order named (a name given twice counts once, where it first
// appears). Errors (kInvalidArgument), checked member by member in that order: none named ("name
// the members to reinitialize"), unknown ("member n9 does not exist in cluster demo"), the leader
// as isLeader() sees it ("n1 is the leader: switch over first"), then planMembers()'s REST API
// address errors ("member n4 publishes no REST API address (api_url)").
Result<std::vector<MemberTarget>> planReinit(const std::string& scope, const ClusterView& cluster,
                                             const std::vector<std::string>& names);

// The POST /reinitialize body: {} or, with --force, {"force":true}.
nlohmann::json reinitBody(const ReinitRequest& request);

// What an answer to POST /reinitialize means: 200 done ("reinitialized from n1", the agent's
// answer), anything else, or no answer, failed ("503 reinitialize failed: ...").
MemberOutcome reinitOutcome(const MemberTarget& target, const Result<ApiAnswer>& answer);

// [{"member", "status", "message"}, ...]; "status" is null when no answer came (or none was asked).
nlohmann::json reinitOutcomesJson(const std::vector<MemberOutcome>& outcomes);

// Reinitializes each member in turn. stdout gets one line per member (pretty, each as soon as it is
// known: "n2: reinitialized from n1", "n3: failed: ...", "n4: not tried") or the JSON array; in
// pretty mode stderr gets "reinitializing n2 from the leader ..." before each request. Exit 0 when
// every member was reinitialized; else 1 with the one line "pgfleetctl: reinit failed on n3:
// <answer>; not tried: n4" on stderr (after the output).
int runReinit(const CtlTarget& target, Dcs& dcs, MemberApi& api, const ReinitRequest& request,
              OutputFormat format, std::ostream& out, std::ostream& err);

}  // namespace pgf::ctl
