// The two halves of PostgresController::probe(): what the control file says (always available,
// the only source for a stopped server) and what the running server answers (one query, bounded
// by a deadline). Each fills the fields it knows of a LocalPostgres.
#pragma once

#include "common/clock.h"
#include "common/result.h"
#include "postgres/controldata.h"
#include "postgres/pg_connection.h"
#include "postgres/state.h"

namespace pgf {

// sysid, control_state, and for a stopped server its timeline and WAL position: a standby's
// minimum recovery point when it is past the last checkpoint, else the last checkpoint.
void applyControlData(const ControlData& control, LocalPostgres& state);

// in_recovery, timeline, WAL positions, streaming, following_host (sender host:port),
// pending_restart; sets accepting. An error leaves `state` unchanged.
Status applyServerState(PgConnection& conn, Millis timeout, LocalPostgres& state);

}  // namespace pgf
