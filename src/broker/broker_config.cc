#include "broker/broker_config.h"

#include <tuple>

#include <cstdio>
#include <filesystem>

#include <cstdlib>

#include <fmt/format.h>

#include "agent/config_sections.h"
#include "common/yaml_reader.h"
#include "deploy/template.h"
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
  yaml::warnUnknownKeys(
      broker, "broker",
      {"listen", "username", "password", "state_dir", "templates_dir", "ports", "run_as",
       "pg_bin_dir", "agent_bin", "provision_timeout", "nice", "heal_interval", "heal_grace"},
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

  PGF_RETURN_IF_ERROR(yaml::optString(broker, "templates_dir", "broker", c.templates_dir));
  PGF_RETURN_IF_ERROR(yaml::optString(broker, "run_as", "broker", c.run_as));
  PGF_RETURN_IF_ERROR(yaml::optString(broker, "pg_bin_dir", "broker", c.pg_bin_dir));
  PGF_RETURN_IF_ERROR(yaml::optString(broker, "agent_bin", "broker", c.agent_bin));
  if (auto ports = yaml::child(broker, "ports"); yaml::isSet(ports)) {
    auto text = yaml::readString(ports, "broker.ports");
    if (!text.ok())
      return text.error();
    int low = 0, high = 0;
    char dash = 0, rest = 0;
    if (std::sscanf(text->c_str(), "%d%c%d%c", &low, &dash, &high, &rest) != 3 || dash != '-' ||
        low < 1024 || high > 65535 || high - low < 15)
      return configError("broker.ports",
                         fmt::format("must be a range LOW-HIGH of at least 16 ports within "
                                     "1024-65535, got \"{}\"",
                                     *text));
    c.port_low = low;
    c.port_high = high;
  }

  if (auto nice = yaml::child(broker, "nice"); yaml::isSet(nice)) {
    auto v = yaml::readInt(nice, "broker.nice");
    if (!v.ok())
      return v.error();
    if (*v < -20 || *v > 19)
      return configError("broker.nice", fmt::format("must be between -20 and 19, got {}", *v));
    c.nice = static_cast<int>(*v);
  }
  if (auto timeout = yaml::child(broker, "provision_timeout"); yaml::isSet(timeout)) {
    auto seconds = yaml::readInt(timeout, "broker.provision_timeout");
    if (!seconds.ok())
      return seconds.error();
    if (*seconds < 10 || *seconds > 86400)
      return configError("broker.provision_timeout",
                         fmt::format("must be between 10 and 86400 seconds, got {}", *seconds));
    c.provision_timeout_seconds = static_cast<int>(*seconds);
  }
  for (auto [key, low, high, target] :
       {std::tuple{"heal_interval", 0, 3600, &c.heal_interval_seconds},
        std::tuple{"heal_grace", 10, 86400, &c.heal_grace_seconds}}) {
    auto node = yaml::child(broker, key);
    if (!yaml::isSet(node))
      continue;
    const std::string path = std::string("broker.") + key;
    auto seconds = yaml::readInt(node, path);
    if (!seconds.ok())
      return seconds.error();
    if (*seconds < low || *seconds > high)
      return configError(
          path, fmt::format("must be between {} and {} seconds, got {}", low, high, *seconds));
    *target = static_cast<int>(*seconds);
  }

  auto log = yaml::child(root, "log");
  PGF_RETURN_IF_ERROR(yaml::expectMap(log, "log"));
  yaml::warnUnknownKeys(log, "log", {"level"}, out.warnings);
  PGF_RETURN_IF_ERROR(yaml::optString(log, "level", "log", c.log_level));

  auto etcd = yaml::child(root, "etcd");
  PGF_RETURN_IF_ERROR(yaml::expectMap(etcd, "etcd"));
  yaml::warnUnknownKeys(etcd, "etcd", {"hosts", "embedded_port", "embedded_peer_port"},
                        out.warnings);
  for (auto [key, target] : {std::pair{"embedded_port", &c.embedded_etcd_port},
                             std::pair{"embedded_peer_port", &c.embedded_etcd_peer_port}}) {
    auto port = yaml::child(etcd, key);
    if (!yaml::isSet(port))
      continue;
    const std::string where = std::string("etcd.") + key;
    auto v = yaml::readInt(port, where);
    if (!v.ok())
      return v.error();
    if (*v < 1 || *v > 65535)
      return configError(where, fmt::format("{} is not a port", *v));
    *target = static_cast<int>(*v);
  }
  if (c.embedded_etcd_peer_port == 0)
    c.embedded_etcd_peer_port = c.embedded_etcd_port + 1;
  if (c.embedded_etcd_peer_port == c.embedded_etcd_port || c.embedded_etcd_peer_port > 65535)
    return configError("etcd.embedded_peer_port", "must be a port other than embedded_port");
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
  auto loaded = parseBrokerConfig(*text, env);
  if (!loaded.ok())
    return loaded;
  BrokerConfig& c = loaded->config;
  const std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  if (c.templates_dir.empty())
    c.templates_dir = (base / "templates").string();
  else if (c.templates_dir.front() != '/')
    c.templates_dir = (base / c.templates_dir).lexically_normal().string();
  for (const auto& plan : c.catalog.plans) {
    const std::string file = c.templates_dir + "/" + plan.template_file;
    auto tmpl = readFile(file);
    if (!tmpl.ok())
      return configError(fmt::format("plans[{}].template", plan.name),
                         fmt::format("cannot read {}", file));
    Status st = checkTemplate(*tmpl);
    if (!st.ok())
      return configError(fmt::format("plans[{}].template", plan.name),
                         fmt::format("{}: {}", file, st.error().message));
  }
  return loaded;
}

}  // namespace pgf
