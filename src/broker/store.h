// The broker's durable state: one SQLite database (WAL mode, synchronous=FULL) in the state
// directory. Every instance, binding, operation and port reservation is committed before the
// broker answers the request that made it, and every operation is journaled step by step, so a
// broker killed at any point finds, when it starts again, each unfinished operation and the
// last step it completed.
//
// Reads made outside a transaction go through read-only connections of their own (one per reading
// thread at a time, kept for reuse): WAL lets them run beside a writer, so that answering a poll
// never waits for another thread's commit (and its fsync), nor for another thread's read. Reads
// inside a transaction() use the writing connection and see its uncommitted writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

struct sqlite3;

namespace pgf {

enum class OpKind { kProvision, kUpdate, kDeprovision, kBind, kUnbind };
enum class OpState { kInProgress, kSucceeded, kFailed };

std::string_view opKindName(OpKind kind);
std::string_view opStateName(OpState state);  // OSB's words: "in progress", "succeeded", "failed"

struct InstanceRecord {
  std::string id;
  std::string service_id;
  std::string plan_id;
  nlohmann::json parameters = nlohmann::json::object();  // as the tenant sent them (validated)
  nlohmann::json context = nlohmann::json::object();
  std::string organization_guid;
  std::string space_guid;
  std::string maintenance_version;
  // What the backend made: nodes, directories, ports, the owner role (secrets included: the
  // database file is readable by the broker's user only).
  nlohmann::json deployment = nlohmann::json::object();
  bool ready = false;  // the provision succeeded (pooled: built and ready to be claimed)
  std::string created_at;
  std::string updated_at;
  // A pooled instance (made ahead of any request, owned by no tenant): the id of the plan whose
  // pool holds it; "" for a tenant's instance.
  std::string pool;
};

struct BindingRecord {
  std::string id;
  std::string instance_id;
  nlohmann::json parameters = nlohmann::json::object();
  nlohmann::json credentials = nlohmann::json::object();
  bool ready = false;  // the role exists and the bind was answered
  std::string created_at;
};

struct OperationRecord {
  int64_t id = 0;
  OpKind kind = OpKind::kProvision;
  std::string instance_id;
  std::string binding_id;  // bind and unbind only
  OpState state = OpState::kInProgress;
  std::string description;
  nlohmann::json request = nlohmann::json::object();  // the request that started it
  std::vector<std::string> steps;                     // journal, oldest first
  std::string started_at;
  std::string finished_at;

  // The token handed out as OSB's `operation`.
  std::string token() const;
};

// Something the broker noticed or did about an instance (self-healing: a process restarted, a
// change of health), kept for operators: GET /pgfleet/v1/instances/:id and pgfleetctl show.
struct EventRecord {
  int64_t id = 0;
  std::string instance_id;
  std::string at;
  std::string kind;     // "agent-restarted", "haproxy-restarted", "crash-loop", "health", ...
  std::string message;  // one sentence: what happened and what was done
};

// An instance's health as the broker's supervisor last saw it.
struct HealthRecord {
  std::string instance_id;
  std::string state;                               // "healthy", "recovering" or "degraded"
  std::string reason;                              // what is missing ("" when healthy)
  nlohmann::json nodes = nlohmann::json::array();  // [{name, agent, role, streaming}]
  std::string since;                               // when `state` began
};

class Store {
 public:
  // Opens (creating if needed, mode 0600) the database at `path`.
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Runs `body` in one transaction: committed when it returns ok, rolled back otherwise. Calls
  // on the store from inside `body` belong to the transaction.
  Status transaction(const std::function<Status()>& body);

  Status putInstance(const InstanceRecord& instance);  // insert or replace
  Result<std::optional<InstanceRecord>> instance(const std::string& id);
  Result<std::vector<InstanceRecord>> instances();
  // Removes the instance with its bindings, operations and port reservations.
  Status deleteInstance(const std::string& id);
  // The same, but keeps operation `keep_op` (a finished deprovision, for last_operation's 410).
  Status forgetInstance(const std::string& id, int64_t keep_op);
  // In one transaction: writes `to`, moves the port reservations, events and health of instance
  // `from` to `to.id`, and removes `from` (a pooled instance becomes a tenant's).
  Status adoptInstance(const std::string& from, const InstanceRecord& to);

  Status putBinding(const BindingRecord& binding);
  Result<std::optional<BindingRecord>> binding(const std::string& instance_id,
                                               const std::string& binding_id);
  Result<std::vector<BindingRecord>> bindings(const std::string& instance_id);
  Status deleteBinding(const std::string& instance_id, const std::string& binding_id);

  // Starts an operation (state in progress); returns its id.
  Result<int64_t> beginOperation(const OperationRecord& op);
  // The same, in one transaction with the writes of `with` (the record the operation is about).
  Result<int64_t> beginOperation(const OperationRecord& op, const std::function<Status()>& with);
  Status journal(int64_t op_id, const std::string& step);
  Status finishOperation(int64_t op_id, OpState state, const std::string& description);
  Result<std::optional<OperationRecord>> operation(int64_t op_id);
  // The newest operation on an instance (binding_id empty) or on one of its bindings.
  Result<std::optional<OperationRecord>> lastOperation(const std::string& instance_id,
                                                       const std::string& binding_id = "");
  Result<std::vector<OperationRecord>> unfinishedOperations();

  // Reserves one free port in [low, high] for each purpose ("pg0", "api0", "rw", ...), lowest
  // first, skipping ports already reserved and those `in_use` says are taken; returns purpose ->
  // port. An instance that already holds a purpose keeps its port.
  Result<std::map<std::string, int>> reservePorts(const std::string& instance_id,
                                                  const std::vector<std::string>& purposes, int low,
                                                  int high,
                                                  const std::function<bool(int port)>& in_use);
  Result<std::map<std::string, int>> ports(const std::string& instance_id);
  Status releasePorts(const std::string& instance_id);

  // Records an event (now); an instance keeps its newest kEventsKept.
  static constexpr int kEventsKept = 200;
  Status addEvent(const std::string& instance_id, const std::string& kind,
                  const std::string& message);
  // The instance's newest `limit` events, oldest first.
  Result<std::vector<EventRecord>> events(const std::string& instance_id, int limit);
  // Writes the instance's health; `since` is set to now when the state changed (and ignored).
  Status putHealth(const HealthRecord& health);
  Result<std::optional<HealthRecord>> health(const std::string& instance_id);
  Result<std::vector<HealthRecord>> healthAll();

 private:
  explicit Store(sqlite3* db);
  Status exec(const std::string& sql);
  // Runs `read` on the connection this thread should read from.
  template <typename F>
  auto read(F&& read);
  // A reading connection for this thread alone (nullptr when none can be opened), and back.
  sqlite3* takeReader();
  void giveBack(sqlite3* reader);

  sqlite3* db_;
  std::recursive_mutex mu_;  // db_, the writing connection
  // The thread running a transaction() on db_, if any.
  std::atomic<std::thread::id> tx_thread_{};
  std::string path_;
  std::mutex readers_mu_;
  std::vector<sqlite3*> idle_readers_;
};

}  // namespace pgf
