#include "agent/dcs_options.h"

namespace pgf {

EtcdDcsOptions etcdDcsOptions(const EtcdSettings& etcd, const std::string& ns,
                              const std::string& scope, const std::string& name) {
  EtcdDcsOptions options;
  options.endpoints = etcd.hosts;
  options.protocol = etcd.protocol;
  options.username = etcd.username;
  options.password = etcd.password;
  options.ns = ns;
  options.scope = scope;
  options.name = name;
  return options;
}

}  // namespace pgf
