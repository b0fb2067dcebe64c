// GET /metrics: Prometheus text exposition format 0.0.4, rendered from an AgentStatus snapshot.
//
// Two families, each with HELP and TYPE lines:
//   patroni_*  the series Patroni 3.0.2 exports, same names, labels ({scope}) and meaning, so that
//              existing dashboards and alerts keep working;
//   pgfleet_*  labelled {scope, member}: role (one series per role, 1 for the current one),
//              is_leader, timeline, WAL position, replication lag of every other member in bytes
//              (computed from the cluster view: the leader's last optime minus the member's
//              position), lease renewals by result, promotions, demotions, PostgreSQL restarts,
//              HA loops, DCS reachability and the age of the last loop.
// Rendering never fails and never touches the DCS or PostgreSQL.
#pragma once

#include <string>

#include "agent/status.h"
#include "common/clock.h"

namespace pgf {

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string renderMetrics(const AgentStatus& s, MonoTime now, WallTime wall);

// Escapes a label value: backslash, double quote and newline.
std::string escapeLabelValue(const std::string& value);

}  // namespace pgf
