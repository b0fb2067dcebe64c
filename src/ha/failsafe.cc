#include "ha/failsafe.h"

#include <algorithm>

#include <fmt/format.h>

namespace pgf {

std::map<std::string, std::string> parseFailsafeMembers(const nlohmann::json& value) {
  std::map<std::string, std::string> out;
  if (!value.is_object())
    return out;
  for (const auto& [name, url] : value.items())
    if (!name.empty() && url.is_string())
      out[name] = url.get<std::string>();
  return out;
}

nlohmann::json failsafeMembersJson(const ClusterView& cluster, const std::string& self,
                                   const std::string& self_api_url) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& m : cluster.members)
    if (!m.api_url.empty())
      out[m.name] = m.api_url;
  out[self] = self_api_url;
  return out;
}

nlohmann::json failsafeHeartbeatJson(const FailsafeHeartbeat& h) {
  nlohmann::json j = {{"name", h.name}, {"conn_url", h.conn_url}, {"api_url", h.api_url}};
  if (h.ttl > 0)
    j["ttl"] = h.ttl;
  return j;
}

std::optional<FailsafeHeartbeat> parseFailsafeHeartbeat(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return std::nullopt;
  FailsafeHeartbeat h;
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  h.name = text("name");
  if (h.name.empty())
    return std::nullopt;
  h.conn_url = text("conn_url");
  h.api_url = text("api_url");
  if (auto it = j.find("ttl"); it != j.end() && it->is_number_integer())
    h.ttl = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(it->get<int64_t>(), 86400)));
  return h;
}

std::optional<std::string> failsafeRefusal(const std::map<std::string, std::string>& members,
                                           const std::string& self,
                                           const std::vector<FailsafeAck>& acks) {
  if (members.empty())
    return std::string("the failsafe key lists no members");
  if (members.find(self) == members.end())
    return fmt::format("{} is not in the failsafe key", self);
  std::string refused;
  for (const auto& [name, url] : members) {
    if (name == self)
      continue;
    const FailsafeAck* ack = nullptr;
    for (const auto& a : acks)
      if (a.name == name)
        ack = &a;
    if (ack != nullptr && ack->accepted)
      continue;
    refused += fmt::format("{}{} ({})", refused.empty() ? "" : ", ", name,
                           ack == nullptr ? std::string("not asked") : ack->detail);
  }
  if (refused.empty())
    return std::nullopt;
  return "not every member accepted the failsafe heartbeat: " + refused;
}

}  // namespace pgf
