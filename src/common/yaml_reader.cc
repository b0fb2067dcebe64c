#include "common/yaml_reader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

namespace pgf::yaml {

Error configError(std::string_view path, std::string_view what) {
  return makeError(ErrorCode::kConfig, fmt::format("{}: {}", path, what));
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::optional<int64_t> parseDecimal(std::string_view s) {
  if (!s.empty() && s.front() == '+')
    s.remove_prefix(1);
  if (s.empty())
    return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size())
    return std::nullopt;
  return v;
}

// A YAML float as PyYAML recognises one in practice: digits with a '.' and/or an exponent.
std::optional<double> parseFloat(const std::string& s) {
  bool digit = false, dot_or_exp = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (std::isdigit(static_cast<unsigned char>(c)))
      digit = true;
    else if (c == '.' || c == 'e' || c == 'E')
      dot_or_exp = true;
    else if (!((c == '+' || c == '-') && (i == 0 || s[i - 1] == 'e' || s[i - 1] == 'E')))
      return std::nullopt;
  }
  if (!digit || !dot_or_exp)
    return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size())
    return std::nullopt;
  return v;
}

std::string_view describe(const YAML::Node& node) {
  if (node.IsMap())
    return "a mapping";
  if (node.IsSequence())
    return "a list";
  if (node.IsNull())
    return "empty";
  return "a scalar";
}

}  // namespace

Result<YAML::Node> parseDocument(const std::string& text) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return makeError(ErrorCode::kConfig, fmt::format("yaml syntax error at line {}, column {}: {}",
                                                     e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kConfig, fmt::format("reading yaml: {}", e.what()));
  }
}

bool isSet(const YAML::Node& node) {
  return node.IsDefined() && !node.IsNull();
}

YAML::Node child(const YAML::Node& node, const std::string& key) {
  if (!node.IsDefined() || !node.IsMap())
    return YAML::Node(YAML::NodeType::Undefined);
  try {
    return node[key];
  } catch (const YAML::Exception&) {
    return YAML::Node(YAML::NodeType::Undefined);
  }
}

std::string joinPath(std::string_view parent, std::string_view key) {
  if (parent.empty())
    return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

bool isPlainScalar(const YAML::Node& node) {
  return node.IsScalar() && node.Tag() == "?";
}

std::optional<bool> parseBoolWord(std::string_view text) {
  std::string s = lower(text);
  if (s == "true" || s == "yes" || s == "on")
    return true;
  if (s == "false" || s == "no" || s == "off")
    return false;
  return std::nullopt;
}

Result<std::string> readString(const YAML::Node& node, std::string_view path) {
  if (!node.IsScalar())
    return configError(path, fmt::format("must be a string, got {}", describe(node)));
  return node.Scalar();
}

Result<int64_t> readInt(const YAML::Node& node, std::string_view path) {
  if (!node.IsScalar())
    return configError(path, fmt::format("must be an integer, got {}", describe(node)));
  auto v = parseDecimal(node.Scalar());
  if (!v)
    return configError(path, fmt::format("must be an integer, got \"{}\"", node.Scalar()));
  return *v;
}

Result<bool> readBool(const YAML::Node& node, std::string_view path) {
  if (!node.IsScalar())
    return configError(path, fmt::format("must be a boolean, got {}", describe(node)));
  auto v = parseBoolWord(node.Scalar());
  if (!v)
    return configError(path, fmt::format("must be a boolean, got \"{}\"", node.Scalar()));
  return *v;
}

Status optString(const YAML::Node& parent, const char* key, std::string_view parent_path,
                 std::string& target) {
  auto node = child(parent, key);
  if (!isSet(node))
    return okStatus();
  auto v = readString(node, joinPath(parent_path, key));
  if (!v.ok())
    return v.error();
  target = std::move(v).value();
  return okStatus();
}

Status optBool(const YAML::Node& parent, const char* key, std::string_view parent_path,
               bool& target) {
  auto node = child(parent, key);
  if (!isSet(node))
    return okStatus();
  auto v = readBool(node, joinPath(parent_path, key));
  if (!v.ok())
    return v.error();
  target = v.value();
  return okStatus();
}

Result<std::vector<std::string>> readStringList(const YAML::Node& node, std::string_view path) {
  if (!node.IsSequence())
    return configError(path, fmt::format("must be a list of strings, got {}", describe(node)));
  std::vector<std::string> out;
  for (size_t i = 0; i < node.size(); ++i) {
    auto item = readString(node[i], fmt::format("{}[{}]", path, i));
    if (!item.ok())
      return item.error();
    out.push_back(std::move(item).value());
  }
  return out;
}

Status expectMap(const YAML::Node& node, std::string_view path) {
  if (isSet(node) && !node.IsMap())
    return configError(path, fmt::format("must be a mapping, got {}", describe(node)));
  return okStatus();
}

nlohmann::json toJson(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull())
    return nullptr;
  if (node.IsSequence()) {
    auto arr = nlohmann::json::array();
    for (const auto& item : node)
      arr.push_back(toJson(item));
    return arr;
  }
  if (node.IsMap()) {
    auto obj = nlohmann::json::object();
    for (const auto& kv : node)
      obj[kv.first.IsScalar() ? kv.first.Scalar() : std::string("?")] = toJson(kv.second);
    return obj;
  }
  const std::string& s = node.Scalar();
  if (!isPlainScalar(node))
    return s;
  if (auto b = parseBoolWord(s))
    return *b;
  if (auto i = parseDecimal(s))
    return *i;
  if (auto d = parseFloat(s))
    return *d;
  return s;
}

std::string unsupportedKeyWarning(std::string_view path) {
  return fmt::format("unsupported key {} (ignored)", path);
}

void warnUnknownKeys(const YAML::Node& node, std::string_view path,
                     std::initializer_list<std::string_view> known,
                     std::vector<std::string>& warnings) {
  if (!node.IsDefined() || !node.IsMap())
    return;
  for (const auto& kv : node) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    if (std::find(known.begin(), known.end(), key) == known.end())
      warnings.push_back(unsupportedKeyWarning(joinPath(path, key)));
  }
}

}  // namespace pgf::yaml
