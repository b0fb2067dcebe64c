// Moving an instance from one plan to another (PATCH /v2/service_instances/:id with a new
// plan_id): whether the move is allowed, and what it takes.
//
// Allowed: the same template, no smaller disk quota and no fewer connections, and the same
// number of nodes or a single server becoming a cluster. The new resources, parameters and timing
// go into the cluster's dynamic configuration (its agents rewrite postgresql.conf and reload),
// synchronous_mode is switched there too (live); a single server becoming a cluster gets two
// replicas, cloned and streaming before its endpoints change; and when a parameter PostgreSQL
// only reads at start changes, the nodes are restarted one at a time: the replicas, then a
// switchover to one of them, then the former primary (a single server restarts once). Refused
// (422, with the reason, nothing changed): a cluster becoming a single server (its replicas and
// their copies would go), a smaller disk quota, fewer connections (a standby cannot run with
// fewer max_connections than its primary, and the application may hold them), another template.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "broker/catalog.h"

namespace pgf {

// The PostgreSQL parameters a plan's instances run with: its resources, its own parameters and,
// for a cluster, wal_keep_size 128MB unless the plan sets it (a replica that reconnects after a
// failover finds the WAL it needs).
std::vector<std::pair<std::string, std::string>> planParameters(const Plan& plan);

struct PlanChange {
  std::string refusal;   // why the move is refused; "" when it is allowed
  bool restart = false;  // a parameter PostgreSQL reads only at start changes
  bool grow = false;     // a single server becomes a cluster: two replicas are added
  bool synchronous_mode_changes = false;
  // The body of PATCH /config on the cluster's agents: the new parameters (null for those the new
  // plan no longer sets) and synchronous_mode.
  nlohmann::json config_patch = nlohmann::json::object();
};

PlanChange planChange(const Plan& from, const Plan& to);

}  // namespace pgf
