#include "agent/config_sections.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "common/yaml_reader.h"

namespace pgf {
namespace {

using yaml::configError;
using yaml::optBool;
using yaml::optString;

// Reads an integer setting no smaller than `min`, and records the validated value in `raw` so that
// the DCS "config" key holds a number even where the YAML quoted it.
template <typename T>
Status boundedInt(const YAML::Node& parent, const char* key, const std::string& parent_path,
                  int64_t min, T& target, nlohmann::json& raw) {
  auto node = yaml::child(parent, key);
  if (yaml::isSet(node)) {
    std::string path = yaml::joinPath(parent_path, key);
    auto v = yaml::readInt(node, path);
    if (!v.ok())
      return v.error();
    if (v.value() < min)
      return configError(path, min == 0
                                   ? fmt::format("must not be negative, got {}", v.value())
                                   : fmt::format("must be at least {}, got {}", min, v.value()));
    if (v.value() > std::numeric_limits<T>::max())
      return configError(path, fmt::format("{} is too large", v.value()));
    target = static_cast<T>(v.value());
  }
  raw[key] = target;
  return okStatus();
}

std::string formatHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos)
    return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<int> parsePort(const std::string& text, const std::string& path) {
  int port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return configError(path, fmt::format("invalid port \"{}\"", text));
  if (port < 1 || port > 65535)
    return configError(path, fmt::format("port {} is outside 1..65535", port));
  return port;
}

// A PostgreSQL value as postgresql.conf reads it. YAML booleans become on/off; everything else
// keeps the text it was written with (numbers, units such as "1GB", quoted strings).
Result<std::string> renderParameter(const YAML::Node& node, const std::string& path) {
  if (!yaml::isSet(node))
    return configError(path, "a value is required");
  if (!node.IsScalar())
    return configError(path, "must be a number, a string or a boolean");
  if (yaml::isPlainScalar(node)) {
    if (auto b = yaml::parseBoolWord(node.Scalar()))
      return std::string(*b ? "on" : "off");
  }
  return node.Scalar();
}

Status parseParameters(const YAML::Node& node, const std::string& path,
                       std::map<std::string, std::string>& out) {
  if (auto st = yaml::expectMap(node, path); !st.ok())
    return st;
  if (!yaml::isSet(node))
    return okStatus();
  for (const auto& kv : node) {
    if (!kv.first.IsScalar() || kv.first.Scalar().empty())
      return configError(path, "parameter names must be non-empty strings");
    std::string name = kv.first.Scalar();
    auto value = renderParameter(kv.second, yaml::joinPath(path, name));
    if (!value.ok())
      return value.error();
    out[name] = std::move(value).value();
  }
  return okStatus();
}

Status parseBootstrapDcs(const YAML::Node& node, AgentConfig& out,
                         std::vector<std::string>& warnings) {
  const std::string path = "bootstrap.dcs";
  if (auto st = yaml::expectMap(node, path); !st.ok())
    return st;
  yaml::warnUnknownKeys(
      node, path,
      {"ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "postgresql",
       "synchronous_mode", "synchronous_mode_strict", "synchronous_node_count", "failsafe_mode"},
      warnings);
  // The whole mapping goes to the DCS "config" key, including keys this agent ignores, so that a
  // Patroni node of the same cluster reads the settings it was given.
  auto raw = yaml::isSet(node) ? yaml::toJson(node) : nlohmann::json::object();
  auto& s = out.bootstrap_dcs;
  for (auto st :
       {boundedInt(node, "ttl", path, kMinTtl, s.ttl, raw),
        boundedInt(node, "loop_wait", path, kMinLoopWait, s.loop_wait, raw),
        boundedInt(node, "retry_timeout", path, kMinRetryTimeout, s.retry_timeout, raw),
        boundedInt(node, "maximum_lag_on_failover", path, 0, s.maximum_lag_on_failover, raw),
        optBool(node, "synchronous_mode", path, s.synchronous_mode),
        optBool(node, "synchronous_mode_strict", path, s.synchronous_mode_strict),
        optBool(node, "failsafe_mode", path, s.failsafe_mode)}) {
    if (!st.ok())
      return st;
  }
  if (yaml::isSet(yaml::child(node, "synchronous_node_count"))) {
    if (auto st =
            boundedInt(node, "synchronous_node_count", path, 1, s.synchronous_node_count, raw);
        !st.ok())
      return st;
  }
  if (yaml::isSet(yaml::child(node, "synchronous_mode")))
    raw["synchronous_mode"] = s.synchronous_mode;
  if (yaml::isSet(yaml::child(node, "synchronous_mode_strict")))
    raw["synchronous_mode_strict"] = s.synchronous_mode_strict;
  if (yaml::isSet(yaml::child(node, "failsafe_mode")))
    raw["failsafe_mode"] = s.failsafe_mode;

  auto pg = yaml::child(node, "postgresql");
  const std::string pg_path = path + ".postgresql";
  if (auto st = yaml::expectMap(pg, pg_path); !st.ok())
    return st;
  yaml::warnUnknownKeys(pg, pg_path,
                        {"use_pg_rewind", "reclone_on_rewind_failure", "use_slots", "parameters"},
                        warnings);
  auto& pgc = out.postgresql;
  if (auto st = optBool(pg, "use_pg_rewind", pg_path, pgc.use_pg_rewind); !st.ok())
    return st;
  if (auto st = optBool(pg, "reclone_on_rewind_failure", pg_path, pgc.reclone_on_rewind_failure);
      !st.ok())
    return st;
  if (auto st = optBool(pg, "use_slots", pg_path, pgc.use_slots); !st.ok())
    return st;
  if (auto st = parseParameters(yaml::child(pg, "parameters"), pg_path + ".parameters",
                                pgc.dcs_parameters);
      !st.ok())
    return st;
  s.use_pg_rewind = pgc.use_pg_rewind;
  s.reclone_on_rewind_failure = pgc.reclone_on_rewind_failure;
  s.use_slots = pgc.use_slots;
  if (yaml::isSet(pg)) {
    if (yaml::isSet(yaml::child(pg, "use_pg_rewind")))
      raw["postgresql"]["use_pg_rewind"] = pgc.use_pg_rewind;
    if (yaml::isSet(yaml::child(pg, "reclone_on_rewind_failure")))
      raw["postgresql"]["reclone_on_rewind_failure"] = pgc.reclone_on_rewind_failure;
    if (yaml::isSet(yaml::child(pg, "use_slots")))
      raw["postgresql"]["use_slots"] = pgc.use_slots;
  }
  out.bootstrap_dcs_raw = std::move(raw);
  return okStatus();
}

// initdb options that the agent itself controls, as Patroni refuses them.
constexpr std::string_view kForbiddenInitdbOptions[] = {"pgdata", "nosync", "pwfile", "sync-only",
                                                        "version"};

Status parseInitdb(const YAML::Node& node, std::vector<std::string>& out) {
  const std::string path = "bootstrap.initdb";
  if (!yaml::isSet(node))
    return okStatus();
  if (!node.IsSequence())
    return configError(path, "must be a list of options");
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    std::string item_path = fmt::format("{}[{}]", path, i);
    std::string name, option;
    if (item.IsScalar()) {
      name = item.Scalar();
    } else if (item.IsMap() && item.size() == 1 && item.begin()->first.IsScalar()) {
      name = item.begin()->first.Scalar();
      auto value = yaml::readString(item.begin()->second, yaml::joinPath(item_path, name));
      if (!value.ok())
        return value.error();
      option = "=" + value.value();
    } else {
      return configError(item_path, "must be an option name or a single-key mapping");
    }
    while (!name.empty() && name.front() == '-')
      name.erase(0, 1);
    if (name.empty())
      return configError(item_path, "empty option name");
    if (std::find(std::begin(kForbiddenInitdbOptions), std::end(kForbiddenInitdbOptions), name) !=
        std::end(kForbiddenInitdbOptions))
      return configError(path, fmt::format("option {} is not allowed (the agent sets it)", name));
    out.push_back("--" + name + option);
  }
  return okStatus();
}

