// The etcd client options an agent configuration file describes (etcd3.*, namespace, scope, name),
// shared by the agent and by pgfleetctl -c.
#pragma once

#include "agent/config.h"
#include "dcs/etcd/etcd_dcs.h"

namespace pgf {

EtcdDcsOptions etcdDcsOptions(const EtcdSettings& etcd, const std::string& ns,
                              const std::string& scope, const std::string& name);

}  // namespace pgf
