// The HA decision: a pure function of (cluster state from the DCS, local PostgreSQL state, config,
// what the agent remembers, monotonic now) -> exactly one next step and a one-sentence reason.
// It performs no I/O and reads no clock: everything it needs is in HaInput.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "dcs/cluster_view.h"
#include "postgres/state.h"

namespace pgf {

// Cluster-wide settings that drive decisions (bootstrap.dcs, overridden by the DCS "config" key).
struct HaSettings {
  int ttl = 30;        // seconds
  int loop_wait = 10;  // seconds
  int retry_timeout = 10;
  int64_t maximum_lag_on_failover = 1048576;  // bytes
  bool use_pg_rewind = false;
  // A member whose pg_rewind failed sets its data directory aside (renamed beside it, nothing
  // deleted) and clones afresh from the leader, instead of waiting for an operator.
  bool reclone_on_rewind_failure = true;
  bool use_slots = true;
  bool paused = false;  // config "pause": no automatic action
  // Synchronous replication (DESIGN.md invariant 2; see ha/sync.h).
  bool synchronous_mode = false;
  bool synchronous_mode_strict = false;  // no commit without a synchronous standby
  int synchronous_node_count = 1;
  // DCS failsafe (ha/failsafe.h): a primary that cannot reach the DCS keeps running while every
  // member in the "failsafe" key acknowledges it.
  bool failsafe_mode = false;
};

// Another member's health as its REST API reported it during this loop (collected only when the
// leader key is gone, to choose the best candidate).
struct PeerStatus {
  std::string name;
  bool reachable = false;
  bool in_recovery = true;  // false: it still runs as a primary
  bool running = false;
  int64_t wal_position = 0;
  int timeline = 0;
  bool nofailover = false;
};

// What the agent remembers between loops (never stored in the DCS).
struct AgentMemory {
  // When our leader lease can first have expired in etcd, minus the safety margin: the last
  // successful renewal's send time + ttl - margin. Empty when we do not hold the lease.
  std::optional<MonoTime> lease_deadline;
  // The data directory was empty when the agent started (so a failed first clone may be removed).
  bool new_node = false;
  // A clone, rewind or start failed in an earlier loop (so the next decision can change course).
  int failed_clones = 0;
  bool rewind_failed = false;
  // Setting the data directory aside for a re-clone was refused (an earlier one is still there, or
  // the rename failed): wait for an operator instead of trying every loop.
  bool reclone_refused = false;
  // The member we last configured PostgreSQL to stream from ("" when none).
  std::string following;
  // The last leader key holder seen, and, when its key vanished while the cluster was paused (its
  // primary kept running without demoting, so it may still run), its name until a leader key
  // exists again. See rememberLeader().
  std::string last_leader;
  std::string leader_lost_in_pause;
};

struct HaInput {
  MonoTime now{};
  WallTime wall_now{};  // only for a scheduled switchover's time
  std::string self;     // this member's name
  MemberTags tags;
  HaSettings settings;
  std::optional<ClusterView> cluster;  // empty when the DCS could not be read this loop
  LocalPostgres pg;
  AgentMemory memory;
  std::vector<PeerStatus> peers;  // see PeerStatus
  // Our WAL holds records the leader's history never had (we were ahead of the point where its
  // timeline forked, e.g. a standby that could not be asked during the election, or a former
  // primary that restarted as a standby). Set by the agent when it can tell (by comparing the
  // leader's timeline history with our timeline and position); such a member must be rewound
  // before it streams from the leader (invariant 4). Only read when another member leads.
  bool diverged_from_leader = false;
  // failsafe_mode: the primary whose failsafe heartbeat we accepted and promised not to compete
  // with ("" when no promise holds now; see ha/failsafe.h).
  std::string failsafe_leader;
};

// Stable names: they appear in logs, /patroni ("last_decision") and /metrics.
enum class Action : int {
  kNone = 0,               // nothing to do (healthy, waiting, or paused)
  kBootstrap = 1,          // race for "initialize"; the winner runs initdb and takes the lease
  kClone = 2,              // pg_basebackup from `source`
  kStartReplica = 3,       // start PostgreSQL as a standby of `source` ("" = no leader yet)
  kFollow = 4,             // point the running standby at `source`
  kRenewLease = 5,         // we lead: refresh the lease
  kAcquireAndPromote = 6,  // take the free lease and promote
  kDemote = 7,             // stop accepting writes now (immediate stop), then rejoin as a standby
  kRewind = 8,             // pg_rewind from `source`, then start as its standby
  kStartPrimary = 9,       // we hold the lease and our primary is down: start it again as primary
  kAcquireLease = 10,      // we run as primary but the leader key is gone: take it back
  kReclone = 11,           // set the data directory aside (nothing deleted); the next loop clones
  kSwitchover = 12,     // hand the lease to `source` ("" = any eligible replica): checkpoint, clean
                        // stop, release the leader key, rejoin as a standby
  kReleaseLeader = 13,  // our data directory is gone while we lead: release the leader key so
                        // that a replica takes over (we then clone from it)
};

std::string_view actionName(Action a);

struct Decision {
  Action action = Action::kNone;
  std::string reason;  // one sentence, logged every loop and shown in /patroni
  std::string source;  // the member to clone from, follow or rewind from
  // After the action, remove the "failover" key: it was carried out, is stale, or was refused.
  bool clear_failover = false;
};

// True when the decision needs PeerStatus for the other members (the leader key is gone and we may
// be a candidate): the agent then asks their REST APIs before calling decide().
bool needsPeerStatus(const HaInput& in);

Decision decide(const HaInput& in);

// Before decide(), with a fresh cluster view (nothing when the DCS could not be read) and the
// settings in effect: records the leader key's holder, and the one whose key vanished while paused.
void rememberLeader(AgentMemory& memory, const std::optional<ClusterView>& cluster, bool paused);

}  // namespace pgf
