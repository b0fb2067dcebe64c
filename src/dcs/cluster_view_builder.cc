#include "dcs/cluster_view_builder.h"

#include <algorithm>

namespace pgf {
namespace {

std::optional<nlohmann::json> parseJson(const std::string& value) {
  auto j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return std::nullopt;
  return j;
}

}  // namespace

std::vector<std::string_view> watchedKeys() {
  return {dcs_keys::kInitialize, dcs_keys::kConfig, dcs_keys::kLeader, dcs_keys::kFailover,
          dcs_keys::kSync};
}

std::string clusterPrefix(std::string_view ns, std::string_view scope) {
  std::string joined = "/" + std::string(ns) + "/" + std::string(scope) + "/";
  std::string out;
  out.reserve(joined.size());
  for (char c : joined) {
    if (c == '/' && !out.empty() && out.back() == '/')
      continue;
    out.push_back(c);
  }
  return out;
}

ClusterView buildClusterView(const std::vector<DcsKeyValue>& kvs, int64_t revision) {
  ClusterView view;
  view.revision = revision;
  for (const auto& kv : kvs) {
    const std::string_view key = kv.key;
    if (key == dcs_keys::kInitialize) {
      view.initialize = kv.value;
    } else if (key == dcs_keys::kConfig) {
      // The revision is kept even for a malformed value, so setConfig can still replace it.
      view.config_revision = kv.mod_revision;
      auto j = parseJson(kv.value);
      if (j && j->is_object())
        view.config = std::move(*j);
    } else if (key == dcs_keys::kLeader) {
      view.leader = LeaderInfo{kv.value, kv.mod_revision, kv.lease};
    } else if (key.starts_with(dcs_keys::kMembers)) {
      std::string name(key.substr(dcs_keys::kMembers.size()));
      // Deeper keys (members/a/b) are not members; Patroni never writes them.
      if (!name.empty() && name.find('/') == std::string::npos)
        view.members.push_back(parseMember(name, kv.value, kv.mod_revision));
    } else if (key == dcs_keys::kFailover) {
      auto j = parseJson(kv.value);
      if (j && j->is_object())
        view.failover = std::move(*j);
    } else if (key == dcs_keys::kSync) {
      auto j = parseJson(kv.value);
      if (j && j->is_object())
        view.sync = std::move(*j);
    } else if (key == dcs_keys::kHistory) {
      auto j = parseJson(kv.value);
      if (j && j->is_array())
        view.history = std::move(*j);
    } else if (key == dcs_keys::kStatus) {
      auto j = parseJson(kv.value);
      if (j && j->is_object())
        view.status = std::move(*j);
    } else if (key == dcs_keys::kFailsafe) {
      auto j = parseJson(kv.value);
      if (j && j->is_object())
        view.failsafe = std::move(*j);
    }
  }
  std::sort(view.members.begin(), view.members.end(),
            [](const MemberInfo& a, const MemberInfo& b) { return a.name < b.name; });
  return view;
}

}  // namespace pgf
