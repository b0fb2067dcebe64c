// The local configuration of one PostgreSQL node, as the agent's YAML gives it (postgresql.*), plus
// the cluster-wide parameters from bootstrap.dcs / the DCS "config" key.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgf {

struct PgUser {
  std::string username;
  std::string password;
};

struct PostgresConfig {
  std::string listen = "127.0.0.1:5432";  // host[,host...]:port, as in Patroni
  std::string connect_address;            // host:port others use to reach this node
  std::string data_dir;
  std::string bin_dir;  // where initdb, pg_ctl, ... live
  std::string pgpass;   // file the agent writes for replication connections
  PgUser superuser{"postgres", ""};
  PgUser replication{"replicator", ""};
  PgUser rewind;                                  // empty username: rewind as the superuser
  std::map<std::string, std::string> parameters;  // postgresql.parameters (local)
  std::vector<std::string> pg_hba;                // lines; empty: a default that allows the cluster
  std::vector<std::string> initdb_options;  // from bootstrap.initdb, as "--key=value" / "--flag"
  bool use_pg_rewind = false;
  bool reclone_on_rewind_failure = true;
  bool use_slots = true;
  std::map<std::string, std::string> dcs_parameters;  // bootstrap.dcs.postgresql.parameters
  // Set by the agent in synchronous mode: then it owns synchronous_standby_names.
  std::optional<std::string> synchronous_standby_names;

  std::string listenHost() const;   // first host of `listen` ("*" and "0.0.0.0" stay as they are)
  int port() const;                 // port of `listen`, default 5432
  std::string connectHost() const;  // host of connect_address (falls back to listen's host)
  int connectPort() const;
};

}  // namespace pgf
