// The broker's instances and bindings (OSB.md §3-§10): asynchronous provision and deprovision
// with last_operation, fetch instance, synchronous bind and unbind with fetch binding. Every
// change is committed to the store before it is answered, and every operation is journaled step
// by step; resumeUnfinished() finishes (provision, deprovision, unbind) or rolls back (bind) what
// a broker killed half-way left.
//
// A provision: ports reserved, passwords generated (once, kept in the store), the plan's template
// rendered into a manifest, the nodes and HAProxy started by the backend, every node healthy, the
// owner role and database created, a real write through the endpoint, then `succeeded`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "broker/catalog.h"
#include "broker/pool.h"
#include "broker/store.h"
#include "broker/supervisor.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "deploy/local_backend.h"
#include "deploy/manifest.h"

namespace pgf {

struct InstanceServiceOptions {
  Catalog catalog;
  std::string templates_dir;            // where plans' templates are
  std::vector<std::string> etcd_hosts;  // what the agents connect to
  int port_low = 20000;                 // instances' ports come from [port_low, port_high]
  int port_high = 29999;
  std::string pg_bin_dir = "/usr/lib/postgresql/15/bin";
  Millis ready_timeout{300000};  // a provision not healthy by then fails
  Millis sql_timeout{10000};
  // How long a provision served from the pool may take before its 202 is answered: when it is
  // done by then (it takes well under a second), the first poll already says `succeeded`.
  Millis claim_wait{10000};
};

class InstanceService {
 public:
  InstanceService(InstanceServiceOptions options, Store& store, LocalBackend& backend);
  ~InstanceService();  // stops the workers (their operations resume at the next start)
  InstanceService(const InstanceService&) = delete;
  InstanceService& operator=(const InstanceService&) = delete;

  // Finishes or rolls back every operation the store holds as in progress.
  void resumeUnfinished();

  HttpReply provision(const std::string& instance_id, const HttpRequest& req);
  HttpReply update(const std::string& instance_id, const HttpRequest& req);
  HttpReply deprovision(const std::string& instance_id, const HttpRequest& req);
  HttpReply lastOperation(const std::string& instance_id, const HttpRequest& req);
  HttpReply fetchInstance(const std::string& instance_id, const HttpRequest& req);
  HttpReply bind(const std::string& instance_id, const std::string& binding_id,
                 const HttpRequest& req);
  HttpReply unbind(const std::string& instance_id, const std::string& binding_id,
                   const HttpRequest& req);
  HttpReply fetchBinding(const std::string& instance_id, const std::string& binding_id,
                         const HttpRequest& req);
  HttpReply bindingLastOperation(const std::string& instance_id, const std::string& binding_id,
                                 const HttpRequest& req);

  // The self-healing supervisor, kept off an instance while a provision or deprovision runs on it
  // (set before resumeUnfinished(); may stay null).
  void setSupervisor(Supervisor* supervisor) { supervisor_ = supervisor; }

  // The pools of pooled plans (may stay null: every plan is then provisioned on demand).
  void setPool(PoolKeeper* pool) { pool_ = pool; }

  // The manifest of a stored instance (its template rendered again: the same every time).
  Result<DeploymentManifest> manifestOf(const InstanceRecord& instance) const;

  // The pool's side (PoolHooks): records a new pooled instance of `plan`; builds one until it is
  // healthy and takes a write; stops and forgets one that has not been claimed.
  Result<std::string> createPooled(const Plan& plan);
  Status buildPooled(const std::string& id, const std::atomic<bool>& cancel);
  Status destroyPooled(const std::string& id);
  // Whether a provision served from the pool is still being finished (the pool's new builds wait
  // for it, so that they do not slow it down).
  bool claimsFinishing() const { return claims_finishing_ > 0; }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> cancel;
  };

