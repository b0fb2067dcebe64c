#include "broker/plan_change.h"

#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

namespace pgf {
namespace {

// What PostgreSQL 15 reads only at server start (context "postmaster") among the parameters a
// plan is likely to set; any other parameter is taken by a reload.
const std::set<std::string>& restartOnly() {
  static const std::set<std::string> names = {"shared_buffers",
                                              "max_connections",
                                              "max_worker_processes",
                                              "max_prepared_transactions",
                                              "max_locks_per_transaction",
                                              "max_wal_senders",
                                              "max_replication_slots",
                                              "wal_level",
                                              "huge_pages",
                                              "shared_preload_libraries",
                                              "wal_buffers",
                                              "max_pred_locks_per_transaction",
                                              "track_commit_timestamp",
                                              "archive_mode",
                                              "superuser_reserved_connections",
                                              "port",
                                              "listen_addresses",
                                              "max_files_per_process"};
  return names;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> planParameters(const Plan& plan) {
  std::vector<std::pair<std::string, std::string>> out = {
      {"shared_buffers", plan.resources.shared_buffers},
      {"max_connections", std::to_string(plan.resources.max_connections)},
      {"work_mem", plan.resources.work_mem}};
  for (const auto& [k, v] : plan.parameters)
    out.emplace_back(k, v);
  if (plan.nodes > 1 && plan.parameters.count("wal_keep_size") == 0)
    out.emplace_back("wal_keep_size", "128MB");
  return out;
}

PlanChange planChange(const Plan& from, const Plan& to) {
  PlanChange c;
  if (to.nodes < from.nodes) {
    c.refusal = fmt::format(
        "plan {} is a single server and this instance is a cluster of {} nodes: its replicas, "
        "and the copies of the data they hold, would be lost",
        to.name, from.nodes);
  } else if (to.resources.disk_quota_mb > 0 &&
             (from.resources.disk_quota_mb == 0 ||
              to.resources.disk_quota_mb < from.resources.disk_quota_mb)) {
    c.refusal = fmt::format(
        "plan {} has a smaller disk quota ({} MB) than this instance ({}): its data may not fit",
        to.name, to.resources.disk_quota_mb,
        from.resources.disk_quota_mb == 0 ? std::string("no quota")
                                          : fmt::format("{} MB", from.resources.disk_quota_mb));
  } else if (to.resources.max_connections < from.resources.max_connections) {
    c.refusal = fmt::format(
        "plan {} allows fewer connections ({}) than this instance ({}): the application may hold "
        "them, and a standby cannot run with fewer than its primary",
        to.name, to.resources.max_connections, from.resources.max_connections);
  } else if (to.template_file != from.template_file) {
    c.refusal = fmt::format("plan {} deploys another template ({}) than this instance ({})",
                            to.name, to.template_file, from.template_file);
  }
  if (!c.refusal.empty())
    return c;

  std::map<std::string, std::string> before, after;
  for (auto& [k, v] : planParameters(from))
    before[k] = v;
  for (auto& [k, v] : planParameters(to))
    after[k] = v;
  nlohmann::json parameters = nlohmann::json::object();
  for (const auto& [k, v] : after) {
    auto was = before.find(k);
    if (was != before.end() && was->second == v)
      continue;
    parameters[k] = v;
    c.restart = c.restart || restartOnly().count(k) > 0;
  }
  for (const auto& [k, v] : before) {
    if (after.count(k) == 0) {
      parameters[k] = nullptr;
      c.restart = c.restart || restartOnly().count(k) > 0;
    }
  }
  if (!parameters.empty())
    c.config_patch["postgresql"] = {{"parameters", parameters}};
  c.grow = to.nodes > from.nodes;
  for (auto [key, before_s, after_s] :
       {std::tuple{"ttl", from.ttl, to.ttl}, std::tuple{"loop_wait", from.loop_wait, to.loop_wait},
        std::tuple{"retry_timeout", from.retry_timeout, to.retry_timeout}})
    if (before_s != after_s)
      c.config_patch[key] = after_s;
  c.synchronous_mode_changes = from.synchronous_mode != to.synchronous_mode;
  if (c.synchronous_mode_changes)
    c.config_patch["synchronous_mode"] = to.synchronous_mode;
  return c;
}

}  // namespace pgf
