// `pgfleetctl list`: the members of one cluster as `patronictl list` shows them. The rows come from
// clusterAsJson() (agent/cluster_json.h), the same document GET /cluster serves, so the table, the
// REST API and patronictl agree.
//
//   + Cluster: demo (7312345678901234567) ---+---------+----+-----------+
//   | Member | Host           | Role    | State     | TL | Lag in MB |
//   +--------+----------------+---------+-----------+----+-----------+
//   | n1     | 127.0.0.1:5432 | Leader  | running   |  2 |           |
//   | n2     | 127.0.0.1:5433 | Replica | streaming |  2 |         0 |
//   +--------+----------------+---------+-----------+----+-----------+
//
// Columns "Pending restart" and "Tags" appear when a member has them. The formatting functions are
// pure; runList() does the DCS read.
#pragma once

#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "ctl/ctl_context.h"
#include "dcs/cluster_view.h"

namespace pgf::ctl {

enum class ListFormat { kPretty, kJson, kTsv };

// "pretty", "json" or "tsv"; an error for anything else.
Result<ListFormat> parseListFormat(const std::string& text);

// The bordered table, followed by service lines ("Maintenance mode: on", a scheduled switchover).
std::string formatMembersTable(const std::string& scope, const ClusterView& cluster);
// patronictl's --format json: one object per member, keyed by column title in column order;
// empty cells omitted.
nlohmann::ordered_json membersAsJson(const std::string& scope, const ClusterView& cluster);
// Tab-separated, with a header line and the Cluster column, as patronictl's tsv.
std::string formatMembersTsv(const std::string& scope, const ClusterView& cluster);

std::string formatMembers(const std::string& scope, const ClusterView& cluster, ListFormat format);

// Reads the cluster through `dcs` and prints it to `out`. Errors (unreachable DCS, no such cluster)
// go to `err` as one line. Returns the process exit code: 0, or 1 on error.
int runList(const CtlTarget& target, Dcs& dcs, ListFormat format, std::ostream& out,
            std::ostream& err);

}  // namespace pgf::ctl
