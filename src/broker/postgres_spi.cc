#include "broker/postgres_spi.h"

#include <sys/random.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "common/http_message.h"
#include "postgres/pg_connection.h"
#include "postgres/roles.h"

namespace pgf {
namespace {

constexpr std::string_view kAlphabet =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
constexpr std::string_view kLower = "abcdefghijklmnopqrstuvwxyz0123456789";

// Uniform characters of `alphabet` from getrandom (rejection sampling, no modulo bias).
std::string randomFrom(std::string_view alphabet, size_t length) {
  const unsigned limit = 256 - 256 % alphabet.size();
  std::string out;
  while (out.size() < length) {
    unsigned char buf[64];
    ssize_t n = ::getrandom(buf, sizeof buf, 0);
    if (n <= 0)
      continue;
    for (ssize_t i = 0; i < n && out.size() < length; ++i)
      if (buf[i] < limit)
        out.push_back(alphabet[buf[i] % alphabet.size()]);
  }
  return out;
}

ConnParams superuser(const InstanceAccess& a, int port, const std::string& database) {
  return {{"host", a.host},     {"port", std::to_string(port)},
          {"user", "postgres"}, {"password", a.superuser_password},
          {"dbname", database}, {"application_name", "pgfleet-broker"}};
}

Result<PgConnection> connectAs(const InstanceAccess& a, const std::string& database,
                               Millis timeout) {
  auto conn = PgConnection::connect(superuser(a, a.read_write_port, database), timeout);
  if (!conn.ok())
    return conn.error().wrap(fmt::format("connecting to {} through the read-write endpoint {}:{}",
                                         database, a.host, a.read_write_port));
  PGF_TRY(suppressStatementLogging(*conn), "connecting");
  return conn;
}

Result<std::string> quoted(PgConnection& conn, const std::string& name) {
  return conn.quoteIdentifier(name);
}

}  // namespace

std::string randomSecret(size_t length) {
  return randomFrom(kAlphabet, length);
}

std::string randomName(const std::string& prefix, size_t length) {
  return prefix + randomFrom(kLower, length);
}

Status prepareDatabase(const InstanceAccess& a, const std::vector<std::string>& extensions,
                       Millis timeout) {
  auto conn = connectAs(a, "postgres", timeout);
  if (!conn.ok())
    return conn.error();
  auto owner = quoted(*conn, a.owner_role);
  auto db = quoted(*conn, a.database);
  if (!owner.ok() || !db.ok())
    return makeError(ErrorCode::kInvalidArgument, "quoting the owner role or database name");
  auto has_role =
      conn->query("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", {a.owner_role}, timeout);
  if (!has_role.ok())
    return has_role.error().wrap("looking for the owner role");
  if (has_role->rows.empty())
    PGF_TRY(conn->exec(fmt::format("CREATE ROLE {} NOLOGIN", *owner), timeout),
            "creating the owner role");
  auto has_db =
      conn->query("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", {a.database}, timeout);
  if (!has_db.ok())
    return has_db.error().wrap("looking for the database");
  if (has_db->rows.empty()) {
    // A pooled instance's database, made ahead: renamed and handed over in an instant, where
    // CREATE DATABASE copies a template (and ships the copy to every replica).
    auto made_ahead = conn->query("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
                                  {std::string(kPooledDatabase)}, timeout);
    if (!made_ahead.ok())
      return made_ahead.error().wrap("looking for the database made ahead");
    if (!made_ahead->rows.empty()) {
      PGF_TRY(
          conn->exec(fmt::format("ALTER DATABASE {} RENAME TO {}", kPooledDatabase, *db), timeout),
          "naming the database");
      PGF_TRY(conn->exec(fmt::format("ALTER DATABASE {} OWNER TO {}", *db, *owner), timeout),
              "handing the database to its owner");
    } else {
      PGF_TRY(conn->exec(fmt::format("CREATE DATABASE {} OWNER {}", *db, *owner), timeout),
              "creating the database");
    }
  }
  // Only the owner (and its members) may connect; other instances' roles do not exist here, and
  // PUBLIC loses the default CONNECT and TEMP.
  PGF_TRY(conn->exec(fmt::format("REVOKE ALL ON DATABASE {} FROM PUBLIC", *db), timeout),
          "restricting the database");
  PGF_TRY(conn->exec(fmt::format("GRANT ALL ON DATABASE {} TO {}", *db, *owner), timeout),
          "granting the database to its owner");
  return createExtensions(a, extensions, timeout);
}

Status createExtensions(const InstanceAccess& a, const std::vector<std::string>& extensions,
                        Millis timeout) {
  if (extensions.empty())
    return okStatus();
  auto in_db = connectAs(a, a.database, timeout);
  if (!in_db.ok())
    return in_db.error();
  // One statement string: one transaction, so that all are made or none.
  std::string sql;
  for (const auto& ext : extensions) {
    auto name = quoted(*in_db, ext);
    if (!name.ok())
      return name.error();
    sql += fmt::format("CREATE EXTENSION IF NOT EXISTS {}; ", *name);
  }
  PGF_TRY(in_db->exec(sql, timeout), "creating the extensions");
  return okStatus();
}

Status prepareDatabaseAhead(const InstanceAccess& a, Millis timeout) {
  auto conn = connectAs(a, "postgres", timeout);
  if (!conn.ok())
    return conn.error();
  auto has_db = conn->query("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
                            {std::string(kPooledDatabase)}, timeout);
  if (!has_db.ok())
    return has_db.error().wrap("looking for the database made ahead");
  if (has_db->rows.empty())
    PGF_TRY(conn->exec(fmt::format("CREATE DATABASE {}", kPooledDatabase), timeout),
            "creating the database ahead");
  return okStatus();
}

Result<bool> runsWith(const InstanceAccess& a,
                      const std::vector<std::pair<std::string, std::string>>& parameters,
                      Millis timeout) {
  auto conn = connectAs(a, "postgres", timeout);
  if (!conn.ok())
    return conn.error();
  for (const auto& [name, value] : parameters) {
    auto r = conn->query(
        "SELECT CASE WHEN pg_catalog.current_setting($1) = $2 THEN true "
        "WHEN pg_catalog.current_setting($1) ~ '^[0-9]+ ?[kMGT]?B$' AND $2 ~ '^[0-9]+ ?[kMGT]?B$' "
        "THEN pg_catalog.pg_size_bytes(pg_catalog.current_setting($1)) = "
        "pg_catalog.pg_size_bytes($2) ELSE false END AS ok",
        {name, value}, timeout);
    if (!r.ok())
      return r.error().wrap("reading the server's settings");
    if (r->get(0, "ok").value_or("f") != "t")
      return false;
  }
  return true;
}

Status checkReadiness(const InstanceAccess& a, Millis timeout) {
  // A committed row, in the postgres database (the tenant's database stays as the tenant left it),
  // then a session in the tenant's database.
  auto conn = connectAs(a, "postgres", timeout);
  if (!conn.ok())
    return conn.error();
  PGF_TRY(
      conn->exec("SET client_min_messages = warning; "
                 "CREATE TABLE IF NOT EXISTS public.pgfleet_readiness (checked_at timestamptz); "
                 "INSERT INTO public.pgfleet_readiness VALUES (now())",
                 timeout),
      "writing through the read-write endpoint");
  auto in_db = connectAs(a, a.database, timeout);
  if (!in_db.ok())
    return in_db.error();
  if (a.read_only_port > 0) {
    // A replica shows the new database once it has replayed it: asynchronous replication may
    // take a moment, so this read is tried again until `timeout`.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Error last = makeError(ErrorCode::kTimeout, "no attempt");
    while (true) {
      auto ro = PgConnection::connect(superuser(a, a.read_only_port, a.database), timeout);
      if (ro.ok()) {
        auto r = ro->query("SELECT pg_catalog.pg_is_in_recovery() AS r", {}, timeout);
        if (r.ok() && r->get(0, "r").value_or("") == "t")
          break;
        last = r.ok() ? makeError(ErrorCode::kPostgresUnavailable,
                                  "the read-only endpoint reached a primary, not a replica")
                      : r.error().wrap("reading through the read-only endpoint");
      } else {
        last = ro.error().wrap(fmt::format("connecting through the read-only endpoint {}:{}",
                                           a.host, a.read_only_port));
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return okStatus();
}

Status createBindingRole(const InstanceAccess& a, const std::string& role,
                         const std::string& password, Millis timeout) {
  auto conn = connectAs(a, "postgres", timeout);
  if (!conn.ok())
    return conn.error();
  PGF_TRY(createOrUpdateRole(*conn, PgUser{role, password},
                             "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT"),
          "creating the binding's role");
  auto name = quoted(*conn, role);
  auto owner = quoted(*conn, a.owner_role);
  auto db = quoted(*conn, a.database);
  if (!name.ok() || !owner.ok() || !db.ok())
    return makeError(ErrorCode::kInvalidArgument, "quoting the binding's role");
  PGF_TRY(conn->exec(fmt::format("GRANT {} TO {}", *owner, *name), timeout),
          "making the binding's role a member of the owner role");
  // Its sessions act as the owner: what one binding creates, every binding can use.
  PGF_TRY(conn->exec(fmt::format("ALTER ROLE {} IN DATABASE {} SET role = {}", *name, *db, *owner),
                     timeout),
          "setting the binding's role");
  return okStatus();
}

Result<bool> roleExists(const InstanceAccess& a, const std::string& role, Millis timeout) {
  auto conn = connectAs(a, "postgres", timeout);
  if (!conn.ok())
    return conn.error();
  auto r = conn->query("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", {role}, timeout);
  if (!r.ok())
    return r.error();
  return !r->rows.empty();
}

Status dropBindingRole(const InstanceAccess& a, const std::string& role, Millis timeout) {
  auto exists = roleExists(a, role, timeout);
  if (!exists.ok())
    return exists.error();
  if (!*exists)
    return okStatus();
  auto conn = connectAs(a, "postgres", timeout);
  if (!conn.ok())
    return conn.error();
  auto name = quoted(*conn, role);
  auto owner = quoted(*conn, a.owner_role);
  if (!name.ok() || !owner.ok())
    return makeError(ErrorCode::kInvalidArgument, "quoting the binding's role");
  // No new session, then none left.
  PGF_TRY(conn->exec(fmt::format("ALTER ROLE {} NOLOGIN", *name), timeout),
          "locking the binding's role");
  PGF_TRY(
      conn->query("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                  "WHERE usename = $1",
                  {role}, timeout),
      "terminating the binding's sessions");
  // What it owns, in the instance's database and in postgres, goes to the owner.
  for (const std::string& database : {a.database, std::string("postgres")}) {
    auto in_db = connectAs(a, database, timeout);
    if (!in_db.ok())
      return in_db.error();
    PGF_TRY(in_db->exec(
                fmt::format("REASSIGN OWNED BY {} TO {}; DROP OWNED BY {}", *name, *owner, *name),
                timeout),
            "reassigning what the binding's role owned in " + database);
  }
  PGF_TRY(conn->exec(fmt::format("DROP ROLE IF EXISTS {}", *name), timeout),
          "dropping the binding's role");
  return okStatus();
}

nlohmann::json bindingCredentials(const InstanceAccess& a, const std::string& role,
                                  const std::string& password) {
  const std::string user = percentEncode(role);
  const std::string pass = percentEncode(password);
  const std::string db = percentEncode(a.database);
  auto uri = [&](int port) {
    return fmt::format("postgresql://{}:{}@{}:{}/{}", user, pass, a.host, port, db);
  };
  nlohmann::json c = {
      {"uri", uri(a.read_write_port)},
      {"jdbcUrl", fmt::format("jdbc:postgresql://{}:{}/{}?user={}&password={}", a.host,
                              a.read_write_port, db, user, pass)},
      {"hostname", a.host},
      {"host", a.host},
      {"port", a.read_write_port},
      {"name", a.database},
      {"database", a.database},
      {"username", role},
      {"password", password},
  };
  nlohmann::json endpoints = nlohmann::json::array(
      {{{"host", a.host}, {"ports", {std::to_string(a.read_write_port)}}, {"protocol", "tcp"}}});
  if (a.read_only_port > 0) {
    c["read_only_uri"] = uri(a.read_only_port);
    c["read_only_port"] = a.read_only_port;
    endpoints[0]["ports"].push_back(std::to_string(a.read_only_port));
  }
  c["endpoints"] = endpoints;
  return c;
}

}  // namespace pgf
