#include "postgres/rewind.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "postgres/controldata.h"
#include "postgres/data_dir.h"

namespace pgf {
namespace {

bool cleanlyShutDown(ControlState s) {
  return s == ControlState::kShutDown || s == ControlState::kShutDownInRecovery;
}

}  // namespace

Status ensureCleanShutdown(const PgTool& tool, const std::string& data_dir, Millis control_timeout,
                           Millis recovery_timeout) {
  auto control = readControlData(tool.bin_dir, data_dir, control_timeout);
  if (!control.ok())
    return control.error();
  if (cleanlyShutDown(control->state))
    return okStatus();
  spdlog::info("{} was not shut down cleanly ({}): running crash recovery in single-user mode",
               data_dir, controlStateName(control->state));
  PGF_TRY(removeFile(data_dir + "/standby.signal"), "crash recovery");
  PGF_TRY(removeFile(data_dir + "/recovery.signal"), "crash recovery");
  // The end-of-recovery checkpoint would recycle the WAL pg_rewind must read back to the last
  // common checkpoint. With archiving on, a segment is kept until it is archived ("done"), which
  // in single-user mode never happens: forget which segments were archived, and keep them all.
  PGF_TRY(forgetArchivedSegments(data_dir), "crash recovery");
  auto run =
      runPgTool(tool, "postgres",
                {"--single", "-D", data_dir, "-c", "config_file=" + data_dir + "/postgresql.conf",
                 "-c", "archive_mode=on", "-c", "archive_command=false", "template1"},
                recovery_timeout);
  if (!run.ok())
    return run.error().wrap("crash recovery");
  auto after = readControlData(tool.bin_dir, data_dir, control_timeout);
  if (!after.ok())
    return after.error().wrap("crash recovery");
  if (!cleanlyShutDown(after->state))
    return makeError(ErrorCode::kCommandFailed,
                     fmt::format("crash recovery: cluster state is \"{}\" afterwards",
                                 controlStateName(after->state)));
  return okStatus();
}

Status checkRewindSource(const ConnParams& source, Millis connect_timeout,
                         Millis checkpoint_timeout) {
  auto conn = PgConnection::connect(source, connect_timeout);
  if (!conn.ok())
    return conn.error();
  auto recovery = conn->query("SELECT pg_catalog.pg_is_in_recovery() AS r");
  if (!recovery.ok())
    return recovery.error();
  if (recovery->get(0, "r").value_or("t") == "t")
    return makeError(ErrorCode::kInvalidArgument, "the source is still in recovery", true);
  // pg_control learns a promotion's new timeline only at the next checkpoint.
  auto checkpoint = conn->exec("CHECKPOINT", checkpoint_timeout);
  if (!checkpoint.ok())
    spdlog::warn("rewind source: checkpoint: {}", checkpoint.error().message);
  auto check = conn->query(
      "SELECT ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name("
      "pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int = timeline_id AS ok "
      "FROM pg_catalog.pg_control_checkpoint()");
  if (!check.ok())
    return check.error();
  if (check->get(0, "ok").value_or("f") != "t")
    return makeError(ErrorCode::kInvalidArgument,
                     "the source has not checkpointed its current timeline yet", true);
  return okStatus();
}

Result<bool> runPgRewind(const PgTool& tool, const std::string& data_dir,
                         const std::string& source_conninfo, Millis timeout) {
  PgTool t = tool;
  t.env["PGOPTIONS"] = "-c statement_timeout=0";  // a cluster-wide statement_timeout must not apply
  auto run =
      runPgTool(t, "pg_rewind",
                {"--target-pgdata=" + data_dir, "--source-server=" + source_conninfo}, timeout);
  if (!run.ok()) {
    // A source that went away after the checks is not a failed rewind: pg_rewind never touched
    // the data directory, and the next attempt may find a reachable source.
    const std::string& m = run.error().message;
    if (m.find("pg_rewind: error: connection to server") != std::string::npos)
      return makeError(ErrorCode::kPostgresUnavailable, m, true);
    return run.error();
  }
  bool rewound = run->output.find("no rewind required") == std::string::npos;
  spdlog::info("pg_rewind on {}: {}", data_dir, rewound ? "rewound" : "no rewind required");
  return rewound;
}

}  // namespace pgf
