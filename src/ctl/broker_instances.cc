#include "ctl/broker_instances.h"

#include <ostream>

#include <fmt/format.h>

#include "ctl/table.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
constexpr auto kReplace = nlohmann::json::error_handler_t::replace;

json objectAt(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_object() ? *it : json::object();
}

std::string text(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it == doc.end() ? "" : cellText(*it);
}

// "provision succeeded", "deprovision in progress"; "" when the instance has none.
std::string stateOf(const json& instance) {
  const json op = objectAt(instance, "last_operation");
  if (op.empty())
    return "";
  return text(op, "type") + " " + text(op, "state");
}

std::string endpointOf(const json& instance) {
  const json d = objectAt(instance, "deployment");
  if (!d.contains("read_write_port"))
    return "";
  std::string out = text(d, "host") + ":" + text(d, "read_write_port");
  if (d.contains("read_only_port"))
    out += " (read-only " + text(d, "read_only_port") + ")";
  return out;
}

std::string planOf(const json& instance) {
  const std::string name = text(instance, "plan_name");
  return name.empty() ? text(instance, "plan_id") : name;
}

// "healthy", "recovering", "degraded" or "" (not checked yet).
std::string healthOf(const json& instance) {
  return text(objectAt(instance, "health"), "state");
}

// The node's role as the supervisor last saw it ("primary", "replica (streaming)", "agent not
// running"); "" when unknown.
std::string roleOf(const json& health, const std::string& node) {
  for (const auto& n : health.value("nodes", json::array())) {
    if (!n.is_object() || text(n, "name") != node)
      continue;
    if (!n.value("agent", false))
      return "agent not running";
    const std::string role = text(n, "role");
    if (role.empty())
      return "PostgreSQL not running";
    if (role == "replica")
      return n.value("streaming", false) ? "replica (streaming)" : "replica (not streaming)";
    return role;
  }
  return "";
}

std::string nodesTable(const json& deployment, const json& health) {
  TextTable table;
  table.columns = {"Node", "PostgreSQL port", "REST API port", "Role"};
  table.right_aligned = {false, true, true, false};
  for (const auto& n : deployment.value("nodes", json::array()))
    if (n.is_object())
      table.rows.push_back({text(n, "name"), text(n, "pg_port"), text(n, "api_port"),
                            roleOf(health, text(n, "name"))});
  return table.rows.empty() ? "" : renderTable(table);
}

std::string eventsTable(const json& events) {
  TextTable table;
  table.columns = {"At", "Event", "What happened"};
  for (const auto& e : events)
    if (e.is_object())
      table.rows.push_back({text(e, "at"), text(e, "kind"), text(e, "message")});
  return table.rows.empty() ? "" : "\nEvents (newest last):\n" + renderTable(table);
}

}  // namespace

std::string formatInstancesTable(const json& instances) {
  TextTable table;
  table.columns = {"Instance", "Plan", "Nodes", "State", "Health", "Endpoint", "Created"};
  table.right_aligned = {false, false, true, false, false, false, false};
  if (instances.is_array())
    for (const auto& i : instances)
      if (i.is_object())
        table.rows.push_back({text(i, "instance_id"), planOf(i), text(i, "nodes"), stateOf(i),
                              healthOf(i), endpointOf(i), text(i, "created_at")});
  return renderTable(table);
}

