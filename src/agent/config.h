// The agent's configuration: a Patroni-style YAML file (the supported subset; see
// docs/agent-configuration.md). Unknown or unsupported keys are reported by name as warnings; an
// invalid value is an error that stops the start.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "dcs/cluster_view.h"
#include "ha/decision.h"
#include "postgres/pg_config.h"

namespace pgf {

struct EtcdSettings {
  std::vector<std::string> hosts;  // "host:port"; etcd3.hosts (list or comma string) or etcd3.host
  std::string protocol = "http";
  std::string username;
  std::string password;
};

struct RestApiSettings {
  std::string listen = "127.0.0.1:8008";
  std::string connect_address;  // host:port others use; defaults to listen
  // restapi.authentication: HTTP basic credentials the mutating endpoints (POST, PUT, PATCH,
  // DELETE) require; both empty: no check. pgfleetctl sends the same credentials.
  std::string username;
  std::string password;
};

struct AgentConfig {
  std::string scope;                    // required: the cluster's name
  std::string namespace_ = "/service";  // key prefix; always starts and ends without a doubled '/'
  std::string name;                     // required: this member's name
  std::string log_level = "info";
  RestApiSettings restapi;
  EtcdSettings etcd;
  HaSettings bootstrap_dcs;  // bootstrap.dcs timing and failover settings
  nlohmann::json bootstrap_dcs_raw = nlohmann::json::object();  // written to "config" at bootstrap
  PostgresConfig postgresql;
  // postgresql.callbacks: action ("on_start", "on_stop", "on_restart", "on_reload",
  // "on_role_change") -> command line; run as `<command> <action> <role> <scope>`.
  std::map<std::string, std::string> callbacks;
  MemberTags tags;
};

struct LoadedConfig {
  AgentConfig config;
  std::vector<std::string> warnings;  // "unsupported key postgresql.callbacks (ignored)", ...
};

Result<LoadedConfig> loadAgentConfigFile(const std::string& path);
Result<LoadedConfig> parseAgentConfig(const std::string& yaml_text);

// The effective HA settings: bootstrap.dcs overridden by the DCS "config" key's values.
HaSettings effectiveSettings(const AgentConfig& config, const nlohmann::json* dcs_config);

}  // namespace pgf
