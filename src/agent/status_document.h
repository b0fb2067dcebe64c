// The node status document of GET /patroni (and of the health endpoints' bodies), built from an
// AgentStatus snapshot exactly as Patroni 3.0.2 shapes it (api.py get_postgresql_status and
// _write_status_response):
//
//   running, primary:  {"state": "running", "postmaster_start_time": "2024-01-01 10:00:00.5+00:00",
//                       "role": "master", "server_version": 150004,
//                       "xlog": {"location": <bytes>}, "timeline": 2,
//                       "replication": [{"usename", "application_name", "client_addr", "state",
//                                        "sync_state", "sync_priority"}, ...], ...}
//   running, replica:  "role": "replica", "xlog": {"received_location", "replayed_location",
//                       "replayed_timestamp": null, "paused": false}, "sync_standby": true (if so)
//   not running:       {"state": "stopped", "role": "replica", ...}
//   always:            "dcs_last_seen" (epoch seconds), "patroni": {"version", "scope"}
//   when true/present: "cluster_unlocked", "tags", "database_system_identifier",
//                      "pending_restart", "pause"
// plus our own "pgfleet": {"name", "is_leader", "dcs_reachable", "last_decision": {"action",
// "reason"}, "counters": {...}}, which Patroni-aware readers ignore.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "agent/status.h"
#include "common/clock.h"

namespace pgf {

// Whether the agent's view of the cluster is current: Patroni treats its cached cluster as valid
// for ttl seconds after the last successful DCS read.
bool clusterKnown(const AgentStatus& s, WallTime wall);

// Patroni's get_postgresql_status(): PostgreSQL's part of the document.
nlohmann::json postgresStatus(const AgentStatus& s, WallTime wall);

// The whole /patroni document: postgresStatus() plus the agent's fields.
nlohmann::json statusDocument(const AgentStatus& s, WallTime wall);

// Adds the agent's fields (tags, patroni, pause, pgfleet, ...) to a postgresStatus() document.
void addAgentFields(const AgentStatus& s, nlohmann::json& doc);

// "2024-01-01 10:00:00.123456+00:00", as Python prints a UTC datetime (no fraction when zero).
std::string formatPythonTime(WallTime t);

}  // namespace pgf
