#include "ctl/config_edit.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/yaml_reader.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;

// Above this many line pairs the diff gives up on finding common lines and shows the whole old
// text removed and the new one added: a config is a few dozen lines, this only bounds memory.
constexpr size_t kMaxDiffCells = 4'000'000;
constexpr size_t kDiffContext = 3;

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos)
    return "";
  return s.substr(first, s.find_last_not_of(" \t") + 1 - first);
}

// Whether a YAML 1.1 reader (PyYAML, so patronictl) might take `s` for a number or a timestamp
// where ours reads a string: 0x1F, 1_000, .inf, 2024-05-01. Quoting more than needed is harmless.
bool mayReadAsNumberOrTime(const std::string& s) {
  std::string lower;
  for (char c : s)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == ".inf" || lower == "-.inf" || lower == "+.inf" || lower == ".nan")
    return true;
  const size_t start = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (start >= s.size() || !(std::isdigit(static_cast<unsigned char>(s[start])) || s[start] == '.'))
    return false;
  return s.find_first_not_of("0123456789abcdefABCDEFxXoO_.:+-eETZtz ") == std::string::npos;
}

// Whether `s` written as a plain YAML scalar reads back as the same string, for our reader and
// for PyYAML.
bool plainScalarIsSafe(const std::string& s) {
  if (s.empty() || mayReadAsNumberOrTime(s))
    return false;
  auto node = yaml::parseDocument(s);
  if (!node.ok() || !node->IsScalar())
    return false;
  const json back = yaml::toJson(*node);
  return back.is_string() && back.get<std::string>() == s;
}

void emitString(YAML::Emitter& e, const std::string& s) {
  if (plainScalarIsSafe(s))
    e << s;
  else
    e << YAML::DoubleQuoted << s;
}

void emitJson(YAML::Emitter& e, const json& v) {
  // Empty containers on their key's line ("slots: {}"), as PyYAML writes them.
  if (v.is_object() && v.empty()) {
    e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    return;
  }
  if (v.is_array() && v.empty()) {
    e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    return;
  }
  switch (v.type()) {
    case json::value_t::object:
      e << YAML::BeginMap;
      for (const auto& [k, item] : v.items()) {  // nlohmann::json keeps keys sorted
        e << YAML::Key;
        emitString(e, k);
        e << YAML::Value;
        emitJson(e, item);
      }
      e << YAML::EndMap;
      break;
    case json::value_t::array:
      e << YAML::BeginSeq;
      for (const auto& item : v)
        emitJson(e, item);
      e << YAML::EndSeq;
      break;
    case json::value_t::string:
      emitString(e, v.get<std::string>());
      break;
    case json::value_t::boolean:
      e << v.get<bool>();
      break;
    case json::value_t::number_integer:
      e << v.get<int64_t>();
      break;
    case json::value_t::number_unsigned:
      e << v.get<uint64_t>();
      break;
    case json::value_t::number_float:
      e << v.dump();  // the shortest text that reads back as the same double
      break;
    default:
      e << YAML::Null;
      break;
  }
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    lines.push_back(line);
  return lines;
}

enum class DiffOp { kKeep, kRemove, kAdd };
struct DiffLine {
  DiffOp op;
  size_t a;  // line index in `before` (for kKeep and kRemove) or where it would be
  size_t b;  // line index in `after` (for kKeep and kAdd) or where it would be
};

// The edit script of a longest common subsequence of lines.
std::vector<DiffLine> diffLines(const std::vector<std::string>& a,
                                const std::vector<std::string>& b) {
  std::vector<DiffLine> ops;
  const size_t n = a.size(), m = b.size();
  if ((n + 1) * (m + 1) > kMaxDiffCells) {
    for (size_t i = 0; i < n; ++i)
      ops.push_back({DiffOp::kRemove, i, 0});
    for (size_t j = 0; j < m; ++j)
      ops.push_back({DiffOp::kAdd, n, j});
    return ops;
  }
  // lcs[i][j]: the length of the longest common subsequence of a[i..] and b[j..].
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j])
      ops.push_back({DiffOp::kKeep, i++, j++});
    else if (j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]))
      ops.push_back({DiffOp::kRemove, i++, j});
    else
      ops.push_back({DiffOp::kAdd, i, j++});
  }
  return ops;
}

