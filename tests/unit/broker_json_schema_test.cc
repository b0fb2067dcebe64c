#include "broker/json_schema.h"

#include <gtest/gtest.h>

namespace pgf {
namespace {

using nlohmann::json;

// The schema examples/broker-local.yaml gives its plans.
json planSchema() {
  return json::parse(R"({
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "additionalProperties": false,
    "properties": {
      "database": {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$"},
      "extensions": {"type": "array", "uniqueItems": true,
                     "items": {"type": "string", "enum": ["citext", "hstore", "pgcrypto"]}}
    }
  })");
}

TEST(JsonSchema, AcceptsWhatThePlanAllows) {
  EXPECT_EQ(schemaViolation(planSchema(), json::object()), "");
  EXPECT_EQ(schemaViolation(planSchema(), {{"database", "shop"}}), "");
  EXPECT_EQ(schemaViolation(planSchema(), {{"database", "a_1"}, {"extensions", {"citext"}}}), "");
}

TEST(JsonSchema, RefusesNamingTheParameterAndTheRule) {
  EXPECT_EQ(schemaViolation(planSchema(), {{"database", "x'; DROP DATABASE postgres; --"}}),
            "parameters.database: does not match ^[a-z_][a-z0-9_]{0,62}$");
  EXPECT_EQ(schemaViolation(planSchema(), {{"database", 5}}),
            "parameters.database: must be of type string");
  EXPECT_EQ(schemaViolation(planSchema(), {{"owner", "me"}}),
            "parameters.owner: is not a known parameter");
  EXPECT_EQ(schemaViolation(planSchema(), {{"extensions", {"plpython3u"}}}),
            "parameters.extensions[0]: \"plpython3u\" is not one of [\"citext\",\"hstore\","
            "\"pgcrypto\"]");
  EXPECT_EQ(schemaViolation(planSchema(), {{"extensions", {"citext", "citext"}}}),
            "parameters.extensions: \"citext\" appears twice");
  EXPECT_EQ(schemaViolation(planSchema(), json::array()), "parameters: must be of type object");
  EXPECT_EQ(schemaViolation(planSchema(), {{"database", std::string(5000, 'a')}}),
            "parameters.database: is longer than 4096 characters");
}

TEST(JsonSchema, LengthsCountsRangesAndRequired) {
  json schema = {{"type", "object"},
                 {"required", {"n"}},
                 {"properties",
                  {{"n", {{"type", "integer"}, {"minimum", 1}, {"maximum", 10}}},
                   {"s", {{"type", "string"}, {"minLength", 2}, {"maxLength", 3}}},
                   {"l", {{"type", "array"}, {"maxItems", 1}}}}}};
  EXPECT_EQ(schemaViolation(schema, json::object()), "parameters.n: is required");
  EXPECT_EQ(schemaViolation(schema, {{"n", 0}}), "parameters.n: is less than 1");
  EXPECT_EQ(schemaViolation(schema, {{"n", 11}}), "parameters.n: is more than 10");
  EXPECT_EQ(schemaViolation(schema, {{"n", 1.5}}), "parameters.n: must be of type integer");
  EXPECT_EQ(schemaViolation(schema, {{"n", 2}, {"s", "a"}}),
            "parameters.s: is shorter than 2 characters");
  EXPECT_EQ(schemaViolation(schema, {{"n", 2}, {"s", "abcd"}}),
            "parameters.s: is longer than 3 characters");
  EXPECT_EQ(schemaViolation(schema, {{"n", 2}, {"l", {1, 2}}}),
            "parameters.l: has more than 1 items");
  EXPECT_EQ(schemaViolation(schema, {{"n", 2}, {"s", "ab"}, {"l", {1}}, {"other", true}}), "");
}

TEST(JsonSchema, AKeywordItCannotCheckRefusesEveryValue) {
  json schema = {{"type", "object"}, {"properties", {{"x", {{"format", "email"}}}}}};
  EXPECT_EQ(unsupportedSchemaKeyword(schema), "format");
  EXPECT_NE(schemaViolation(schema, json::object()).find("cannot check"), std::string::npos);
  EXPECT_EQ(unsupportedSchemaKeyword(planSchema()), "");
}

}  // namespace
}  // namespace pgf
