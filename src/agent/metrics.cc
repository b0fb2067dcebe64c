#include "agent/metrics.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include <fmt/format.h>

#include "agent/status_document.h"

namespace pgf {
namespace {

// Collects one metric family at a time: HELP and TYPE once, then its samples.
class Exposition {
 public:
  void family(const std::string& name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  template <typename V>
  void sample(const std::string& name, const std::string& labels, V value) {
    out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

int64_t intField(const nlohmann::json& doc, const char* object, const char* key) {
  auto o = doc.find(object);
  if (o == doc.end() || !o->is_object())
    return 0;
  auto v = o->find(key);
  return v != o->end() && v->is_number_integer() ? v->get<int64_t>() : 0;
}

double epochSeconds(WallTime t) {
  if (t == WallTime{})
    return 0;
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// "020002" for "2.0.2": each part zero-padded to two digits, as Patroni renders its version.
std::string paddedSemver(const std::string& version) {
  std::string out, part;
  for (char c : version + ".") {
    if (c == '.') {
      out += part.size() < 2 ? std::string(2 - part.size(), '0') + part : part;
      part.clear();
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      part.push_back(c);
    }
  }
  return out.empty() ? "0" : out;
}

void patroniFamily(const AgentStatus& s, const nlohmann::json& pg, Exposition& e) {
  const std::string l = fmt::format("scope=\"{}\"", escapeLabelValue(s.scope));
  const std::string role = pg.value("role", "");
  const bool primary = role == "master" || role == "primary";
  auto gauge = [&](const char* name, const char* help, auto value) {
    e.family(name, "gauge", help);
    e.sample(name, l, value);
  };
  auto counter = [&](const char* name, const char* help, auto value) {
    e.family(name, "counter", help);
    e.sample(name, l, value);
  };
  gauge("patroni_version", "Patroni semver without periods.", paddedSemver(s.version));
  gauge("patroni_postgres_running", "Value is 1 if Postgres is running, 0 otherwise.",
        pg.value("state", "") == "running" ? 1 : 0);
  gauge("patroni_postmaster_start_time", "Epoch seconds since Postgres started.",
        pg.contains("postmaster_start_time") && !pg["postmaster_start_time"].is_null()
            ? epochSeconds(s.postmaster_start_time)
            : 0.0);
  gauge("patroni_master", "Value is 1 if this node is the leader, 0 otherwise.", primary ? 1 : 0);
  gauge("patroni_primary", "Value is 1 if this node is the leader, 0 otherwise.", primary ? 1 : 0);
  counter("patroni_xlog_location",
          "Current location of the Postgres transaction log, 0 if this node is not the leader.",
          intField(pg, "xlog", "location"));
  gauge("patroni_standby_leader", "Value is 1 if this node is the standby_leader, 0 otherwise.", 0);
  gauge("patroni_replica", "Value is 1 if this node is a replica, 0 otherwise.",
        role == "replica" ? 1 : 0);
  gauge("patroni_sync_standby", "Value is 1 if this node is a sync standby replica, 0 otherwise.",
        pg.value("sync_standby", false) ? 1 : 0);
  counter("patroni_xlog_received_location",
          "Current location of the received Postgres transaction log, 0 if this node is not a "
          "replica.",
          intField(pg, "xlog", "received_location"));
  counter("patroni_xlog_replayed_location",
          "Current location of the replayed Postgres transaction log, 0 if this node is not a "
          "replica.",
          intField(pg, "xlog", "replayed_location"));
  gauge("patroni_xlog_replayed_timestamp",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.", 0);
  gauge("patroni_xlog_paused", "Value is 1 if the Postgres xlog is paused, 0 otherwise.", 0);
  gauge("patroni_postgres_server_version", "Version of Postgres (if running), 0 otherwise.",
        pg.value("server_version", 0));
  gauge("patroni_cluster_unlocked", "Value is 1 if the cluster is unlocked, 0 if locked.",
        pg.value("cluster_unlocked", false) ? 1 : 0);
  gauge("patroni_failsafe_mode_is_active",
        "Value is 1 if failsafe mode is active (primary without the DCS), 0 otherwise.",
        s.failsafe_active ? 1 : 0);
  counter("patroni_postgres_timeline", "Postgres timeline of this node (if running), 0 otherwise.",
          pg.value("timeline", 0));
  gauge("patroni_dcs_last_seen",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        pg.value("dcs_last_seen", int64_t{0}));
  gauge("patroni_pending_restart", "Value is 1 if the node needs a restart, 0 otherwise.",
        s.pg.pending_restart ? 1 : 0);
  gauge("patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.",
        s.settings.paused ? 1 : 0);
}

std::string roleLabel(const std::string& role) {
  return role == "master" ? "primary" : role;
}

void pgfleetFamily(const AgentStatus& s, MonoTime now, WallTime wall, Exposition& e) {
  const std::string l = fmt::format("scope=\"{}\",member=\"{}\"", escapeLabelValue(s.scope),
                                    escapeLabelValue(s.name));
  e.family("pgfleet_role", "gauge",
           "Role of this member: 1 for its current role, 0 for the others.");
  std::vector<std::string> roles = {"primary", "replica", "uninitialized"};
  const std::string current = roleLabel(s.role);
  if (!current.empty() && std::find(roles.begin(), roles.end(), current) == roles.end())
    roles.push_back(current);
  for (const auto& r : roles)
    e.sample("pgfleet_role", fmt::format("{},role=\"{}\"", l, escapeLabelValue(r)),
             r == current ? 1 : 0);

  auto gauge = [&](const char* name, const char* help, auto value) {
    e.family(name, "gauge", help);
    e.sample(name, l, value);
  };
  auto counter = [&](const char* name, const char* help, int64_t value) {
    e.family(name, "counter", help);
    e.sample(name, l, value);
  };
  gauge("pgfleet_is_leader", "1 while this member holds the leader lease.", s.is_leader ? 1 : 0);
  gauge("pgfleet_postgres_running", "1 while PostgreSQL runs and answers queries.",
        s.pg.running && s.pg.accepting ? 1 : 0);
  gauge("pgfleet_timeline", "PostgreSQL timeline of this member, 0 when unknown.", s.pg.timeline);
  gauge("pgfleet_wal_position_bytes",
        "WAL position of this member in bytes (primary: current; replica: received or replayed).",
        s.pg.wal_position);
  gauge("pgfleet_dcs_reachable", "1 when the last DCS request of the HA loop succeeded.",
        s.dcs_reachable ? 1 : 0);
  gauge("pgfleet_ttl_seconds", "The leader lease ttl this member uses now (config key ttl).",
        s.settings.ttl);
  gauge("pgfleet_loop_wait_seconds", "The loop_wait this member uses now.", s.settings.loop_wait);
  gauge("pgfleet_retry_timeout_seconds", "The retry_timeout this member uses now.",
        s.settings.retry_timeout);

  e.family("pgfleet_replication_lag_bytes", "gauge",
           "Bytes each other member is behind the leader's last published WAL position, from the "
           "cluster view.");
  if (clusterKnown(s, wall)) {
    const int64_t optime = s.cluster->leaderOptime();
    const std::string leader = s.cluster->leader ? s.cluster->leader->name : "";
    for (const auto& m : s.cluster->members) {
      if (m.name == leader || !m.raw.is_object() || !m.raw.contains("xlog_location"))
        continue;
      e.sample("pgfleet_replication_lag_bytes",
               fmt::format("scope=\"{}\",member=\"{}\"", escapeLabelValue(s.scope),
                           escapeLabelValue(m.name)),
               std::max<int64_t>(0, optime - m.xlog_location));
    }
  }

  const auto& c = s.counters;
  e.family("pgfleet_lease_renewals_total", "counter", "Leader lease renewals, by result.");
  e.sample("pgfleet_lease_renewals_total", l + ",result=\"ok\"", c.lease_renewals);
  e.sample("pgfleet_lease_renewals_total", l + ",result=\"failed\"", c.lease_renewal_failures);
  counter("pgfleet_promotions_total", "Times this member became primary.", c.promotions);
  counter("pgfleet_demotions_total", "Times this member stopped being primary.", c.demotions);
  counter("pgfleet_postgres_restarts_total", "Times a crashed PostgreSQL was started again.",
          c.postgres_restarts);
  counter("pgfleet_loops_total", "HA loop cycles run.", c.loops);
  e.family("pgfleet_last_loop_age_seconds", "gauge",
           "Seconds since the HA loop last completed a cycle (absent before the first).");
  if (s.last_loop != MonoTime{})
    e.sample("pgfleet_last_loop_age_seconds", l,
             std::chrono::duration<double>(now - s.last_loop).count());
}

}  // namespace

std::string escapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

std::string renderMetrics(const AgentStatus& s, MonoTime now, WallTime wall) {
  Exposition e;
  patroniFamily(s, postgresStatus(s, wall), e);
  pgfleetFamily(s, now, wall, e);
  return e.take();
}

}  // namespace pgf
