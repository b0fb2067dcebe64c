// The agent daemon: one HA loop per node. Every cycle it reads the cluster from the DCS and its own
// PostgreSQL, asks decide() for exactly one step, carries it out, publishes its member key and a
// status snapshot for the REST API. A separate fence thread enforces invariant 1: the moment the
// lease deadline passes while this node runs as primary, it stops PostgreSQL (immediate mode),
// whatever the loop is doing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/callbacks.h"
#include "agent/config.h"
#include "agent/member_data.h"
#include "agent/status.h"
#include "agent/timing.h"
#include "agent/watchdog.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "dcs/dcs.h"
#include "ha/decision.h"
#include "postgres/controller.h"

namespace pgf {

class Agent {
 public:
  // `watchdog` (optional, not owned) is armed with every new lease deadline; see watchdog.h.
  Agent(AgentConfig config, DcsPtr dcs, PostgresControllerPtr postgres, const Clock& clock,
        Watchdog* watchdog = nullptr);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs the HA loop until requestStop(), then shuts down cleanly (a primary stops PostgreSQL and
  // releases the leader key so the others fail over at once). Returns the process exit code.
  int run();
  // Thread-safe; may be called from a signal-handling thread.
  void requestStop();

  AgentStatus status() const;
  // The last published status with PostgreSQL probed afresh (for REST actions that must not
  // judge this member by a snapshot up to one loop old).
  AgentStatus freshStatus() const;

  // Operator requests, carried out by the HA loop between two of its steps (so that they never
  // race an action of its own); each blocks until done or `timeout`, then says how it went.
  // Restart: PostgreSQL stops (fast) and starts again in its role, the leader keeping its lease
  // meanwhile. Reload: the configuration files are rewritten and PostgreSQL reloads them.
  Status restartPostgres(Millis timeout);
  // Counts a health check of the primary family answered by the REST API (see handOver).
  void notePrimaryCheck();
  Status reloadPostgres(Millis timeout);
  // Reinitialize: a replica's data directory is removed and cloned again from the leader, then it
  // streams (refused on the primary, and without a leader). Says what it cloned from.
  Result<std::string> reinitialize(Millis timeout);
  // POST /failsafe (ha/failsafe.h): a primary without the DCS asks us not to compete for the
  // lease. 200 "Accepted" (with our WAL position in an "lsn" header) is that promise, kept for
  // max(ttl, the sender's ttl) seconds; 500 when we run as (or are becoming) the primary; 502 when
  // failsafe_mode is off; 400 for a malformed body. Never blocks on the HA loop.
  HttpReply acceptFailsafeHeartbeat(const std::string& body);
  // A restart at a later time (one at a time: false when another is already scheduled), and its
  // cancellation (false when none is scheduled). Kept in memory: an agent restart forgets it.
  bool scheduleRestart(ScheduledRestart restart);
  bool cancelScheduledRestart();

 private:
  enum class NodeRequestKind { kRestart, kReload, kReinitialize };
  struct NodeRequest {
    NodeRequestKind kind;
    std::shared_ptr<std::promise<Result<std::string>>> done;
  };
  Result<std::string> submit(NodeRequestKind kind, Millis timeout);
  // Carries out the requests waiting, before the cycle's own decision.
  void serveNodeRequests(const ClusterView* cluster, const LocalPostgres& pg);
  Status restartServer(const ClusterView* cluster, const LocalPostgres& pg);
  // Carries out a scheduled restart that is due, if its conditions still hold.
  void runScheduledRestart(const ScheduledRestart& r, const ClusterView* cluster,
                           const LocalPostgres& pg);
  // Our member key's value, with the scheduled restart.
  nlohmann::json memberData(const LocalPostgres& pg) const;
  Result<std::string> reinitializeServer(const ClusterView* cluster, const LocalPostgres& pg);

  void cycle();
  void execute(const Decision& d, const HaInput& in);
  void publish(const HaInput& in, const Decision& d, const std::string& activity);
  void publishPromotion();
  void publishProbe();
  // Carries out kSwitchover: checkpoint, clean stop, release the lease, rejoin as a standby.
  void handOver(const Decision& d, const HaInput& in);
  void clearSwitchoverRequest();
  // Applies the config key's postgresql.parameters (reload; see setClusterParameters).
  void applyClusterParameters(const std::map<std::string, std::string>& params);
  // Forgets the lease deadline (we no longer lead) and disarms the watchdog. Caller holds mu_.
  void clearDeadline();
  void leaderHousekeeping(const ClusterView& cluster, const LocalPostgres& pg);
  // Synchronous mode on the leader: synchronous_standby_names and the sync key (ha/sync.h).
  void manageSync(const ClusterView& cluster, const LocalPostgres& pg);
  // Before this node starts or is promoted as primary in synchronous mode: the sync key names it
  // alone and every commit waits for a standby until manageSync picks them. False on failure.
  bool prepareSynchronousPrimary(bool write_key);
  void fenceLoop();
  void keeperLoop();

  // Marks a long action on the leader for as long as it lives: keeperLoop renews the lease
  // meanwhile.
  class LeaseKeeper {
   public:
    explicit LeaseKeeper(Agent& agent);
    ~LeaseKeeper();
    LeaseKeeper(const LeaseKeeper&) = delete;
    LeaseKeeper& operator=(const LeaseKeeper&) = delete;

   private:
    Agent& agent_;
  };
  void shutdown();

  // Renews (or, with `acquire`, takes) the lease; on success moves the deadline. Returns whether we
  // hold the lease afterwards.
  bool renewOrAcquire(bool acquire);
  // failsafe_mode, after a renewal the DCS did not answer: asks every member of the failsafe key
  // to accept us; when all do, moves the lease deadline to (when asked) + ttl − margin.
  void failsafeRound();
  void setActivity(const std::string& activity);
  // Where to stream from to follow `member` ("" = no upstream yet); nullopt when the member or its
  // conn_url is unknown (always, for a named member, when the DCS could not be read). Streaming
  // from the leader (or the leader-to-be) uses our replication slot; with `cascade` (another
  // replica, see ha/upstream.h) none.
  std::optional<UpstreamConn> upstreamFor(const ClusterView* cluster, const std::string& member,
                                          bool cascade = false) const;
  // Starts PostgreSQL as a standby of `up` (member `source`); logs a failure as "starting <what>".
  bool startStandby(const UpstreamConn& up, const std::string& source, const char* what);
  // Writes our promotion into the cluster's history: every switch of our timeline's history file
  // that the DCS history lacks, the last one with `reason`.
  void recordPromotion(const ClusterView& cluster, int old_timeline, int64_t lower_bound,
                       const std::string& reason);
  // As the leader, completes a DCS history that lacks a switch of our timeline's lineage (its
  // write after a promotion failed): replicas judge divergence by it.
  void completeHistory(const ClusterView& cluster, const LocalPostgres& pg);
  MonoTime nextCycleAt() const;

  AgentConfig config_;
  CallbackRunner callbacks_;  // after config_, which it is built from
  DcsPtr dcs_;
  PostgresControllerPtr pg_;
  const Clock& clock_;
  Watchdog* watchdog_;
  MemberIdentity identity_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> fence_stop_{false};  // the fence outlives the loop until shutdown is complete
  std::thread fence_thread_;
  std::thread keeper_thread_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable fence_cv_;
  AgentMemory memory_;
  AgentTiming timing_;
  HaSettings settings_;
  AgentStatus status_;
  MonoTime last_cycle_start_{};
  std::optional<MonoTime> leader_missing_since_;
  bool long_action_ = false;            // see LeaseKeeper
  std::string activity_;                // what a long action is doing, shown as the member's state
  int min_ttl_ = 30;                    // the smallest ttl this agent ever used for its lease
  std::atomic<bool> run_again_{false};  // the next cycle should follow at once
  int64_t last_optime_ = -1;            // the last position written to "status"
  std::set<std::string> last_slots_;
  std::string synced_with_;    // the leader we were last cloned or rewound from ("" when none)
  std::string diverged_from_;  // the leader our WAL was seen to diverge from ("" when none)
  std::vector<NodeRequest> node_requests_;  // guarded by mu_
  // Primary-family health checks answered, and when the last one was (guarded by mu_).
  int64_t primary_checks_ = 0;
  std::optional<MonoTime> last_primary_check_;
  std::condition_variable primary_check_cv_;
  std::map<std::string, std::string> rejected_parameters_;  // the last set PostgreSQL refused
  std::optional<MonoTime> switchover_at_;
  std::optional<MonoTime> sync_recheck_at_;  // a standby is about to count as synchronous
  std::string ssn_applied_;                  // synchronous_standby_names set (kUnknownSsn: unknown)
  bool ssn_managed_ = false;                 // we set synchronous_standby_names ourselves
  std::map<std::string, int64_t>
      seen_sync_at_;  // when a scheduled switchover is due (guarded by mu_)
  // The config and failsafe keys as last read: the settings and the failsafe members stay known
  // while the DCS cannot be read.
  std::optional<nlohmann::json> last_dcs_config_;
  std::map<std::string, std::string> failsafe_members_;
  bool last_renewal_unreachable_ = false;  // the last renewal failed for want of the DCS
  bool acquiring_ = false;                 // a lease acquisition is in flight
  // The failsafe promise we gave (acceptFailsafeHeartbeat): not competing for the lease while
  // `failsafe_leader_` runs as primary, until `failsafe_until_`.
  std::string failsafe_leader_;
  MonoTime failsafe_until_{};
  std::optional<ScheduledRestart> scheduled_restart_;
  bool following_without_slot_ = false;  // we stream from memory_.following without a slot
  int64_t last_revision_ = 0;            // of the last cluster view read
  bool fence_paused_ = false;            // the cluster is paused: the fence and watchdog stand down
  std::optional<MonoTime> scheduled_restart_due_;  // when the loop must wake for it
};

}  // namespace pgf