  // Starts the operation's worker; the future is ready when it has finished.
  std::shared_future<void> startWorker(const std::string& instance_id, int64_t op_id, OpKind kind);
  void runProvision(const std::string& instance_id, int64_t op_id, const std::atomic<bool>& cancel);
  void runDeprovision(const std::string& instance_id, int64_t op_id);
  // Logs how a provision or update ended and records a failure (not a halt).
  void endWork(const std::string& instance_id, int64_t op_id, const Status& st,
               const std::atomic<bool>& cancel, std::string_view doing, std::string_view done);
  // A plan change (plan_change.h), step by step; each step journaled, so that a broker stopped at
  // any point finishes it at its next start.
  void runUpdate(const std::string& instance_id, int64_t op_id, const std::atomic<bool>& cancel);
  Status updateSteps(const std::string& instance_id, int64_t op_id,
                     const std::atomic<bool>& cancel);
  // PATCH /config through the first node that takes it.
  Status patchConfig(const DeploymentManifest& m, const nlohmann::json& patch);
  // The replicas restarted one at a time, then a switchover, then the former primary (a single
  // server: one restart); nodes already journaled as restarted are skipped. `agents`: each
  // node's agent is restarted (a new maintenance version), not only its PostgreSQL.
  using Parameters = std::vector<std::pair<std::string, std::string>>;
  Status rollingRestart(const InstanceRecord& t, const Parameters& to, const DeploymentManifest& m,
                        int64_t op_id, const std::set<std::string>& done, bool agents,
                        const std::atomic<bool>& cancel);
  // Waits until the node's agent has written the new parameters, restarts it through its REST
  // API and waits until it serves again (skipped when it already runs with every one of
  // `restart_parameters`, which are what PostgreSQL reads only at start). With `agent`,
  // the node's agent is stopped and started again instead (the backend's restartAgent).
  Status restartNode(const InstanceRecord& t, const Parameters& restart_parameters,
                     const NodeManifest& n, int64_t op_id, bool agent,
                     const std::atomic<bool>& cancel);
  // Waits until node `n` serves again (a primary, or a streaming replica), then journals it as
  // restarted.
  Status servingAgain(const NodeManifest& n, int64_t op_id, const std::atomic<bool>& cancel);
  Status provisionSteps(const std::string& instance_id, int64_t op_id,
                        const std::atomic<bool>& cancel);
  // Ports reserved, the nodes and HAProxy started, every node healthy (each step journaled when
  // op_id is not 0).
  Status startNodes(InstanceRecord& r, const Plan& plan, int64_t op_id,
                    const std::atomic<bool>& cancel);
  // Makes `r` (a tenant's instance of a pooled plan) one of the pool's ready and healthy
  // instances, keeping r's id, tenant fields, database, owner role and extensions: in one store
  // transaction with `with` (may be empty), so that two provisions never get the same one.
  // False when the pool has none ready. Those in `healthy` were checked a moment ago; any other
  // candidate's health is checked now.
  Result<bool> claimPooled(InstanceRecord& r, const std::vector<std::string>& healthy,
                           const std::function<Status()>& with);
  // Up to `n` pooled instances of the plan found healthy now (their ids).
  std::vector<std::string> healthyPooled(const std::string& plan_id, size_t n);
  // Whether a pooled instance is healthy now (through the backend; logged when it is not).
  bool pooledHealthy(const InstanceRecord& candidate);
  // A provision of a `pool` plan that found the pool empty: waits for a pooled instance.
  Status waitForPool(InstanceRecord& r, int64_t op_id, const std::atomic<bool>& cancel);
  // The instance with this id, unless there is none or it is a pooled one (no tenant's).
  Result<std::optional<InstanceRecord>> tenantInstance(const std::string& id);
  // store_.journal(), then the PGFLEET_BROKER_KILL_AT testing aid.
  Status journal(int64_t op_id, const std::string& step);
  // Whether the request's maintenance_info.version (when it carries one) is not the plan's; the
  // 422 MaintenanceInfoConflict in *out when so.
  bool maintenanceConflict(const nlohmann::json& body, const std::string& plan_id,
                           HttpReply* out) const;
  // Drops the binding's role (when it and the instance exist), forgets the binding and ends `op`
  // as `end`.
  Status removeBinding(const OperationRecord& op, OpState end, const std::string& description);
  // Rolls back a binding record an earlier bind left unready; nothing when there is none.
  Status rollBackLeftoverBind(const std::string& id, const std::string& bid);
  Status rollBackBind(const OperationRecord& op);
  Status finishUnbind(const OperationRecord& op);
  // An instance's own critical section for bind and unbind: false when another is running.
  // An instance's bind or unbind claim (busy_), given back once: when the deferred work that
  // holds it has run, or when that work is dropped without running (the HTTP server refused it
  // with 503), so that a refused request never leaves the instance claimed.
  class HeldClaim {
   public:
    HeldClaim(InstanceService* service, std::string instance_id);
    ~HeldClaim() { giveBack(); }
    HeldClaim(const HeldClaim&) = delete;
    HeldClaim& operator=(const HeldClaim&) = delete;
    void giveBack();

   private:
    InstanceService* service_;
    std::string instance_id_;
    std::atomic<bool> given_back_{false};
  };
  void release(const std::string& instance_id);

  InstanceServiceOptions options_;
  Store& store_;
  LocalBackend& backend_;
  std::mutex mu_;  // the decisions on requests, and workers_
  std::map<std::string, Worker> workers_;
  std::set<std::string> busy_;      // instances with a bind or unbind running
  std::set<int64_t> fresh_claims_;  // provisions whose pooled nodes were checked at their claim
  std::atomic<bool> stopping_{false};
  Supervisor* supervisor_ = nullptr;
  PoolKeeper* pool_ = nullptr;
  std::atomic<int> claims_finishing_{0};
};

}  // namespace pgf
