// A real pgfleet cluster on loopback for integration tests: one etcd, N pgfleet-agents (each with
// its own PostgreSQL, run as the `postgres` user) and an HAProxy with a read-write port (checks
// /primary) and a read-only port (checks /replica). Everything it starts it stops by PID in its
// destructor, even when a test fails half-way.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "postgres/pg_connection.h"

namespace pgf::testing {

class EtcdProcess;

struct ClusterOptions {
  int nodes = 3;
  int ttl = 5;
  int loop_wait = 1;
  int retry_timeout = 2;
  bool use_pg_rewind = true;
  bool haproxy = true;
  std::string scope = "itest";
  // When set, restapi.authentication is admin / this password (restCall sends it).
  std::string rest_password = {};
  bool synchronous_mode = false;
  bool synchronous_mode_strict = false;
  bool failsafe_mode = false;
  // Node index -> the member it streams from (tags.replicatefrom).
  std::map<int, std::string> replicatefrom = {};
  // Every node gets on_start and on_role_change callbacks that append "<action> <role> <scope>"
  // to callbackLog(i).
  bool callbacks = false;
};

struct NodePorts {
  int pg = 0;
  int api = 0;
};

class LocalCluster {
 public:
  explicit LocalCluster(ClusterOptions options = {});
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Starts etcd, writes every node's configuration, starts every agent and HAProxy.
  Status start();
  // Waits until one node answers /primary with 200 and every other node is a streaming replica.
  bool waitHealthy(Millis timeout);

  Status startAgent(int i);
  // Sends `sig` to node i's agent (by PID) and, for SIGKILL/SIGTERM, reaps it.
  void signalAgent(int i, int sig);
  bool agentRunning(int i);
  // The postmaster PID from node i's postmaster.pid (0 when there is none).
  pid_t postmasterPid(int i) const;
  void killPostmaster(int i);  // SIGKILL

  // HTTP GET against node i's REST API; returns the status code (0 when unreachable).
  int restGet(int i, const std::string& path, std::string* body = nullptr) const;
  // Any method against node i's REST API, with the cluster's credentials when `authenticate`;
  // returns the status code (0 when unreachable). Waits up to `timeout` for the answer.
  int restCall(int i, const std::string& method, const std::string& path, const std::string& body,
               std::string* answer = nullptr, bool authenticate = true,
               Millis timeout = Millis(45000)) const;
  // The node whose /primary answers 200, if exactly one does.
  std::optional<int> primaryIndex() const;
  std::vector<int> primaryIndexes() const;

  // Connection parameters for the superuser: to node i directly, or through HAProxy.
  ConnParams nodeParams(int i) const;
  ConnParams readWriteParams() const;
  ConnParams readOnlyParams() const;
  Result<PgResult> query(const ConnParams& params, const std::string& sql,
                         Millis timeout = Millis(5000)) const;

  std::string name(int i) const;
  int nodes() const { return static_cast<int>(ports_.size()); }
  const std::string& dir() const { return dir_; }
  std::string etcdEndpoint() const;
  std::string configPath(int i) const;
  std::string dataDir(int i) const;
  std::string callbackLog(int i) const;
  std::string superuserPassword() const { return superuser_password_; }
  // The last lines of every agent's log, for a failing test's output.
  std::string logTails(int lines = 40) const;
  void stopEtcd();
  Status restartEtcd();

 private:
  std::string nodeConfig(int i) const;
  Status startHaproxy();
  void stopAll();

  ClusterOptions options_;
  std::string dir_;
  std::string agent_bin_;
  std::unique_ptr<EtcdProcess> etcd_;
  std::vector<NodePorts> ports_;
  std::vector<pid_t> agent_pids_;
  pid_t haproxy_pid_ = 0;
  int rw_port_ = 0;
  int ro_port_ = 0;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::string superuser_password_;
  std::string replication_password_;
};

// Polls `condition` every 100 ms until it holds or `timeout` passes.
bool waitUntil(const std::function<bool()>& condition, Millis timeout);

}  // namespace pgf::testing
