#include "broker/json_schema.h"

#include <optional>
#include <regex>
#include <set>

#include <fmt/format.h>

namespace pgf {
namespace {

const std::set<std::string>& knownKeywords() {
  static const std::set<std::string> known = {"$schema",
                                              "$id",
                                              "id",
                                              "title",
                                              "description",
                                              "default",
                                              "examples",
                                              "type",
                                              "properties",
                                              "required",
                                              "additionalProperties",
                                              "enum",
                                              "const",
                                              "pattern",
                                              "minLength",
                                              "maxLength",
                                              "minimum",
                                              "maximum",
                                              "items",
                                              "minItems",
                                              "maxItems",
                                              "uniqueItems"};
  return known;
}

bool hasType(const nlohmann::json& value, const std::string& type) {
  if (type == "object")
    return value.is_object();
  if (type == "array")
    return value.is_array();
  if (type == "string")
    return value.is_string();
  if (type == "boolean")
    return value.is_boolean();
  if (type == "null")
    return value.is_null();
  if (type == "integer")
    return value.is_number_integer() ||
           (value.is_number_float() &&
            value.get<double>() == static_cast<int64_t>(value.get<double>()));
  if (type == "number")
    return value.is_number();
  return false;
}

// A non-negative integer keyword (maxLength, minItems, ...); nullopt when absent or not one.
std::optional<size_t> count(const nlohmann::json& schema, const char* key) {
  auto it = schema.find(key);
  if (it == schema.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
    return std::nullopt;
  return static_cast<size_t>(it->get<int64_t>());
}

std::string shown(const nlohmann::json& value) {
  std::string s = value.dump();
  return s.size() > 64 ? s.substr(0, 61) + "..." : s;
}

}  // namespace

std::string unsupportedSchemaKeyword(const nlohmann::json& schema) {
  if (!schema.is_object())
    return "";
  for (const auto& [key, sub] : schema.items()) {
    if (!knownKeywords().count(key))
      return key;
    if (key == "properties" && sub.is_object()) {
      for (const auto& [name, prop] : sub.items()) {
        std::string inner = unsupportedSchemaKeyword(prop);
        if (!inner.empty())
          return inner;
      }
    } else if (key == "items" || key == "additionalProperties") {
      std::string inner = unsupportedSchemaKeyword(sub);
      if (!inner.empty())
        return inner;
    }
  }
  return "";
}

std::string schemaViolation(const nlohmann::json& schema, const nlohmann::json& value,
                            const std::string& path) {
  if (schema.is_boolean())
    return schema.get<bool>() ? "" : path + ": is not allowed";
  if (!schema.is_object())
    return "";
  if (std::string k = unsupportedSchemaKeyword(schema); !k.empty())
    return fmt::format("{}: the plan's schema uses \"{}\", which this broker cannot check", path,
                       k);

  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    std::string names;
    if (t->is_string()) {
      ok = hasType(value, t->get<std::string>());
      names = t->get<std::string>();
    } else if (t->is_array()) {
      for (const auto& one : *t)
        if (one.is_string()) {
          ok = ok || hasType(value, one.get<std::string>());
          names += (names.empty() ? "" : " or ") + one.get<std::string>();
        }
    }
    if (!ok)
      return fmt::format("{}: must be of type {}", path, names);
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    bool found = false;
    for (const auto& one : *e)
      found = found || one == value;
    if (!found)
      return fmt::format("{}: {} is not one of {}", path, shown(value), shown(*e));
  }
  if (auto c = schema.find("const"); c != schema.end() && *c != value)
    return fmt::format("{}: must be {}", path, shown(*c));

  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (auto m = count(schema, "maxLength"); m && s.size() > *m)
      return fmt::format("{}: is longer than {} characters", path, *m);
    if (auto m = count(schema, "minLength"); m && s.size() < *m)
      return fmt::format("{}: is shorter than {} characters", path, *m);
    if (auto p = schema.find("pattern"); p != schema.end() && p->is_string()) {
      if (s.size() > 4096)
        return fmt::format("{}: is longer than 4096 characters", path);
      try {
        if (!std::regex_search(s, std::regex(p->get<std::string>(), std::regex::ECMAScript)))
          return fmt::format("{}: does not match {}", path, p->get<std::string>());
      } catch (const std::regex_error&) {
        return fmt::format("{}: the plan's pattern {} cannot be used", path, shown(*p));
      }
    }
  }
  if (value.is_number()) {
    double v = value.get<double>();
    if (auto m = schema.find("minimum");
        m != schema.end() && m->is_number() && v < m->get<double>())
      return fmt::format("{}: is less than {}", path, m->dump());
    if (auto m = schema.find("maximum");
        m != schema.end() && m->is_number() && v > m->get<double>())
      return fmt::format("{}: is more than {}", path, m->dump());
  }
  if (value.is_array()) {
    if (auto m = count(schema, "maxItems"); m && value.size() > *m)
      return fmt::format("{}: has more than {} items", path, *m);
    if (auto m = count(schema, "minItems"); m && value.size() < *m)
      return fmt::format("{}: has fewer than {} items", path, *m);
    if (auto u = schema.find("uniqueItems"); u != schema.end() && u->is_boolean() && u->get<bool>())
      for (size_t i = 0; i < value.size(); ++i)
        for (size_t j = i + 1; j < value.size(); ++j)
          if (value[i] == value[j])
            return fmt::format("{}: {} appears twice", path, shown(value[i]));
    if (auto items = schema.find("items"); items != schema.end())
      for (size_t i = 0; i < value.size(); ++i)
        if (std::string v = schemaViolation(*items, value[i], fmt::format("{}[{}]", path, i));
            !v.empty())
          return v;
  }
  if (value.is_object()) {
    if (auto r = schema.find("required"); r != schema.end() && r->is_array())
      for (const auto& name : *r)
        if (name.is_string() && !value.contains(name.get<std::string>()))
          return fmt::format("{}.{}: is required", path, name.get<std::string>());
    const auto props = schema.find("properties");
    const auto extra = schema.find("additionalProperties");
    for (const auto& [key, item] : value.items()) {
      const std::string where = path + "." + key;
      if (props != schema.end() && props->is_object() && props->contains(key)) {
        if (std::string v = schemaViolation((*props)[key], item, where); !v.empty())
          return v;
      } else if (extra != schema.end()) {
        if (std::string v = schemaViolation(*extra, item, where); !v.empty())
          return extra->is_boolean() ? where + ": is not a known parameter" : v;
      }
    }
  }
  return "";
}

}  // namespace pgf
