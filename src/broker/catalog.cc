#include "broker/catalog.h"

#include <cctype>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "broker/json_schema.h"
#include "common/yaml_reader.h"

namespace pgf {
namespace {

using yaml::configError;

// OSB §2: a JSON schema in the catalog is at most 64 kB.
constexpr size_t kMaxSchemaBytes = 64 * 1024;
// OSB §2 recommends strings of at most 255 characters.
constexpr size_t kMaxText = 255;

// CLI-friendly names, as OSB recommends: letters, digits, '.', '_' and '-'.
bool isCliName(std::string_view name) {
  if (name.empty() || name.size() > kMaxText)
    return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

Status readText(const YAML::Node& parent, const char* key, std::string_view path, bool required,
                std::string& target) {
  const std::string where = yaml::joinPath(path, key);
  if (!yaml::isSet(yaml::child(parent, key)))
    return required ? Status(configError(where, "is required")) : okStatus();
  PGF_RETURN_IF_ERROR(yaml::optString(parent, key, path, target));
  if (target.empty())
    return configError(where, "must not be empty");
  if (target.size() > kMaxText)
    return configError(where, fmt::format("is longer than {} characters", kMaxText));
  return okStatus();
}

// A "$ref" that leaves the schema (anything but "#..."): OSB forbids them.
bool hasExternalRef(const nlohmann::json& j) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (k == "$ref" && (!v.is_string() || v.get<std::string>().rfind('#', 0) != 0))
        return true;
      if (hasExternalRef(v))
        return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (hasExternalRef(v))
        return true;
  }
  return false;
}

Status readSchema(const YAML::Node& node, std::string_view path, nlohmann::json& target) {
  if (!yaml::isSet(node))
    return okStatus();
  if (!node.IsMap())
    return configError(path, "must be a mapping (a JSON Schema)");
  nlohmann::json schema = yaml::toJson(node);
  if (!schema.contains("$schema") || !schema["$schema"].is_string())
    return configError(path,
                       "needs \"$schema\" (for example http://json-schema.org/draft-04/schema#)");
  if (schema.value("type", "object") != "object")
    return configError(path, "must describe an object (type: object)");
  if (hasExternalRef(schema))
    return configError(path, "must not use a $ref outside itself");
  if (schema.dump().size() > kMaxSchemaBytes)
    return configError(path, "is larger than 64 kB");
  if (std::string k = unsupportedSchemaKeyword(schema); !k.empty())
    return configError(path, fmt::format("uses \"{}\", which the broker cannot check parameters "
                                         "against (see docs/broker.md)",
                                         k));
  target = std::move(schema);
  return okStatus();
}

Status readMaintenance(const YAML::Node& node, std::string_view path, std::string& version,
                       std::string& description, std::vector<std::string>& warnings) {
  if (!yaml::isSet(node))
    return okStatus();
  PGF_RETURN_IF_ERROR(yaml::expectMap(node, path));
  yaml::warnUnknownKeys(node, path, {"version", "description"}, warnings);
  PGF_RETURN_IF_ERROR(readText(node, "version", path, true, version));
  if (!isSemVer(version))
    return configError(yaml::joinPath(path, "version"),
                       fmt::format("\"{}\" is not a SemVer 2.0 version (such as 1.0.0)", version));
  return readText(node, "description", path, false, description);
}

Status readResources(const YAML::Node& node, std::string_view path, PlanResources& r,
                     std::vector<std::string>& warnings) {
  PGF_RETURN_IF_ERROR(yaml::expectMap(node, path));
  yaml::warnUnknownKeys(
      node, path, {"shared_buffers", "max_connections", "work_mem", "disk_quota_mb"}, warnings);
  PGF_RETURN_IF_ERROR(readText(node, "shared_buffers", path, false, r.shared_buffers));
  PGF_RETURN_IF_ERROR(readText(node, "work_mem", path, false, r.work_mem));
  if (auto n = yaml::child(node, "max_connections"); yaml::isSet(n)) {
    const std::string where = yaml::joinPath(path, "max_connections");
    auto v = yaml::readInt(n, where);
    if (!v.ok())
      return v.error();
    if (*v < 10 || *v > 10000)
      return configError(where, fmt::format("must be between 10 and 10000, got {}", *v));
    r.max_connections = static_cast<int>(*v);
  }
  if (auto n = yaml::child(node, "disk_quota_mb"); yaml::isSet(n)) {
    const std::string where = yaml::joinPath(path, "disk_quota_mb");
    auto v = yaml::readInt(n, where);
    if (!v.ok())
      return v.error();
    if (*v < 0)
      return configError(where, fmt::format("must not be negative, got {}", *v));
    r.disk_quota_mb = *v;
  }
  return okStatus();
}

Status readParameters(const YAML::Node& node, std::string_view path,
                      std::map<std::string, std::string>& target) {
  if (!yaml::isSet(node))
    return okStatus();
  PGF_RETURN_IF_ERROR(yaml::expectMap(node, path));
  for (const auto& kv : node) {
    const std::string name = kv.first.as<std::string>();
    const std::string where = yaml::joinPath(path, name);
    if (!kv.second.IsScalar())
      return configError(where, "must be a string, number or boolean");
    target[name] = kv.second.Scalar();
  }
  return okStatus();
}

// timing: {ttl, loop_wait, retry_timeout}, each optional, with the agent's rule that a lease
// outlives a loop and two retries.
Status readTiming(const YAML::Node& node, const std::string& path, Plan& p,
                  std::vector<std::string>& warnings) {
  if (!yaml::isSet(node))
    return okStatus();
  if (!node.IsMap())
    return configError(path, "must be a mapping");
  yaml::warnUnknownKeys(node, path, {"ttl", "loop_wait", "retry_timeout"}, warnings);
  for (auto [key, value] : {std::pair<const char*, int*>{"ttl", &p.ttl},
                            {"loop_wait", &p.loop_wait},
                            {"retry_timeout", &p.retry_timeout}}) {
    if (auto n = yaml::child(node, key); yaml::isSet(n)) {
      auto v = yaml::readInt(n, yaml::joinPath(path, key));
      if (!v.ok())
        return v.error();
      if (*v < 1 || *v > 3600)
        return configError(yaml::joinPath(path, key),
                           fmt::format("must be 1 to 3600 seconds, got {}", *v));
      *value = static_cast<int>(*v);
    }
  }
  if (p.loop_wait + 2 * p.retry_timeout > p.ttl)
    return configError(path, fmt::format("ttl ({}) must be at least loop_wait + 2 * retry_timeout "
                                         "({} + 2 * {})",
                                         p.ttl, p.loop_wait, p.retry_timeout));
  return okStatus();
}

// provisioning: {strategy, pool_size, refill_concurrency}.
Status readProvisioning(const YAML::Node& node, const std::string& path, Provisioning& p,
                        std::vector<std::string>& warnings) {
  if (!yaml::isSet(node))
    return okStatus();
  PGF_RETURN_IF_ERROR(yaml::expectMap(node, path));
  yaml::warnUnknownKeys(node, path, {"strategy", "pool_size", "refill_concurrency"}, warnings);
  std::string strategy = "on_demand";
  PGF_RETURN_IF_ERROR(yaml::optString(node, "strategy", path, strategy));
  if (strategy == "on_demand")
    p.strategy = ProvisioningStrategy::kOnDemand;
  else if (strategy == "pool")
    p.strategy = ProvisioningStrategy::kPool;
  else if (strategy == "hybrid")
    p.strategy = ProvisioningStrategy::kHybrid;
  else
    return configError(yaml::joinPath(path, "strategy"),
                       fmt::format("must be on_demand, pool or hybrid, got \"{}\"", strategy));
  for (auto [key, value, low, high] :
       {std::tuple{"pool_size", &p.pool_size, 0, 100},
        std::tuple{"refill_concurrency", &p.refill_concurrency, 1, 16}}) {
    if (auto n = yaml::child(node, key); yaml::isSet(n)) {
      const std::string where = yaml::joinPath(path, key);
      auto v = yaml::readInt(n, where);
      if (!v.ok())
        return v.error();
      if (*v < low || *v > high)
        return configError(where, fmt::format("must be {} to {}, got {}", low, high, *v));
      *value = static_cast<int>(*v);
    }
  }
  if (p.pooled() && p.pool_size < 1)
    return configError(yaml::joinPath(path, "pool_size"),
                       fmt::format("must be at least 1 with strategy {}", strategy));
  return okStatus();
}

Result<Plan> readPlan(const YAML::Node& node, const std::string& path,
                      std::vector<std::string>& warnings) {
  if (!node.IsMap())
    return configError(path, "must be a mapping");
  yaml::warnUnknownKeys(
      node, path,
      {"id", "name", "description", "nodes", "synchronous_mode", "timing", "resources",
       "parameters", "schema", "maintenance_info", "free", "bullets", "template", "provisioning"},
      warnings);
  Plan p;
  PGF_RETURN_IF_ERROR(readText(node, "id", path, true, p.id));
  PGF_RETURN_IF_ERROR(readText(node, "name", path, true, p.name));
  if (!isCliName(p.name))
    return configError(
        yaml::joinPath(path, "name"),
        fmt::format("\"{}\" may hold only letters, digits, '.', '_' and '-'", p.name));
  PGF_RETURN_IF_ERROR(readText(node, "description", path, true, p.description));
  if (auto n = yaml::child(node, "nodes"); yaml::isSet(n)) {
    auto v = yaml::readInt(n, yaml::joinPath(path, "nodes"));
    if (!v.ok())
      return v.error();
    if (*v != 1 && *v != 3)
      return configError(yaml::joinPath(path, "nodes"), fmt::format("must be 1 or 3, got {}", *v));
    p.nodes = static_cast<int>(*v);
  }
  PGF_RETURN_IF_ERROR(yaml::optBool(node, "synchronous_mode", path, p.synchronous_mode));
  if (p.synchronous_mode && p.nodes == 1)
    return configError(yaml::joinPath(path, "synchronous_mode"),
                       "needs a cluster (nodes: 3): a single server has no standby to wait for");
  if (p.nodes > 1) {
    p.ttl = 15;
    p.loop_wait = 2;
    p.retry_timeout = 5;
  }
  PGF_RETURN_IF_ERROR(
      readTiming(yaml::child(node, "timing"), yaml::joinPath(path, "timing"), p, warnings));
  PGF_RETURN_IF_ERROR(readResources(yaml::child(node, "resources"),
                                    yaml::joinPath(path, "resources"), p.resources, warnings));
  PGF_RETURN_IF_ERROR(readParameters(yaml::child(node, "parameters"),
                                     yaml::joinPath(path, "parameters"), p.parameters));
  PGF_RETURN_IF_ERROR(
      readSchema(yaml::child(node, "schema"), yaml::joinPath(path, "schema"), p.schema));
  PGF_RETURN_IF_ERROR(readMaintenance(yaml::child(node, "maintenance_info"),
                                      yaml::joinPath(path, "maintenance_info"),
                                      p.maintenance_version, p.maintenance_description, warnings));
  PGF_RETURN_IF_ERROR(yaml::optBool(node, "free", path, p.free));
  PGF_RETURN_IF_ERROR(yaml::optString(node, "template", path, p.template_file));
  if (p.template_file.empty() || p.template_file.find("..") != std::string::npos ||
      p.template_file.front() == '/')
    return configError(yaml::joinPath(path, "template"),
                       "must name a file in the templates directory");
  if (auto n = yaml::child(node, "bullets"); yaml::isSet(n)) {
    auto v = yaml::readStringList(n, yaml::joinPath(path, "bullets"));
    if (!v.ok())
      return v.error();
    p.bullets = std::move(v).value();
  }
  PGF_RETURN_IF_ERROR(readProvisioning(yaml::child(node, "provisioning"),
                                       yaml::joinPath(path, "provisioning"), p.provisioning,
                                       warnings));
  return p;
}

}  // namespace

