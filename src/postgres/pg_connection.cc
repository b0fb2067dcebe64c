#include "postgres/pg_connection.h"

#include <poll.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <libpq-fe.h>

namespace pgf {
namespace {

// Cancel requests still waiting for their server (see query()).
constexpr int kMaxCancelsInFlight = 8;

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

Millis remaining(MonoTime deadline) {
  return std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
}

// Waits until `fd` is ready for `events` or the deadline passes. false on timeout or poll error.
bool pollFd(int fd, short events, MonoTime deadline) {
  for (;;) {
    auto left = remaining(deadline);
    if (left.count() <= 0)
      return false;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR)
      continue;
    return r > 0;
  }
}

PgResult convert(PGresult* r) {
  PgResult out;
  int ncols = PQnfields(r);
  int nrows = PQntuples(r);
  for (int c = 0; c < ncols; ++c)
    out.columns.emplace_back(PQfname(r, c));
  out.rows.reserve(static_cast<size_t>(nrows));
  for (int i = 0; i < nrows; ++i) {
    std::vector<PgValue> row;
    row.reserve(static_cast<size_t>(ncols));
    for (int c = 0; c < ncols; ++c) {
      if (PQgetisnull(r, i, c))
        row.emplace_back(std::nullopt);
      else
        row.emplace_back(
            std::string(PQgetvalue(r, i, c), static_cast<size_t>(PQgetlength(r, i, c))));
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

Error resultError(PGresult* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  std::string msg = trimmed(PQresultErrorMessage(r));
  if (state)
    msg = fmt::format("{} (sqlstate {})", msg, state);
  return makeError(ErrorCode::kPostgresUnavailable, msg);
}

}  // namespace

PgValue PgResult::get(size_t row, std::string_view column) const {
  if (row >= rows.size())
    return std::nullopt;
  for (size_t c = 0; c < columns.size(); ++c) {
    if (columns[c] == column)
      return rows[row][c];
  }
  return std::nullopt;
}

Result<PgConnection> PgConnection::connect(const ConnParams& params, Millis timeout) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PGconn* c = PQconnectStartParams(keys.data(), values.data(), 0);
  if (c == nullptr)
    return makeError(ErrorCode::kPostgresUnavailable, "connecting: out of memory", true);
  PgConnection conn(c);
  if (PQstatus(c) == CONNECTION_BAD)
    return makeError(ErrorCode::kPostgresUnavailable,
                     fmt::format("connecting: {}", trimmed(PQerrorMessage(c))), true);
  // libpq's documented protocol: start as if PQconnectPoll had asked for writability.
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  for (;;) {
    if (st == PGRES_POLLING_OK)
      break;
    if (st == PGRES_POLLING_FAILED)
      return makeError(ErrorCode::kPostgresUnavailable,
                       fmt::format("connecting: {}", trimmed(PQerrorMessage(c))), true);
    short events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    if (!pollFd(PQsocket(c), events, deadline))
      return makeError(ErrorCode::kTimeout,
                       fmt::format("connecting: no answer within {} ms", timeout.count()), true);
    st = PQconnectPoll(c);
  }
  return conn;
}

PgConnection::PgConnection(PgConnection&& other) noexcept : conn_(other.conn_) {
  other.conn_ = nullptr;
}

PgConnection& PgConnection::operator=(PgConnection&& other) noexcept {
  if (this != &other) {
    close();
    conn_ = other.conn_;
    other.conn_ = nullptr;
  }
  return *this;
}

PgConnection::~PgConnection() {
  close();
}

void PgConnection::close() {
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

Status PgConnection::waitReadable(MonoTime deadline) {
  while (PQisBusy(conn_)) {
    if (!pollFd(PQsocket(conn_), POLLIN, deadline))
      return makeError(ErrorCode::kTimeout, "no answer in time", true);
    if (!PQconsumeInput(conn_))
      return makeError(ErrorCode::kPostgresUnavailable, trimmed(PQerrorMessage(conn_)), true);
  }
  return okStatus();
}

Result<PgResult> PgConnection::query(std::string_view sql, const std::vector<PgValue>& params,
                                     Millis timeout) {
  if (conn_ == nullptr)
    return makeError(ErrorCode::kPostgresUnavailable, "connection is closed", true);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text(sql);
  int sent = 0;
  if (params.empty()) {
    sent = PQsendQuery(conn_, text.c_str());
  } else {
    std::vector<const char*> values;
    for (const auto& p : params)
      values.push_back(p ? p->c_str() : nullptr);
    sent = PQsendQueryParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  }
  if (!sent) {
    auto err = makeError(ErrorCode::kPostgresUnavailable, trimmed(PQerrorMessage(conn_)), true);
    if (PQstatus(conn_) == CONNECTION_BAD)
      close();
    return err;
  }
  std::optional<PgResult> out;
  std::optional<Error> failure;
  for (;;) {
    auto waited = waitReadable(deadline);
    if (!waited.ok()) {
      // Stop the statement on the server too, then drop the connection: its state is unknown.
      // PQcancel blocks until the postmaster answers, and a frozen server never does: it is sent
      // from a thread of its own so that the caller's deadline holds. While a few such requests
      // still wait, no more are sent (the closed connection ends the statement soon enough), so
      // a server frozen for hours does not pile up threads.
      static std::atomic<int> cancels_in_flight{0};
      PGcancel* cancel =
          cancels_in_flight.load() < kMaxCancelsInFlight ? PQgetCancel(conn_) : nullptr;
      if (cancel != nullptr) {
        ++cancels_in_flight;
        std::thread([cancel] {
          char buf[256];
          PQcancel(cancel, buf, sizeof buf);
          PQfreeCancel(cancel);
          --cancels_in_flight;
        }).detach();
      }
      close();
      return waited.error();
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr)
      break;
    auto status = PQresultStatus(r);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK || status == PGRES_EMPTY_QUERY) {
      out = convert(r);
    } else if (!failure) {
      failure = resultError(r);
    }
    PQclear(r);
  }
  if (PQstatus(conn_) == CONNECTION_BAD) {
    close();
    if (!failure)
      failure = makeError(ErrorCode::kPostgresUnavailable, "connection lost", true);
  }
  if (failure)
    return *failure;
  if (!out)
    return makeError(ErrorCode::kPostgresUnavailable, "no result");
  return std::move(*out);
}

Status PgConnection::exec(std::string_view sql, Millis timeout) {
  auto r = query(sql, {}, timeout);
  if (!r.ok())
    return r.error();
  return okStatus();
}

Result<std::string> PgConnection::quoteIdentifier(std::string_view name) {
  if (conn_ == nullptr)
    return makeError(ErrorCode::kPostgresUnavailable, "connection is closed", true);
  char* q = PQescapeIdentifier(conn_, name.data(), name.size());
  if (q == nullptr)
    return makeError(ErrorCode::kInvalidArgument,
                     fmt::format("quoting identifier: {}", trimmed(PQerrorMessage(conn_))));
  std::string out(q);
  PQfreemem(q);
  return out;
}

Result<std::string> PgConnection::quoteLiteral(std::string_view value) {
  if (conn_ == nullptr)
    return makeError(ErrorCode::kPostgresUnavailable, "connection is closed", true);
  char* q = PQescapeLiteral(conn_, value.data(), value.size());
  if (q == nullptr)
    // The message may quote the input; the input may be a password.
    return makeError(ErrorCode::kInvalidArgument, "quoting literal: invalid value");
  std::string out(q);
  PQfreemem(q);
  return out;
}

}  // namespace pgf
