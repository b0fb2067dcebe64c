#include "postgres/roles.h"

#include <fmt/format.h>

namespace pgf {

Status suppressStatementLogging(PgConnection& conn) {
  PGF_TRY(conn.exec("SET log_statement = 'none'; SET log_min_duration_statement = -1; "
                    "SET log_min_error_statement = 'panic'"),
          "turning off statement logging");
  return okStatus();
}

Status createOrUpdateRole(PgConnection& conn, const PgUser& user, std::string_view attributes) {
  std::string context = fmt::format("creating role \"{}\"", user.username);
  if (user.username.empty())
    return makeError(ErrorCode::kConfig, "creating role: empty name");
  auto ident = conn.quoteIdentifier(user.username);
  if (!ident.ok())
    return ident.error().wrap(context);
  auto exists = conn.query("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", {user.username});
  if (!exists.ok())
    return exists.error().wrap(context);
  std::string sql = fmt::format("{} ROLE {} WITH LOGIN {}",
                                exists->rows.empty() ? "CREATE" : "ALTER", *ident, attributes);
  if (!user.password.empty()) {
    auto literal = conn.quoteLiteral(user.password);
    if (!literal.ok())
      return literal.error().wrap(context);
    sql += " PASSWORD " + *literal;
  }
  PGF_TRY(conn.exec(sql), context);
  return okStatus();
}

Status grantRewindPrivileges(PgConnection& conn, const std::string& role) {
  std::string context = fmt::format("granting pg_rewind privileges to \"{}\"", role);
  auto ident = conn.quoteIdentifier(role);
  if (!ident.ok())
    return ident.error().wrap(context);
  for (const char* fn :
       {"pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)",
        "pg_read_binary_file(text)", "pg_read_binary_file(text, bigint, bigint, boolean)"}) {
    PGF_TRY(conn.exec(fmt::format("GRANT EXECUTE ON FUNCTION pg_catalog.{} TO {}", fn, *ident)),
            context);
  }
  PGF_TRY(conn.exec(fmt::format("GRANT pg_checkpoint TO {}", *ident)), context);
  return okStatus();
}

}  // namespace pgf
