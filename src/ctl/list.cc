#include "ctl/list.h"

#include <algorithm>
#include <cmath>
#include <ostream>
#include <vector>

#include <fmt/format.h>

#include "agent/cluster_json.h"
#include "ctl/table.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

struct Table {
  std::vector<std::string> columns;      // without "Cluster"
  std::vector<std::vector<json>> cells;  // one per member, aligned with columns; "" when empty
};

// Tags on one line ("nofailover: true, nosync: true"); patronictl prints YAML over several lines.
std::string tagsText(const json& tags) {
  std::string out;
  for (const auto& [k, v] : tags.items())
    out += (out.empty() ? "" : ", ") + k + ": " + cellText(v);
  return out;
}

// Megabytes, rounded half to even as Python's round() does.
json lagInMb(const json& lag) {
  if (lag.is_number())
    return static_cast<int64_t>(std::nearbyint(lag.get<double>() / 1024.0 / 1024.0));
  return lag.is_null() ? json("") : lag;
}

Table buildTable(const ClusterView& cluster) {
  const json doc = clusterAsJson(cluster);
  const json& members = doc["members"];
  Table t;
  t.columns = {"Member", "Host", "Role", "State", "TL", "Lag in MB"};
  bool pending = false, scheduled = false, tags = false;
  auto scheduleOf = [](const json& m) {
    auto it = m.find("scheduled_restart");
    return it != m.end() && it->is_object() && (*it)["schedule"].is_string()
               ? (*it)["schedule"].get<std::string>()
               : std::string();
  };
  for (const auto& m : members) {
    pending = pending || m.value("pending_restart", false);
    scheduled = scheduled || !scheduleOf(m).empty();
    tags = tags || (m.contains("tags") && m["tags"].is_object() && !m["tags"].empty());
  }
  if (pending)
    t.columns.push_back("Pending restart");
  if (scheduled)
    t.columns.push_back("Scheduled restart");
  if (tags)
    t.columns.push_back("Tags");

  for (const auto& m : members) {
    std::string role = m.value("role", "");
    std::replace(role.begin(), role.end(), '_', ' ');
    bool word_start = true;
    for (char& c : role) {
      c = word_start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      word_start = c == ' ';
    }
    std::string host = m.value("host", "");
    if (!host.empty() && m.contains("port"))
      host = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
             std::to_string(m["port"].get<int>());
    std::vector<json> row = {m.value("name", ""),
                             host,
                             role,
                             m.contains("state") ? m["state"] : json(""),
                             m.contains("timeline") ? m["timeline"] : json(""),
                             lagInMb(m.contains("lag") ? m["lag"] : json(nullptr))};
    if (pending)
      row.push_back(m.value("pending_restart", false) ? "*" : "");
    if (scheduled)
      row.push_back(scheduleOf(m));
    if (tags)
      row.push_back(m.contains("tags") && m["tags"].is_object() ? m["tags"] : json(""));
    t.cells.push_back(std::move(row));
  }
  return t;
}

std::string clusterTitle(const std::string& scope, const ClusterView& cluster) {
  std::string state = !cluster.initialize           ? "uninitialized"
                      : cluster.initialize->empty() ? "initializing"
                                                    : *cluster.initialize;
  return fmt::format(" Cluster: {} ({}) ", scope, state);
}

bool rightAligned(const std::string& column) {
  return column == "TL" || column == "Lag in MB";
}

std::vector<std::string> serviceInfo(const json& doc) {
  std::vector<std::string> lines;
  if (doc.value("pause", false))
    lines.push_back("Maintenance mode: on");
  if (doc.contains("scheduled_switchover")) {
    const json& sw = doc["scheduled_switchover"];
    std::string info = "Switchover scheduled at: " + cellText(sw["at"]);
    for (const char* key : {"from", "to"})
      if (sw.contains(key))
        info += fmt::format("\n{:>24}: {}", key, cellText(sw[key]));
    lines.push_back(info);
  }
  return lines;
}

}  // namespace

Result<ListFormat> parseListFormat(const std::string& text) {
  if (text == "pretty")
    return ListFormat::kPretty;
  if (text == "json")
    return ListFormat::kJson;
  if (text == "tsv")
    return ListFormat::kTsv;
  return makeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown format \"{}\": use pretty, json or tsv", text));
}

std::string formatMembersTable(const std::string& scope, const ClusterView& cluster) {
  const Table t = buildTable(cluster);
  TextTable text;
  text.columns = t.columns;
  for (const auto& c : t.columns)
    text.right_aligned.push_back(rightAligned(c));
  for (const auto& row : t.cells) {
    std::vector<std::string> line;
    for (size_t i = 0; i < row.size(); ++i)
      line.push_back(t.columns[i] == "Tags" && row[i].is_object() ? tagsText(row[i])
                                                                  : cellText(row[i]));
    text.rows.push_back(std::move(line));
  }
  // patronictl writes the title over the start of the top border.
  std::string out = renderTable(text, clusterTitle(scope, cluster));
  auto info = serviceInfo(clusterAsJson(cluster));
  if (!info.empty()) {
    std::string joined;
    for (const auto& l : info)
      joined += (joined.empty() ? "" : "\n ") + l;
    out += " " + joined + "\n";
  }
  return out;
}

nlohmann::ordered_json membersAsJson(const std::string& scope, const ClusterView& cluster) {
  const Table t = buildTable(cluster);
  auto out = nlohmann::ordered_json::array();
  for (const auto& row : t.cells) {
    nlohmann::ordered_json m = {{"Cluster", scope}};
    for (size_t i = 0; i < row.size(); ++i) {
      if (!(row[i].is_string() && row[i].get<std::string>().empty()))
        m[t.columns[i]] = row[i];
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::string formatMembersTsv(const std::string& scope, const ClusterView& cluster) {
  const Table t = buildTable(cluster);
  std::string out = "Cluster";
  for (const auto& c : t.columns)
    out += "\t" + c;
  out += "\n";
  for (const auto& row : t.cells) {
    out += scope;
    for (size_t i = 0; i < row.size(); ++i)
      out += "\t" + (row[i].is_object() ? tagsText(row[i]) : cellText(row[i]));
    out += "\n";
  }
  return out;
}

std::string formatMembers(const std::string& scope, const ClusterView& cluster, ListFormat format) {
  switch (format) {
    case ListFormat::kJson:
      return membersAsJson(scope, cluster)
                 .dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
             "\n";
    case ListFormat::kTsv:
      return formatMembersTsv(scope, cluster);
    case ListFormat::kPretty:
      break;
  }
  return formatMembersTable(scope, cluster);
}

int runList(const CtlTarget& target, Dcs& dcs, ListFormat format, std::ostream& out,
            std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  out << formatMembers(target.scope, cluster.value(), format);
  return 0;
}

}  // namespace pgf::ctl
