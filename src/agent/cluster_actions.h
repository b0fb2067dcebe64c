// The REST API's cluster-changing endpoints, Patroni-compatible: POST /switchover, POST /failover,
// DELETE /switchover, PATCH /config and PUT /config. They validate the request against a fresh read
// of the DCS, write the "failover" or "config" key and, for an immediate switchover or failover,
// wait until a new leader holds the lease (at most kSwitchoverWait), so every call may block for a
// while: the REST server runs them on worker threads (deferred replies), never on its event thread.
//
// Answers are Patroni's: text/plain sentences for the switchover family ("Successfully switched
// over to "n2"", "Switchover scheduled", "leader name does not match", ...) with its status codes
// (200, 202, 400, 412, 422, 503), and the resulting configuration as JSON for /config. pgfleet
// refuses a switchover or failover while the cluster is paused (409): resume first. See
// docs/rest-api.md.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/status.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/result.h"
#include "dcs/dcs.h"

namespace pgf {

inline constexpr Millis kSwitchoverWait{30000};

class ClusterActions {
 public:
  // Asks the other members' REST APIs for their state (fetchPeerStatuses in production).
  using PeerFetcher = std::function<std::vector<PeerStatus>(const ClusterView&)>;
  using StatusProvider = std::function<AgentStatus()>;

  // `dcs` must be usable from the REST server's worker threads; `clock` outlives this object.
  // An immediate switchover polls the DCS every `poll_interval` for at most `wait`.
  ClusterActions(Dcs& dcs, PeerFetcher peers, StatusProvider status, const Clock& clock,
                 Millis poll_interval = Millis(100), Millis wait = kSwitchoverWait);

  HttpReply switchover(const std::string& body);
  HttpReply failover(const std::string& body);
  HttpReply cancelSwitchover();
  HttpReply patchConfig(const std::string& body);
  HttpReply putConfig(const std::string& body);

  // This member's PostgreSQL, through the agent's HA loop (Agent::restartPostgres and
  // reloadPostgres in production). Without them, the node endpoints answer 501.
  struct NodeControl {
    std::function<Status(Millis)> restart;
    std::function<Status(Millis)> reload;
    // Returns the member it cloned from.
    std::function<Result<std::string>(Millis)> reinitialize;
    // A restart at a later time: false when one is already scheduled (Agent::scheduleRestart).
    std::function<bool(const ScheduledRestart&)> schedule_restart = {};
    // False when none was scheduled.
    std::function<bool()> cancel_restart = {};
  };
  void setNodeControl(NodeControl control) { node_ = std::move(control); }
  bool hasNodeControl() const { return node_.restart && node_.reload && node_.reinitialize; }
  // POST /restart: optional JSON {"role": "primary"|"master"|"replica", "restart_pending": true}
  // conditions (412 when they do not hold); 200 "restarted successfully" once PostgreSQL runs
  // again, 503 "restart failed: ..." otherwise. With "schedule" (ISO 8601 with a time zone): 202
  // "Restart scheduled", the conditions judged at that time; 409 when one is already scheduled,
  // 400/422 for a bad time (Patroni's words), 500 while the cluster is paused.
  HttpReply restart(const std::string& body);
  // DELETE /restart: 200 "scheduled restart deleted", or 404 "no restarts are scheduled".
  HttpReply cancelRestart();
  // POST /reload: rewrites PostgreSQL's configuration and reloads it; 202 "reload scheduled".
  HttpReply reload();
  // POST /reinitialize (optional {"force": bool}): re-clones this replica from the leader; 200
  // "reinitialized from <leader>" when it streams again, 503 "reinitialize refused: ..." on the
  // primary or without a leader, 503 "reinitialize failed: ..." otherwise.
  HttpReply reinitialize(const std::string& body);

 private:
  // Patroni's parse_schedule: nullopt and the time in `at`, or the answer refusing `text`.
  std::optional<HttpReply> checkSchedule(const std::string& text, std::string_view action,
                                         WallTime* at) const;
  HttpReply requestHandover(const std::string& body, bool failover);
  HttpReply waitForNewLeader(const std::string& old_leader, const std::string& candidate,
                             bool failover);
  // PATCH (merge into the current config) or PUT (replace it).
  HttpReply changeConfig(const std::string& body, bool patch);
  HttpReply writeConfig(const nlohmann::json& config, const ClusterView& cluster);

  Dcs& dcs_;
  PeerFetcher peers_;
  StatusProvider status_;
  const Clock& clock_;
  Millis poll_interval_;
  Millis wait_;
  NodeControl node_;
};

// How long POST /restart waits for PostgreSQL to stop and start again.
inline constexpr Millis kRestartWait{110000};
// How long POST /reinitialize waits for the new clone to start.
inline constexpr Millis kReinitializeWait{590000};

}  // namespace pgf
