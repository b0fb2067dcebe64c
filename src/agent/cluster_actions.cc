#include "agent/cluster_actions.h"

#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/dynamic_config.h"
#include "ha/candidate.h"
#include "ha/switchover.h"
#include "ha/sync.h"

namespace pgf {
namespace {

using nlohmann::json;

HttpReply text(int status, std::string body) {
  return HttpReply{status, "text/plain; charset=utf-8", std::move(body), {}};
}

HttpReply jsonReply(int status, const json& body) {
  return HttpReply{
      status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

std::string title(const char* action) {
  std::string t(action);
  t[0] = static_cast<char>(t[0] - 'a' + 'A');
  return t;
}

bool paused(const ClusterView& cluster) {
  if (!cluster.config || !cluster.config->is_object())
    return false;
  auto it = cluster.config->find("pause");
  return it != cluster.config->end() && it->is_boolean() && it->get<bool>();
}

// The request's string field, or an error when it is present with another type.
Result<std::string> stringField(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return std::string();
  if (!it->is_string())
    return makeError(ErrorCode::kInvalidArgument, fmt::format("\"{}\" must be a string", key));
  return it->get<std::string>();
}

int64_t leaderPosition(const ClusterView& cluster) {
  return lastKnownLeaderPosition(cluster);
}

}  // namespace

ClusterActions::ClusterActions(Dcs& dcs, PeerFetcher peers, StatusProvider status,
                               const Clock& clock, Millis poll_interval, Millis wait)
    : dcs_(dcs),
      peers_(std::move(peers)),
      status_(std::move(status)),
      clock_(clock),
      poll_interval_(poll_interval),
      wait_(wait) {}

HttpReply ClusterActions::switchover(const std::string& body) {
  return requestHandover(body, false);
}

HttpReply ClusterActions::failover(const std::string& body) {
  return requestHandover(body, true);
}

HttpReply ClusterActions::requestHandover(const std::string& body, bool failover) {
  const char* action = failover ? "failover" : "switchover";
  json request = json::parse(body, nullptr, false);
  if (!request.is_object())
    return text(400, "the request body must be a JSON object");
  auto leader = stringField(request, "leader");
  auto candidate = stringField(request, "candidate");
  auto member = stringField(request, "member");
  auto scheduled = stringField(request, "scheduled_at");
  for (const auto* field : {&leader, &candidate, &member, &scheduled})
    if (!field->ok())
      return text(400, field->error().message);
  std::string wanted = !candidate->empty() ? *candidate : *member;
  spdlog::info("received {} request with leader={} candidate={} scheduled_at={}", action, *leader,
               wanted, *scheduled);

  if (failover && wanted.empty())
    return text(400, "Failover could be performed only to a specific candidate");
  if (!failover && leader->empty())
    return text(400, "Switchover could be performed only from a specific leader");

  auto loaded = dcs_.load();
  if (!loaded.ok())
    return text(503,
                fmt::format("cannot read the cluster from the dcs: {}", loaded.error().message));
  const ClusterView& cluster = *loaded;
  if (paused(cluster))
    return text(409, fmt::format("{} refused: the cluster is paused (resume it first)", action));

  SwitchoverRequest req;
  req.leader = *leader;
  req.member = wanted;
  if (!scheduled->empty()) {
    if (leader->empty())
      return text(400, fmt::format("Scheduled {} is possible only from a specific leader", action));
    WallTime at{};
    if (auto refused = checkSchedule(*scheduled, action, &at))
      return *refused;
    req.scheduled_at = at;
    req.scheduled_text = *scheduled;
  } else {
    // Patroni's is_failover_possible, with pgfleet's reasons.
    const std::string current = cluster.leader ? cluster.leader->name : "";
    if (!leader->empty() && current != *leader)
      return text(412, "leader name does not match");
    if (!wanted.empty() && cluster.member(wanted) == nullptr)
      return text(412, "candidate does not exists");
    if (!wanted.empty() && wanted == current)
      return text(412, fmt::format("{} is not possible: {} is already the leader", action, wanted));
    const HaSettings settings = status_().settings;
    const int64_t position = leaderPosition(cluster);
    // In synchronous mode only the standbys the sync key names hold every acknowledged commit.
    std::optional<SyncState> sync;
    if (settings.synchronous_mode && cluster.sync)
      sync = parseSyncState(*cluster.sync);
    if (sync && !wanted.empty() && !sync->matches(wanted))
      return text(412, "candidate name does not match with sync_standby");
    std::string limits;
    bool possible = false;
    for (const auto& p : peers_(cluster)) {
      if (p.name == current || (!wanted.empty() && p.name != wanted))
        continue;
      auto limit = sync && !sync->matches(p.name)
                       ? std::optional<std::string>("not a synchronous standby")
                       : candidateLimitation(p, position, settings);
      if (!limit) {
        possible = true;
        break;
      }
      limits += fmt::format("{}{}: {}", limits.empty() ? "" : "; ", p.name, *limit);
    }
    if (!possible) {
      if (limits.empty())
        return text(412, fmt::format("{} is not possible: cluster does not have members except "
                                     "leader",
                                     action));
      return text(412, fmt::format("{} is not possible: no good candidates have been found ({})",
                                   action, limits));
    }
  }

  auto written = dcs_.setFailover(switchoverRequestJson(req));
  if (!written.ok())
    return text(
        503, fmt::format("failed to write {} key into DCS: {}", action, written.error().message));
  if (req.scheduled_at)
    return text(202, title(action) + " scheduled");
  return waitForNewLeader(cluster.leader ? cluster.leader->name : "", wanted, failover);
}

HttpReply ClusterActions::waitForNewLeader(const std::string& old_leader,
                                           const std::string& candidate, bool failover) {
  const char* done = failover ? "failed" : "switched";
  const MonoTime deadline = clock_.now() + wait_;
  while (clock_.now() < deadline) {
    std::this_thread::sleep_for(poll_interval_);
    auto loaded = dcs_.load();
    if (!loaded.ok())
      continue;
    const ClusterView& c = *loaded;
    if (c.leader && c.leader->name != old_leader) {
      if (candidate.empty() || candidate == c.leader->name)
        return text(200, fmt::format("Successfully {} over to \"{}\"", done, c.leader->name));
      return text(200, fmt::format("{} over to \"{}\" instead of \"{}\"", title(done),
                                   c.leader->name, candidate));
    }
    if (!c.failover || !parseSwitchoverRequest(*c.failover)) {
      // The leader removed the request without handing over: it refused it. Its reason is in
      // its last decision when that leader is us.
      std::string reason = status_().last_decision.reason;
      std::string why = reason.rfind("switchover refused", 0) == 0 ? ": " + reason : "";
      return text(503,
                  fmt::format("{} failed{}", title(failover ? "failover" : "switchover"), why));
    }
  }
  return text(503, title(failover ? "failover" : "switchover") + " status unknown");
}

HttpReply ClusterActions::cancelSwitchover() {
  auto loaded = dcs_.load();
  if (!loaded.ok())
    return text(503,
                fmt::format("cannot read the cluster from the dcs: {}", loaded.error().message));
  auto req = loaded->failover ? parseSwitchoverRequest(*loaded->failover) : std::nullopt;
  if (!req || req->scheduled_text.empty())
    return text(404, "no switchover is scheduled");
  auto deleted = dcs_.deleteFailover();
  if (!deleted.ok())
    return text(503,
                fmt::format("failed to delete the switchover key: {}", deleted.error().message));
  return text(200, "scheduled switchover deleted");
}

HttpReply ClusterActions::writeConfig(const json& config, const ClusterView& cluster) {
  if (auto valid = validateDynamicConfig(config); !valid.ok())
    return jsonReply(400, json{{"error", valid.error().message}});
  if (cluster.config && *cluster.config == config)
    return jsonReply(200, config);
  auto written = dcs_.setConfig(config, cluster.config ? cluster.config_revision : 0);
  if (!written.ok()) {
    if (written.error().code == ErrorCode::kCompareFailed)
      return jsonReply(409, json{{"error",
                                  "the configuration changed concurrently: read it "
                                  "again and retry"}});
    return jsonReply(
        503,
        json{{"error", fmt::format("writing the configuration: {}", written.error().message)}});
  }
  spdlog::info("cluster configuration changed through the rest api");
  return jsonReply(200, config);
}

HttpReply ClusterActions::changeConfig(const std::string& body, bool patch) {
  json request = json::parse(body, nullptr, false);
  if (!request.is_object())
    return jsonReply(400, json{{"error", "the request body must be a JSON object"}});
  auto loaded = dcs_.load();
  if (!loaded.ok())
    return jsonReply(503, json{{"error", fmt::format("cannot read the cluster from the dcs: {}",
                                                     loaded.error().message)}});
  if (!patch)
    return writeConfig(request, *loaded);
  if (!loaded->config)
    return jsonReply(503, json{{"error", "the cluster has no config key yet"}});
  json merged = *loaded->config;
  merged.merge_patch(request);
  return writeConfig(merged, *loaded);
}

std::optional<HttpReply> ClusterActions::checkSchedule(const std::string& schedule,
                                                       std::string_view action,
                                                       WallTime* at) const {
  auto parsed = parseIsoTime(schedule);
  if (!parsed) {
    if (parseIsoTime(schedule + "Z"))
      return text(400,
                  fmt::format("Timezone information is mandatory for the scheduled {}", action));
    return text(422,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, "
                "e.g. ISO 8601");
  }
  if (*parsed < clock_.wallNow())
    return text(422, fmt::format("Cannot schedule {} in the past", action));
  *at = *parsed;
  return std::nullopt;
}

HttpReply ClusterActions::restart(const std::string& body) {
  json request = json::object();
  if (!body.empty()) {
    request = json::parse(body, nullptr, false);
    if (!request.is_object())
      return text(400, "the request body must be a JSON object");
  }
  for (const auto& [key, value] : request.items()) {
    if (key == "schedule" && !value.is_string())
      return text(400, "\"schedule\" must be a time such as 2030-01-01T02:00:00+00:00");
    if (key != "role" && key != "restart_pending" && key != "schedule")
      return text(400, fmt::format("unknown restart condition \"{}\"", key));
    if (key == "role" && !value.is_string())
      return text(400, "\"role\" must be a string");
    if (key == "restart_pending" && !value.is_boolean())
      return text(400, "\"restart_pending\" must be true or false");
  }
  const AgentStatus s = status_();
  std::string wanted;
  if (auto role = request.find("role"); role != request.end()) {
    wanted = role->get<std::string>();
    if (wanted == "master")
      wanted = "primary";
    if (wanted != "primary" && wanted != "replica")
      return text(400, "\"role\" must be primary or replica");
  }
  if (auto schedule = request.find("schedule"); schedule != request.end()) {
    if (s.settings.paused)
      return text(500, "Can't schedule restart in the paused state");
    if (!node_.schedule_restart)
      return text(501, "scheduled restarts are not served here");
    ScheduledRestart r;
    r.schedule = schedule->get<std::string>();
    if (auto refused = checkSchedule(r.schedule, "restart", &r.at))
      return *refused;
    r.role = wanted;
    r.restart_pending = request.value("restart_pending", false);
    if (!node_.schedule_restart(r))
      return text(409, "Another restart is already scheduled");
    return text(202, "Restart scheduled");
  }
  if (!wanted.empty()) {
    const bool primary = s.pg.running && !s.pg.in_recovery;
    if ((wanted == "primary") != primary)
      return text(412, "restart conditions are not satisfied");
  }
  if (request.value("restart_pending", false) && !s.pg.pending_restart)
    return text(412, "restart conditions are not satisfied");
  auto st = node_.restart(kRestartWait);
  if (!st.ok())
    return text(503, "restart failed: " + st.error().message);
  return text(200, "restarted successfully");
}

HttpReply ClusterActions::cancelRestart() {
  if (node_.cancel_restart && node_.cancel_restart())
    return text(200, "scheduled restart deleted");
  return text(404, "no restarts are scheduled");
}

HttpReply ClusterActions::reload() {
  auto st = node_.reload(Millis(30000));
  if (!st.ok())
    return text(503, "reload failed: " + st.error().message);
  return text(202, "reload scheduled");
}

HttpReply ClusterActions::reinitialize(const std::string& body) {
  if (!body.empty()) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object())
      return text(400, "the request body must be a JSON object");
    for (const auto& [key, value] : request.items())
      if (key != "force" || !value.is_boolean())
        return text(400, "the only field is \"force\", true or false");
  }
  auto cloned = node_.reinitialize(kReinitializeWait);
  if (!cloned.ok())
    return text(503, cloned.error().message);
  return text(200, "reinitialized from " + *cloned);
}

HttpReply ClusterActions::patchConfig(const std::string& body) {
  return changeConfig(body, true);
}

HttpReply ClusterActions::putConfig(const std::string& body) {
  return changeConfig(body, false);
}

}  // namespace pgf
