#include "dcs/cluster_view.h"

namespace pgf {
namespace {

bool truthy(const nlohmann::json& j) {
  if (j.is_boolean())
    return j.get<bool>();
  if (j.is_string()) {
    auto s = j.get<std::string>();
    return s == "true" || s == "True" || s == "on" || s == "yes" || s == "1";
  }
  if (j.is_number())
    return j.get<double>() != 0;
  return false;
}

}  // namespace

MemberInfo parseMember(const std::string& name, const std::string& json_value,
                       int64_t mod_revision) {
  MemberInfo m;
  m.name = name;
  m.mod_revision = mod_revision;
  auto j = nlohmann::json::parse(json_value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    return m;
  m.raw = j;
  auto str = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  m.role = str("role");
  m.state = str("state");
  m.conn_url = str("conn_url");
  m.api_url = str("api_url");
  if (j.contains("xlog_location") && j["xlog_location"].is_number_integer())
    m.xlog_location = j["xlog_location"].get<int64_t>();
  if (j.contains("timeline") && j["timeline"].is_number_integer())
    m.timeline = j["timeline"].get<int>();
  if (j.contains("tags") && j["tags"].is_object()) {
    const auto& t = j["tags"];
    m.tags.nofailover = t.contains("nofailover") && truthy(t["nofailover"]);
    m.tags.noloadbalance = t.contains("noloadbalance") && truthy(t["noloadbalance"]);
    m.tags.clonefrom = t.contains("clonefrom") && truthy(t["clonefrom"]);
    m.tags.nosync = t.contains("nosync") && truthy(t["nosync"]);
    if (t.contains("replicatefrom") && t["replicatefrom"].is_string())
      m.tags.replicatefrom = t["replicatefrom"].get<std::string>();
  }
  return m;
}

}  // namespace pgf
