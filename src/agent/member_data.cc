#include "agent/member_data.h"

namespace pgf {

std::string memberRole(const LocalPostgres& pg) {
  if (pg.data_dir_empty)
    return "uninitialized";
  if (pg.running && pg.accepting && !pg.in_recovery)
    return "master";
  return "replica";
}

std::string memberState(const LocalPostgres& pg, const std::string& activity) {
  if (!activity.empty())
    return activity;
  if (pg.running)
    return pg.accepting ? "running" : "starting";
  if (pg.data_dir_empty)
    return "stopped";
  if (pg.control_state == ControlState::kInProduction ||
      pg.control_state == ControlState::kInArchiveRecovery)
    return "crashed";
  return "stopped";
}

nlohmann::json tagsToJson(const MemberTags& tags) {
  nlohmann::json t = nlohmann::json::object();
  if (tags.nofailover)
    t["nofailover"] = true;
  if (tags.noloadbalance)
    t["noloadbalance"] = true;
  if (tags.clonefrom)
    t["clonefrom"] = true;
  if (tags.nosync)
    t["nosync"] = true;
  if (!tags.replicatefrom.empty())
    t["replicatefrom"] = tags.replicatefrom;
  return t;
}

nlohmann::json buildMemberData(const MemberIdentity& id, const LocalPostgres& pg,
                               const std::string& activity) {
  nlohmann::json j = {
      {"conn_url", id.conn_url}, {"api_url", id.api_url}, {"state", memberState(pg, activity)},
      {"role", memberRole(pg)},  {"version", id.version},
  };
  if (pg.running && pg.accepting) {
    j["xlog_location"] = pg.wal_position;
    if (pg.timeline > 0)
      j["timeline"] = pg.timeline;
  }
  if (pg.in_recovery && pg.running)
    j["replication_state"] = pg.streaming ? "streaming" : "in archive recovery";
  if (pg.pending_restart)
    j["pending_restart"] = true;
  auto tags = tagsToJson(id.tags);
  if (!tags.empty())
    j["tags"] = tags;
  return j;
}

}  // namespace pgf
