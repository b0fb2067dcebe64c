#include "broker/broker_config.h"

#include <cstdlib>

#include <fmt/format.h>

#include "agent/config_sections.h"
#include "common/yaml_reader.h"
#include "postgres/data_dir.h"

namespace pgf {
namespace {

using yaml::configError;

// Shorter operator passwords are accepted, with a warning.
constexpr size_t kShortPassword = 12;

// The file's value of broker.<key>, replaced by the environment variable `var` when it is set.
Status setting(const YAML::Node& broker, const char* key, const char* var, const EnvLookup& env,
               std::string& target) {
  PGF_RETURN_IF_ERROR(yaml::optString(broker, key, "broker", target));
  if (auto v = env(var))
    target = *v;
  return okStatus();
}

Status parseRoot(const YAML::Node& root, const EnvLookup& env, LoadedBrokerConfig& out) {
  if (!root.IsMap())
    return makeError(ErrorCode::kConfig, "the configuration must be a YAML mapping");
  yaml::warnUnknownKeys(root, "", {"broker", "log", "etcd", "service", "plans"}, out.warnings);
  BrokerConfig& c = out.config;

  auto broker = yaml::child(root, "broker");
  PGF_RETURN_IF_ERROR(yaml::expectMap(broker, "broker"));
  yaml::warnUnknownKeys(broker, "broker", {"listen", "username", "password", "state_dir"},
                        out.warnings);
  std::string listen = fmt::format("{}:{}", c.listen_host, c.listen_port);
  PGF_RETURN_IF_ERROR(setting(broker, "listen", "PGFLEET_BROKER_LISTEN", env, listen));
  auto hp = parseHostPort(listen, "broker.listen", std::nullopt, true);
  if (!hp.ok())
    return hp.error();
  c.listen_host = hp->host.empty() || hp->host == "*" ? "0.0.0.0" : hp->host;
  c.listen_port = hp->port;
  PGF_RETURN_IF_ERROR(setting(broker, "username", "PGFLEET_BROKER_USER", env, c.username));
  PGF_RETURN_IF_ERROR(setting(broker, "password", "PGFLEET_BROKER_PASSWORD", env, c.password));
  PGF_RETURN_IF_ERROR(setting(broker, "state_dir", "PGFLEET_STATE_DIR", env, c.state_dir));
  if (c.username.empty())
    return configError("broker.username", "is required (or set PGFLEET_BROKER_USER)");
  if (c.username.find(':') != std::string::npos)
    return configError("broker.username", "must not contain ':' (HTTP basic authentication)");
  if (c.password.empty())
    return configError("broker.password", "is required (or set PGFLEET_BROKER_PASSWORD)");
  if (c.password.size() < kShortPassword)
    out.warnings.push_back(fmt::format(
        "broker.password is shorter than {} characters: anyone who can reach the broker may guess "
        "it",
        kShortPassword));
  if (c.state_dir.empty())
    return configError("broker.state_dir", "is required (or set PGFLEET_STATE_DIR)");
  if (c.state_dir.front() != '/')
    return configError("broker.state_dir",
                       fmt::format("must be an absolute path, got \"{}\"", c.state_dir));

  auto log = yaml::child(root, "log");
  PGF_RETURN_IF_ERROR(yaml::expectMap(log, "log"));
  yaml::warnUnknownKeys(log, "log", {"level"}, out.warnings);
  PGF_RETURN_IF_ERROR(yaml::optString(log, "level", "log", c.log_level));

  auto etcd = yaml::child(root, "etcd");
  PGF_RETURN_IF_ERROR(yaml::expectMap(etcd, "etcd"));
  yaml::warnUnknownKeys(etcd, "etcd", {"hosts"}, out.warnings);
  if (auto hosts = yaml::child(etcd, "hosts"); yaml::isSet(hosts)) {
    auto list = yaml::readStringList(hosts, "etcd.hosts");
    if (!list.ok())
      return list.error();
    for (size_t i = 0; i < list->size(); ++i) {
      auto host = parseHostPort((*list)[i], fmt::format("etcd.hosts[{}]", i), 2379, false);
      if (!host.ok())
        return host.error();
    }
    c.etcd = std::move(list).value();
  }

  auto catalog =
      parseCatalog(yaml::child(root, "service"), yaml::child(root, "plans"), out.warnings);
  if (!catalog.ok())
    return catalog.error();
  c.catalog = std::move(catalog).value();
  return okStatus();
}

}  // namespace

EnvLookup processEnvironment() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr)
      return std::nullopt;
    return std::string(v);
  };
}

Result<LoadedBrokerConfig> parseBrokerConfig(const std::string& yaml_text, const EnvLookup& env) {
  auto doc = yaml::parseDocument(yaml_text);
  if (!doc.ok())
    return doc.error();
  LoadedBrokerConfig out;
  try {
    PGF_RETURN_IF_ERROR(parseRoot(doc.value(), env, out));
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kConfig, fmt::format("parsing the configuration: {}", e.what()));
  }
  return out;
}

Result<LoadedBrokerConfig> loadBrokerConfigFile(const std::string& path, const EnvLookup& env) {
  auto text = readFile(path);
  if (!text.ok())
    return text.error();
  return parseBrokerConfig(*text, env);
}

}  // namespace pgf
