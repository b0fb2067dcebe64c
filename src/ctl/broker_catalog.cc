#include "ctl/broker_catalog.h"

#include <ostream>

#include <fmt/format.h>

#include "ctl/table.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

constexpr const char* kServiceName = "postgresql";

const json& plansOf(const json& service) {
  static const json kNone = json::array();
  auto it = service.find("plans");
  return it != service.end() && it->is_array() ? *it : kNone;
}

// A plan's boolean that the service may set for all its plans.
bool planFlag(const json& service, const json& plan, const char* key, bool fallback) {
  if (plan.contains(key) && plan[key].is_boolean())
    return plan[key].get<bool>();
  if (service.contains(key) && service[key].is_boolean())
    return service[key].get<bool>();
  return fallback;
}

std::string yesNo(bool v) {
  return v ? "yes" : "no";
}

}  // namespace

Result<json> findService(const json& catalog) {
  const json services = catalog.value("services", json::array());
  if (!services.is_array() || services.empty())
    return makeError(ErrorCode::kNotFound, "the broker's catalog offers no service");
  for (const auto& s : services)
    if (s.is_object() && s.value("name", "") == kServiceName)
      return s;
  if (services.size() == 1 && services[0].is_object())
    return services[0];
  return makeError(ErrorCode::kNotFound,
                   fmt::format("the broker's catalog has {} services and none named {}",
                               services.size(), kServiceName));
}

Result<json> findPlan(const json& service, const std::string& name_or_id) {
  const json& plans = plansOf(service);
  for (const char* key : {"name", "id"})
    for (const auto& p : plans)
      if (p.is_object() && p.value(key, "") == name_or_id)
        return p;
  std::string names;
  for (const auto& p : plans)
    if (p.is_object())
      names += (names.empty() ? "" : ", ") + p.value("name", p.value("id", "?"));
  return makeError(ErrorCode::kNotFound,
                   fmt::format("no plan {} in the catalog: the plans are {}",
                               json(name_or_id).dump(), names.empty() ? "(none)" : names));
}

Result<ServicePlan> resolvePlan(BrokerClient& broker, const std::string& name_or_id) {
  auto catalog = broker.catalog();
  if (!catalog.ok())
    return catalog.error();
  auto service = findService(*catalog);
  if (!service.ok())
    return service.error();
  auto plan = findPlan(*service, name_or_id);
  if (!plan.ok())
    return plan.error();
  return ServicePlan{service->value("id", ""), *plan};
}

std::string formatCatalogTable(const json& catalog) {
  TextTable table;
  table.columns = {"Plan", "Id", "Nodes", "Bindable", "Updateable", "Description"};
  table.right_aligned = {false, false, true, false, false, false};
  std::string title;
  auto service = findService(catalog);
  if (service.ok()) {
    title = fmt::format(" Service: {} ({}) ", service->value("name", ""), service->value("id", ""));
    for (const auto& p : plansOf(*service)) {
      if (!p.is_object())
        continue;
      const json metadata = p.value("metadata", json::object());
      const json nodes = metadata.is_object() ? metadata.value("nodes", json()) : json();
      table.rows.push_back({p.value("name", ""), p.value("id", ""), cellText(nodes),
                            yesNo(planFlag(*service, p, "bindable", false)),
                            yesNo(planFlag(*service, p, "plan_updateable", false)),
                            p.value("description", "")});
    }
  }
  return renderTable(table, title);
}

int runCatalog(BrokerClient& broker, OutputFormat format, std::ostream& out, std::ostream& err) {
  auto catalog = broker.catalog();
  if (!catalog.ok())
    return reportFailure(err, catalog.error());
  if (format == OutputFormat::kJson) {
    out << catalog->dump() << "\n";
    return 0;
  }
  out << formatCatalogTable(*catalog);
  return 0;
}

}  // namespace pgf::ctl
