#include "agent/status_document.h"

#include <charconv>
#include <ctime>

#include <fmt/format.h>

#include "agent/cluster_json.h"
#include "agent/member_data.h"

namespace pgf {
namespace {

bool serverAnswers(const AgentStatus& s) {
  bool active_state = s.state == "running" || s.state == "restarting" || s.state == "starting";
  return active_state && s.pg.running && s.pg.accepting;
}

// A replica reports its own timeline when it knows it; otherwise the leader's, as Patroni's
// replica_cached_timeline() falls back to the leader member's timeline.
int replicaTimeline(const AgentStatus& s) {
  if (s.pg.timeline > 0)
    return s.pg.timeline;
  if (s.cluster) {
    if (const MemberInfo* leader = s.cluster->leaderMember(); leader && leader->timeline > 0)
      return leader->timeline;
  }
  return 0;
}

nlohmann::json replicationJson(const std::vector<WalSender>& senders) {
  auto arr = nlohmann::json::array();
  for (const auto& w : senders) {
    arr.push_back({{"usename", w.usename},
                   {"application_name", w.application_name},
                   {"client_addr", w.client_addr},
                   {"state", w.state},
                   {"sync_state", w.sync_state},
                   {"sync_priority", w.sync_priority}});
  }
  return arr;
}

void addRunningFields(const AgentStatus& s, WallTime wall, nlohmann::json& r) {
  const bool replica = s.pg.in_recovery;
  r["state"] = s.state;
  r["postmaster_start_time"] = s.postmaster_start_time == WallTime{}
                                   ? nlohmann::json(nullptr)
                                   : nlohmann::json(formatPythonTime(s.postmaster_start_time));
  r["role"] = replica ? "replica" : "master";
  int version = 0;
  const auto& v = s.server_version;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), version);
  if (!v.empty() && ec == std::errc() && end == v.data() + v.size())
    r["server_version"] = version;
  if (replica) {
    r["xlog"] = {{"received_location", s.pg.receive_lsn ? s.pg.receive_lsn : s.pg.replay_lsn},
                 {"replayed_location", s.pg.replay_lsn},
                 {"replayed_timestamp", nullptr},
                 {"paused", false}};
    if (clusterKnown(s, wall) && configFlag(*s.cluster, "synchronous_mode") &&
        isSyncStandby(*s.cluster, s.name))
      r["sync_standby"] = true;
    r["timeline"] = replicaTimeline(s);
    // As Patroni 3 says it: whether the WAL receiver streams from its upstream.
    r["replication_state"] = s.pg.streaming ? "streaming" : "in archive recovery";
  } else {
    r["xlog"] = {{"location", s.pg.wal_position}};
    r["timeline"] = s.pg.timeline;
    if (!s.replication.empty())
      r["replication"] = replicationJson(s.replication);
  }
}

}  // namespace

bool clusterKnown(const AgentStatus& s, WallTime wall) {
  if (!s.cluster)
    return false;
  if (s.dcs_reachable)
    return true;
  return s.dcs_last_seen != WallTime{} &&
         wall < s.dcs_last_seen + std::chrono::seconds(s.settings.ttl);
}

nlohmann::json postgresStatus(const AgentStatus& s, WallTime wall) {
  nlohmann::json r = nlohmann::json::object();
  if (serverAnswers(s)) {
    addRunningFields(s, wall, r);
  } else {
    // Patroni could not query PostgreSQL: a "running" server that does not answer is "unknown".
    r["state"] = s.state == "running" ? "unknown" : s.state;
    r["role"] = s.role;
  }
  if (!clusterKnown(s, wall) || !s.cluster->leader)
    r["cluster_unlocked"] = true;
  r["dcs_last_seen"] =
      s.dcs_last_seen == WallTime{}
          ? 0
          : std::chrono::duration_cast<std::chrono::seconds>(s.dcs_last_seen.time_since_epoch())
                .count();
  return r;
}

void addAgentFields(const AgentStatus& s, nlohmann::json& doc) {
  auto tags = tagsToJson(s.tags);
  if (!tags.empty())
    doc["tags"] = tags;
  if (!s.database_system_identifier.empty())
    doc["database_system_identifier"] = s.database_system_identifier;
  if (s.pg.pending_restart)
    doc["pending_restart"] = true;
  doc["patroni"] = {{"version", s.version}, {"scope", s.scope}};
  if (s.settings.paused)
    doc["pause"] = true;
  if (s.failsafe_active)
    doc["failsafe_mode_is_active"] = true;
  if (s.scheduled_restart)
    doc["scheduled_restart"] = {{"schedule", s.scheduled_restart->schedule}};
  const auto& c = s.counters;
  doc["pgfleet"] = {
      {"name", s.name},
      {"is_leader", s.is_leader},
      {"dcs_reachable", s.dcs_reachable},
      {"last_decision",
       {{"action", std::string(actionName(s.last_decision.action))},
        {"reason", s.last_decision.reason}}},
      {"counters",
       {{"loops", c.loops},
        {"lease_renewals", c.lease_renewals},
        {"lease_renewal_failures", c.lease_renewal_failures},
        {"promotions", c.promotions},
        {"demotions", c.demotions},
        {"postgres_restarts", c.postgres_restarts}}},
  };
}

nlohmann::json statusDocument(const AgentStatus& s, WallTime wall) {
  auto doc = postgresStatus(s, wall);
  addAgentFields(s, doc);
  return doc;
}

std::string formatPythonTime(WallTime t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(us / 1000000);
  auto frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  if (frac == 0)
    return fmt::format("{}+00:00", buf);
  return fmt::format("{}.{:06d}+00:00", buf, frac);
}

}  // namespace pgf
