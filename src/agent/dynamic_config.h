// The cluster's dynamic configuration (the DCS "config" key) as every writer checks it before
// writing: PATCH/PUT /config on the agents and pgfleetctl edit-config.
#pragma once

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pgf {

// What must hold before a config is written: a mapping; when present and not null, ttl an integer
// >= 2, loop_wait and retry_timeout >= 1, maximum_lag_on_failover >= 0; pause,
// postgresql.use_pg_rewind, postgresql.reclone_on_rewind_failure and postgresql.use_slots
// booleans; postgresql and postgresql.parameters mappings, with scalar parameter values.
// kInvalidArgument naming the key and the bad value otherwise ("invalid configuration: ttl must be
// an integer of at least 2, not 1"). Any ttl of at least 2 can be run safely (see timing.h), so no
// combination of ttl, loop_wait and retry_timeout is refused.
Status validateDynamicConfig(const nlohmann::json& config);

}  // namespace pgf
