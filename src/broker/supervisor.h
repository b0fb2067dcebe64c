// The broker's self-healing supervisor: every `interval` it looks at each ready instance that no
// provision, update or deprovision is changing, through the backend (its processes and each
// agent's REST API), and
//   - starts again an agent or HAProxy that is not running, at once the first time and with
//     doubling delays while it keeps dying soon after each start (RestartBackoff), with a
//     "crash-loop" event after repeated deaths;
//   - judges the instance: `healthy` (one primary, every replica streaming, every process up),
//     `recovering` (not at full strength, repairs under way) or `degraded` (a crash loop, or not
//     back at full strength after `grace`), kept in the store with what is missing;
//   - records an event for every action, every change of health, every change of primary
//     (a failover or switchover) and every start of a node's PostgreSQL after the first seen.
// A node whose data directory is gone is re-created by its own agent (it stops the orphaned
// server, releases the leader key if it held it, and clones from the current primary): the
// supervisor makes sure that agent runs, and shows the node's state until it streams again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "broker/store.h"
#include "common/clock.h"
#include "deploy/local_backend.h"
#include "deploy/restart_backoff.h"

namespace pgf {

struct SupervisorOptions {
  Millis interval{2000};  // between two passes over the instances
  Millis grace{300000};   // not at full strength for this long: degraded
  RestartBackoffOptions backoff;
};

enum class HealthState { kHealthy, kRecovering, kDegraded };
std::string_view healthStateName(HealthState state);

// What keeps `h` from full strength, one clause per part ("node1: agent not running; HAProxy not
// running"); "" when it is healthy.
std::string missingParts(const InstanceHealth& h);
// The state of an instance that has not been healthy for `unhealthy_for` (0 when it is).
HealthState judgeHealth(bool healthy, bool crash_loop, Millis unhealthy_for, Millis grace);

class Supervisor {
 public:
  using ManifestOf = std::function<Result<DeploymentManifest>(const InstanceRecord&)>;

  Supervisor(SupervisorOptions options, Store& store, LocalBackend& backend,
             ManifestOf manifest_of);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  void start();  // the thread that runs checkAll() every interval
  void stop();
  // One pass over every instance.
  void checkAll();

  // Keeps the supervisor off an instance while an operation changes it: returns once no check of
  // it runs, and none starts until release().
  void hold(const std::string& instance_id);
  void release(const std::string& instance_id);

  struct Counters {
    int64_t passes = 0;
    int64_t agent_restarts = 0;
    int64_t haproxy_restarts = 0;
    int64_t failed_restarts = 0;
    int64_t crash_loops = 0;
  };
  Counters counters() const;

 private:
  struct Tracked {
    std::optional<MonoTime> unhealthy_since;
    std::string state;
    std::string reason;
    nlohmann::json nodes;
    std::string primary;                         // the node last seen primary
    std::map<std::string, std::string> started;  // node -> its PostgreSQL's start time
  };
  void check(const InstanceRecord& instance, MonoTime now);
  // A supervised process found not running: started again when its backoff allows. Returns
  // whether it is in a crash loop.
  bool restartDead(const std::string& instance_id, const std::string& key, const std::string& what,
                   bool agent, MonoTime now, const std::function<Status()>& start);
  void event(const std::string& instance_id, const std::string& kind, const std::string& message);

  SupervisorOptions options_;
  Store& store_;
  LocalBackend& backend_;
  ManifestOf manifest_of_;

  std::mutex mu_;  // held_, checking_, stop_
  std::condition_variable cv_;
  std::set<std::string> held_;
  std::string checking_;  // the instance a check runs on ("" between checks)
  bool stop_ = false;
  std::thread thread_;

  // Used by the checking thread only.
  std::map<std::string, RestartBackoff> backoffs_;  // "<instance>/<node>", "<instance>/haproxy"
  std::map<std::string, Tracked> tracked_;

  mutable std::mutex counters_mu_;
  Counters counters_;
};

}  // namespace pgf
