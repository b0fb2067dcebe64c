// The bordered text tables pgfleetctl prints, drawn as patronictl's PrettyTable draws them:
//
//   +--------+----+
//   | Member | TL |
//   +--------+----+
//   | n1     |  2 |
//   +--------+----+
//
// A title, when given, is written over the start of the top border and cut to fit it
// ("+ Cluster: demo (7312...) ---+----+"). Pure functions: the verbs build the cells, this file
// only lays them out.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace pgf::ctl {

struct TextTable {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;  // each as long as `columns`
  std::vector<bool> right_aligned;             // per column; missing entries are left-aligned
};

std::string renderTable(const TextTable& table, const std::string& title = "");

// "Name:  value" lines, the values aligned one column after the longest name.
std::string renderFields(const std::vector<std::pair<std::string, std::string>>& fields);

// A JSON value as a table cell: strings as they are, null as "", anything else as compact JSON.
std::string cellText(const nlohmann::json& value);

}  // namespace pgf::ctl
