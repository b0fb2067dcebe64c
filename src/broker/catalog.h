// The broker's catalog: one service (`postgresql` by default) and its plans, read from the broker's
// YAML configuration (`service:` and `plans:`), checked as the Open Service Broker API v2.17
// requires (../shared/OSB.md §2), and served as the body of GET /v2/catalog.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pgf {

// What an instance of a plan gets. Sizes are PostgreSQL's own text ("128MB").
struct PlanResources {
  std::string shared_buffers = "128MB";
  int max_connections = 100;
  std::string work_mem = "4MB";
  int64_t disk_quota_mb = 0;  // 0: no quota
};

// How a plan's instances are made (`provisioning:` of a plan).
enum class ProvisioningStrategy {
  kOnDemand,  // built when asked for
  kPool,      // only taken from the pool: a provision with an empty pool waits for the next one
  kHybrid,    // taken from the pool when it has one ready, built on demand otherwise
};

std::string_view strategyName(ProvisioningStrategy strategy);  // "on_demand", "pool", "hybrid"

struct Provisioning {
  ProvisioningStrategy strategy = ProvisioningStrategy::kOnDemand;
  int pool_size = 0;           // ready instances the pool keeps (pool and hybrid)
  int refill_concurrency = 1;  // pooled instances built at once
  bool pooled() const { return strategy != ProvisioningStrategy::kOnDemand; }
};

struct Plan {
  std::string id;  // stable forever: platforms track plans by id
  std::string name;
  std::string description;
  int nodes = 1;  // 1 (a single server) or 3 (a primary and two replicas)
  bool synchronous_mode = false;
  // The agents' bootstrap.dcs timing (seconds). A single server has nothing to fail over to, so
  // its agent may loop slowly (less idle CPU per instance); a cluster's lease is short.
  int ttl = 30;
  int loop_wait = 10;
  int retry_timeout = 10;
  PlanResources resources;
  std::map<std::string, std::string> parameters;  // further PostgreSQL parameters
  // JSON Schema of the parameters a user may pass when creating (and updating) an instance; null
  // when the plan takes none.
  nlohmann::json schema;
  std::string maintenance_version;  // SemVer 2.0; "" when the plan has no maintenance_info
  std::string maintenance_description;
  bool free = true;
  std::vector<std::string> bullets;  // metadata.bullets
  // The mustache template (in the broker's templates directory) that renders an instance's
  // deployment manifest.
  std::string template_file = "postgresql.yaml.mustache";
  Provisioning provisioning;
};

struct Catalog {
  std::string service_id;
  std::string service_name = "postgresql";
  std::string service_description = "Dedicated PostgreSQL servers and high-availability clusters";
  std::vector<std::string> tags = {"postgresql", "relational"};
  bool plan_updateable = false;
  std::vector<Plan> plans;

  const Plan* planById(std::string_view id) const;
  // The body of GET /v2/catalog.
  nlohmann::json toJson() const;
};

// Reads `service` (a mapping, may be unset) and `plans` (a non-empty list) of the broker's
// configuration. Errors (kConfig) name the key by its path ("plans[2].nodes: must be 1 or 3") and
// cover what OSB forbids: a missing or duplicate id, a duplicate plan name, a name with characters
// outside [A-Za-z0-9._-], a maintenance_info version that is not SemVer, a schema without
// "$schema", with an external "$ref" or over 64 kB. Unknown keys become warnings.
Result<Catalog> parseCatalog(const YAML::Node& service, const YAML::Node& plans,
                             std::vector<std::string>& warnings);

// SemVer 2.0: MAJOR.MINOR.PATCH without leading zeros, then an optional -pre-release and +build.
bool isSemVer(std::string_view text);

}  // namespace pgf
