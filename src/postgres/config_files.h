// The files pgfleet owns in a data directory, rendered as pure functions of the configuration:
// postgresql.conf, pg_hba.conf and the password file. No I/O here; data_dir.h writes them.
//
// postgresql.conf = initdb's original (kept as postgresql.base.conf and included first, so its
// locale and sizing choices survive) + the cluster's parameters (DCS) + the local ones + the
// settings pgfleet owns. Owned settings cannot be overridden: listen_addresses, port, hba_file,
// hot_standby, wal_log_hints, cluster_name, primary_conninfo, primary_slot_name,
// recovery_target_timeline (and the directives include*, data_directory, config_file are
// refused). wal_level stays "logical" when asked, otherwise "replica"; max_wal_senders and
// max_replication_slots are raised to at least 10. Passwords never appear in postgresql.conf:
// primary_conninfo names the password file (passfile=...).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "postgres/controller.h"
#include "postgres/pg_config.h"

namespace pgf {

// First line of every postgresql.conf pgfleet writes: tells ours from initdb's.
inline constexpr std::string_view kConfHeader = "# Written by pgfleet-agent";
inline constexpr std::string_view kBaseConfName = "postgresql.base.conf";
// Seconds a standby waits for its upstream to answer before retrying.
inline constexpr int kPrimaryConnectTimeoutSeconds = 5;
// libpq options for the long transfers from another member (pg_basebackup, pg_rewind): a source
// cut off by a partition is given up within about 15 s instead of the kernel's quarter of an hour,
// so the agent's loop is not held by a dead connection.
inline constexpr std::string_view kDeadPeerConninfo =
    "keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3 "
    "tcp_user_timeout=15000";

struct ConfigContext {
  const PostgresConfig* pg = nullptr;
  std::string member_name;
  std::string scope;
  std::string data_dir;                  // absolute
  std::string pgpass_path;               // absolute
  std::optional<UpstreamConn> upstream;  // set: a standby (host "" = no upstream yet)
};

// A postgresql.conf string literal: '...' with ' doubled and \ and control characters escaped.
std::string quoteConfValue(std::string_view value);
// A libpq conninfo value: bare when safe, else '...' with ' and \ backslash-escaped.
std::string quoteConninfoValue(std::string_view value);
// A .pgpass field: ':' and '\' backslash-escaped.
std::string escapePgpassField(std::string_view value);

// "host=... port=... user=... application_name=... passfile=... connect_timeout=..."
std::string renderPrimaryConninfo(const UpstreamConn& upstream, const ConfigContext& ctx);

// Every parameter postgresql.conf sets, after precedence and the owned settings are applied.
// An error for a parameter name that is not a plain GUC name.
Result<std::map<std::string, std::string>> effectiveParameters(const ConfigContext& ctx);

Result<std::string> renderPostgresqlConf(const ConfigContext& ctx);

// The inverse of quoteConfValue (and of a bare value, which ends at whitespace or '#').
std::string unquoteConfValue(std::string_view text);
// libpq conninfo "key=value key='quoted value'" as a map (malformed tail ignored).
std::map<std::string, std::string> parseConninfo(std::string_view conninfo);
// The upstream a postgresql.conf streams from: host, port and application_name of
// primary_conninfo, and primary_slot_name. nullopt when it sets no primary_conninfo. Lets an agent
// that restarts next to a running standby keep its upstream when it rewrites the files.
std::optional<UpstreamConn> parseUpstreamFromConf(std::string_view conf);
std::string renderPgHba(const PostgresConfig& pg);
std::string renderPgpass(const PostgresConfig& pg);

}  // namespace pgf
