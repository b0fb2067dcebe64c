#include "agent/cluster_json.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

namespace pgf {
namespace {

bool truthy(const nlohmann::json& v) {
  if (v.is_boolean())
    return v.get<bool>();
  if (v.is_number_integer())
    return v.get<int64_t>() != 0;
  if (v.is_string()) {
    auto s = v.get<std::string>();
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s == "on" || s == "true" || s == "yes" || s == "1";
  }
  return false;
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

nlohmann::json memberJson(const ClusterView& cluster, const MemberInfo& m,
                          const std::string& leader_name, int64_t cluster_lsn) {
  std::string role = "replica";
  if (m.name == leader_name)
    role = "leader";
  else if (isSyncStandby(cluster, m.name))
    role = "sync_standby";
  const auto& data = m.raw.is_object() ? m.raw : nlohmann::json::object();
  nlohmann::json j = {{"name", m.name}, {"role", role}};
  j["state"] = data.contains("state") ? data["state"] : nlohmann::json("");
  // Patroni's Member.api_url is None when the key lacks it; keep null rather than inventing one.
  j["api_url"] = data.contains("api_url") ? data["api_url"] : nlohmann::json(nullptr);
  if (auto addr = parseConnUrl(m.conn_url)) {
    j["host"] = addr->host;
    j["port"] = addr->port;
  }
  for (const char* key : {"timeline", "pending_restart", "scheduled_restart", "tags"}) {
    if (data.contains(key))
      j[key] = data[key];
  }
  if (m.name != leader_name) {
    auto lsn = data.find("xlog_location");
    if (lsn == data.end() || !lsn->is_number())
      j["lag"] = "unknown";
    else
      j["lag"] = std::max<int64_t>(0, cluster_lsn - lsn->get<int64_t>());
  }
  return j;
}

}  // namespace

std::optional<ConnAddress> parseConnUrl(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return std::nullopt;
  std::string rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  auto at = rest.rfind('@');
  if (at != std::string::npos)
    rest = rest.substr(at + 1);
  ConnAddress addr;
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos)
      return std::nullopt;
    addr.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':')
      port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    addr.host = rest.substr(0, colon);
    if (colon != std::string::npos)
      port = rest.substr(colon + 1);
  }
  if (addr.host.empty())
    return std::nullopt;
  if (!port.empty()) {
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p <= 0 || p > 65535)
      return std::nullopt;
    addr.port = p;
  }
  return addr;
}

bool configFlag(const ClusterView& cluster, const char* key) {
  if (!cluster.config || !cluster.config->is_object())
    return false;
  auto it = cluster.config->find(key);
  return it != cluster.config->end() && truthy(*it);
}

bool isSyncStandby(const ClusterView& cluster, const std::string& name) {
  if (!cluster.sync || !cluster.sync->is_object())
    return false;
  auto it = cluster.sync->find("sync_standby");
  if (it == cluster.sync->end() || !it->is_string())
    return false;
  std::string list = it->get<std::string>() + ",";
  size_t start = 0;
  for (size_t comma = list.find(','); comma != std::string::npos;
       start = comma + 1, comma = list.find(',', start)) {
    if (trim(list.substr(start, comma - start)) == name)
      return true;
  }
  return false;
}

nlohmann::json clusterAsJson(const ClusterView& cluster) {
  const std::string leader_name = cluster.leader ? cluster.leader->name : std::string();
  const int64_t cluster_lsn = cluster.leaderOptime();
  auto members = nlohmann::json::array();
  std::vector<const MemberInfo*> sorted;
  for (const auto& m : cluster.members)
    sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(),
            [](const MemberInfo* a, const MemberInfo* b) { return a->name < b->name; });
  for (const MemberInfo* m : sorted)
    members.push_back(memberJson(cluster, *m, leader_name, cluster_lsn));

  nlohmann::json out = {{"members", members}};
  if (configFlag(cluster, "pause"))
    out["pause"] = true;
  if (cluster.failover && cluster.failover->is_object()) {
    const auto& f = *cluster.failover;
    auto at = f.find("scheduled_at");
    if (at != f.end() && at->is_string() && !at->get<std::string>().empty()) {
      nlohmann::json sw = {{"at", *at}};
      if (f.contains("leader") && f["leader"].is_string() &&
          !f["leader"].get<std::string>().empty())
        sw["from"] = f["leader"];
      if (f.contains("member") && f["member"].is_string() &&
          !f["member"].get<std::string>().empty())
        sw["to"] = f["member"];
      out["scheduled_switchover"] = sw;
    }
  }
  return out;
}

}  // namespace pgf
