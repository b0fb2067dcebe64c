// `pgfleetctl pause` and `pgfleetctl resume`: switch the cluster's maintenance mode (the "pause"
// key of the DCS config) through a member's REST API, PATCH /config {"pause": true|null}, as
// patronictl does, and with --wait until every member reports the new state in GET /patroni.
//
// The request goes to the leader first, then to the other members in name order, until one
// answers: any member's agent can write the config key. Planning is pure and unit-tested.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "ctl/ctl_context.h"
#include "ctl/rest_client.h"
#include "dcs/cluster_view.h"

namespace pgf::ctl {

struct PauseOptions {
  bool pause = true;  // false: resume
  bool wait = false;  // --wait
  // How long --wait waits for the members, and how often it asks them. Agents apply a config
  // change within one loop_wait (10 s by default) when the DCS watch is slow to wake them, so 30 s
  // leaves room for two loops and a late one.
  Millis wait_timeout{30000};
  Millis poll_interval{1000};
  Millis request_timeout{5000};  // for each PATCH and GET
};

struct PauseTarget {
  std::string member;
  ApiAddress address;
};

// true when the DCS config says the cluster is paused.
bool clusterPaused(const ClusterView& cluster);

// "cluster is already paused" / "cluster is not paused" (kInvalidArgument) when there is nothing
// to do.
Status checkPauseChange(const ClusterView& cluster, bool pause);

// The members to ask, leader first, then the others by name; those without a usable api_url are
// left out. An error when none is left.
Result<std::vector<PauseTarget>> pauseTargets(const std::string& scope, const ClusterView& cluster);

// What a member's GET /patroni document says about the pause: its "pause" value (false when the
// key is absent), or nullopt when the body is not a JSON object.
std::optional<bool> reportedPause(const std::string& body);

// Exit code 0 after "Success: cluster management is paused|resumed" (pretty) or
// {"action": "pause"|"resume", "member", "status", "message"} (JSON) on `out`; 1 with one line on
// `err` otherwise. While --wait waits, pretty mode writes "waiting for N members ..." to `err` each
// time N changes.
int runPause(const CtlTarget& target, Dcs& dcs, MemberApi& api, const PauseOptions& options,
             OutputFormat format, const Sleeper& sleeper, std::ostream& out, std::ostream& err);

}  // namespace pgf::ctl