std::string formatInstance(const json& instance) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"Instance", text(instance, "instance_id")},
      {"Plan", fmt::format("{} ({})", planOf(instance), text(instance, "plan_id"))},
      {"Nodes", text(instance, "nodes")},
      {"Service id", text(instance, "service_id")},
      {"Ready", instance.value("ready", false) ? "yes" : "no"},
      {"Parameters", text(instance, "parameters")},
      {"Organization", text(instance, "organization_guid")},
      {"Space", text(instance, "space_guid")},
      {"Created", text(instance, "created_at")},
      {"Updated", text(instance, "updated_at")}};
  if (const json mi = objectAt(instance, "maintenance_info"); !mi.empty())
    fields.emplace_back("Maintenance", text(mi, "version"));
  const json health = objectAt(instance, "health");
  if (!health.empty()) {
    std::string line = text(health, "state") + " since " + text(health, "since");
    if (!text(health, "reason").empty())
      line += ": " + text(health, "reason");
    fields.emplace_back("Health", line);
  }
  const json op = objectAt(instance, "last_operation");
  if (!op.empty()) {
    std::string line = stateOf(instance);
    if (!text(op, "description").empty())
      line += ": " + text(op, "description");
    fields.emplace_back("Last operation", line + " (" + text(op, "operation") + ")");
    fields.emplace_back("  started", text(op, "started_at"));
    if (!text(op, "finished_at").empty())
      fields.emplace_back("  finished", text(op, "finished_at"));
    std::string steps;
    for (const auto& s : op.value("steps", json::array()))
      steps += (steps.empty() ? "" : ", ") + cellText(s);
    if (!steps.empty())
      fields.emplace_back("  steps done", steps);
    // As JSON, so that nothing the platform sent can reach the terminal as a control character.
    if (const json by = objectAt(op, "requested_by"); !by.empty())
      fields.emplace_back("  requested by",
                          by.value("platform", json("")).dump(-1, ' ', false, kReplace) + " " +
                              by.value("identity", json()).dump(-1, ' ', false, kReplace));
  }
  const json d = objectAt(instance, "deployment");
  if (!text(d, "name").empty())
    fields.emplace_back("Deployment", text(d, "name"));
  if (!text(d, "database").empty())
    fields.emplace_back("Database", text(d, "database"));
  if (d.contains("read_write_port"))
    fields.emplace_back("Read-write", text(d, "host") + ":" + text(d, "read_write_port"));
  if (d.contains("read_only_port"))
    fields.emplace_back("Read-only", text(d, "host") + ":" + text(d, "read_only_port"));
  std::string bindings;
  for (const auto& b : instance.value("bindings", json::array()))
    if (b.is_object())
      bindings += (bindings.empty() ? "" : ", ") + text(b, "binding_id") +
                  (b.value("ready", true) ? "" : " (being made)");
  fields.emplace_back("Bindings", bindings.empty() ? "none" : bindings);
  return renderFields(fields) + nodesTable(d, health) +
         eventsTable(instance.value("events", json::array()));
}

namespace {

// GET `path` and print its array `key`: as JSON, or as `table` (`none` when it is empty).
int runList(BrokerClient& broker, const VerbOutput& output, const std::string& path,
            const char* key, const char* none, std::string (*table)(const json&)) {
  auto a = broker.call("GET", path);
  if (!a.ok())
    return reportFailure(output.err, a.error());
  if (a->status != 200 || !a->body.is_object() || !a->body.contains(key))
    return reportFailure(output.err, refusal(std::string("listing the ") + key, *a));
  const json& list = a->body[key];
  if (output.format == OutputFormat::kJson)
    output.out << list.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  else if (list.empty())
    output.out << none << "\n";
  else
    output.out << table(list);
  return 0;
}

}  // namespace

int runInstances(BrokerClient& broker, const VerbOutput& output) {
  return runList(broker, output, "/pgfleet/v1/instances", "instances",
                 "the broker has no instances", formatInstancesTable);
}

int runShow(BrokerClient& broker, const std::string& instance_id, const VerbOutput& output) {
  auto instance = broker.existingInstance(instance_id);
  if (!instance.ok())
    return reportFailure(output.err, instance.error());
  if (output.format == OutputFormat::kJson)
    output.out << instance->dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  else
    output.out << formatInstance(*instance);
  return 0;
}

std::string formatPoolsTable(const json& pools) {
  TextTable table;
  table.columns = {"Plan", "Strategy", "Size", "Ready", "Building", "Claims", "Misses", "Failures"};
  table.right_aligned = {false, false, true, true, true, true, true, true};
  if (pools.is_array())
    for (const auto& p : pools)
      if (p.is_object())
        table.rows.push_back(
            {p.value("plan_name", json()).is_string() ? text(p, "plan_name") : text(p, "plan_id"),
             text(p, "strategy"), text(p, "size"), text(p, "ready"), text(p, "building"),
             text(p, "claims"), text(p, "misses"), text(p, "build_failures")});
  return renderTable(table);
}

int runPools(BrokerClient& broker, const VerbOutput& output) {
  return runList(broker, output, "/pgfleet/v1/pools", "pools", "no plan has a pool",
                 formatPoolsTable);
}

}  // namespace pgf::ctl
