// Deployment templates: each plan names a mustache template that renders an instance's deployment
// manifest (see deploy/manifest.h). Values are rendered for YAML: `{{name}}` gives the value as it
// is when it is a plain YAML word (letters, digits and `._:/@%+=,-`, not starting with one of
// `-:@%,`), otherwise as a double-quoted string, so that no value can add keys or lines;
// `{{{name}}}` inserts it raw.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pgf {

// Checks that `text` is a well-formed template (kConfig with the parser's message otherwise).
Status checkTemplate(const std::string& text);

// Renders `text` with `context` (objects, arrays, strings, numbers and booleans as mustache
// sections and values).
Result<std::string> renderTemplate(const std::string& text, const nlohmann::json& context);

// How `{{value}}` renders: `value` itself when it is a plain YAML word, else a JSON-quoted
// string (which YAML reads as the same string).
std::string yamlScalar(const std::string& value);

}  // namespace pgf
