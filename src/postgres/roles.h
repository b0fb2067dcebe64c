// The roles bootstrap creates: replication and rewind users, with their passwords. Names and
// passwords are quoted by libpq (PQescapeIdentifier / PQescapeLiteral), never pasted into SQL, and
// the session stops logging statements first so a password cannot reach the server log.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "postgres/pg_config.h"
#include "postgres/pg_connection.h"

namespace pgf {

// Turns off statement logging for this session (superuser only): log_statement, duration logging
// and the statement text of errors.
Status suppressStatementLogging(PgConnection& conn);

// CREATE ROLE, or ALTER ROLE when it exists, WITH LOGIN `attributes` (e.g. "REPLICATION")
// PASSWORD '...' (no PASSWORD clause when the password is empty).
Status createOrUpdateRole(PgConnection& conn, const PgUser& user, std::string_view attributes);

// What pg_rewind needs from a non-superuser source role (PostgreSQL docs, pg_rewind): EXECUTE on
// pg_ls_dir, pg_stat_file, pg_read_binary_file; plus pg_checkpoint, so the rewinding node can
// make a freshly promoted source write its new timeline to pg_control.
Status grantRewindPrivileges(PgConnection& conn, const std::string& role);

}  // namespace pgf
