// The broker's configuration: `pgfleet-broker --config FILE` reads one YAML file (an example for
// the local backend ships as examples/broker-local.yaml). Twelve-factor style, four settings can
// be given by the environment instead, which wins over the file: PGFLEET_BROKER_LISTEN,
// PGFLEET_BROKER_USER, PGFLEET_BROKER_PASSWORD and PGFLEET_STATE_DIR.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "broker/catalog.h"
#include "common/result.h"

namespace pgf {

struct BrokerConfig {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  std::string username;  // HTTP basic authentication of every request
  std::string password;
  std::string state_dir;          // the store and every local instance's files
  std::vector<std::string> etcd;  // host:port of an external etcd; empty: the broker starts one
  std::string log_level = "info";
  Catalog catalog;
};

struct LoadedBrokerConfig {
  BrokerConfig config;
  std::vector<std::string> warnings;  // unknown keys, a short password
};

// Reads an environment variable; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
EnvLookup processEnvironment();

// Parses the YAML text, then applies the environment. Errors (kConfig) say what is wrong and
// where ("broker.password: is required (or set PGFLEET_BROKER_PASSWORD)").
Result<LoadedBrokerConfig> parseBrokerConfig(const std::string& yaml_text, const EnvLookup& env);
Result<LoadedBrokerConfig> loadBrokerConfigFile(const std::string& path, const EnvLookup& env);

}  // namespace pgf
