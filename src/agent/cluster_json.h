// The cluster document: Patroni 3.0.2's cluster_as_json, built from a ClusterView. It is both the
// body of GET /cluster and what `pgfleetctl list` formats, so the two always agree (as the REST API
// and patronictl agree in Patroni).
//
//   {"members": [{"name", "role": "leader"|"sync_standby"|"replica", "state", "api_url", "host",
//                 "port", "timeline", "pending_restart", "scheduled_restart", "tags",
//                 "lag": <bytes behind the leader's last optime> | "unknown"}, ...],   (by name)
//    "pause": true,                                             (only when paused)
//    "scheduled_switchover": {"at", "from", "to"}}              (only when one is scheduled)
// The leader has no "lag". Optional member fields appear only when the member's key has them.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "dcs/cluster_view.h"

namespace pgf {

struct ConnAddress {
  std::string host;
  int port = 5432;
};

// Host and port of a libpq URL ("postgres://user:pw@host:port/db?..."); the port defaults to
// 5432. Empty when the URL has no host.
std::optional<ConnAddress> parseConnUrl(const std::string& url);

// Whether the DCS config enables a mode ("pause", "synchronous_mode"): a JSON boolean or one of
// Patroni's boolean words.
bool configFlag(const ClusterView& cluster, const char* key);

// Whether `name` is listed in the "sync" key's sync_standby (a comma-separated list).
bool isSyncStandby(const ClusterView& cluster, const std::string& name);

nlohmann::json clusterAsJson(const ClusterView& cluster);

}  // namespace pgf
