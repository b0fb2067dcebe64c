// The section readers behind parseAgentConfig (config.h): one function per top-level section of the
// Patroni-style YAML file. Each validates its values (an invalid one is a kConfig error naming the
// key by its dotted path) and appends a warning for every key it does not support.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "agent/config.h"
#include "common/result.h"

namespace pgf {

// Lower bounds of the cluster-wide timing settings (seconds). A ttl below 2 s leaves no room for a
// renewal between two deadlines; loop_wait and retry_timeout of 0 would make the loop spin.
inline constexpr int kMinTtl = 2;
inline constexpr int kMinLoopWait = 1;
inline constexpr int kMinRetryTimeout = 1;

// Default etcd client port, used when a host is given without one.
inline constexpr int kDefaultEtcdPort = 2379;

Status parseRestApi(const YAML::Node& node, RestApiSettings& out,
                    std::vector<std::string>& warnings);
Status parseEtcd3(const YAML::Node& node, EtcdSettings& out, std::vector<std::string>& warnings);
Status parseBootstrap(const YAML::Node& node, AgentConfig& out, std::vector<std::string>& warnings);
Status parsePostgresql(const YAML::Node& node, PostgresConfig& out,
                       std::vector<std::string>& warnings);
// postgresql.callbacks: a mapping of the five actions to non-empty command lines.
Status parseCallbacks(const YAML::Node& node, std::map<std::string, std::string>& out,
                      std::vector<std::string>& warnings);
Status parseTags(const YAML::Node& node, MemberTags& out, std::vector<std::string>& warnings);

// "host:port" (or "[v6]:port"): the port must be 1..65535. Without a port, `default_port` is used
// when given, else it is an error. The host may be empty or "*" (all interfaces) only when
// `allow_any_host`.
struct HostPort {
  std::string host;
  int port = 0;
};
Result<HostPort> parseHostPort(const std::string& text, const std::string& path,
                               std::optional<int> default_port, bool allow_any_host);

// The namespace as AgentConfig keeps it: one leading '/', no trailing or doubled ones; the root
// namespace ("/" or "") becomes "".
std::string normaliseNamespace(const std::string& ns);

}  // namespace pgf
