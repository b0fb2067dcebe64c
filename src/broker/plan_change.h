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
// A tenant's own settings (the `settings` parameter) change the same way, within one plan.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "broker/catalog.h"

namespace pgf {

// The PostgreSQL settings a tenant may choose (an instance's `settings` parameter), and whether
// PostgreSQL reads each only at start.
struct TenantSetting {
  const char* name;
  bool restart;
  bool size;  // a memory size ("64MB"); otherwise an integer (milliseconds, or a count)
  long long minimum;
  long long maximum;
};
const std::vector<TenantSetting>& tenantSettings();

// Why `settings` (an instance's `settings` parameter) is refused: "" when it is an object of
// tenant settings with values in range (integers; sizes as a number and kB, MB or GB). Checked on
// top of the plan's schema: these values go into postgresql.conf.
std::string settingsViolation(const nlohmann::json& settings);

// The PostgreSQL parameters a plan's instances run with: its resources, its own parameters and,
// for a cluster, wal_keep_size 128MB unless the plan sets it (a replica that reconnects after a
// failover finds the WAL it needs); then the instance's own `settings` (when valid) over them.
std::vector<std::pair<std::string, std::string>> planParameters(
    const Plan& plan, const nlohmann::json& settings = nullptr);

struct PlanChange {
  std::string refusal;   // why the move is refused; "" when it is allowed
  bool restart = false;  // a parameter PostgreSQL reads only at start changes
  bool grow = false;     // a single server becomes a cluster: two replicas are added
  bool synchronous_mode_changes = false;
  // The body of PATCH /config on the cluster's agents: the new parameters (null for those the new
  // plan no longer sets) and synchronous_mode.
  nlohmann::json config_patch = nlohmann::json::object();
  // The parameters PostgreSQL reads only at start that get a new value, with it: a node that runs
  // with all of them has been restarted.
  std::vector<std::pair<std::string, std::string>> restart_parameters;
};

// Moving from plan `from` with tenant settings `settings_before` to plan `to` with
// `settings_after` (the same plan, for a change of settings alone). A tenant setting that a
// standby must hold at least as high as its primary (max_locks_per_transaction,
// max_prepared_transactions) may not go down: the replicas restart first.
PlanChange planChange(const Plan& from, const Plan& to,
                      const nlohmann::json& settings_before = nullptr,
                      const nlohmann::json& settings_after = nullptr);

}  // namespace pgf
