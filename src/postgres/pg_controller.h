// LocalPostgresController: the PostgresController for a PostgreSQL on this machine, run with the
// programs of bin_dir as the current user (the agent runs as the database's OS user, never root).
//
// Files it owns, besides the data directory:
//   <data_dir>/postgresql.conf, pg_hba.conf (initdb's postgresql.conf kept as postgresql.base.conf)
//   the password file: PostgresConfig::pgpass, or <data_dir>/../pgpass.<member> when empty (0600;
//     used for every connection it makes: replication, pg_basebackup, pg_rewind, local queries)
//   the server log: <data_dir>/../<member>.log
// The server runs detached (pg_ctl puts it in its own session), so it outlives the agent.
//
// Thread safety: probe() and replicationInfo() may run while one other method runs (the REST API
// reads while the executor acts), and probes from several threads take turns; the other methods
// must not run concurrently with each other.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "postgres/controller.h"
#include "postgres/pg_connection.h"
#include "postgres/pg_tools.h"

namespace pgf {

struct PgTimeouts {
  // Local connections and queries: short, because probe() runs on every HA loop and a stuck
  // server must show as "not accepting", not stall the loop.
  Millis local_connect{2000};
  Millis local_query{2000};
  Millis control_data{5000};
  // Connecting to another node (a rewind source): allows a slow network, still bounded.
  Millis remote_connect{5000};
  // CHECKPOINT flushes every dirty buffer; on a large busy server that takes a while.
  Millis checkpoint{120000};
  Millis initdb{300000};
  Millis bootstrap_start{120000};
  // Copying a whole cluster: bounded only so that a hung transfer is noticed at all.
  Millis clone{4 * 3600 * 1000};
  Millis rewind{3600 * 1000};
  Millis crash_recovery{600000};
  Millis reload{30000};
  // Beyond pg_ctl's own -t: pg_ctl reports its own timeout first, with its own message.
  Millis pg_ctl_slack{10000};
};

class LocalPostgresController final : public PostgresController {
 public:
  LocalPostgresController(PostgresConfig config, std::string member_name, std::string scope,
                          PgTimeouts timeouts = {});

  LocalPostgres probe() override;
  Status bootstrap() override;
  Status cloneFrom(const UpstreamConn& source) override;
  Status start(const UpstreamConn* upstream, Millis timeout) override;
  Status stop(StopMode mode, Millis timeout) override;
  Status promote(Millis timeout) override;
  Status follow(const UpstreamConn& upstream) override;
  Status rewind(const UpstreamConn& source) override;
  Status syncReplicationSlots(const std::set<std::string>& slots) override;
  Status removeDataDirectory() override;
  Result<std::string> setAsideDataDirectory() override;
  Result<nlohmann::json> replicationInfo() override;
  Status reload() override;
  Status checkpoint(Millis timeout) override;
  Status setSynchronousStandbyNames(const std::optional<std::string>& value) override;
  Result<bool> setClusterParameters(const std::map<std::string, std::string>& params) override;

  // Replaces the configuration (new cluster parameters from the DCS, ...); the files follow at the
  // next start, follow or reload.
  void updateConfig(PostgresConfig config);

  const std::string& dataDir() const { return data_dir_; }
  const std::string& pgpassPath() const { return pgpass_; }
  const std::string& logFile() const { return log_file_; }

 private:
  // Sets one field of the configuration and reloads; restores it when the reload fails. false:
  // it already had that value.
  template <typename T>
  Result<bool> replaceAndReload(T PostgresConfig::*field, const T& value, const char* what);
  PgTool tool() const;
  bool isRunning(int* pid = nullptr) const;
  // Writes the password file, postgresql.conf, pg_hba.conf and the signal files: a standby
  // (standby.signal) when `upstream` is set, else a primary.
  Status writeConfiguration(const std::optional<UpstreamConn>& upstream);
  Result<PgConnection> connectLocal(Millis timeout) const;
  // Reads the running server's state into `st` through probe_conn_; false when it does not answer.
  bool queryServer(LocalPostgres& st);
  // Keeps a running standby's timeline from going back between probes (see the definition).
  void keepStandbyTimeline(LocalPostgres& st);
  ConnParams sourceParams(const UpstreamConn& source, const PgUser& user) const;
  Result<CommandResult> pgCtl(const std::vector<std::string>& args, Millis timeout) const;
  std::string logTail() const;
  Status createRoles();

  const std::string name_;
  const std::string scope_;
  const PgTimeouts timeouts_;
  std::string data_dir_;  // absolute
  std::string bin_dir_;
  std::string pgpass_;
  std::string log_file_;

  mutable std::mutex mu_;  // guards config_ and upstream_
  PostgresConfig config_;
  std::optional<UpstreamConn> upstream_;  // what the written postgresql.conf streams from
  // probe()'s connection, kept between probes (used only by the thread that calls probe()), and
  // the system identifier, which never changes once read.
  std::mutex probe_mu_;       // guards probe_conn_
  std::mutex probe_call_mu_;  // one probe() at a time (sysid_ is read and written there)
  std::optional<PgConnection> probe_conn_;
  std::string sysid_;
  std::pair<int, int> standby_timeline_;  // {postmaster pid, highest timeline seen}; probe() only
  // The postmaster last seen running and the directory it works in (device, inode); probe() only.
  // When that directory is no longer our data directory (removed, or replaced), the postmaster
  // serves files nobody can reach: stopOrphanedPostmaster() stops it, so that it frees the port
  // and the lease a new data directory needs.
  struct SeenPostmaster {
    int pid = 0;
    dev_t dev = 0;
    ino_t ino = 0;
  } seen_postmaster_;
  void stopOrphanedPostmaster();
};

}  // namespace pgf