Status parseUser(const YAML::Node& auth, const char* role, PgUser& out,
                 std::vector<std::string>& warnings) {
  auto node = yaml::child(auth, role);
  std::string path = yaml::joinPath("postgresql.authentication", role);
  if (auto st = yaml::expectMap(node, path); !st.ok())
    return st;
  yaml::warnUnknownKeys(node, path, {"username", "password"}, warnings);
  if (auto st = optString(node, "username", path, out.username); !st.ok())
    return st;
  return optString(node, "password", path, out.password);
}

}  // namespace

// Patroni's base path is "/<namespace>/<scope>" with repeated slashes collapsed; we keep the
// namespace part alone, with one leading '/' and no trailing one, so that callers can append
// "/<scope>/<key>". The root namespace ("/" or "") becomes "".
std::string normaliseNamespace(const std::string& ns) {
  std::string out;
  for (char c : "/" + ns) {
    if (c == '/' && !out.empty() && out.back() == '/')
      continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == '/')
    out.pop_back();
  return out;
}

Result<HostPort> parseHostPort(const std::string& text, const std::string& path,
                               std::optional<int> default_port, bool allow_any_host) {
  HostPort hp;
  std::string port_text;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos)
      return configError(path, fmt::format("\"{}\" has an unclosed '['", text));
    hp.host = text.substr(1, close - 1);
    std::string rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return configError(path, fmt::format("\"{}\" must be host:port", text));
    has_port = !rest.empty();
    port_text = has_port ? rest.substr(1) : "";
  } else {
    auto colon = text.rfind(':');
    hp.host = text.substr(0, colon);
    has_port = colon != std::string::npos;
    port_text = has_port ? text.substr(colon + 1) : "";
    if (hp.host.find(':') != std::string::npos)
      return configError(path, fmt::format("\"{}\": write an IPv6 address as [addr]:port", text));
  }
  if (has_port) {
    auto port = parsePort(port_text, path);
    if (!port.ok())
      return port.error();
    hp.port = port.value();
  } else if (default_port) {
    hp.port = *default_port;
  } else {
    return configError(path, fmt::format("\"{}\" must be host:port", text));
  }
  if (!allow_any_host && (hp.host.empty() || hp.host == "*"))
    return configError(path, fmt::format("\"{}\" needs a host name or address", text));
  return hp;
}

