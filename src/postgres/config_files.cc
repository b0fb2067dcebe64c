#include "postgres/config_files.h"

#include <charconv>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

namespace pgf {
namespace {

// Settings pgfleet derives itself; a user value for them is ignored (see config_files.h).
const std::set<std::string, std::less<>>& ownedParameters() {
  static const std::set<std::string, std::less<>> owned = {
      "listen_addresses",        "port",         "hba_file",         "hot_standby",
      "wal_log_hints",           "cluster_name", "primary_conninfo", "primary_slot_name",
      "recovery_target_timeline"};
  return owned;
}

// Names postgresql.conf would read as directives or that only make sense on a command line.
bool refusedName(std::string_view name) {
  return name == "include" || name == "include_dir" || name == "include_if_exists" ||
         name == "data_directory" || name == "config_file";
}

bool validName(std::string_view name) {
  if (name.empty())
    return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.';
    if (!ok)
      return false;
  }
  return true;
}

void raiseTo(std::map<std::string, std::string>& params, const std::string& name, int minimum) {
  auto it = params.find(name);
  if (it == params.end()) {
    params[name] = std::to_string(minimum);
    return;
  }
  int v = 0;
  const auto& s = it->second;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  // An unparsable value is left for PostgreSQL to reject with its own message.
  if (r.ec == std::errc() && r.ptr == s.data() + s.size() && v < minimum)
    it->second = std::to_string(minimum);
}

std::string listenAddresses(const std::string& listen) {
  auto colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

std::string quoteHbaName(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"')
      out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

std::string quoteConfValue(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    switch (c) {
      case '\'':
        out += "''";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  out += '\'';
  return out;
}

std::string quoteConninfoValue(std::string_view value) {
  bool bare = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '\'' || c == '\\' || c == '\t' || c == '\n' || c == '=')
      bare = false;
  }
  if (bare)
    return std::string(value);
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

std::string escapePgpassField(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == ':' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

std::string renderPrimaryConninfo(const UpstreamConn& upstream, const ConfigContext& ctx) {
  const std::string& app =
      upstream.application_name.empty() ? ctx.member_name : upstream.application_name;
  return fmt::format("host={} port={} user={} application_name={} passfile={} connect_timeout={}",
                     quoteConninfoValue(upstream.host), upstream.port,
                     quoteConninfoValue(ctx.pg->replication.username), quoteConninfoValue(app),
                     quoteConninfoValue(ctx.pgpass_path), kPrimaryConnectTimeoutSeconds);
}

Result<std::map<std::string, std::string>> effectiveParameters(const ConfigContext& ctx) {
  const PostgresConfig& pg = *ctx.pg;
  // pgfleet's defaults, which the cluster's and the local parameters override. syncfs: after a
  // crash, PostgreSQL syncs the data directory with one syncfs() instead of an fsync() per file,
  // which takes the restart of a crashed primary from seconds to milliseconds.
  // wal_retrieve_retry_interval 1s (PostgreSQL's default is 5s): a standby whose upstream was just
  // promoted, or that connected before its new upstream had its slot, streams again within a
  // second instead of five.
  std::map<std::string, std::string> params = {{"recovery_init_sync_method", "syncfs"},
                                               {"wal_retrieve_retry_interval", "1s"}};
  for (const auto* source : {&pg.dcs_parameters, &pg.parameters}) {
    for (const auto& [name, value] : *source) {
      if (!validName(name) || refusedName(name))
        return makeError(ErrorCode::kConfig,
                         fmt::format("postgresql parameter \"{}\" cannot be set", name));
      if (ownedParameters().count(name) == 0 &&
          !(pg.synchronous_standby_names && name == "synchronous_standby_names"))
        params[name] = value;
    }
  }
  if (params["wal_level"] != "logical")
    params["wal_level"] = "replica";
  raiseTo(params, "max_wal_senders", 10);
  raiseTo(params, "max_replication_slots", 10);

  params["listen_addresses"] = listenAddresses(pg.listen);
  params["port"] = std::to_string(pg.port());
  params["hba_file"] = ctx.data_dir + "/pg_hba.conf";
  params["hot_standby"] = "on";
  params["wal_log_hints"] = "on";
  params["cluster_name"] = ctx.scope;
  params["recovery_target_timeline"] = "latest";
  if (pg.synchronous_standby_names)
    params["synchronous_standby_names"] = *pg.synchronous_standby_names;
  if (ctx.upstream && !ctx.upstream->host.empty()) {
    params["primary_conninfo"] = renderPrimaryConninfo(*ctx.upstream, ctx);
    if (pg.use_slots && !ctx.upstream->slot_name.empty())
      params["primary_slot_name"] = ctx.upstream->slot_name;
  }
  return params;
}

Result<std::string> renderPostgresqlConf(const ConfigContext& ctx) {
  auto params = effectiveParameters(ctx);
  if (!params.ok())
    return params.error();
  std::string out = fmt::format(
      "{}: edits are overwritten. Set parameters in the agent's configuration (postgresql."
      "parameters) or in the cluster's DCS config.\n",
      kConfHeader);
  out += fmt::format("include_if_exists '{}'\n\n", kBaseConfName);
  for (const auto& [name, value] : *params)
    out += fmt::format("{} = {}\n", name, quoteConfValue(value));
  return out;
}

std::string unquoteConfValue(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t'))
    ++i;
  std::string out;
  if (i >= text.size() || text[i] != '\'') {
    while (i < text.size() && text[i] != ' ' && text[i] != '\t' && text[i] != '#' &&
           text[i] != '\r' && text[i] != '\n')
      out += text[i++];
    return out;
  }
  for (++i; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\'') {
      if (i + 1 < text.size() && text[i + 1] == '\'') {
        out += '\'';
        ++i;
        continue;
      }
      break;
    }
    if (c == '\\' && i + 1 < text.size()) {
      char n = text[++i];
      out += n == 'n' ? '\n' : n == 'r' ? '\r' : n == 't' ? '\t' : n;
      continue;
    }
    out += c;
  }
  return out;
}

std::map<std::string, std::string> parseConninfo(std::string_view conninfo) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  auto skipSpace = [&] {
    while (i < conninfo.size() &&
           (conninfo[i] == ' ' || conninfo[i] == '\t' || conninfo[i] == '\n'))
      ++i;
  };
  for (;;) {
    skipSpace();
    if (i >= conninfo.size())
      break;
    size_t eq = conninfo.find('=', i);
    if (eq == std::string_view::npos)
      break;
    std::string key(conninfo.substr(i, eq - i));
    while (!key.empty() && key.back() == ' ')
      key.pop_back();
    i = eq + 1;
    skipSpace();
    std::string value;
    if (i < conninfo.size() && conninfo[i] == '\'') {
      for (++i; i < conninfo.size() && conninfo[i] != '\''; ++i) {
        if (conninfo[i] == '\\' && i + 1 < conninfo.size())
          ++i;
        value += conninfo[i];
      }
      ++i;  // the closing quote
    } else {
      while (i < conninfo.size() && conninfo[i] != ' ' && conninfo[i] != '\t' &&
             conninfo[i] != '\n') {
        if (conninfo[i] == '\\' && i + 1 < conninfo.size())
          ++i;
        value += conninfo[i++];
      }
    }
    out[key] = value;
  }
  return out;
}

std::optional<UpstreamConn> parseUpstreamFromConf(std::string_view conf) {
  std::optional<std::string> conninfo;
  std::string slot;
  while (!conf.empty()) {
    auto nl = conf.find('\n');
    std::string_view line = conf.substr(0, nl);
    conf = nl == std::string_view::npos ? std::string_view() : conf.substr(nl + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
      line.remove_prefix(1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      continue;
    std::string_view name = line.substr(0, eq);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
      name.remove_suffix(1);
    // Later settings win, as in PostgreSQL.
    if (name == "primary_conninfo")
      conninfo = unquoteConfValue(line.substr(eq + 1));
    else if (name == "primary_slot_name")
      slot = unquoteConfValue(line.substr(eq + 1));
  }
  if (!conninfo || conninfo->empty())
    return std::nullopt;
  auto kv = parseConninfo(*conninfo);
  UpstreamConn up;
  up.host = kv["host"];
  up.port = kv.count("port") ? std::atoi(kv["port"].c_str()) : 5432;
  up.application_name = kv["application_name"];
  up.slot_name = slot;
  return up;
}

std::string renderPgHba(const PostgresConfig& pg) {
  std::string out = "# Written by pgfleet-agent: edits are overwritten (postgresql.pg_hba).\n";
  if (!pg.pg_hba.empty()) {
    for (const auto& line : pg.pg_hba) {
      // One configured entry is one line: a newline inside it would smuggle in another rule.
      std::string clean = line;
      for (char& c : clean) {
        if (c == '\n' || c == '\r')
          c = ' ';
      }
      out += clean + "\n";
    }
    return out;
  }
  const std::string su = quoteHbaName(pg.superuser.username);
  out += fmt::format("local all         {} trust\n", su);
  out += fmt::format("local replication {} trust\n", su);
  out += "local all         all scram-sha-256\n";
  out += "host  all         all 127.0.0.1/32 scram-sha-256\n";
  out += "host  all         all ::1/128      scram-sha-256\n";
  out += "host  replication all 127.0.0.1/32 scram-sha-256\n";
  out += "host  replication all ::1/128      scram-sha-256\n";
  return out;
}

std::string renderPgpass(const PostgresConfig& pg) {
  std::string out;
  std::set<std::string> seen;
  for (const PgUser* u : {&pg.superuser, &pg.replication, &pg.rewind}) {
    if (u->username.empty() || u->password.empty() || !seen.insert(u->username).second)
      continue;
    out += fmt::format("*:*:*:{}:{}\n", escapePgpassField(u->username),
                       escapePgpassField(u->password));
  }
  return out;
}

}  // namespace pgf
