#include "ctl/table.h"

#include <algorithm>

namespace pgf::ctl {
namespace {

std::string justify(const std::string& text, size_t width, bool right) {
  std::string pad(width > text.size() ? width - text.size() : 0, ' ');
  return right ? pad + text : text + pad;
}

}  // namespace

std::string renderFields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [name, value] : fields)
    width = std::max(width, name.size() + 1);
  std::string out;
  for (const auto& [name, value] : fields)
    out += justify(name + ":", width, false) + "  " + value + "\n";
  return out;
}

std::string cellText(const nlohmann::json& value) {
  if (value.is_string())
    return value.get<std::string>();
  if (value.is_null())
    return "";
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string renderTable(const TextTable& table, const std::string& title) {
  std::vector<size_t> width;
  for (const auto& c : table.columns)
    width.push_back(c.size());
  for (const auto& row : table.rows)
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());

  std::string rule = "+";
  for (size_t w : width)
    rule += std::string(w + 2, '-') + "+";
  std::string top = rule;
  if (!title.empty() && rule.size() > 2) {
    std::string shown = title.substr(0, rule.size() - 2);
    top = rule.substr(0, 1) + shown + rule.substr(1 + shown.size());
  }

  auto renderRow = [&](const std::vector<std::string>& cells) {
    std::string line = "|";
    for (size_t i = 0; i < width.size(); ++i) {
      bool right = i < table.right_aligned.size() && table.right_aligned[i];
      line += " " + justify(i < cells.size() ? cells[i] : "", width[i], right) + " |";
    }
    return line + "\n";
  };
  std::string out = top + "\n" + renderRow(table.columns) + rule + "\n";
  for (const auto& row : table.rows)
    out += renderRow(row);
  return out + rule + "\n";
}

}  // namespace pgf::ctl