// "@@ -3,4 +3,5 @@": 1-based first lines and counts; an empty side names the line before it.
std::string hunkHeader(const std::vector<DiffLine>& ops, size_t from, size_t to) {
  size_t a_count = 0, b_count = 0;
  for (size_t k = from; k < to; ++k) {
    a_count += ops[k].op != DiffOp::kAdd;
    b_count += ops[k].op != DiffOp::kRemove;
  }
  auto range = [](size_t start, size_t count) {
    const size_t first = count == 0 ? start : start + 1;
    return count == 1 ? fmt::format("{}", first) : fmt::format("{},{}", first, count);
  };
  return fmt::format("@@ -{} +{} @@\n", range(ops[from].a, a_count), range(ops[from].b, b_count));
}

}  // namespace

Result<ConfigSetting> parseConfigSetting(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos)
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("invalid setting \"{}\": expected KEY=VALUE", text));
  ConfigSetting setting;
  const std::string key = trim(text.substr(0, eq));
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    setting.path.push_back(key.substr(start, dot - start));
    if (setting.path.back().empty())
      return makeError(ErrorCode::kInvalidArgument,
                       fmt::format("invalid setting \"{}\": empty key name in \"{}\"", text, key));
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  auto value = yaml::parseDocument(text.substr(eq + 1));
  if (!value.ok())
    return value.error().wrap(fmt::format("invalid value in \"{}\"", text));
  setting.value = yaml::toJson(*value);
  return setting;
}

std::string pgParameterSetting(const std::string& text) {
  return "postgresql.parameters." + trim(text);
}

void setConfigValue(json& config, const std::vector<std::string>& path, const json& value) {
  if (path.empty())
    return;
  if (!config.is_object()) {
    if (value.is_null())
      return;  // nothing to delete
    config = json::object();
  }
  std::vector<std::string> rest(path.begin() + 1, path.end());
  // A PostgreSQL parameter's name is one key, dots and all.
  if (path.size() > 3 && path[0] == "postgresql" && path[1] == "parameters") {
    std::string name = path[2];
    for (size_t i = 3; i < path.size(); ++i)
      name += "." + path[i];
    rest = {"parameters", name};
  }
  const std::string& key = path[0];
  if (rest.empty()) {
    if (value.is_null())
      config.erase(key);
    else
      config[key] = value;
    return;
  }
  if (value.is_null() && !(config.contains(key) && config[key].is_object()))
    return;  // nothing to delete
  if (!config.contains(key) || !config[key].is_object())
    config[key] = json::object();
  setConfigValue(config[key], rest, value);
  if (config[key].empty())
    config.erase(key);
}

json mergeConfig(const json& config, const json& patch) {
  json merged = config;
  merged.merge_patch(patch);
  return merged;
}

Result<json> parseConfigDocument(const std::string& text, const std::string& what) {
  auto node = yaml::parseDocument(text);
  if (!node.ok())
    return node.error().wrap(what);
  json doc = yaml::toJson(*node);
  if (!doc.is_object())
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: not a mapping of configuration keys", what));
  return doc;
}

std::string configAsYaml(const json& config) {
  YAML::Emitter e;
  e.SetNullFormat(YAML::LowerNull);
  emitJson(e, config);
  return std::string(e.c_str()) + "\n";
}

std::string unifiedDiff(const std::string& before, const std::string& after) {
  const auto a = splitLines(before), b = splitLines(after);
  const auto ops = diffLines(a, b);
  std::string out;
  size_t k = 0;
  while (k < ops.size()) {
    if (ops[k].op == DiffOp::kKeep) {
      ++k;
      continue;
    }
    // A hunk: this change, every later one at most 2 * context unchanged lines after the one
    // before it, and context around them.
    size_t from = k >= kDiffContext ? k - kDiffContext : 0;
    size_t last = k;  // the last change of the hunk
    for (size_t next = k + 1; next < ops.size() && next <= last + 2 * kDiffContext + 1; ++next)
      if (ops[next].op != DiffOp::kKeep)
        last = next;
    size_t to = std::min(ops.size(), last + 1 + kDiffContext);
    if (out.empty())
      out = "--- before\n+++ after\n";
    out += hunkHeader(ops, from, to);
    for (size_t i = from; i < to; ++i) {
      const DiffLine& d = ops[i];
      out += d.op == DiffOp::kKeep     ? " " + a[d.a]
             : d.op == DiffOp::kRemove ? "-" + a[d.a]
                                       : "+" + b[d.b];
      out += "\n";
    }
    k = to;
  }
  return out;
}

}  // namespace pgf::ctl
