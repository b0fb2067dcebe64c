#include "broker/fleet_api.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker/osb_api.h"
#include "broker/postgres_spi.h"

namespace pgf {
namespace {

using nlohmann::json;

HttpReply jsonReply(int status, const json& body) {
  return HttpReply{status, "application/json", body.dump(), {}};
}

HttpReply storeFailure(const Error& e) {
  spdlog::error("store: {}", e.message);
  return osbError(500, "", "the broker could not read its store");
}

json operationJson(const OperationRecord& op, bool detail) {
  json out = {{"operation", op.token()},
              {"type", std::string(opKindName(op.kind))},
              {"state", std::string(opStateName(op.state))},
              {"description", op.description},
              {"started_at", op.started_at},
              {"finished_at", op.finished_at.empty() ? json(nullptr) : json(op.finished_at)}};
  if (detail) {
    out["steps"] = op.steps;
    out["requested_by"] = op.request.value("by", json());
  }
  return out;
}

// What the backend made, without its secrets: the endpoints and each node's ports, once the
// provision has reserved them.
json deploymentJson(const InstanceRecord& r, const Plan* plan) {
  const json& d = r.deployment;
  json out = {{"name", d.value("name", "")}, {"database", d.value("database", "")}};
  const json ports = d.value("ports", json::object());
  if (ports.empty() || !ports.is_object())
    return out;
  out["host"] = InstanceAccess{}.host;
  out["read_write_port"] = d.value("read_write_port", 0);
  if (const int ro = d.value("read_only_port", 0); ro > 0)
    out["read_only_port"] = ro;
  json nodes = json::array();
  const int count = plan != nullptr ? plan->nodes : 0;
  for (int i = 0; i < count; ++i)
    nodes.push_back({{"name", fmt::format("node{}", i)},
                     {"pg_port", ports.value(fmt::format("pg{}", i), 0)},
                     {"api_port", ports.value(fmt::format("api{}", i), 0)}});
  out["nodes"] = nodes;
  return out;
}

json healthJson(const HealthRecord& h, bool detail) {
  json out = {{"state", h.state}, {"since", h.since}};
  if (!h.reason.empty())
    out["reason"] = h.reason;
  if (detail)
    out["nodes"] = h.nodes;
  return out;
}

// A label value as Prometheus' text format writes it.
std::string labelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

HttpReply FleetApi::metrics() const {
  auto records = store_.instances();
  if (!records.ok())
    return storeFailure(records.error());
  auto health = store_.healthAll();
  if (!health.ok())
    return storeFailure(health.error());
  std::map<std::string, std::string> state_of;
  for (const auto& h : *health)
    state_of[h.instance_id] = h.state;
  std::map<std::string, int> by_state = {
      {"healthy", 0}, {"recovering", 0}, {"degraded", 0}, {"unknown", 0}, {"provisioning", 0}};
  std::string per_instance;
  for (const auto& r : *records) {
    if (!r.pool.empty())
      continue;  // shown under its pool
    std::string state = !r.ready               ? "provisioning"
                        : state_of.count(r.id) ? state_of[r.id]
                                               : "unknown";
    by_state[state]++;
    for (const char* s : {"healthy", "recovering", "degraded"})
      if (r.ready)
        per_instance +=
            fmt::format("pgfleet_instance_health{{instance_id=\"{}\",state=\"{}\"}} {}\n",
                        labelValue(r.id), s, state == s ? 1 : 0);
  }
  std::string text;
  text +=
      "# HELP pgfleet_broker_instances Instances by health (provisioning: not ready yet; "
      "unknown: not checked yet).\n# TYPE pgfleet_broker_instances gauge\n";
  for (const auto& [state, n] : by_state)
    text += fmt::format("pgfleet_broker_instances{{state=\"{}\"}} {}\n", state, n);
  text +=
      "# HELP pgfleet_instance_health 1 for the instance's current health state.\n"
      "# TYPE pgfleet_instance_health gauge\n";
  text += per_instance;
  if (supervisor_ != nullptr) {
    const Supervisor::Counters c = supervisor_->counters();
    text += fmt::format(
        "# HELP pgfleet_broker_supervisor_passes_total Passes of the self-healing supervisor.\n"
        "# TYPE pgfleet_broker_supervisor_passes_total counter\n"
        "pgfleet_broker_supervisor_passes_total {}\n"
        "# HELP pgfleet_broker_restarts_total Processes the supervisor started again.\n"
        "# TYPE pgfleet_broker_restarts_total counter\n"
        "pgfleet_broker_restarts_total{{process=\"agent\"}} {}\n"
        "pgfleet_broker_restarts_total{{process=\"haproxy\"}} {}\n"
        "# HELP pgfleet_broker_failed_restarts_total Restarts that failed.\n"
        "# TYPE pgfleet_broker_failed_restarts_total counter\n"
        "pgfleet_broker_failed_restarts_total {}\n"
        "# HELP pgfleet_broker_crash_loops_total Crash loops detected.\n"
        "# TYPE pgfleet_broker_crash_loops_total counter\n"
        "pgfleet_broker_crash_loops_total {}\n",
        c.passes, c.agent_restarts, c.haproxy_restarts, c.failed_restarts, c.crash_loops);
  }
  if (pool_ != nullptr) {
    auto pools = pool_->status();
    if (!pools.ok())
      return storeFailure(pools.error());
    std::string size, instances, claims, misses, failures;
    for (const auto& p : *pools) {
      const std::string plan = labelValue(p.plan_name.empty() ? p.plan_id : p.plan_name);
      size += fmt::format("pgfleet_pool_size{{plan=\"{}\"}} {}\n", plan, p.size);
      instances +=
          fmt::format("pgfleet_pool_instances{{plan=\"{}\",state=\"ready\"}} {}\n", plan, p.ready);
      instances += fmt::format("pgfleet_pool_instances{{plan=\"{}\",state=\"building\"}} {}\n",
                               plan, p.building);
      claims += fmt::format("pgfleet_pool_claims_total{{plan=\"{}\"}} {}\n", plan, p.claims);
      misses += fmt::format("pgfleet_pool_misses_total{{plan=\"{}\"}} {}\n", plan, p.misses);
      failures += fmt::format("pgfleet_pool_build_failures_total{{plan=\"{}\"}} {}\n", plan,
                              p.build_failures);
    }
    text +=
        "# HELP pgfleet_pool_size Ready instances each plan's pool keeps.\n"
        "# TYPE pgfleet_pool_size gauge\n" +
        size +
        "# HELP pgfleet_pool_instances Pooled instances, ready or being built.\n"
        "# TYPE pgfleet_pool_instances gauge\n" +
        instances +
        "# HELP pgfleet_pool_claims_total Provisions served from the pool.\n"
        "# TYPE pgfleet_pool_claims_total counter\n" +
        claims +
        "# HELP pgfleet_pool_misses_total Provisions that found the pool empty.\n"
        "# TYPE pgfleet_pool_misses_total counter\n" +
        misses +
        "# HELP pgfleet_pool_build_failures_total Pooled instances that could not be built.\n"
        "# TYPE pgfleet_pool_build_failures_total counter\n" +
        failures;
  }
  return HttpReply{200, "text/plain; version=0.0.4", text, {}};
}

HttpReply FleetApi::handle(const HttpRequest& req) const {
  const std::string_view rest = std::string_view(req.path).substr(kFleetApiPrefix.size());
  const std::string_view collection = "instances";
  if (rest != collection && rest != "pools" && rest.rfind("instances/", 0) != 0)
    return osbError(404, "",
                    fmt::format("no such endpoint: {} {}", req.method, json(req.path).dump()));
  if (req.method != "GET") {
    HttpReply r = osbError(405, "", fmt::format("{} is not allowed here", req.method));
    r.headers["Allow"] = "GET";
    return r;
  }
  if (rest == "pools")
    return pools();
  if (rest == collection)
    return list();
  const std::string id(rest.substr(collection.size() + 1));
  if (id.empty() || id.find('/') != std::string::npos)
    return osbError(404, "",
                    fmt::format("no such endpoint: {} {}", req.method, json(req.path).dump()));
  return one(id);
}

Result<json> FleetApi::describe(const InstanceRecord& r, bool detail) const {
  const Plan* plan = catalog_.planById(r.plan_id);
  json out = {{"instance_id", r.id},
              {"service_id", r.service_id},
              {"plan_id", r.plan_id},
              {"plan_name", plan != nullptr ? json(plan->name) : json(nullptr)},
              {"nodes", plan != nullptr ? json(plan->nodes) : json(nullptr)},
              {"synchronous_mode", plan != nullptr && plan->synchronous_mode},
              {"parameters", r.parameters},
              {"organization_guid", r.organization_guid},
              {"space_guid", r.space_guid},
              {"context", r.context},
              {"ready", r.ready},
              {"created_at", r.created_at},
              {"updated_at", r.updated_at},
              {"deployment", deploymentJson(r, plan)}};
  if (!r.pool.empty())
    out["pool"] = r.pool;
  if (!r.maintenance_version.empty())
    out["maintenance_info"] = {{"version", r.maintenance_version}};
  auto last = store_.lastOperation(r.id);
  if (!last.ok())
    return last.error();
  out["last_operation"] = last->has_value() ? operationJson(**last, detail) : json(nullptr);
  auto health = store_.health(r.id);
  if (!health.ok())
    return health.error();
  out["health"] = health->has_value() ? healthJson(**health, detail) : json(nullptr);
  if (detail) {
    auto events = store_.events(r.id, kEventsShown);
    if (!events.ok())
      return events.error();
    json history = json::array();
    for (const auto& e : *events)
      history.push_back({{"at", e.at}, {"kind", e.kind}, {"message", e.message}});
    out["events"] = history;
    auto bindings = store_.bindings(r.id);
    if (!bindings.ok())
      return bindings.error();
    json list = json::array();
    for (const auto& b : *bindings)
      list.push_back({{"binding_id", b.id}, {"ready", b.ready}, {"created_at", b.created_at}});
    out["bindings"] = list;
  }
  return out;
}

HttpReply FleetApi::list() const {
  auto records = store_.instances();
  if (!records.ok())
    return storeFailure(records.error());
  std::sort(records->begin(), records->end(),
            [](const InstanceRecord& a, const InstanceRecord& b) { return a.id < b.id; });
  json items = json::array();
  for (const auto& r : *records) {
    if (!r.pool.empty())
      continue;  // listed under its pool
    auto item = describe(r, false);
    if (!item.ok())
      return storeFailure(item.error());
    items.push_back(std::move(*item));
  }
  return jsonReply(200, {{"instances", items}});
}

HttpReply FleetApi::one(const std::string& id) const {
  auto record = store_.instance(id);
  if (!record.ok())
    return storeFailure(record.error());
  if (!record->has_value())
    return osbError(404, "", fmt::format("no instance {}", json(id).dump()));
  auto item = describe(**record, true);
  if (!item.ok())
    return storeFailure(item.error());
  return jsonReply(200, *item);
}

HttpReply FleetApi::pools() const {
  json items = json::array();
  if (pool_ != nullptr) {
    auto pools = pool_->status();
    if (!pools.ok())
      return storeFailure(pools.error());
    for (const auto& p : *pools)
      items.push_back({{"plan_id", p.plan_id},
                       {"plan_name", p.plan_name.empty() ? json(nullptr) : json(p.plan_name)},
                       {"strategy", std::string(strategyName(p.strategy))},
                       {"size", p.size},
                       {"refill_concurrency", p.refill_concurrency},
                       {"ready", p.ready},
                       {"building", p.building},
                       {"instances", p.members},
                       {"claims", p.claims},
                       {"misses", p.misses},
                       {"build_failures", p.build_failures}});
  }
  return jsonReply(200, {{"pools", items}});
}

}  // namespace pgf
