// Physical replication slots on a primary, and the standbys connected to it. The slot of a member
// is named by slotNameForMember() (controller.h), the way Patroni names it.
#pragma once

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "postgres/pg_connection.h"

namespace pgf {

// Creates every slot of `wanted` that is missing and drops every inactive physical slot that is
// not wanted. An active slot is never dropped (its standby streams through it now). Logical slots
// are never touched. One failing slot does not stop the others; the error names all that failed.
// An unwanted slot kept because it is active is reported too, as kAlreadyExists when that is all,
// so the caller tries again once the standby has moved on.
Status syncPhysicalSlots(PgConnection& conn, const std::set<std::string>& wanted);

// pg_stat_replication as a JSON array of objects: usename, application_name, client_addr, state,
// sync_state, sync_priority, sent_lsn, write_lsn, flush_lsn, replay_lsn (null when unknown).
Result<nlohmann::json> readReplicationInfo(PgConnection& conn);

}  // namespace pgf
