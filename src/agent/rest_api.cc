#include "agent/rest_api.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/cluster_json.h"
#include "agent/member_data.h"
#include "agent/metrics.h"
#include "agent/status_document.h"

namespace pgf {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

// The health checks Patroni answers from its generic do_GET, by the path's first segment.
enum class Check {
  kLeader,
  kPrimary,  // also /master, /read-write and GET /
  kStandbyLeader,
  kReplica,
  kReadOnly,
  kHealth,
  kSync,
  kAsync,
  kReadOnlySync,
};

std::optional<Check> healthCheckFor(std::string_view segment) {
  static const std::pair<std::string_view, Check> kChecks[] = {
      {"", Check::kPrimary},
      {"primary", Check::kPrimary},
      {"master", Check::kPrimary},
      {"read-write", Check::kPrimary},
      {"leader", Check::kLeader},
      {"standby-leader", Check::kStandbyLeader},
      {"standby_leader", Check::kStandbyLeader},
      {"replica", Check::kReplica},
      {"read-only", Check::kReadOnly},
      {"health", Check::kHealth},
      {"sync", Check::kSync},
      {"synchronous", Check::kSync},
      {"async", Check::kAsync},
      {"asynchronous", Check::kAsync},
      {"read-only-sync", Check::kReadOnlySync},
      {"read-only-synchronous", Check::kReadOnlySync},
  };
  for (const auto& [name, check] : kChecks)
    if (name == segment)
      return check;
  return std::nullopt;
}

std::string dumpJson(const json& j) {
  // Member names and tags come from the DCS; invalid UTF-8 must not make the dump throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpReply jsonReply(int status, const json& body) {
  return HttpReply{status, kJson, dumpJson(body), {}};
}

HttpReply errorReply(int status, const std::string& message) {
  return jsonReply(status, json{{"error", message}});
}

HttpReply statusOnly(int status) {
  return HttpReply{status, "", "", {}};
}

HttpReply methodNotAllowed(const std::string& method, const std::string& path,
                           const std::string& allow) {
  auto r = errorReply(405, fmt::format("method {} is not allowed on {}", method, path));
  r.headers["Allow"] = allow;
  return r;
}

bool isOneOf(const std::string& method, std::initializer_list<std::string_view> methods) {
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

struct HealthCodes {
  int leader = 503;
  int primary = 503;
  int standby_leader = 503;
  int replica = 503;
};

// Patroni's do_GET: which answer each kind of health check gets from this node right now.
Result<HealthCodes> healthCodes(const AgentStatus& s, const json& doc, const QueryParams& query,
                                bool cluster_known) {
  int64_t max_lag = -1;  // none
  if (auto it = query.find("lag"); it != query.end()) {
    auto lag = parseLagBytes(it->second);
    if (!lag.ok())
      return lag.error();
    max_lag = lag.value();
  }
  const std::string role = doc.value("role", "");
  const std::string state = doc.value("state", "");
  int64_t replayed = 0;
  if (auto x = doc.find("xlog"); x != doc.end() && x->contains("replayed_location"))
    replayed = (*x)["replayed_location"].get<int64_t>();
  const int64_t optime = cluster_known ? s.cluster->leaderOptime() : 0;
  const bool lagging = max_lag >= 0 && optime > 0 && optime - replayed > max_lag;

  HealthCodes c;
  c.replica =
      !s.tags.noloadbalance && !lagging && role == "replica" && state == "running" ? 200 : 503;
  const bool primary_role = role == "master" || role == "primary";
  if (!cluster_known && s.settings.paused) {
    c.leader = primary_role || role == "standby_leader" ? 200 : 503;
    c.primary = primary_role ? 200 : 503;
    c.standby_leader = role == "standby_leader" ? 200 : 503;
  } else if (s.is_leader) {
    c.leader = 200;
    c.primary = 200;
  }
  return c;
}

// ?tag_<name>=<value> filters: every one must match a tag this node carries (a known tag counts
// only while true, and reads "true", as Patroni prints Python's True).
bool tagsMatch(const AgentStatus& s, const QueryParams& query) {
  const json tags = tagsToJson(s.tags);
  for (const auto& [key, value] : query) {
    if (key.rfind("tag_", 0) != 0)
      continue;
    auto it = tags.find(key.substr(4));
    if (it == tags.end() || (it->get<bool>() ? "true" : "false") != value)
      return false;
  }
  return true;
}

Result<int> healthStatus(const AgentStatus& s, const json& doc, Check check,
                         const QueryParams& query, WallTime wall) {
  const bool known = clusterKnown(s, wall);
  auto codes = healthCodes(s, doc, query, known);
  if (!codes.ok())
    return codes.error();
  const HealthCodes& c = codes.value();
  const bool sync = doc.value("sync_standby", false);
  int code = 503;
  bool check_tags = false;
  switch (check) {
    case Check::kLeader:
      code = c.leader;
      break;
    case Check::kPrimary:
      code = c.primary;
      break;
    case Check::kStandbyLeader:
      code = c.standby_leader;
      break;
    case Check::kReplica:
      code = c.replica;
      check_tags = true;
      break;
    case Check::kReadOnly:
      code = (c.primary == 200 || c.standby_leader == 200) ? 200 : c.replica;
      check_tags = true;
      break;
    case Check::kHealth:
      code = doc.value("state", "") == "running" ? 200 : 503;
      check_tags = true;
      break;
    case Check::kSync:
      code = known && sync ? c.replica : 503;
      check_tags = true;
      break;
    case Check::kAsync:
      code = known && !sync ? c.replica : 503;
      check_tags = true;
      break;
    case Check::kReadOnlySync:
      if (known)
        code = (c.primary == 200 || c.standby_leader == 200) ? 200 : (sync ? c.replica : 503);
      check_tags = true;
      break;
  }
  if (check_tags && code == 200 && !tagsMatch(s, query))
    code = 503;
  return code;
}

HttpReply healthEndpoint(const AgentStatus& s, const std::string& method, Check check,
                         const QueryParams& query, WallTime wall) {
  json doc = postgresStatus(s, wall);
  auto code = healthStatus(s, doc, check, query, wall);
  const bool body = method == "GET";
  if (!code.ok())
    return body ? errorReply(400, code.error().message) : statusOnly(400);
  if (!body)
    return statusOnly(code.value());
  addAgentFields(s, doc);
  return jsonReply(code.value(), doc);
}

int livenessStatus(const AgentStatus& s, MonoTime now) {
  // While paused, a stuck loop harms nobody; Patroni reports alive then too.
  if (s.settings.paused)
    return 200;
  if (s.last_loop == MonoTime{})
    return 503;
  auto threshold = std::chrono::seconds(s.settings.ttl + s.settings.loop_wait);
  return now - s.last_loop < threshold ? 200 : 503;
}

int readinessStatus(const AgentStatus& s, WallTime wall) {
  if (s.is_leader)
    return 200;
  if (s.state == "running")
    return clusterKnown(s, wall) ? 200 : 503;
  return 503;
}

const char* kNoCluster = "cluster state unknown: the dcs has not been read successfully recently";

// Documents read from the cluster view: GET /cluster, /history, /config.
HttpReply clusterDocument(const AgentStatus& s, std::string_view segment, WallTime wall) {
  if (!clusterKnown(s, wall))
    return errorReply(503, kNoCluster);
  const ClusterView& c = *s.cluster;
  if (segment == "cluster")
    return jsonReply(200, clusterAsJson(c));
  if (segment == "history")
    return jsonReply(200, c.history.is_array() ? c.history : json::array());
  if (!c.config)
    return errorReply(502, "the cluster has no config key");
  return jsonReply(200, *c.config);
}

HttpReply actionEndpoint(const std::string& method, const std::string& path,
                         std::string_view segment) {
  const bool deletable = segment == "switchover" || segment == "restart";
  if (method == "POST" || (deletable && method == "DELETE"))
    return errorReply(501,
                      fmt::format("{} {} is not implemented yet by pgfleet-agent", method, path));
  return methodNotAllowed(method, path, deletable ? "POST, DELETE" : "POST");
}

HttpReply route(const AgentStatus& s, const std::string& method, const std::string& path,
                const QueryParams& query, MonoTime now, WallTime wall) {
  std::string_view rest(path);
  while (!rest.empty() && rest.front() == '/')
    rest.remove_prefix(1);
  const std::string_view segment = rest.substr(0, rest.find('/'));
  const bool get = method == "GET" || method == "HEAD";

  if (auto check = healthCheckFor(segment)) {
    if (!isOneOf(method, {"GET", "HEAD", "OPTIONS"}))
      return methodNotAllowed(method, path, "GET, HEAD, OPTIONS");
    return healthEndpoint(s, method, *check, query, wall);
  }
  if (segment == "switchover" || segment == "failover" || segment == "restart" ||
      segment == "reload" || segment == "reinitialize")
    return actionEndpoint(method, path, segment);
  if (segment == "config" && (method == "PATCH" || method == "PUT"))
    return errorReply(501,
                      fmt::format("{} {} is not implemented yet by pgfleet-agent", method, path));
  if (segment == "failsafe" && method == "POST")
    return errorReply(501, fmt::format("POST {} is not served by this server", path));

  HttpReply reply;
  if (segment == "patroni")
    reply = jsonReply(200, statusDocument(s, wall));
  else if (segment == "cluster" || segment == "history" || segment == "config")
    reply = clusterDocument(s, segment, wall);
  else if (segment == "failsafe")
    reply = s.settings.failsafe_mode ? jsonReply(200, json(s.failsafe_members))
                                     : errorReply(502, "failsafe_mode is not enabled");
  else if (segment == "metrics")
    reply = HttpReply{200, kMetricsContentType, renderMetrics(s, now, wall), {}};
  else if (segment == "liveness")
    reply = statusOnly(livenessStatus(s, now));
  else if (segment == "readiness")
    reply = statusOnly(readinessStatus(s, wall));
  else
    return errorReply(404, fmt::format("not found: {}", path));

  if (!get)
    return methodNotAllowed(method, path,
                            segment == "config"     ? "GET, HEAD, PATCH, PUT"
                            : segment == "failsafe" ? "GET, HEAD, POST"
                                                    : "GET, HEAD");
  if (method == "HEAD") {
    reply.body.clear();
    reply.content_type.clear();
  }
  return reply;
}

}  // namespace

Result<int64_t> parseLagBytes(const std::string& text) {
  auto bad = [&] {
    return makeError(
        ErrorCode::kInvalidArgument,
        fmt::format("invalid lag \"{}\": expected bytes or a size such as 16MB", text));
  };
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
    ++i;
  size_t start = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  std::string number = text.substr(start, i - start);
  if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1)
    return bad();
  std::string unit;
  for (; i < text.size(); ++i) {
    if (!std::isspace(static_cast<unsigned char>(text[i])))
      unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(text[i]))));
  }
  double multiplier = 1;
  if (unit == "kb")
    multiplier = 1024.0;
  else if (unit == "mb")
    multiplier = 1024.0 * 1024;
  else if (unit == "gb")
    multiplier = 1024.0 * 1024 * 1024;
  else if (unit == "tb")
    multiplier = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "b")
    return bad();
  double bytes = std::strtod(number.c_str(), nullptr) * multiplier;
  if (!std::isfinite(bytes) || bytes >= 9.0e18)
    return bad();
  return static_cast<int64_t>(std::llround(bytes));
}

HttpReply handleRequest(const AgentStatus& s, const std::string& method, const std::string& path,
                        const QueryParams& query, MonoTime now, WallTime wall) {
  try {
    return route(s, method, path, query, now, wall);
  } catch (const std::exception& e) {
    return errorReply(500,
                      fmt::format("internal error answering {} {}: {}", method, path, e.what()));
  }
}

}  // namespace pgf
