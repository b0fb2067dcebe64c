// The broker's own read-only view of its instances, for operators (pgfleetctl instances and show):
// the Open Service Broker API has no way to list instances, nor to see one that is still being
// provisioned or has failed. Served under /pgfleet/v1/, outside OSB's /v2, behind the same basic
// authentication (OsbApi checks it before routing here); no X-Broker-API-Version is needed.
//
//   GET /pgfleet/v1/instances       200 {"instances": [<instance>, ...]} (sorted by id)
//   GET /pgfleet/v1/instances/:id   200 <instance> with its bindings, the last operation's
//                                   journal, its health by node and its newest events; 404 when
//                                   the store does not know the id
//   GET /pgfleet/v1/pools           200 {"pools": [<pool>, ...]}: each pooled plan's strategy,
//                                   size, ready and building instances, claims and misses
//   GET /metrics                    Prometheus text: instances by health, each instance's health,
//                                   the supervisor's restarts and crash loops, the pools
//
// Pooled instances (owned by no tenant yet) are listed under their pool, not among the
// instances; /pgfleet/v1/instances/:id shows one by its pool id.
//
// Built from the store only (no backend or database call), so it answers fast and also while an
// instance's nodes are down. Never: return a secret (passwords, credentials, the deployment's
// private fields) or change anything.
#pragma once

#include "broker/catalog.h"
#include "broker/pool.h"
#include "broker/store.h"
#include "broker/supervisor.h"
#include "common/http_server.h"

namespace pgf {

inline constexpr std::string_view kFleetApiPrefix = "/pgfleet/v1/";

class FleetApi {
 public:
  FleetApi(const Catalog& catalog, Store& store) : catalog_(catalog), store_(store) {}

  // The supervisor whose counters /metrics shows (may stay null).
  void setSupervisor(const Supervisor* supervisor) { supervisor_ = supervisor; }
  // The pools /pgfleet/v1/pools and /metrics show (may stay null: no pools).
  void setPool(const PoolKeeper* pool) { pool_ = pool; }
  static constexpr int kEventsShown = 50;

  // Answers a request whose path starts with kFleetApiPrefix (authentication already checked).
  HttpReply handle(const HttpRequest& req) const;
  // GET /metrics (authentication already checked).
  HttpReply metrics() const;

  // An instance as the endpoints show it; `detail` adds its bindings and the operation's journal.
  Result<nlohmann::json> describe(const InstanceRecord& instance, bool detail) const;

 private:
  HttpReply list() const;
  HttpReply one(const std::string& id) const;
  HttpReply pools() const;

  const Catalog& catalog_;
  Store& store_;
  const Supervisor* supervisor_ = nullptr;
  const PoolKeeper* pool_ = nullptr;
};

}  // namespace pgf
