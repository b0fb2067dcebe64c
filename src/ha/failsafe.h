// DCS failsafe mode (failsafe_mode in the cluster's dynamic configuration), Patroni-compatible.
//
// Without it, a primary that cannot renew its lease stops accepting writes at its deadline
// (DESIGN.md invariant 1), even when the DCS alone is down and every member is healthy. With it:
//   - while the DCS works, the leader records in the "failsafe" key every member it must reach,
//     {"<name>": "<api_url>"}, itself included;
//   - when a renewal fails because the DCS cannot be reached, the primary sends a heartbeat
//     (POST /failsafe) to every other member of that key. Only when all of them accept does it
//     move its deadline to (when it sent them) + ttl − margin; one refusal or silence and invariant
//     1 applies as before;
//   - a member that accepts promises not to take the lease for max(its ttl, the sender's ttl) from
//     receiving the heartbeat, so it cannot promote before the primary's moved deadline; a member
//     missing from a non-empty failsafe key never takes the lease.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcs/cluster_view.h"

namespace pgf {

// name -> api_url, from the "failsafe" key. Entries that are not strings are skipped.
std::map<std::string, std::string> parseFailsafeMembers(const nlohmann::json& value);

// The value the leader keeps in the "failsafe" key: every member with an api_url, and itself.
nlohmann::json failsafeMembersJson(const ClusterView& cluster, const std::string& self,
                                   const std::string& self_api_url);

// The heartbeat a primary sends to POST /failsafe (Patroni's fields, plus the ttl the receiver
// must honour at least).
struct FailsafeHeartbeat {
  std::string name;
  std::string conn_url;
  std::string api_url;
  int ttl = 0;  // seconds; 0 when the sender did not say
};
nlohmann::json failsafeHeartbeatJson(const FailsafeHeartbeat& h);
// nullopt when the body is not a JSON object with a non-empty "name".
std::optional<FailsafeHeartbeat> parseFailsafeHeartbeat(const std::string& body);

// One member's answer to a heartbeat.
struct FailsafeAck {
  std::string name;
  bool accepted = false;
  std::string detail;  // why not, when not accepted
};

// The primary's verdict after asking every member of `members` but itself: nullopt when it may
// keep running, else the reason it may not.
std::optional<std::string> failsafeRefusal(const std::map<std::string, std::string>& members,
                                           const std::string& self,
                                           const std::vector<FailsafeAck>& acks);

}  // namespace pgf
