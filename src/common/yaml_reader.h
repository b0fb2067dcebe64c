// Typed reads from a parsed YAML document (yaml-cpp) for configuration files. Every problem is an
// Error of kind kConfig that names the offending key by its dotted path ("bootstrap.dcs.ttl"), and
// no yaml-cpp exception escapes these functions.
//
// Scalars follow YAML 1.1 as PyYAML reads them, because the files we read are written for Patroni:
// an unquoted true/false/yes/no/on/off is a boolean, an unquoted ~/null or an empty value is null,
// and a quoted scalar is always a string.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pgf::yaml {

// A kConfig error "<path>: <what>".
Error configError(std::string_view path, std::string_view what);

// Parses a whole document. A syntax error names its line and column (1-based).
Result<YAML::Node> parseDocument(const std::string& text);

// True when the node exists and is not null ("key:" with no value counts as absent).
bool isSet(const YAML::Node& node);

// The child `key` of a mapping, or an undefined node when `node` is not a mapping.
YAML::Node child(const YAML::Node& node, const std::string& key);

// "a.b" from ("a", "b"); just "b" when `parent` is empty.
std::string joinPath(std::string_view parent, std::string_view key);

// Readers: the node must be a scalar of the right kind. `path` names the key in error messages.
Result<std::string> readString(const YAML::Node& node, std::string_view path);
Result<int64_t> readInt(const YAML::Node& node, std::string_view path);
Result<bool> readBool(const YAML::Node& node, std::string_view path);
// A list of strings; a single scalar is not accepted.
Result<std::vector<std::string>> readStringList(const YAML::Node& node, std::string_view path);

// Read `parent`'s child `key` into `target` when it is set (leaving `target` alone otherwise);
// `parent_path` names `parent` in error messages.
Status optString(const YAML::Node& parent, const char* key, std::string_view parent_path,
                 std::string& target);
Status optBool(const YAML::Node& parent, const char* key, std::string_view parent_path,
               bool& target);

// The node must be a mapping (or unset, which reads as an empty mapping).
Status expectMap(const YAML::Node& node, std::string_view path);

// YAML 1.1 boolean words, case-insensitive: true/false, yes/no, on/off (and y/n is not one).
std::optional<bool> parseBoolWord(std::string_view text);
// Whether the scalar was written without quotes and without an explicit tag, so that its type is
// inferred from its text.
bool isPlainScalar(const YAML::Node& node);

// The node as JSON: mappings, sequences, and scalars typed by their text when plain (null, bool,
// integer, float) and as strings otherwise. Mapping keys become strings.
nlohmann::json toJson(const YAML::Node& node);

// Appends "unsupported key <path>.<key> (ignored)" to `warnings` for every key of the mapping
// `node` that is not in `known`.
void warnUnknownKeys(const YAML::Node& node, std::string_view path,
                     std::initializer_list<std::string_view> known,
                     std::vector<std::string>& warnings);
std::string unsupportedKeyWarning(std::string_view path);

}  // namespace pgf::yaml