bool isSemVer(std::string_view text) {
  auto number = [](std::string_view n) {
    if (n.empty() || (n.size() > 1 && n[0] == '0'))
      return false;
    for (char c : n)
      if (!std::isdigit(static_cast<unsigned char>(c)))
        return false;
    return true;
  };
  // Dot-separated identifiers of [0-9A-Za-z-]; numeric ones without leading zeros when `strict`.
  auto identifiers = [&](std::string_view s, bool strict) {
    if (s.empty())
      return false;
    size_t start = 0;
    while (true) {
      size_t dot = s.find('.', start);
      std::string_view id = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
      if (id.empty())
        return false;
      bool numeric = true;
      for (char c : id) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
          return false;
        numeric = numeric && std::isdigit(static_cast<unsigned char>(c));
      }
      if (strict && numeric && !number(id))
        return false;
      if (dot == std::string_view::npos)
        return true;
      start = dot + 1;
    }
  };
  std::string_view core = text;
  size_t plus = core.find('+');
  if (plus != std::string_view::npos) {
    if (!identifiers(core.substr(plus + 1), false))
      return false;
    core = core.substr(0, plus);
  }
  size_t dash = core.find('-');
  if (dash != std::string_view::npos) {
    if (!identifiers(core.substr(dash + 1), true))
      return false;
    core = core.substr(0, dash);
  }
  size_t d1 = core.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : core.find('.', d1 + 1);
  if (d2 == std::string_view::npos)
    return false;
  return number(core.substr(0, d1)) && number(core.substr(d1 + 1, d2 - d1 - 1)) &&
         number(core.substr(d2 + 1));
}