Status parseRestApi(const YAML::Node& node, RestApiSettings& out,
                    std::vector<std::string>& warnings) {
  if (auto st = yaml::expectMap(node, "restapi"); !st.ok())
    return st;
  yaml::warnUnknownKeys(node, "restapi", {"listen", "connect_address", "authentication"}, warnings);
  auto auth = yaml::child(node, "authentication");
  if (yaml::isSet(auth)) {
    if (auto st = yaml::expectMap(auth, "restapi.authentication"); !st.ok())
      return st;
    yaml::warnUnknownKeys(auth, "restapi.authentication", {"username", "password"}, warnings);
    if (auto st = optString(auth, "username", "restapi.authentication", out.username); !st.ok())
      return st;
    if (auto st = optString(auth, "password", "restapi.authentication", out.password); !st.ok())
      return st;
    if (out.username.empty() != out.password.empty())
      return makeError(ErrorCode::kConfig,
                       "restapi.authentication needs both username and password, or neither");
  }
  if (auto st = optString(node, "listen", "restapi", out.listen); !st.ok())
    return st;
  auto listen = parseHostPort(out.listen, "restapi.listen", std::nullopt, true);
  if (!listen.ok())
    return listen.error();
  if (auto st = optString(node, "connect_address", "restapi", out.connect_address); !st.ok())
    return st;
  if (out.connect_address.empty()) {
    const auto& host = listen->host;
    bool any = host.empty() || host == "*" || host == "0.0.0.0" || host == "::";
    out.connect_address = formatHostPort(any ? "127.0.0.1" : host, listen->port);
  } else {
    auto ca = parseHostPort(out.connect_address, "restapi.connect_address", std::nullopt, false);
    if (!ca.ok())
      return ca.error();
  }
  return okStatus();
}

