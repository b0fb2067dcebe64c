// Synchronous mode (DESIGN.md invariant 2): the leader names its synchronous standbys in
// synchronous_standby_names and records them in the DCS "sync" key, in an order that never lets a
// member that may lack an acknowledged commit take the lease:
//   - a standby leaves the key before it leaves synchronous_standby_names;
//   - it enters the key only after it has been synchronous (pg_stat_replication sync_state "sync")
//     and has flushed everything the primary had written when it was first seen so, so it holds
//     every commit acknowledged before it counted;
//   - with the leader gone, only a member the key names may take the lease.
// The key's value is Patroni's: {"leader": "<name>", "sync_standby": "a,b" or null}.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcs/cluster_view.h"

namespace pgf {

struct SyncState {
  std::string leader;
  std::vector<std::string> standbys;  // sorted, no duplicates

  // The leader and the standbys it names may take the lease after it.
  bool matches(const std::string& name) const;
  bool operator==(const SyncState&) const = default;
};

// nullopt when the key is absent, not an object or names no leader (no restriction then).
std::optional<SyncState> parseSyncState(const nlohmann::json& value);
nlohmann::json syncStateJson(const SyncState& state);

// One row of the primary's pg_stat_replication.
struct ReplicaConnection {
  std::string name;        // application_name: the member's name
  std::string state;       // "streaming", "catchup", ...
  std::string sync_state;  // "sync", "potential", "async", ...
  int64_t flush_lsn = 0;
};

struct SyncInput {
  std::string self;
  int node_count = 1;
  bool strict = false;
  const ClusterView* cluster = nullptr;  // members' state and tags (nosync)
  std::vector<ReplicaConnection> replication;
  std::string applied_ssn;  // synchronous_standby_names in effect now (kUnknownSsn if unknown)
  int64_t primary_lsn = 0;  // our current WAL position
  // The primary's WAL position when each standby was first seen synchronous.
  std::map<std::string, int64_t> seen_sync_at;
};

inline constexpr const char* kUnknownSsn = "\x01unknown";

// What the leader does this loop, in this order: write `write_before` to the key, set
// synchronous_standby_names to `ssn`, write `write_after`. Each is empty when nothing changes.
struct SyncPlan {
  std::optional<SyncState> write_before;
  std::optional<std::string> ssn;
  std::optional<SyncState> write_after;
  std::map<std::string, int64_t> seen_sync_at;  // to remember for the next loop
  std::vector<std::string> desired;             // the standbys it aims for
};

SyncPlan planSync(const SyncInput& in);

// synchronous_standby_names for `standbys`: 'FIRST n ("a", "b")' with n = their number, so that
// every one of them confirms each commit; "" (strict: "*") for none.
std::string synchronousStandbyNames(const std::vector<std::string>& standbys, bool strict);

}  // namespace pgf
