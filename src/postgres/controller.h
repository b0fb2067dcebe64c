// Controls one local PostgreSQL: the only code that runs initdb, pg_ctl, pg_basebackup, pg_rewind
// or connects to the local server. The HA logic never calls it directly: the agent's executor does,
// after decide() has chosen a step.
//
// Every method blocks until its step is done or failed, bounded by a timeout, and reports failures
// as errors with the program's own message; none of them throws. None removes the data directory
// except removeDataDirectory(), which the agent calls only for an explicit reinitialize or after a
// brand-new node's first clone failed (DESIGN.md invariant 5); setAsideDataDirectory() moves one
// aside, whole, and deletes nothing.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"
#include "postgres/pg_config.h"
#include "postgres/state.h"

namespace pgf {

// Where a replica streams from.
struct UpstreamConn {
  std::string host;
  int port = 0;
  std::string slot_name;  // "" when slots are not used
  std::string application_name;
};

enum class StopMode { kSmart, kFast, kImmediate };

class PostgresController {
 public:
  virtual ~PostgresController() = default;

  // Reads the local state: data directory, postmaster, and (when it answers) a few queries.
  virtual LocalPostgres probe() = 0;

  // initdb into the empty data directory, writes the configuration files, starts the server as a
  // primary and creates the superuser password, the replication and the rewind roles.
  virtual Status bootstrap() = 0;
  // pg_basebackup from `source` into the empty data directory (the replica is not started).
  virtual Status cloneFrom(const UpstreamConn& source) = 0;
  // Writes the configuration and starts the server: as a primary (`upstream` null) or as a standby
  // streaming from `upstream` (host empty: a standby with no upstream yet).
  virtual Status start(const UpstreamConn* upstream, Millis timeout) = 0;
  virtual Status stop(StopMode mode, Millis timeout) = 0;
  // Promotes a running standby and waits until it accepts writes.
  virtual Status promote(Millis timeout) = 0;
  // Points a running standby at a new upstream (primary_conninfo and slot), applied by reload.
  virtual Status follow(const UpstreamConn& upstream) = 0;
  // Rewinds a stopped former primary from `source` with pg_rewind (crash recovery first if it was
  // not shut down cleanly). Leaves it stopped, configured as a standby. When pg_rewind itself ran
  // and failed, the data directory is marked (kRewindFailedMarker; probe() reports it).
  virtual Status rewind(const UpstreamConn& source) = 0;
  // On a primary: creates a physical slot for every name in `slots` and drops other slots this
  // agent manages (those not in `slots`).
  virtual Status syncReplicationSlots(const std::set<std::string>& slots) = 0;
  // Removes the data directory (reinitialize, or a failed first clone only).
  virtual Status removeDataDirectory() = 0;
  // Renames the stopped server's data directory to "<data_dir>.rewind-failed-<UTC time>" beside it
  // (same file system, nothing copied or deleted) and returns that path, so that a clone can take
  // its place. Refused while PostgreSQL runs, and while an earlier such directory of this data
  // directory still exists (at most one set aside: the operator decides what to keep).
  virtual Result<std::string> setAsideDataDirectory() = 0;
  // On a primary: the standbys connected now (pg_stat_replication), for /patroni and /metrics.
  virtual Result<nlohmann::json> replicationInfo() = 0;
  // Reloads the configuration files (SIGHUP), after rewriting them.
  virtual Status reload() = 0;
  // The cluster-wide parameters (the DCS config key's postgresql.parameters): when they differ
  // from the ones in effect, rewrites postgresql.conf and reloads a running server. Returns whether
  // anything changed. On an error (a bad parameter name) the previous parameters stay in effect.
  // A parameter that needs a restart shows as LocalPostgres::pending_restart until one.
  virtual Result<bool> setClusterParameters(const std::map<std::string, std::string>& params) = 0;
  // Synchronous mode: sets synchronous_standby_names (nullopt: the agent does not manage it, and
  // the configured parameters decide) and reloads a running server when it changed.
  virtual Status setSynchronousStandbyNames(const std::optional<std::string>& value) = 0;
  // Runs CHECKPOINT on a running server (before a planned stop, so that the shutdown checkpoint
  // has little left to write and the stop is short).
  virtual Status checkpoint(Millis timeout) = 0;
};

// The file in a data directory that says a pg_rewind into it ran and failed.
inline constexpr const char* kRewindFailedMarker = "pgfleet.rewind_failed";
// What setAsideDataDirectory() appends to the data directory's path (before the time).
inline constexpr const char* kSetAsideSuffix = ".rewind-failed-";

using PostgresControllerPtr = std::unique_ptr<PostgresController>;

// Replication slot names are derived from member names the way Patroni derives them: lowercase,
// '-' and '.' replaced by '_', any other character outside [a-z0-9_] by "u" and its code point in
// (at least 4) decimal digits, truncated to 63 bytes.
std::string slotNameForMember(const std::string& member_name);

}  // namespace pgf