std::string_view strategyName(ProvisioningStrategy strategy) {
  switch (strategy) {
    case ProvisioningStrategy::kOnDemand:
      return "on_demand";
    case ProvisioningStrategy::kPool:
      return "pool";
    case ProvisioningStrategy::kHybrid:
      return "hybrid";
  }
  return "on_demand";
}

const Plan* Catalog::planById(std::string_view id) const {
  for (const auto& p : plans)
    if (p.id == id)
      return &p;
  return nullptr;
}

nlohmann::json Catalog::toJson() const {
  nlohmann::json plan_list = nlohmann::json::array();
  for (const auto& p : plans) {
    nlohmann::json j = {{"id", p.id},
                        {"name", p.name},
                        {"description", p.description},
                        {"free", p.free},
                        {"bindable", true}};
    nlohmann::json metadata = {{"displayName", p.name},
                               {"nodes", p.nodes},
                               {"synchronous_mode", p.synchronous_mode},
                               {"resources",
                                {{"shared_buffers", p.resources.shared_buffers},
                                 {"max_connections", p.resources.max_connections},
                                 {"work_mem", p.resources.work_mem},
                                 {"disk_quota_mb", p.resources.disk_quota_mb}}}};
    if (!p.bullets.empty())
      metadata["bullets"] = p.bullets;
    j["metadata"] = std::move(metadata);
    if (!p.schema.is_null())
      j["schemas"] = {
          {"service_instance",
           {{"create", {{"parameters", p.schema}}}, {"update", {{"parameters", p.schema}}}}}};
    if (!p.maintenance_version.empty()) {
      j["maintenance_info"] = {{"version", p.maintenance_version}};
      if (!p.maintenance_description.empty())
        j["maintenance_info"]["description"] = p.maintenance_description;
    }
    plan_list.push_back(std::move(j));
  }
  nlohmann::json service = {{"id", service_id},
                            {"name", service_name},
                            {"description", service_description},
                            {"bindable", true},
                            {"instances_retrievable", true},
                            {"bindings_retrievable", true},
                            {"plan_updateable", plan_updateable},
                            {"tags", tags},
                            {"metadata",
                             {{"displayName", "PostgreSQL"},
                              {"providerDisplayName", "pgfleet"},
                              {"longDescription", service_description}}},
                            {"plans", std::move(plan_list)}};
  return {{"services", nlohmann::json::array({std::move(service)})}};
}

