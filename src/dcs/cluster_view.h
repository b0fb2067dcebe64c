// An immutable snapshot of one cluster's state in the DCS, read once per HA loop. Decisions read
// the snapshot; they never call the DCS.
//
// The keys and JSON values are Patroni's, under /<namespace>/<scope>/:
//   initialize        the cluster's system identifier as a decimal string ("" while bootstrapping)
//   config            dynamic configuration, JSON {"ttl":30,"loop_wait":10,...,"postgresql":{...}}
//   leader            the leader's member name, attached to its lease
//   members/<name>    JSON {"conn_url","api_url","state","role","version","xlog_location",
//                     "timeline","tags",...}, attached to the member's lease
//   failover          JSON {"leader","member","scheduled_at"} (switchover request)
//   sync              JSON {"leader","sync_standby"}
//   history           JSON [[timeline, lsn, reason, timestamp, new_leader], ...]
//   status            JSON {"optime": <leader's WAL position>, "slots": {...}}
//   failsafe          JSON {"<member>": "<api_url>", ...}: the members a primary must reach to keep
//                     running without the DCS (failsafe_mode), written by the leader
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pgf {

struct MemberTags {
  bool nofailover = false;
  bool noloadbalance = false;
  bool clonefrom = false;
  bool nosync = false;
  std::string replicatefrom;  // cascading replication: the member to stream from ("" = leader)
};

struct MemberInfo {
  std::string name;
  std::string role;   // "master"/"primary", "replica", "uninitialized", ...
  std::string state;  // "running", "starting", "stopped", "crashed", ...
  std::string conn_url;
  std::string api_url;
  int64_t xlog_location = 0;  // WAL position in bytes
  int timeline = 0;
  MemberTags tags;
  nlohmann::json raw;  // the whole JSON value, including keys we do not model
  int64_t mod_revision = 0;

  bool isPrimaryRole() const { return role == "master" || role == "primary"; }
};

struct LeaderInfo {
  std::string name;
  int64_t mod_revision = 0;
  int64_t lease_id = 0;
};

struct ClusterView {
  // The "initialize" key: absent means nobody has claimed the bootstrap; an empty value means a
  // bootstrap is in progress; a decimal string is the cluster's system identifier.
  std::optional<std::string> initialize;
  std::optional<nlohmann::json> config;
  int64_t config_revision = 0;  // mod revision of "config" (0: absent), for setConfig's CAS
  std::optional<LeaderInfo> leader;
  std::vector<MemberInfo> members;
  std::optional<nlohmann::json> failover;
  std::optional<nlohmann::json> sync;
  nlohmann::json history = nlohmann::json::array();
  std::optional<nlohmann::json> status;
  std::optional<nlohmann::json> failsafe;
  int64_t revision = 0;  // the store revision this snapshot was read at

  const MemberInfo* member(const std::string& name) const {
    for (const auto& m : members)
      if (m.name == name)
        return &m;
    return nullptr;
  }
  const MemberInfo* leaderMember() const { return leader ? member(leader->name) : nullptr; }
  // The last WAL position the leader published in "status" (its "optime"), or 0.
  int64_t leaderOptime() const {
    if (status && status->is_object() && status->contains("optime") &&
        (*status)["optime"].is_number_integer())
      return (*status)["optime"].get<int64_t>();
    return 0;
  }
};

// Parses a member's JSON value (as stored under members/<name>) into a MemberInfo.
MemberInfo parseMember(const std::string& name, const std::string& json_value,
                       int64_t mod_revision);

}  // namespace pgf