Status parseEtcd3(const YAML::Node& node, EtcdSettings& out, std::vector<std::string>& warnings) {
  if (!yaml::isSet(node))
    return makeError(ErrorCode::kConfig, "etcd3 is required (with etcd3.hosts or etcd3.host)");
  if (auto st = yaml::expectMap(node, "etcd3"); !st.ok())
    return st;
  yaml::warnUnknownKeys(node, "etcd3", {"hosts", "host", "protocol", "username", "password"},
                        warnings);
  std::vector<std::string> hosts;
  std::string path = "etcd3.hosts";
  auto hosts_node = yaml::child(node, "hosts");
  if (yaml::isSet(hosts_node) && hosts_node.IsSequence()) {
    auto list = yaml::readStringList(hosts_node, path);
    if (!list.ok())
      return list.error();
    hosts = std::move(list).value();
  } else if (yaml::isSet(hosts_node)) {
    auto text = yaml::readString(hosts_node, path);
    if (!text.ok())
      return text.error();
    std::string item;
    for (char c : text.value() + ",") {
      if (c == ',') {
        if (!item.empty())
          hosts.push_back(item);
        item.clear();
      } else if (c != ' ' && c != '\t') {
        item.push_back(c);
      }
    }
  } else {
    path = "etcd3.host";
    std::string host;
    if (auto st = optString(node, "host", "etcd3", host); !st.ok())
      return st;
    if (!host.empty())
      hosts.push_back(host);
  }
  if (hosts.empty())
    return makeError(ErrorCode::kConfig,
                     "etcd3: at least one host is required (etcd3.hosts or etcd3.host)");
  for (const auto& h : hosts) {
    if (h.find("://") != std::string::npos)
      return configError(path, fmt::format("\"{}\" must be host:port (set the scheme with "
                                           "etcd3.protocol)",
                                           h));
    auto hp = parseHostPort(h, path, kDefaultEtcdPort, false);
    if (!hp.ok())
      return hp.error();
    out.hosts.push_back(formatHostPort(hp->host, hp->port));
  }
  if (auto st = optString(node, "protocol", "etcd3", out.protocol); !st.ok())
    return st;
  if (out.protocol != "http" && out.protocol != "https")
    return configError("etcd3.protocol",
                       fmt::format("must be http or https, got \"{}\"", out.protocol));
  if (auto st = optString(node, "username", "etcd3", out.username); !st.ok())
    return st;
  return optString(node, "password", "etcd3", out.password);
}

Status parseBootstrap(const YAML::Node& node, AgentConfig& out,
                      std::vector<std::string>& warnings) {
  if (auto st = yaml::expectMap(node, "bootstrap"); !st.ok())
    return st;
  yaml::warnUnknownKeys(node, "bootstrap", {"dcs", "initdb"}, warnings);
  if (auto st = parseBootstrapDcs(yaml::child(node, "dcs"), out, warnings); !st.ok())
    return st;
  return parseInitdb(yaml::child(node, "initdb"), out.postgresql.initdb_options);
}

