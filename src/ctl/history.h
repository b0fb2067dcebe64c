// `pgfleetctl history`: the cluster's timeline history (the DCS "history" key, written by each
// new leader) as patronictl history shows it:
//
//   +----+----------+------------------------------+----------------------------------+------------+
//   | TL |      LSN | Reason                       | Timestamp                        | New Leader
//   |
//   +----+----------+------------------------------+----------------------------------+------------+
//   |  1 | 50331808 | no recovery target specified | 2024-05-01T10:00:00.000000+00:00 | n2 |
//   +----+----------+------------------------------+----------------------------------+------------+
//
// Each entry is [timeline, lsn_bytes, reason, timestamp, new_leader]; older writers leave the last
// ones out, which shows as empty cells.
#pragma once

#include <iosfwd>

#include <nlohmann/json.hpp>

#include "ctl/ctl_context.h"

namespace pgf::ctl {

// The table (header only when the history is empty or not an array). Entries that are not
// arrays are skipped; cells beyond the fifth are ignored.
std::string formatHistoryTable(const nlohmann::json& history);

// Prints the table (pretty) or the key's JSON array as it is ([] when absent). Exit code 0, or 1
// with one line on `err` when the cluster cannot be read.
int runHistory(const CtlTarget& target, Dcs& dcs, OutputFormat format, std::ostream& out,
               std::ostream& err);

}  // namespace pgf::ctl
