#include "ha/switchover.h"

namespace pgf {
namespace {

std::string stringField(const nlohmann::json& value, const char* key) {
  auto it = value.find(key);
  return it != value.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::optional<SwitchoverRequest> parseSwitchoverRequest(const nlohmann::json& value) {
  if (!value.is_object())
    return std::nullopt;
  SwitchoverRequest r;
  r.leader = stringField(value, "leader");
  r.member = stringField(value, "member");
  if (r.leader.empty() && r.member.empty())
    return std::nullopt;
  r.scheduled_text = stringField(value, "scheduled_at");
  if (!r.scheduled_text.empty())
    r.scheduled_at = parseIsoTime(r.scheduled_text);
  return r;
}

nlohmann::json switchoverRequestJson(const SwitchoverRequest& request) {
  nlohmann::json j = nlohmann::json::object();
  if (!request.leader.empty())
    j["leader"] = request.leader;
  if (!request.member.empty())
    j["member"] = request.member;
  if (request.scheduled_at)
    j["scheduled_at"] = request.scheduled_text.empty() ? formatIsoTime(*request.scheduled_at)
                                                       : request.scheduled_text;
  return j;
}

}  // namespace pgf
