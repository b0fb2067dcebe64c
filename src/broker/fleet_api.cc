#include "broker/fleet_api.h"

#include <algorithm>

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

}  // namespace

HttpReply FleetApi::handle(const HttpRequest& req) const {
  const std::string_view rest = std::string_view(req.path).substr(kFleetApiPrefix.size());
  const std::string_view collection = "instances";
  if (rest != collection && rest.rfind("instances/", 0) != 0)
    return osbError(404, "",
                    fmt::format("no such endpoint: {} {}", req.method, json(req.path).dump()));
  if (req.method != "GET") {
    HttpReply r = osbError(405, "", fmt::format("{} is not allowed here", req.method));
    r.headers["Allow"] = "GET";
    return r;
  }
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
  if (!r.maintenance_version.empty())
    out["maintenance_info"] = {{"version", r.maintenance_version}};
  auto last = store_.lastOperation(r.id);
  if (!last.ok())
    return last.error();
  out["last_operation"] = last->has_value() ? operationJson(**last, detail) : json(nullptr);
  if (detail) {
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

}  // namespace pgf
