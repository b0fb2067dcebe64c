#include "agent/config.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "agent/config_sections.h"
#include "common/yaml_reader.h"

namespace pgf {
namespace {

Result<std::string> readName(const YAML::Node& root, const char* key) {
  auto node = yaml::child(root, key);
  if (!yaml::isSet(node))
    return makeError(ErrorCode::kConfig, fmt::format("{} is required", key));
  auto value = yaml::readString(node, key);
  if (!value.ok())
    return value.error();
  if (value->empty())
    return makeError(ErrorCode::kConfig, fmt::format("{} must not be empty", key));
  // Both become path components of DCS keys ("/<ns>/<scope>/members/<name>").
  if (value->find('/') != std::string::npos)
    return makeError(ErrorCode::kConfig,
                     fmt::format("{}: \"{}\" must not contain '/'", key, value.value()));
  return value;
}

Status parseLog(const YAML::Node& node, AgentConfig& config, std::vector<std::string>& warnings) {
  if (auto st = yaml::expectMap(node, "log"); !st.ok())
    return st;
  yaml::warnUnknownKeys(node, "log", {"level"}, warnings);
  auto level_node = yaml::child(node, "level");
  if (!yaml::isSet(level_node))
    return okStatus();
  auto level = yaml::readString(level_node, "log.level");
  if (!level.ok())
    return level.error();
  std::string l;
  for (char c : level.value())
    l.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (l == "warn")
    l = "warning";
  if (l != "debug" && l != "info" && l != "warning" && l != "error" && l != "critical")
    return makeError(ErrorCode::kConfig,
                     fmt::format("log.level: must be one of debug, info, warning, error, "
                                 "critical, got \"{}\"",
                                 level.value()));
  config.log_level = l;
  return okStatus();
}

Status parseRoot(const YAML::Node& root, LoadedConfig& out) {
  if (!root.IsMap())
    return makeError(ErrorCode::kConfig, "the configuration must be a yaml mapping");
  auto& config = out.config;
  auto& warnings = out.warnings;
  if (yaml::child(root, "etcd").IsDefined())
    return makeError(ErrorCode::kConfig, "etcd (v2) is not supported; use etcd3");
  yaml::warnUnknownKeys(
      root, "",
      {"scope", "namespace", "name", "log", "restapi", "etcd3", "bootstrap", "postgresql", "tags"},
      warnings);

  auto scope = readName(root, "scope");
  if (!scope.ok())
    return scope.error();
  config.scope = scope.value();
  auto name = readName(root, "name");
  if (!name.ok())
    return name.error();
  config.name = name.value();
  auto ns = yaml::child(root, "namespace");
  if (yaml::isSet(ns)) {
    auto value = yaml::readString(ns, "namespace");
    if (!value.ok())
      return value.error();
    config.namespace_ = normaliseNamespace(value.value());
  }

  Status st = parseLog(yaml::child(root, "log"), config, warnings);
  if (st.ok())
    st = parseRestApi(yaml::child(root, "restapi"), config.restapi, warnings);
  if (st.ok())
    st = parseEtcd3(yaml::child(root, "etcd3"), config.etcd, warnings);
  if (st.ok())
    st = parseBootstrap(yaml::child(root, "bootstrap"), config, warnings);
  if (st.ok())
    st = parsePostgresql(yaml::child(root, "postgresql"), config.postgresql, warnings);
  if (st.ok())
    st = parseCallbacks(yaml::child(yaml::child(root, "postgresql"), "callbacks"), config.callbacks,
                        warnings);
  if (st.ok())
    st = parseTags(yaml::child(root, "tags"), config.tags, warnings);
  return st;
}

// Reads an integer setting of the DCS "config" key; wrongly typed or out-of-range values are
// ignored so that a bad edit of the shared config cannot stop every agent of the cluster.
template <typename T>
void overrideInt(const nlohmann::json& cfg, const char* key, int64_t min, T& target) {
  auto it = cfg.find(key);
  if (it == cfg.end() || !it->is_number_integer())
    return;
  auto v = it->get<int64_t>();
  if (v < min || v > std::numeric_limits<T>::max())
    return;
  target = static_cast<T>(v);
}

// Booleans as Patroni's parse_bool reads them: JSON booleans or the words on/off, true/false,
// yes/no, 1/0.
void overrideBool(const nlohmann::json& cfg, const char* key, bool& target) {
  auto it = cfg.find(key);
  if (it == cfg.end())
    return;
  if (it->is_boolean()) {
    target = it->get<bool>();
    return;
  }
  if (it->is_string()) {
    auto s = it->get<std::string>();
    if (auto b = yaml::parseBoolWord(s))
      target = *b;
    else if (s == "1" || s == "0")
      target = s == "1";
  }
}

}  // namespace

Result<LoadedConfig> parseAgentConfig(const std::string& yaml_text) {
  auto doc = yaml::parseDocument(yaml_text);
  if (!doc.ok())
    return doc.error();
  LoadedConfig out;
  try {
    auto status = parseRoot(doc.value(), out);
    if (!status.ok())
      return status.error();
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kConfig, fmt::format("parsing configuration: {}", e.what()));
  }
  return out;
}

// Messages do not repeat the path: callers print it in front ("<path>: scope is required").
Result<LoadedConfig> loadAgentConfigFile(const std::string& path) {
  errno = 0;
  std::ifstream in(path);
  if (!in)
    return makeError(ErrorCode::kIo, fmt::format("cannot open the configuration file: {}",
                                                 errno != 0 ? std::strerror(errno) : "unknown"));
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return makeError(ErrorCode::kIo, "reading the configuration file failed");
  return parseAgentConfig(buf.str());
}

HaSettings effectiveSettings(const AgentConfig& config, const nlohmann::json* dcs_config) {
  HaSettings s = config.bootstrap_dcs;
  s.use_pg_rewind = config.postgresql.use_pg_rewind;
  s.reclone_on_rewind_failure = config.postgresql.reclone_on_rewind_failure;
  s.use_slots = config.postgresql.use_slots;
  if (dcs_config == nullptr || !dcs_config->is_object())
    return s;
  const auto& cfg = *dcs_config;
  overrideInt(cfg, "ttl", kMinTtl, s.ttl);
  overrideInt(cfg, "loop_wait", kMinLoopWait, s.loop_wait);
  overrideInt(cfg, "retry_timeout", kMinRetryTimeout, s.retry_timeout);
  overrideInt(cfg, "maximum_lag_on_failover", 0, s.maximum_lag_on_failover);
  overrideBool(cfg, "pause", s.paused);
  overrideBool(cfg, "synchronous_mode", s.synchronous_mode);
  overrideBool(cfg, "synchronous_mode_strict", s.synchronous_mode_strict);
  overrideInt(cfg, "synchronous_node_count", 1, s.synchronous_node_count);
  overrideBool(cfg, "failsafe_mode", s.failsafe_mode);
  auto pg = cfg.find("postgresql");
  if (pg != cfg.end() && pg->is_object()) {
    overrideBool(*pg, "use_pg_rewind", s.use_pg_rewind);
    overrideBool(*pg, "reclone_on_rewind_failure", s.reclone_on_rewind_failure);
    overrideBool(*pg, "use_slots", s.use_slots);
  }
  return s;
}

}  // namespace pgf
