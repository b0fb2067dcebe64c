#include "ha/sync.h"

#include <algorithm>

#include <fmt/format.h>

namespace pgf {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

bool SyncState::matches(const std::string& name) const {
  return name == leader || contains(standbys, name);
}

std::optional<SyncState> parseSyncState(const nlohmann::json& value) {
  if (!value.is_object())
    return std::nullopt;
  auto leader = value.find("leader");
  if (leader == value.end() || !leader->is_string() || leader->get<std::string>().empty())
    return std::nullopt;
  SyncState s;
  s.leader = leader->get<std::string>();
  auto list = value.find("sync_standby");
  if (list != value.end() && list->is_string()) {
    std::string text = list->get<std::string>() + ",";
    size_t start = 0;
    for (size_t comma = text.find(','); comma != std::string::npos;
         start = comma + 1, comma = text.find(',', start)) {
      std::string name = text.substr(start, comma - start);
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t") + 1);
      if (!name.empty())
        s.standbys.push_back(name);
    }
  }
  s.standbys = sorted(std::move(s.standbys));
  return s;
}

nlohmann::json syncStateJson(const SyncState& state) {
  nlohmann::json j = {{"leader", state.leader}, {"sync_standby", nullptr}};
  if (!state.standbys.empty()) {
    std::string list;
    for (const auto& s : state.standbys)
      list += (list.empty() ? "" : ",") + s;
    j["sync_standby"] = list;
  }
  return j;
}

std::string synchronousStandbyNames(const std::vector<std::string>& standbys, bool strict) {
  if (standbys.empty())
    return strict ? "*" : "";
  std::string names;
  for (const auto& s : standbys) {
    std::string quoted;
    for (char c : s)
      quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", quoted);
  }
  return fmt::format("FIRST {} ({})", standbys.size(), names);
}

SyncPlan planSync(const SyncInput& in) {
  SyncPlan plan;
  std::optional<SyncState> current;
  if (in.cluster && in.cluster->sync)
    current = parseSyncState(*in.cluster->sync);
  const bool ours = current && current->leader == in.self;
  SyncState key = ours ? *current : SyncState{in.self, {}};

  // Candidates: streaming standbys that are running members not tagged nosync; the ones the key
  // already names first (no needless swaps), then the furthest ahead.
  std::vector<const ReplicaConnection*> eligible;
  for (const auto& r : in.replication) {
    if (r.name == in.self || r.state != "streaming")
      continue;
    const MemberInfo* m = in.cluster ? in.cluster->member(r.name) : nullptr;
    if (m == nullptr || m->tags.nosync || m->state != "running")
      continue;
    eligible.push_back(&r);
  }
  std::sort(eligible.begin(), eligible.end(),
            [&](const ReplicaConnection* a, const ReplicaConnection* b) {
              bool ka = contains(key.standbys, a->name), kb = contains(key.standbys, b->name);
              if (ka != kb)
                return ka;
              if (a->flush_lsn != b->flush_lsn)
                return a->flush_lsn > b->flush_lsn;
              return a->name < b->name;
            });
  for (const auto* r : eligible)
    if (static_cast<int>(plan.desired.size()) < std::max(1, in.node_count))
      plan.desired.push_back(r->name);
  plan.desired = sorted(plan.desired);

  // 1. Standbys that no longer count leave the key first (and a key that names another leader is
  // replaced by ours, naming nobody yet).
  std::vector<std::string> kept;
  for (const auto& s : key.standbys)
    if (contains(plan.desired, s))
      kept.push_back(s);
  if (!ours || kept != key.standbys) {
    key.standbys = kept;
    plan.write_before = key;
  }

  // 2. Then synchronous_standby_names.
  const std::string target = synchronousStandbyNames(plan.desired, in.strict);
  if (target != in.applied_ssn)
    plan.ssn = target;

  // 3. A desired standby enters the key once it has been synchronous and has flushed what the
  // primary had when it was first seen so. Rows describe the setting in effect, so readiness is
  // only judged while the setting does not change.
  std::vector<std::string> ready;
  for (const auto& name : plan.desired) {
    if (contains(key.standbys, name) || plan.ssn)
      continue;
    const ReplicaConnection* row = nullptr;
    for (const auto& r : in.replication)
      if (r.name == name)
        row = &r;
    if (row == nullptr || row->sync_state != "sync")
      continue;
    auto seen = in.seen_sync_at.find(name);
    if (seen == in.seen_sync_at.end()) {
      plan.seen_sync_at[name] = in.primary_lsn;
      continue;
    }
    plan.seen_sync_at[name] = seen->second;
    if (row->flush_lsn >= seen->second)
      ready.push_back(name);
  }
  if (!ready.empty()) {
    SyncState after = key;
    after.standbys.insert(after.standbys.end(), ready.begin(), ready.end());
    after.standbys = sorted(std::move(after.standbys));
    plan.write_after = after;
  }
  return plan;
}

}  // namespace pgf
