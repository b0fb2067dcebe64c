// A pgfleet cluster spread over separate hosts for the fault-injection suite: every etcd member
// and every PostgreSQL node (pgfleet-agent with its PostgreSQL, run as the `postgres` user) in a
// network namespace of its own (see netlab.h), so that any link between two of them can be cut,
// any process killed or frozen. The test process reaches every host from the machine's side of
// the lab's bridge. Everything it starts it stops by PID, and its directory and lab go with it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "faults/netlab.h"
#include "postgres/pg_connection.h"

namespace pgf::faults {

struct FaultClusterOptions {
  std::string prefix = "pgfx";  // the lab's prefix (netlab.h)
  int net = 92;                 // the lab's 10.<net>.0.0/24
  int nodes = 3;
  int etcd_members = 3;
  int ttl = 5;
  int loop_wait = 1;
  int retry_timeout = 2;
  bool synchronous_mode = false;
  // When > 0, every node's directory is a file system of its own of this size (tmpfs), so that a
  // fault can fill it up.
  int node_disk_mb = 0;
  // The agent on every node: pgfleet-agent, or Patroni (which reads the same YAML) to compare.
  std::string agent_binary = PGFLEET_AGENT_BIN;
};

class FaultCluster {
 public:
  explicit FaultCluster(FaultClusterOptions options = {});
  ~FaultCluster();
  FaultCluster(const FaultCluster&) = delete;
  FaultCluster& operator=(const FaultCluster&) = delete;

  // Creates the lab, starts the etcd members (and waits for their quorum), then every agent.
  Status start();
  // Waits until exactly one node answers /primary with 200 and every other one streams.
  bool waitHealthy(Millis timeout) const;

  NetLab& lab() { return *lab_; }
  int nodes() const { return options_.nodes; }
  // Host names: "node1".., "etcd1"..
  std::string node(int i) const;
  std::string etcdHost(int k) const;
  ConnParams nodeParams(int i) const;
  // GET on node i's REST API from the machine: the status code, 0 when it does not answer.
  int restGet(int i, const std::string& path, std::string* body = nullptr) const;
  // The nodes whose /primary answers 200.
  std::vector<int> primaries() const;

  // Processes, by PID.
  Status startAgent(int i);
  void signalAgent(int i, int sig);  // SIGKILL and SIGTERM also reap it
  pid_t agentPid(int i) const { return agent_pids_[i]; }
  pid_t postmasterPid(int i) const;  // 0 when there is none
  Status startEtcd(int k);
  void signalEtcd(int k, int sig);

  // Fills node i's file system (node_disk_mb) up to the last byte, and frees it again.
  Status fillDisk(int i);
  void freeDisk(int i);

  const std::string& dir() const { return dir_; }
  std::string dataDir(int i) const;
  // The timeline node i's REST API reports (0 when it does not answer or reports none).
  int timeline(int i) const;
  std::string logTails(int lines = 40) const;

 private:
  std::string nodeConfig(int i) const;
  std::string etcdHosts() const;
  void stopAll();

  FaultClusterOptions options_;
  std::string dir_;
  std::unique_ptr<NetLab> lab_;
  std::vector<pid_t> agent_pids_;
  std::vector<pid_t> etcd_pids_;
  std::vector<std::string> mounts_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::string superuser_password_;
  std::string replication_password_;
};

}  // namespace pgf::faults