Result<Catalog> parseCatalog(const YAML::Node& service, const YAML::Node& plans,
                             std::vector<std::string>& warnings) {
  Catalog c;
  if (auto st = yaml::expectMap(service, "service"); !st.ok())
    return st.error();
  yaml::warnUnknownKeys(service, "service",
                        {"id", "name", "description", "tags", "plan_updateable"}, warnings);
  if (auto st = readText(service, "id", "service", true, c.service_id); !st.ok())
    return st.error();
  if (auto st = readText(service, "name", "service", false, c.service_name); !st.ok())
    return st.error();
  if (!isCliName(c.service_name))
    return configError(
        "service.name",
        fmt::format("\"{}\" may hold only letters, digits, '.', '_' and '-'", c.service_name));
  if (auto st = readText(service, "description", "service", false, c.service_description); !st.ok())
    return st.error();
  if (auto n = yaml::child(service, "tags"); yaml::isSet(n)) {
    auto v = yaml::readStringList(n, "service.tags");
    if (!v.ok())
      return v.error();
    c.tags = std::move(v).value();
  }
  if (auto st = yaml::optBool(service, "plan_updateable", "service", c.plan_updateable); !st.ok())
    return st.error();

  if (!yaml::isSet(plans) || !plans.IsSequence() || plans.size() == 0)
    return configError("plans", "must be a list of at least one plan");
  std::set<std::string> ids = {c.service_id};
  std::set<std::string> names;
  for (size_t i = 0; i < plans.size(); ++i) {
    const std::string path = fmt::format("plans[{}]", i);
    auto plan = readPlan(plans[i], path, warnings);
    if (!plan.ok())
      return plan.error();
    if (!ids.insert(plan->id).second)
      return configError(
          path + ".id",
          fmt::format("\"{}\" is already the id of the service or another plan", plan->id));
    if (!names.insert(plan->name).second)
      return configError(path + ".name",
                         fmt::format("\"{}\" is already the name of another plan", plan->name));
    c.plans.push_back(std::move(plan).value());
  }
  return c;
}

}  // namespace pgf
