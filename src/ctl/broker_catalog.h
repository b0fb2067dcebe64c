// pgfleetctl catalog, and how the other broker verbs find the service and a plan in the catalog.
#pragma once

#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "ctl/broker_client.h"
#include "ctl/ctl_context.h"

namespace pgf::ctl {

// The service pgfleetctl works with: the one named "postgresql", else the catalog's only
// service. An error when there is none, or several without that name.
Result<nlohmann::json> findService(const nlohmann::json& catalog);

// A plan of `service` by name, else by id. An unknown plan is an error that lists the plans:
// "no plan \"huge\" in the catalog: the plans are single-small, cluster-small".
Result<nlohmann::json> findPlan(const nlohmann::json& service, const std::string& name_or_id);

struct ServicePlan {
  std::string service_id;
  nlohmann::json plan;
};

// Reads the catalog and finds the plan `name_or_id` of the service (findService, findPlan).
Result<ServicePlan> resolvePlan(BrokerClient& broker, const std::string& name_or_id);

// The plans as a table (Plan, Id, Nodes, Bindable, Updateable, Description); plan-level
// bindable and plan_updateable override the service's, as OSB says.
std::string formatCatalogTable(const nlohmann::json& catalog);

// Prints the catalog: the table (pretty) or the broker's document as it came (json). 0 or 1.
int runCatalog(BrokerClient& broker, OutputFormat format, std::ostream& out, std::ostream& err);

}  // namespace pgf::ctl
