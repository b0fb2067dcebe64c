// Turns the raw keys of one cluster (as read from any DCS in one consistent read) into a
// ClusterView, and computes the cluster's key prefix the way Patroni does. Shared by every Dcs
// implementation so they all interpret the Patroni key layout identically.
//
// Never throws and never fails: a value that is not valid JSON where JSON is expected is skipped
// (config, failover, sync, status, history) or kept with empty fields (members/<name>).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dcs/cluster_view.h"

namespace pgf {

// One key as read from the store. `key` is relative to the cluster prefix ("leader",
// "members/node1").
struct DcsKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

// The key names under /<namespace>/<scope>/, as Patroni names them.
namespace dcs_keys {
inline constexpr std::string_view kInitialize = "initialize";
inline constexpr std::string_view kConfig = "config";
inline constexpr std::string_view kLeader = "leader";
inline constexpr std::string_view kMembers = "members/";
inline constexpr std::string_view kFailover = "failover";
inline constexpr std::string_view kSync = "sync";
inline constexpr std::string_view kHistory = "history";
inline constexpr std::string_view kStatus = "status";
inline constexpr std::string_view kFailsafe = "failsafe";
}  // namespace dcs_keys

// The keys whose changes wake Dcs::waitForChange (see dcs.h): the ones the HA loop reacts to.
std::vector<std::string_view> watchedKeys();

// "/<namespace>/<scope>/" with repeated slashes collapsed: ("/service", "batman") and
// ("service/", "batman") both give "/service/batman/".
std::string clusterPrefix(std::string_view ns, std::string_view scope);

// Builds the snapshot from the cluster's keys (relative names), read at store revision `revision`.
// Members are sorted by name.
ClusterView buildClusterView(const std::vector<DcsKeyValue>& kvs, int64_t revision);

}  // namespace pgf
