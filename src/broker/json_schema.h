// Validation of the parameters a tenant sends against a plan's JSON Schema (draft-04 and later),
// for the keywords plan schemas use: type, properties, required, additionalProperties (boolean or
// a schema), enum, const, pattern, minLength, maxLength, minimum, maximum, items, minItems,
// maxItems, uniqueItems. A keyword outside this list makes the schema refuse every value rather
// than accept what it cannot check.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace pgf {

// "" when `value` is valid, else what is wrong and where ("parameters.database: does not match
// ^[a-z_][a-z0-9_]{0,62}$").
std::string schemaViolation(const nlohmann::json& schema, const nlohmann::json& value,
                            const std::string& path = "parameters");

// The first keyword of `schema` (or its subschemas) this validator does not know; "" when none.
std::string unsupportedSchemaKeyword(const nlohmann::json& schema);

}  // namespace pgf
