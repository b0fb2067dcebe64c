// A switchover or manual failover request, as stored in the DCS "failover" key in Patroni's format:
// {"leader": "<current leader>", "member": "<candidate>", "scheduled_at": "<ISO 8601>"}, every
// field optional. The leader named in it hands its lease over gracefully (checkpoint, clean stop,
// release) to the candidate, or to the best eligible replica when none is named; with no leader,
// the named candidate takes the free lease. Whoever leads afterwards removes the key.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"

namespace pgf {

struct SwitchoverRequest {
  std::string leader;  // the leader it is addressed to ("" = whoever leads)
  std::string member;  // the candidate ("" = the best eligible replica)
  std::optional<WallTime> scheduled_at;
  std::string scheduled_text;  // scheduled_at as stored, for messages
};

// nullopt when the value asks for nothing: not an object, or neither leader nor member set (Patroni
// clears the key by writing "{}"). An unparsable scheduled_at is ignored by the caller's choice:
// `scheduled_at` stays empty and `scheduled_text` keeps the text.
std::optional<SwitchoverRequest> parseSwitchoverRequest(const nlohmann::json& value);

// The request as the key's JSON value.
nlohmann::json switchoverRequestJson(const SwitchoverRequest& request);

}  // namespace pgf
