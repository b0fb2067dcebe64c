#include "faults/workload.h"

#include <optional>

#include <fmt/format.h>

#include "postgres/lsn.h"

namespace pgf::faults {

namespace {

using std::chrono::milliseconds;

constexpr Millis kConnectTimeout(1000);
constexpr Millis kWriteTimeout(2000);
constexpr Millis kProbeTimeout(1000);

// An error that says the statement was refused before anything could commit.
bool definitelyRefused(const std::string& message) {
  return message.find("read-only transaction") != std::string::npos ||
         message.find("recovery is in progress") != std::string::npos;
}

}  // namespace

Workload::Workload(const FaultCluster& cluster, std::chrono::steady_clock::time_point epoch,
                   int clients)
    : cluster_(cluster), epoch_(epoch), clients_(clients) {}

Workload::~Workload() {
  stop();
}

int64_t Workload::nowMs() const {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - epoch_)
      .count();
}

Status Workload::start(int primary) {
  auto conn = PgConnection::connect(cluster_.nodeParams(primary), Millis(3000));
  if (!conn.ok())
    return conn.error();
  PGF_TRY(conn->exec(fmt::format("DROP TABLE IF EXISTS {0}; DROP TABLE IF EXISTS {1}; "
                                 "CREATE TABLE {0} (id bigint PRIMARY KEY, client int NOT NULL); "
                                 "CREATE TABLE {1} (node int NOT NULL)",
                                 kRowsTable, kProbeTable),
                     Millis(20000)),
          "creating the workload's tables");
  running_ = true;
  for (int c = 0; c < clients_; ++c)
    threads_.emplace_back([this, c] { client(c); });
  for (int i = 0; i < cluster_.nodes(); ++i)
    threads_.emplace_back([this, i] { probe(i); });
  return okStatus();
}

void Workload::stop() {
  running_ = false;
  for (auto& t : threads_)
    t.join();
  threads_.clear();
}

std::vector<WriteAttempt> Workload::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

std::vector<ProbeWrite> Workload::probes() const {
  std::lock_guard lock(mu_);
  return probes_;
}

void Workload::client(int index) {
  std::optional<PgConnection> conn;
  int node = -1;
  int next = index % cluster_.nodes();
  const std::string insert = fmt::format(
      "INSERT INTO {} VALUES ($1, $2) RETURNING pg_current_wal_lsn()::text, "
      "pg_walfile_name(pg_current_wal_lsn())",
      kRowsTable);
  while (running_) {
    if (!conn) {
      // The endpoint: the next node that answers and is not in recovery.
      for (int tries = 0; tries < cluster_.nodes() && running_ && !conn; ++tries) {
        const int candidate = next;
        next = (next + 1) % cluster_.nodes();
        auto c = PgConnection::connect(cluster_.nodeParams(candidate), kConnectTimeout);
        if (!c.ok())
          continue;
        auto recovery = c->query("SELECT pg_is_in_recovery()", {}, kConnectTimeout);
        if (recovery.ok() && !recovery->rows.empty() && recovery->rows[0][0] &&
            *recovery->rows[0][0] == "f") {
          conn.emplace(std::move(c).value());
          node = candidate;
        }
      }
      if (!conn) {
        std::this_thread::sleep_for(milliseconds(100));
        continue;
      }
    }
    WriteAttempt w;
    w.id = ++next_id_;
    w.start_ms = nowMs();
    auto r = conn->query(insert, {std::to_string(w.id), std::to_string(index)}, kWriteTimeout);
    w.end_ms = nowMs();
    if (r.ok() && !r->rows.empty() && r->rows[0][0] && r->rows[0][1]) {
      w.outcome = WriteAttempt::Outcome::kAcknowledged;
      w.node = node;
      auto lsn = parseLsn(*r->rows[0][0]);
      w.lsn = lsn.ok() ? *lsn : 0;
      w.timeline = static_cast<int>(std::stoul(r->rows[0][1]->substr(0, 8), nullptr, 16));
    } else {
      w.outcome = !r.ok() && definitelyRefused(r.error().message) ? WriteAttempt::Outcome::kRefused
                                                                  : WriteAttempt::Outcome::kUnknown;
      conn.reset();
    }
    {
      std::lock_guard lock(mu_);
      writes_.push_back(w);
    }
    std::this_thread::sleep_for(
        milliseconds(w.outcome == WriteAttempt::Outcome::kAcknowledged ? 30 : 100));
  }
}

void Workload::probe(int node) {
  std::optional<PgConnection> conn;
  const std::string insert = fmt::format("INSERT INTO {} VALUES ($1)", kProbeTable);
  while (running_) {
    ProbeWrite p;
    p.node = node;
    p.start_ms = nowMs();
    if (!conn) {
      auto c = PgConnection::connect(cluster_.nodeParams(node), kConnectTimeout);
      if (c.ok())
        conn.emplace(std::move(c).value());
    }
    if (conn) {
      auto r = conn->query(insert, {std::to_string(node)}, kProbeTimeout);
      p.acknowledged = r.ok();
      if (!r.ok() && !conn->isOpen())
        conn.reset();
    }
    p.end_ms = nowMs();
    {
      std::lock_guard lock(mu_);
      probes_.push_back(p);
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
}

}  // namespace pgf::faults
