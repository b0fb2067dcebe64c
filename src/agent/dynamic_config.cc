#include "agent/dynamic_config.h"

#include <cstdint>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "agent/config_sections.h"

namespace pgf {

using nlohmann::json;

Status validateDynamicConfig(const json& config) {
  auto invalid = [](const std::string& what) {
    return makeError(ErrorCode::kInvalidArgument, "invalid configuration: " + what);
  };
  if (!config.is_object())
    return invalid("it must be a mapping of keys to values");
  // The agents' own lower bounds (agent/config_sections.h), so that edit-config cannot write what
  // PATCH /config would refuse; maximum_lag_on_failover is a byte count.
  const std::pair<const char*, int> minimums[] = {{"ttl", kMinTtl},
                                                  {"loop_wait", kMinLoopWait},
                                                  {"retry_timeout", kMinRetryTimeout},
                                                  {"maximum_lag_on_failover", 0},
                                                  {"synchronous_node_count", 1}};
  for (const auto& [key, min] : minimums) {
    const json v = config.value(key, json());
    if (!v.is_null() && !(v.is_number_integer() && v.get<int64_t>() >= min))
      return invalid(fmt::format(
          "{} must be {}, not {}", key,
          min == 0 ? "a non-negative integer" : fmt::format("an integer of at least {}", min),
          v.dump()));
  }
  for (const char* key : {"pause", "synchronous_mode", "synchronous_mode_strict", "failsafe_mode"})
    if (auto v = config.value(key, json()); !v.is_null() && !v.is_boolean())
      return invalid(fmt::format("{} must be true or false, not {}", key, v.dump()));
  const json pg = config.value("postgresql", json());
  if (pg.is_null())
    return okStatus();
  if (!pg.is_object())
    return invalid("postgresql must be a mapping");
  for (const char* key : {"use_pg_rewind", "reclone_on_rewind_failure", "use_slots"})
    if (auto v = pg.value(key, json()); !v.is_null() && !v.is_boolean())
      return invalid(fmt::format("postgresql.{} must be true or false, not {}", key, v.dump()));
  const json params = pg.value("parameters", json());
  if (!params.is_null() && !params.is_object())
    return invalid("postgresql.parameters must be a mapping");
  for (const auto& [name, v] : params.items())
    if (v.is_object() || v.is_array())
      return invalid(
          fmt::format("postgresql.parameters.{} must be a string, number or boolean", name));
  return okStatus();
}

}  // namespace pgf
