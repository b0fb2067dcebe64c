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
  std::string state_dir;            // the store and every local instance's files
  std::vector<std::string> etcd;    // host:port of an external etcd; empty: the broker starts one
  int embedded_etcd_port = 23790;   // the etcd the broker starts
  int embedded_etcd_peer_port = 0;  // its peer port; 0: the next one
  std::string templates_dir;        // plans' templates; default: templates/ beside the file
  int port_low = 20000;             // instances' ports are taken from [port_low, port_high]
  int port_high = 29999;
  // The broker's own nice value (its processes' children run at 0): answering the API stays quick
  // while the machine is busy creating instances. Lowering it needs root (or CAP_SYS_NICE).
  int nice = -5;
  int provision_timeout_seconds = 300;  // a provision whose nodes are not healthy by then fails
  // The self-healing supervisor: a pass over every instance every heal_interval seconds (0: no
  // supervisor); an instance not back at full strength after heal_grace seconds is degraded.
  int heal_interval_seconds = 2;
  int heal_grace_seconds = 300;
  std::string run_as = "postgres";  // the user instances run as when the broker runs as root
  std::string pg_bin_dir = "/usr/lib/postgresql/15/bin";
  std::string agent_bin;  // default: pgfleet-agent beside pgfleet-broker
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
// Reads the file, resolves templates_dir against the file's directory and checks that every
// plan's template is there and well-formed.
Result<LoadedBrokerConfig> loadBrokerConfigFile(const std::string& path, const EnvLookup& env);

}  // namespace pgf
