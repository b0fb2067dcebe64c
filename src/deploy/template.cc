#include "deploy/template.h"

#include <kainjow/mustache.hpp>

namespace pgf {
namespace {

namespace mustache = kainjow::mustache;

mustache::data toData(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      mustache::data out(mustache::data::type::object);
      for (const auto& [key, item] : value.items())
        out.set(key, toData(item));
      return out;
    }
    case nlohmann::json::value_t::array: {
      mustache::data out(mustache::data::type::list);
      for (const auto& item : value)
        out.push_back(toData(item));
      return out;
    }
    case nlohmann::json::value_t::string:
      return mustache::data(value.get<std::string>());
    case nlohmann::json::value_t::boolean:
      return mustache::data(value.get<bool>());
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return mustache::data(false);
    default:
      return mustache::data(value.dump());  // numbers
  }
}

bool plainWord(const std::string& value) {
  if (value.empty())
    return false;
  for (char c : value) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("._:/@%+=,-").find(c) != std::string_view::npos;
    if (!ok)
      return false;
  }
  // A leading character with a meaning of its own in YAML is quoted. Words YAML types (numbers,
  // true, false) stay plain: ports are numbers, switches booleans.
  return std::string_view("-:@%,").find(value[0]) == std::string_view::npos;
}

}  // namespace

std::string yamlScalar(const std::string& value) {
  return plainWord(value) ? value : nlohmann::json(value).dump();
}

Status checkTemplate(const std::string& text) {
  mustache::mustache tmpl(text);
  if (!tmpl.is_valid())
    return makeError(ErrorCode::kConfig, "template: " + tmpl.error_message());
  return okStatus();
}

Result<std::string> renderTemplate(const std::string& text, const nlohmann::json& context) {
  mustache::mustache tmpl(text);
  if (!tmpl.is_valid())
    return makeError(ErrorCode::kConfig, "template: " + tmpl.error_message());
  tmpl.set_custom_escape(yamlScalar);
  std::string out = tmpl.render(toData(context));
  if (!tmpl.is_valid())
    return makeError(ErrorCode::kConfig, "template: " + tmpl.error_message());
  return out;
}

}  // namespace pgf
