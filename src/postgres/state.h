// What the agent knows about its own PostgreSQL at one moment: read by PostgresController::probe()
// and fed, unchanged, to the decision function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "postgres/timeline.h"

namespace pgf {

// How pg_controldata last saw the cluster ("Database cluster state").
enum class ControlState : int {
  kUnknown = 0,
  kInProduction = 1,       // running, or crashed, as a primary
  kShutDown = 2,           // cleanly stopped primary
  kInArchiveRecovery = 3,  // running, or crashed, as a standby
  kShutDownInRecovery = 4,
  kOther = 5,  // starting up, in crash recovery, shutting down
};

std::string_view controlStateName(ControlState s);

struct LocalPostgres {
  bool data_dir_empty = true;  // no PG_VERSION: nothing to start, clone or bootstrap needed
  bool running = false;        // a postmaster owns the data directory (postmaster.pid, live pid)
  bool accepting = false;      // a query succeeded
  bool in_recovery = false;    // pg_is_in_recovery(), or standby.signal when not accepting
  int timeline = 0;
  int64_t wal_position = 0;  // primary: pg_current_wal_lsn; replica: max(receive, replay)
  int64_t receive_lsn = 0;
  int64_t replay_lsn = 0;
  bool streaming = false;      // pg_stat_wal_receiver.status = 'streaming'
  std::string following_host;  // host:port in primary_conninfo ("" when none)
  std::string sysid;           // system identifier from pg_controldata ("" when unknown)
  ControlState control_state = ControlState::kUnknown;
  int postmaster_pid = 0;
  bool pending_restart = false;  // a changed parameter needs a restart
  // A pg_rewind into this data directory ran and failed (kRewindFailedMarker is there): its files
  // may be half rewound, so it is neither rewound again nor started until it is cloned afresh.
  bool rewind_failed = false;
  // PG_VERSION is there but the control file (global/pg_control) is missing, truncated or fails
  // its checksum, and no server runs: PostgreSQL cannot start from this data directory.
  bool control_unusable = false;
  // The switches of our timeline's history file (pg_wal/<timeline>.history): where each ancestor
  // of our timeline ended on our branch. Empty on timeline 1 or when the file cannot be read.
  std::vector<TimelineSwitch> lineage;

  // A base backup never started (its backup_label is still there): its pg_control is the copied
  // primary's ("in production"), but it holds nothing the primary lacks and must start as a
  // standby. Crash recovery run on it as a primary would write WAL past the primary's.
  bool unstarted_backup = false;

  // The cluster last ran as a primary (running or crashed), so it may hold WAL its new leader
  // lacks.
  bool wasPrimary() const {
    return !unstarted_backup && (control_state == ControlState::kInProduction ||
                                 control_state == ControlState::kShutDown);
  }
};

}  // namespace pgf
