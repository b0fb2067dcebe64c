// A libpq connection for the benchmark probe whose every call is bounded in time, and the
// monotonic clock the probe measures with. Header-only: the probe is a single small binary.
// Nothing here retries; the caller decides what a failure means.
#pragma once

#include <libpq-fe.h>
#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pgf::bench {

using Nanos = std::int64_t;
constexpr Nanos NanosPerMilli = 1'000'000;
constexpr Nanos NanosPerSecond = 1'000'000'000;

inline Nanos clockNs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<Nanos>(ts.tv_sec) * NanosPerSecond + ts.tv_nsec;
}
inline Nanos monoNs() {
  return clockNs(CLOCK_MONOTONIC);
}

// libpq messages span lines ("...failed: refused\n\tIs the server running..."): one line for JSON.
inline std::string oneLine(std::string msg) {
  for (char& c : msg) {
    if (c == '\n' || c == '\t')
      c = ' ';
  }
  while (!msg.empty() && msg.back() == ' ')
    msg.pop_back();
  return msg;
}

// One libpq connection whose every call is bounded in time: connecting is bounded by
// connect_timeout, queries by polling the socket against a deadline.
class Connection {
 public:
  explicit Connection(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return conn_ != nullptr; }
  const std::string& lastError() const { return error_; }

  bool open() {
    close();
    // The conninfo (key=value or URI) is expanded from dbname; connect_timeout, listed after it,
    // overrides any value it carries so that one attempt never blocks the probe for long.
    const char* keys[] = {"dbname", "connect_timeout", nullptr};
    const char* values[] = {conninfo_.c_str(), "1", nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn_) != CONNECTION_OK) {
      error_ = std::string("connect: ") + PQerrorMessage(conn_);
      close();
      return false;
    }
    // Server notices ("relation already exists, skipping") are noise in the probe's log.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    return true;
  }

  void close() {
    if (conn_ != nullptr) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
  }

  // Runs one statement; returns its rows (possibly none) or closes the connection on any failure.
  bool exec(const std::string& sql, const std::vector<std::string>& params, Nanos timeout,
            std::vector<std::string>* firstColumn = nullptr) {
    std::vector<const char*> values;
    for (const auto& p : params)
      values.push_back(p.c_str());
    if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0) == 0) {
      return fail("send");
    }
    const Nanos deadline = monoNs() + timeout;
    bool ok = true;
    while (true) {
      if (PQconsumeInput(conn_) == 0)
        return fail("receive");
      if (PQisBusy(conn_) == 0) {
        PGresult* res = PQgetResult(conn_);
        if (res == nullptr)
          break;
        const ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
          error_ = std::string("query: ") + PQresultErrorMessage(res);
          ok = false;
        } else if (firstColumn != nullptr) {
          for (int i = 0; i < PQntuples(res); ++i)
            firstColumn->emplace_back(PQgetvalue(res, i, 0));
        }
        PQclear(res);
        continue;
      }
      const Nanos left = deadline - monoNs();
      if (left <= 0)
        return fail("query timed out");
      pollfd pfd{PQsocket(conn_), POLLIN, 0};
      poll(&pfd, 1, static_cast<int>(std::min<Nanos>(left / NanosPerMilli + 1, 100)));
    }
    if (!ok)
      close();
    return ok;
  }

 private:
  bool fail(const char* what) {
    error_ = std::string(what) + ": " + PQerrorMessage(conn_);
    close();
    return false;
  }

  std::string conninfo_;
  PGconn* conn_ = nullptr;
  std::string error_;
};

}  // namespace pgf::bench
