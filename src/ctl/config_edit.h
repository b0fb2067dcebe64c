// The pure parts of `pgfleetctl show-config` and `pgfleetctl edit-config`: the DCS config key (a
// JSON object) as YAML and back, patronictl's ways of changing it (--set a.b=VALUE, --pg
// name=VALUE, --apply as a JSON merge patch, --replace), a line diff of the change, and the checks
// a new config must pass before it is written (validateDynamicConfig in agent/dynamic_config.h). No
// I/O here; edit_config.h reads files, runs the
// editor and writes the DCS.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pgf::ctl {

// One --set KEY=VALUE: the key's path (split at the dots) and its value, read as YAML as
// patronictl reads it (true is a boolean, 10 an integer, "10" a string, null or nothing deletes
// the key).
struct ConfigSetting {
  std::vector<std::string> path;
  nlohmann::json value;
};

// kInvalidArgument for text without '=' or with an empty path segment ("a..b=1").
Result<ConfigSetting> parseConfigSetting(const std::string& text);
// --pg NAME=VALUE as the --set it stands for: "postgresql.parameters.NAME=VALUE".
std::string pgParameterSetting(const std::string& text);

// Sets the value at `path` in `config`, creating objects on the way (a non-object in the way is
// replaced); a null value deletes the key, and objects the deletion leaves empty go too. Below
// postgresql.parameters the rest of the path is one key, since parameter names contain dots
// (pg_stat_statements.max).
void setConfigValue(nlohmann::json& config, const std::vector<std::string>& path,
                    const nlohmann::json& value);

// RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else replaces.
nlohmann::json mergeConfig(const nlohmann::json& config, const nlohmann::json& patch);

// A YAML (or JSON) document that must be a mapping; `what` names it in errors ("--apply
// changes.yml: yaml syntax error at line 3, column 1: ...", "...: not a mapping").
Result<nlohmann::json> parseConfigDocument(const std::string& text, const std::string& what);

// The config as block YAML with sorted keys, ending in a newline. A string that would read back
// as something else (true, 10, null, "", " x") is double-quoted, so parseConfigDocument() gives
// back the same JSON.
std::string configAsYaml(const nlohmann::json& config);

// A unified diff ("--- before", "+++ after", "@@ -1,3 +1,4 @@" hunks with three lines of
// context) of two texts, line by line; "" when they are equal.
std::string unifiedDiff(const std::string& before, const std::string& after);

}  // namespace pgf::ctl
