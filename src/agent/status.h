// A snapshot of what the agent knows, published by the HA loop after every cycle and read by the
// REST API and the metrics endpoint (which never touch the DCS or PostgreSQL themselves).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "dcs/cluster_view.h"
#include "ha/decision.h"
#include "postgres/state.h"

namespace pgf {

struct AgentCounters {
  int64_t loops = 0;
  int64_t lease_renewals = 0;  // successful renewals
  int64_t lease_renewal_failures = 0;
  int64_t promotions = 0;  // times this node became primary by failover/bootstrap
  int64_t demotions = 0;
  int64_t postgres_restarts = 0;  // crashed PostgreSQL started again
};

// One row of pg_stat_replication on a primary, as Patroni reports it under "replication".
struct WalSender {
  std::string usename;
  std::string application_name;
  std::string client_addr;
  std::string state;
  std::string sync_state;
  int sync_priority = 0;
};

// A restart an operator scheduled (POST /restart with "schedule"), carried out by the HA loop at
// its time if its conditions hold then.
struct ScheduledRestart {
  WallTime at{};
  std::string schedule;  // as given: shown in /patroni and in the member key
  std::string role;      // "primary", "replica", or "" for either
  bool restart_pending = false;
  int postmaster_pid = 0;  // the postmaster when scheduled: a restart meanwhile makes it moot
};

struct AgentStatus {
  std::string scope;
  std::string name;
  std::string version;   // pgfleet's version
  std::string api_url;   // http://host:port/patroni
  std::string conn_url;  // postgres://host:port/postgres
  MemberTags tags;
  HaSettings settings;                 // effective settings this loop
  LocalPostgres pg;                    // the last probe
  std::string role;                    // "master" (primary), "replica", "uninitialized"
  std::string state;                   // "running", "starting", "stopped", "crashed", ...
  bool is_leader = false;              // we hold the leader key
  std::optional<ClusterView> cluster;  // the last snapshot read from the DCS
  bool dcs_reachable = false;
  Decision last_decision;
  WallTime postmaster_start_time{};
  WallTime updated_at{};
  AgentCounters counters;
  std::string server_version;  // PostgreSQL's server_version_num, "" when unknown
  std::string database_system_identifier;
  // When the HA loop last completed a cycle (MonoTime{} before the first one): /liveness.
  MonoTime last_loop{};
  // When a DCS read last succeeded (WallTime{} never): "dcs_last_seen" in /patroni.
  WallTime dcs_last_seen{};
  std::vector<WalSender> replication;  // primary only; empty when not collected
  // failsafe_mode: we run as primary on the members' acknowledgements alone (the DCS is out of
  // reach), and the members of the failsafe key as last read (GET /failsafe).
  bool failsafe_active = false;
  std::map<std::string, std::string> failsafe_members;
  std::optional<ScheduledRestart> scheduled_restart;
};

}  // namespace pgf
