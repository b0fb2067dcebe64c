// What every pgfleetctl verb needs: which cluster to act on (etcd endpoints, namespace, scope) and
// a DCS client for it. Like patronictl, the cluster comes from an agent's configuration file
// (-c/--config), and the command line can name or override each part (--etcd, --namespace,
// --scope, or a verb's cluster-name argument).
#pragma once

#include <string>

#include "agent/config.h"
#include "common/clock.h"
#include "common/result.h"
#include "dcs/dcs.h"

namespace pgf::ctl {

struct CtlOptions {
  std::string config_path;  // -c/--config: an agent's Patroni-style YAML ("" = none)
  std::string etcd;         // --etcd host:port[,host:port...] ("" = from the config file)
  std::string namespace_;   // --namespace ("" = from the config file, else /service)
  std::string scope;        // --scope or the verb's cluster name ("" = from the config file)
};

struct CtlTarget {
  std::string scope;
  std::string namespace_ = "/service";  // normalised as the agent normalises it
  EtcdSettings etcd;

  // "/service/demo/": where the cluster's keys live, for messages.
  std::string keyPrefix() const { return namespace_ + "/" + scope + "/"; }
};

// Merges the config file (when given) with the command-line overrides. kConfig errors name what is
// missing ("no etcd endpoints: give -c <agent config> or --etcd host:port").
Result<CtlTarget> resolveTarget(const CtlOptions& options);

// A read-mostly DCS client for the target cluster. Calls give up after `timeout` with
// kDcsUnavailable when no etcd endpoint answers.
Result<DcsPtr> connectDcs(const CtlTarget& target, Millis timeout);

}  // namespace pgf::ctl
