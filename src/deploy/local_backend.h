// The local backend: every node of an instance is a pgfleet-agent process on this machine with a
// directory and ports of its own, and every instance has its own HAProxy with a read-write port
// (to whichever node answers the agent's /primary) and, for a cluster, a read-only port (to the
// nodes answering /replica). HAProxy checks every 500 ms and, when a node stops being primary,
// shuts the sessions still open to it, so no client stays pinned to a node that no longer takes
// writes.
//
// Processes are started in process groups of their own and recorded in PID files, so they keep
// running while the broker is down and are adopted, not started twice, when it returns. They are
// stopped only by the PIDs recorded, after checking that the process is still the one started
// (its command line names the instance's file).
//
// <state_dir>/
//   bin/pgfleet-agent, bin/pgfleet-watchdog   copies the agents run (readable by their user)
//   instances/<instance>/haproxy.cfg, haproxy.pid, haproxy.log
//   instances/<instance>/<node>/agent.yml, agent.pid, agent.log, data/
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "deploy/manifest.h"

namespace pgf {

struct LocalBackendOptions {
  std::string state_dir;
  std::string agent_bin;  // the pgfleet-agent to run; pgfleet-watchdog is expected beside it
  // When the broker runs as root: the user agents, PostgreSQL and HAProxy run as.
  std::string run_as = "postgres";
  // The etcd the agents use ("host:port"), where destroy() removes an instance's keys. An
  // instance's DCS scope is its name, under the namespace /service.
  std::vector<std::string> etcd;
};

struct NodeHealth {
  std::string name;
  bool agent_running = false;
  std::string role;  // "primary", "replica" or "" (not answering, or neither)
  bool streaming = false;
  std::string started;  // when its PostgreSQL started (the agent's postmaster_start_time)
};

struct InstanceHealth {
  std::vector<NodeHealth> nodes;
  bool haproxy_running = false;
  int primaries = 0;
  int streaming_replicas = 0;
  // One primary, every other node a streaming replica, HAProxy and every agent running.
  bool healthy() const;
};

class LocalBackend {
 public:
  static Result<std::unique_ptr<LocalBackend>> create(LocalBackendOptions options);

  // Starts what of `instance` does not run yet: the node directories and agent configurations,
  // the agents, HAProxy. Running processes of the instance are kept (adopted).
  Status deploy(const std::string& instance, const DeploymentManifest& manifest);
  // Asks each node's REST API for its role, and checks every process.
  InstanceHealth health(const std::string& instance, const DeploymentManifest& manifest);
  // Stops every process of the instance (agents, their PostgreSQL, HAProxy), removes its keys
  // from etcd and its directory. Succeeds when there is nothing left, also when nothing was
  // there.
  Status destroy(const std::string& instance);
  // Restarts the agents and HAProxy of the instance that are not running.
  Status restartStopped(const std::string& instance, const DeploymentManifest& manifest);
  // Starts one node's agent, or the instance's HAProxy, unless it runs already.
  Status startAgent(const std::string& instance, const NodeManifest& node);
  Status startHaproxy(const std::string& instance, const DeploymentManifest& manifest);
  // Stops one node's agent (it stops its PostgreSQL, and releases the leader key if it held it)
  // and starts it again: the agent installed now, with the node's configuration as written now.
  // A PostgreSQL the stopped agent left running is stopped too (immediate shutdown), so that the
  // node's server restarts with the new agent.
  Status restartAgent(const std::string& instance, const NodeManifest& node);
  // Puts the manifest's endpoints and nodes into the instance's HAProxy without cutting a
  // connection: a new HAProxy takes over the listening ports (-sf), the former one stops
  // listening and ends once its connections have closed. Starts one when none runs.
  Status reloadHaproxy(const std::string& instance, const DeploymentManifest& manifest);

  std::string instanceDir(const std::string& instance) const;
  std::string nodeDir(const std::string& instance, const std::string& node) const;
  // The processes of the instance that run now (agents, postmasters, HAProxy), by PID.
  std::vector<pid_t> processes(const std::string& instance) const;

 private:
  explicit LocalBackend(LocalBackendOptions options);
  Status installAgent();
  Status forgetCluster(const std::string& scope);

  LocalBackendOptions options_;
  std::optional<uid_t> uid_;
  std::optional<gid_t> gid_;
  std::string agent_copy_;
};

// The HAProxy configuration of an instance: read-write to the node answering /primary, read-only
// to the nodes answering /replica (none for a single node).
std::string haproxyConfig(const DeploymentManifest& manifest);

// The PID in `pid_file` when that process is alive and its command line contains `marker`.
std::optional<pid_t> recordedProcess(const std::string& pid_file, const std::string& marker);

}  // namespace pgf
