#include "ctl/history.h"

#include <ostream>

#include "ctl/table.h"

namespace pgf::ctl {

std::string formatHistoryTable(const nlohmann::json& history) {
  TextTable table;
  table.columns = {"TL", "LSN", "Reason", "Timestamp", "New Leader"};
  table.right_aligned = {true, true, false, false, false};
  if (history.is_array()) {
    for (const auto& entry : history) {
      if (!entry.is_array())
        continue;
      std::vector<std::string> row;
      for (size_t i = 0; i < table.columns.size(); ++i)
        row.push_back(i < entry.size() ? cellText(entry[i]) : "");
      table.rows.push_back(std::move(row));
    }
  }
  return renderTable(table);
}

int runHistory(const CtlTarget& target, Dcs& dcs, OutputFormat format, std::ostream& out,
               std::ostream& err) {
  auto cluster = loadCluster(target, dcs);
  if (!cluster.ok())
    return reportFailure(err, cluster.error());
  const nlohmann::json& history = cluster->history;
  if (format == OutputFormat::kJson)
    out << (history.is_array() ? history : nlohmann::json::array())
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  else
    out << formatHistoryTable(history);
  return 0;
}

}  // namespace pgf::ctl
