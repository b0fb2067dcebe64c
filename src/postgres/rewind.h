// The steps of rewinding a former primary with pg_rewind (PostgresController::rewind):
//   1. crash recovery in single-user mode when the control file shows no clean shutdown (pg_rewind
//      requires one), keeping every WAL segment pg_rewind may need;
//   2. a check that the source is a primary whose pg_control already names its current timeline
//      (otherwise pg_rewind wrongly finds "no rewind required");
//   3. pg_rewind itself.
#pragma once

#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "postgres/pg_connection.h"
#include "postgres/pg_tools.h"

namespace pgf {

// Runs crash recovery when needed; removes standby.signal / recovery.signal first (single-user
// mode refuses them). Success when the cluster ends cleanly shut down.
Status ensureCleanShutdown(const PgTool& tool, const std::string& data_dir, Millis control_timeout,
                           Millis recovery_timeout);

// Connects to the source, refuses one in recovery, runs CHECKPOINT (a superuser or a member of
// pg_checkpoint may) and verifies pg_control's timeline is the current one. Retryable errors.
Status checkRewindSource(const ConnParams& source, Millis connect_timeout,
                         Millis checkpoint_timeout);

// Runs pg_rewind against `source_conninfo` (no password in it: PGPASSFILE). true when it rewound,
// false for "no rewind required".
Result<bool> runPgRewind(const PgTool& tool, const std::string& data_dir,
                         const std::string& source_conninfo, Millis timeout);

}  // namespace pgf
