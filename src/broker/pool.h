// Pools of pre-provisioned instances (a plan's `provisioning:`, docs/broker.md "Pools").
//
// For every plan whose strategy is `pool` or `hybrid`, the keeper keeps `pool_size` instances
// built, healthy and owned by no one, building at most `refill_concurrency` at a time; a
// provision claims one (InstanceService, atomically in a store transaction) and the keeper builds
// its replacement. Pooled instances are ordinary instances in the store, with `pool` set to their
// plan's id: the supervisor heals them like any other, and a broker stopped at any moment finds
// each half-built one and finishes it (or removes it, when its plan no longer wants it) at the
// next start. A pool larger than its plan asks for (a smaller pool_size, a plan turned back to
// on_demand or removed) gives its surplus back.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/catalog.h"
#include "broker/store.h"
#include "common/clock.h"

namespace pgf {

// What the keeper asks of the instance service.
struct PoolHooks {
  // Records a new pooled instance of `plan` (not built yet); its id.
  std::function<Result<std::string>(const Plan& plan)> create;
  // Builds, or finishes building, pooled instance `id`: ready to be claimed once it returns ok.
  std::function<Status(const std::string& id, const std::atomic<bool>& cancel)> build;
  // Stops and forgets pooled instance `id` (nothing when it has been claimed meanwhile).
  std::function<Status(const std::string& id)> destroy;
  // Whether claims are being finished right now: no new build starts until they are (may be
  // empty).
  std::function<bool()> busy;
};

// A pool as operators see it (GET /pgfleet/v1/pools, /metrics, pgfleetctl pools).
struct PoolStatus {
  std::string plan_id;
  std::string plan_name;  // "" when the plan has left the catalog
  ProvisioningStrategy strategy = ProvisioningStrategy::kOnDemand;
  int size = 0;  // what the plan asks for
  int refill_concurrency = 1;
  int ready = 0;     // built and waiting to be claimed
  int building = 0;  // being built, or being given back
  std::vector<std::string> members;
  // Since the broker started:
  int64_t claims = 0;          // provisions served from the pool
  int64_t misses = 0;          // provisions that found it empty
  int64_t build_failures = 0;  // pooled instances that could not be built
};

class PoolKeeper {
 public:
  PoolKeeper(const Catalog& catalog, Store& store, PoolHooks hooks, Millis interval = Millis(1000));
  ~PoolKeeper();  // stop()
  PoolKeeper(const PoolKeeper&) = delete;
  PoolKeeper& operator=(const PoolKeeper&) = delete;

  void start();
  // Ends the keeper's thread and cancels the builds running (each is finished at the next start).
  void stop();
  // Looks at the pools now rather than at the next interval (a claim took one).
  void wake();

  void noteClaim(const std::string& plan_id);
  void noteMiss(const std::string& plan_id);

  // Every pool of a pooled plan, and every plan that still has pooled instances, by plan name.
  Result<std::vector<PoolStatus>> status() const;

  // One look at every pool: starts the builds that are missing, gives back the surplus (for tests;
  // the keeper's thread calls it every interval).
  void pass();

 private:
  struct Build {
    std::string plan_id;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> cancel;
    std::shared_ptr<std::atomic<bool>> done;
  };
  struct Counters {
    int64_t claims = 0;
    int64_t misses = 0;
    int64_t build_failures = 0;
    int consecutive_failures = 0;
    std::chrono::steady_clock::time_point next_attempt{};
  };

  void loop();
  void startBuild(const std::string& id, const std::string& plan_id);
  void reapBuilds();
  void retire(const std::string& id);

  const Catalog& catalog_;
  Store& store_;
  PoolHooks hooks_;
  Millis interval_;

  mutable std::mutex mu_;  // builds_, counters_
  std::map<std::string, Build> builds_;
  std::map<std::string, Counters> counters_;  // by plan id

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool woken_ = false;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace pgf
