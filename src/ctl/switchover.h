// `pgfleetctl switchover` and `pgfleetctl failover`: ask the leader's agent (through its REST API,
// as patronictl does) to hand leadership over, and show the outcome.
//
//   switchover: POST /switchover {"leader", "candidate"?, "scheduled_at"?} to the leader's API;
//               the cluster must have a leader.
//   failover:   POST /failover {"candidate", "leader"?} to the leader's API, or to the
//               candidate's when the cluster has no leader.
//
// Planning (which member to ask, what to send, what is wrong with the request) is pure and
// unit-tested; run*() do the DCS read and the HTTP request. pgfleetctl never prompts: --force is
// accepted for patronictl compatibility and changes nothing.
#pragma once

#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "ctl/ctl_context.h"
#include "ctl/rest_client.h"
#include "dcs/cluster_view.h"

namespace pgf::ctl {

// How long the agent may take to answer a switchover or failover: it waits up to 30 s for the
// candidate to take over before it answers, and the request needs a margin on top.
inline constexpr Millis kLeaderChangeTimeout{45000};

struct SwitchoverRequest {
  std::string leader;     // --leader: "" = the leader the DCS names; else it must be that one
  std::string candidate;  // --candidate: "" = the agent picks the best replica
  std::string scheduled;  // --scheduled: "" or "now" = at once; else ISO 8601 with a zone
};

// A request to one member's REST API, and the line that says what is going on.
struct ActionPlan {
  std::string action;  // "switchover" or "failover"
  std::string member;  // the member whose API gets the request
  ApiAddress address;
  std::string path;      // "/switchover"
  nlohmann::json body;   // the JSON document to POST
  std::string progress;  // "switching over from n1 to n2 ..."
};

// Whether `text` is an ISO 8601 date and time with a zone ("2024-05-01T10:00+02:00",
// "2024-05-01T08:00:00Z"; a space may stand for the T). kInvalidArgument otherwise.
Status checkScheduledTime(const std::string& text);

// Errors (kInvalidArgument) in patronictl's words, lowercase: "cluster has no leader: use
// failover", "member n9 does not exist in cluster demo", "member n2 is not the leader of cluster
// demo", "switchover target and source are the same", ...
Result<ActionPlan> planSwitchover(const std::string& scope, const ClusterView& cluster,
                                  const SwitchoverRequest& request);
Result<ActionPlan> planFailover(const std::string& scope, const ClusterView& cluster,
                                const std::string& candidate);

// Sends the plan and prints the result: in pretty mode the progress line on `err` while the
// request runs, then the agent's answer and the members table after the change on `out`; in JSON
// mode one object {"action", "member", "status", "message"}. 200 and 202 are success (exit 0);
// anything else fails with "switchover failed: <status> <answer>" (exit 1).
int runAction(const CtlTarget& target, Dcs& dcs, MemberApi& api, const ActionPlan& plan,
              OutputFormat format, std::ostream& out, std::ostream& err);

int runSwitchover(const CtlTarget& target, Dcs& dcs, MemberApi& api,
                  const SwitchoverRequest& request, OutputFormat format, std::ostream& out,
                  std::ostream& err);
int runFailover(const CtlTarget& target, Dcs& dcs, MemberApi& api, const std::string& candidate,
                OutputFormat format, std::ostream& out, std::ostream& err);

}  // namespace pgf::ctl