Status parsePostgresql(const YAML::Node& node, PostgresConfig& out,
                       std::vector<std::string>& warnings) {
  if (auto st = yaml::expectMap(node, "postgresql"); !st.ok())
    return st;
  yaml::warnUnknownKeys(node, "postgresql",
                        {"listen", "connect_address", "data_dir", "bin_dir", "pgpass",
                         "authentication", "parameters", "pg_hba", "callbacks"},
                        warnings);
  if (auto st = optString(node, "data_dir", "postgresql", out.data_dir); !st.ok())
    return st;
  if (out.data_dir.empty())
    return makeError(ErrorCode::kConfig, "postgresql.data_dir is required");
  if (auto st = optString(node, "listen", "postgresql", out.listen); !st.ok())
    return st;
  // listen may name several hosts ("127.0.0.1,10.0.0.5:5432"): only its port is checked here.
  auto colon = out.listen.rfind(':');
  if (colon != std::string::npos) {
    auto port = parsePort(out.listen.substr(colon + 1), "postgresql.listen");
    if (!port.ok())
      return port.error();
  }
  if (auto st = optString(node, "connect_address", "postgresql", out.connect_address); !st.ok())
    return st;
  if (!out.connect_address.empty()) {
    auto ca = parseHostPort(out.connect_address, "postgresql.connect_address", 5432, false);
    if (!ca.ok())
      return ca.error();
  }
  if (auto st = optString(node, "bin_dir", "postgresql", out.bin_dir); !st.ok())
    return st;
  if (auto st = optString(node, "pgpass", "postgresql", out.pgpass); !st.ok())
    return st;

  auto auth = yaml::child(node, "authentication");
  if (auto st = yaml::expectMap(auth, "postgresql.authentication"); !st.ok())
    return st;
  yaml::warnUnknownKeys(auth, "postgresql.authentication", {"superuser", "replication", "rewind"},
                        warnings);
  if (auto st = parseUser(auth, "superuser", out.superuser, warnings); !st.ok())
    return st;
  if (auto st = parseUser(auth, "replication", out.replication, warnings); !st.ok())
    return st;
  if (auto st = parseUser(auth, "rewind", out.rewind, warnings); !st.ok())
    return st;

  if (auto st =
          parseParameters(yaml::child(node, "parameters"), "postgresql.parameters", out.parameters);
      !st.ok())
    return st;
  auto hba = yaml::child(node, "pg_hba");
  if (yaml::isSet(hba)) {
    auto lines = yaml::readStringList(hba, "postgresql.pg_hba");
    if (!lines.ok())
      return lines.error();
    out.pg_hba = std::move(lines).value();
  }
  return okStatus();
}

Status parseCallbacks(const YAML::Node& node, std::map<std::string, std::string>& out,
                      std::vector<std::string>& warnings) {
  const std::string path = "postgresql.callbacks";
  if (auto st = yaml::expectMap(node, path); !st.ok())
    return st;
  if (!yaml::isSet(node))
    return okStatus();
  yaml::warnUnknownKeys(
      node, path, {"on_start", "on_stop", "on_restart", "on_reload", "on_role_change"}, warnings);
  for (const char* action : {"on_start", "on_stop", "on_restart", "on_reload", "on_role_change"}) {
    std::string command;
    if (auto st = optString(node, action, path, command); !st.ok())
      return st;
    if (yaml::isSet(yaml::child(node, action)) &&
        command.find_first_not_of(" \t") == std::string::npos)
      return configError(yaml::joinPath(path, action), "needs a command");
    if (!command.empty())
      out[action] = command;
  }
  return okStatus();
}

Status parseTags(const YAML::Node& node, MemberTags& out, std::vector<std::string>& warnings) {
  if (auto st = yaml::expectMap(node, "tags"); !st.ok())
    return st;
  yaml::warnUnknownKeys(node, "tags",
                        {"nofailover", "noloadbalance", "clonefrom", "nosync", "replicatefrom"},
                        warnings);
  for (auto st : {optBool(node, "nofailover", "tags", out.nofailover),
                  optBool(node, "noloadbalance", "tags", out.noloadbalance),
                  optBool(node, "clonefrom", "tags", out.clonefrom),
                  optBool(node, "nosync", "tags", out.nosync),
                  optString(node, "replicatefrom", "tags", out.replicatefrom)}) {
    if (!st.ok())
      return st;
  }
  return okStatus();
}

}  // namespace pgf
