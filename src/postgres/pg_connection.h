// A thin libpq wrapper: one connection to one PostgreSQL server, opened and queried with hard
// deadlines (asynchronous libpq under poll()), so a dead or hung server cannot block the agent for
// longer than the caller allowed. Rows come back as strings (NULL as std::nullopt); every failure
// is an Error (kPostgresUnavailable for connecting, kTimeout for a deadline, kPostgresUnavailable
// with the SQLSTATE for a failed statement). Never throws. Not thread-safe: one connection, one
// thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

struct pg_conn;  // libpq's PGconn, kept out of this header

namespace pgf {

// libpq connection keywords ("host", "port", "user", "dbname", "passfile", "application_name",
// "options", ...), passed as keyword/value arrays: values are never pasted into a conninfo string.
using ConnParams = std::map<std::string, std::string>;

using PgValue = std::optional<std::string>;

struct PgResult {
  std::vector<std::string> columns;
  std::vector<std::vector<PgValue>> rows;

  // The value in `row` of the column named `column` (nullopt when NULL or no such column).
  PgValue get(size_t row, std::string_view column) const;
};

class PgConnection {
 public:
  // Opens a connection, giving up after `timeout` (libpq's own connect_timeout has a 2 s floor and
  // second granularity; this deadline is exact).
  static Result<PgConnection> connect(const ConnParams& params, Millis timeout);

  PgConnection(PgConnection&& other) noexcept;
  PgConnection& operator=(PgConnection&& other) noexcept;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;
  ~PgConnection();

  // Runs one statement ($1, $2, ... bound to `params`), or, without params, a script of several;
  // the result of the last statement is returned. Past `timeout` the statement is cancelled and the
  // connection closed (later calls fail).
  Result<PgResult> query(std::string_view sql, const std::vector<PgValue>& params = {},
                         Millis timeout = Millis(5000));
  Status exec(std::string_view sql, Millis timeout = Millis(5000));

  // Quoting for the statements that cannot take parameters (CREATE ROLE, GRANT): PQescapeIdentifier
  // and PQescapeLiteral, which know the server's encoding and standard_conforming_strings.
  Result<std::string> quoteIdentifier(std::string_view name);
  Result<std::string> quoteLiteral(std::string_view value);

  bool isOpen() const { return conn_ != nullptr; }

 private:
  explicit PgConnection(pg_conn* conn) : conn_(conn) {}
  void close();
  Status waitReadable(MonoTime deadline);

  pg_conn* conn_ = nullptr;
};

}  // namespace pgf
