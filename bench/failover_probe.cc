// failover_probe: the client side of the failover, bootstrap and crash-restart benchmarks.
//
// It writes through a stable endpoint (HAProxy's read-write port) the way an application would and
// measures what the application saw. Two modes:
//   failover     inserts one numbered row every --interval-ms, reconnecting on any error, until
//                --duration, --max-rows, SIGTERM, or --stop-after seconds of successful writes
//                after the kill mark. It reports the longest gap between acknowledged inserts from
//                the kill mark on (the failover window) and, reading the table again at the end,
//                which acknowledged sequence numbers are missing.
//   until-write  from the mark (its own start, or SIGUSR1 / the trigger file with --wait-mark)
//                retries connect + insert until one succeeds, and reports how long that took.
// The kill mark is SIGUSR1 or the appearance of --trigger-file. Every wait is bounded by
// --duration. The report is one JSON object on stdout; progress and errors go to stderr.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "probe_connection.h"

namespace pgf::bench {
namespace {

// Set from signal handlers: only lock-free atomics and clock_gettime, both async-signal-safe.
std::atomic<Nanos> killMarkNs{0};
std::atomic<bool> stopRequested{false};
static_assert(std::atomic<Nanos>::is_always_lock_free);

void onMark(int) {
  Nanos expected = 0;
  killMarkNs.compare_exchange_strong(expected, monoNs());
}
void onStop(int) {
  stopRequested.store(true);
}

struct Options {
  std::string conninfo;
  std::string mode = "failover";
  std::string table = "pgfleet_probe";
  std::string trigger_file;
  double duration_seconds = 120;
  double stop_after_seconds = 0;  // 0 = run until --duration
  int max_rows = 100000;
  int interval_ms = 20;
  int query_timeout_ms = 5000;
  double verify_timeout_seconds = 30;
  bool wait_mark = false;
};

// Wall-clock seconds of a monotonic instant, so scripts can line the probe's events up with
// timestamps they take themselves (bash's EPOCHREALTIME).
class WallMapper {
 public:
  WallMapper() : offset_(clockNs(CLOCK_REALTIME) - monoNs()) {}
  double wallSeconds(Nanos mono) const {
    return static_cast<double>(mono + offset_) / static_cast<double>(NanosPerSecond);
  }

 private:
  Nanos offset_;
};

double toMs(Nanos d) {
  return static_cast<double>(d) / static_cast<double>(NanosPerMilli);
}

std::string randomRunId() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

class Probe {
 public:
  explicit Probe(Options opts) : opts_(std::move(opts)), conn_(opts_.conninfo) {}

  nlohmann::json run() {
    start_ = monoNs();
    deadline_ = start_ + static_cast<Nanos>(opts_.duration_seconds * NanosPerSecond);
    return opts_.mode == "until-write" ? runUntilWrite() : runFailover();
  }

 private:
  bool expired() const { return stopRequested.load() || monoNs() >= deadline_; }

  // The kill mark, from SIGUSR1 or from the trigger file's appearance (checked once per attempt, so
  // a file mark is as late as one attempt; the signal is exact).
  Nanos mark() {
    if (killMarkNs.load() == 0 && !opts_.trigger_file.empty() &&
        access(opts_.trigger_file.c_str(), F_OK) == 0) {
      onMark(0);
    }
    return killMarkNs.load();
  }

  void pause(Nanos until) {
    while (!expired()) {
      const Nanos left = until - monoNs();
      if (left <= 0)
        return;
      std::this_thread::sleep_for(
          std::chrono::nanoseconds(std::min<Nanos>(left, 5 * NanosPerMilli)));
    }
  }

  bool ensureConnected() {
    if (conn_.connected())
      return true;
    ++connect_attempts_;
    if (!conn_.open())
      return noteError();
    const std::string ddl =
        "CREATE TABLE IF NOT EXISTS " + opts_.table +
        " (run_id text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (run_id, seq))";
    if (!conn_.exec(ddl, {}, queryTimeout()))
      return noteError();
    return true;
  }

  bool insert(long long seq) {
    return conn_.exec("INSERT INTO " + opts_.table + " (run_id, seq) VALUES ($1, $2)",
                      {run_id_, std::to_string(seq)}, queryTimeout()) ||
           noteError();
  }

  bool noteError() {
    ++errors_;
    streak_start_ = 0;
    last_error_ns_ = monoNs();
    const std::string msg = oneLine(conn_.lastError());
    if (msg != last_error_) {
      last_error_ = msg;
      std::cerr << "failover_probe: " << msg << '\n';
    }
    return false;
  }

  Nanos queryTimeout() const { return static_cast<Nanos>(opts_.query_timeout_ms) * NanosPerMilli; }
  Nanos interval() const { return static_cast<Nanos>(opts_.interval_ms) * NanosPerMilli; }

  nlohmann::json runFailover() {
    long long seq = 0;
    Nanos next = start_;
    while (!expired() && static_cast<int>(acked_seq_.size()) < opts_.max_rows) {
      pause(next);
      if (expired())
        break;
      next = std::max(next + interval(), monoNs());
      if (recoveredLongEnough(mark()))
        break;
      if (!ensureConnected())
        continue;
      ++seq;
      if (insert(seq)) {
        ack_ns_.push_back(monoNs());
        acked_seq_.push_back(seq);
        if (streak_start_ == 0)
          streak_start_ = ack_ns_.back();
      }
    }
    stopped_ = monoNs();
    conn_.close();
    nlohmann::json out = failoverReport();
    out.update(verify());
    return out;
  }

  // --stop-after: writes have succeeded without a single failure for that long since the kill.
  bool recoveredLongEnough(Nanos killed) const {
    if (killed == 0 || opts_.stop_after_seconds <= 0 || streak_start_ == 0)
      return false;
    const Nanos first = firstAckAfter(killed);
    return first != 0 && monoNs() - std::max(streak_start_, first) >=
                             static_cast<Nanos>(opts_.stop_after_seconds * NanosPerSecond);
  }

  Nanos firstAckAfter(Nanos t) const {
    auto it = std::upper_bound(ack_ns_.begin(), ack_ns_.end(), t);
    return it == ack_ns_.end() ? 0 : *it;
  }

  nlohmann::json failoverReport() const {
    nlohmann::json out = common();
    const Nanos killed = killMarkNs.load();
    out["kill_marked"] = killed != 0;
    if (killed == 0)
      return out;
    out["kill_wall"] = wall_.wallSeconds(killed);
    // The window starts at the last acknowledged insert before the kill: the application saw no
    // progress from then on, whatever the exact kill instant.
    auto it = std::upper_bound(ack_ns_.begin(), ack_ns_.end(), killed);
    const bool recovered = it != ack_ns_.end();
    out["recovered"] = recovered;
    if (it == ack_ns_.begin()) {
      out["error"] = "no acknowledged insert before the kill mark";
      return out;
    }
    auto prev = std::prev(it);
    // A run that never recovered ends its last gap when the probe stopped.
    const Nanos stopped = recovered ? ack_ns_.back() : stopped_;
    Nanos gap_start = *prev;
    Nanos gap_end = recovered ? *it : stopped;
    for (auto a = prev; std::next(a) != ack_ns_.end(); ++a) {
      if (*std::next(a) - *a > gap_end - gap_start) {
        gap_start = *a;
        gap_end = *std::next(a);
      }
    }
    const Nanos gap = gap_end - gap_start;
    out["window_ms"] = toMs(gap);
    out["window_start_wall"] = wall_.wallSeconds(gap_start);
    out["window_end_wall"] = wall_.wallSeconds(gap_end);
    out["last_ack_before_kill_ms"] = toMs(killed - *prev);
    if (recovered) {
      out["kill_to_first_ack_ms"] = toMs(*it - killed);
      // A dying server can still acknowledge a write or two after the kill; writes are back for
      // good with the first acknowledgement after the last failure.
      const Nanos back = last_error_ns_ > killed ? firstAckAfter(last_error_ns_) : *it;
      if (back != 0)
        out["kill_to_recovery_ms"] = toMs(back - killed);
    }
    out["acked_after_kill"] = std::distance(it, ack_ns_.end());
    return out;
  }

  nlohmann::json runUntilWrite() {
    if (opts_.wait_mark) {
      while (!expired() && mark() == 0)
        pause(monoNs() + 5 * NanosPerMilli);
    } else {
      onMark(0);
    }
    const Nanos from = killMarkNs.load();
    Nanos done = 0;
    long long seq = 0;
    while (from != 0 && !expired()) {
      const Nanos attempt = monoNs();
      if (ensureConnected() && insert(++seq)) {
        done = monoNs();
        acked_seq_.push_back(seq);
        break;
      }
      pause(attempt + interval());
    }
    conn_.close();
    nlohmann::json out = common();
    out["mark_wall"] =
        from == 0 ? nlohmann::json(nullptr) : nlohmann::json(wall_.wallSeconds(from));
    out["write_ok"] = done != 0;
    if (done != 0) {
      out["ms_to_write"] = toMs(done - from);
      out["write_wall"] = wall_.wallSeconds(done);
    } else {
      out["error"] = last_error_.empty() ? "no mark before the deadline" : last_error_;
    }
    return out;
  }

  nlohmann::json common() const {
    return {{"mode", opts_.mode},
            {"run_id", run_id_},
            {"acked", acked_seq_.size()},
            {"errors", errors_},
            {"connect_attempts", connect_attempts_},
            {"duration_ms", toMs(monoNs() - start_)}};
  }

  // Reads the table back through the same endpoint; retries until --verify-timeout because the
  // endpoint may still be moving to the new primary.
  nlohmann::json verify() {
    nlohmann::json out{{"verified", false}};
    const Nanos until =
        monoNs() + static_cast<Nanos>(opts_.verify_timeout_seconds * NanosPerSecond);
    std::vector<std::string> rows;
    bool ok = false;
    while (!ok && monoNs() < until) {
      rows.clear();
      ok = conn_.open() && conn_.exec("SELECT seq FROM " + opts_.table + " WHERE run_id = $1",
                                      {run_id_}, queryTimeout(), &rows);
      if (!ok)
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    conn_.close();
    if (!ok) {
      out["verify_error"] = oneLine(conn_.lastError());
      return out;
    }
    std::set<long long> present;
    for (const auto& r : rows)
      present.insert(std::stoll(r));
    std::vector<long long> missing;
    for (long long s : acked_seq_) {
      if (present.erase(s) == 0)
        missing.push_back(s);
    }
    out["verified"] = true;
    out["rows_in_table"] = rows.size();
    out["missing"] = missing.size();
    out["missing_seqs"] = std::vector<long long>(
        missing.begin(), missing.begin() + std::min<std::size_t>(missing.size(), 20));
    // Rows committed whose acknowledgement never reached us: not a loss, reported for context.
    out["unacked_present"] = present.size();
    return out;
  }

  Options opts_;
  Connection conn_;
  WallMapper wall_;
  std::string run_id_ = randomRunId();
  Nanos start_ = 0;
  Nanos deadline_ = 0;
  Nanos stopped_ = 0;
  Nanos streak_start_ = 0;  // first acknowledgement since the last failed attempt
  Nanos last_error_ns_ = 0;
  std::vector<Nanos> ack_ns_;
  std::vector<long long> acked_seq_;
  long long errors_ = 0;
  long long connect_attempts_ = 0;
  std::string last_error_;
};

}  // namespace
}  // namespace pgf::bench

int main(int argc, char** argv) {
  using pgf::bench::Options;
  Options opts;
  CLI::App app{"Writes through an endpoint and measures failover windows and lost writes."};
  app.add_option("--conninfo", opts.conninfo, "libpq conninfo of the read-write endpoint")
      ->required();
  app.add_option("--mode", opts.mode, "failover | until-write")
      ->check(CLI::IsMember({"failover", "until-write"}));
  app.add_option("--table", opts.table, "table to write (created if missing)");
  app.add_option("--trigger-file", opts.trigger_file, "its appearance marks the kill (as SIGUSR1)");
  app.add_option("--duration", opts.duration_seconds, "hard bound on the run, seconds");
  app.add_option(
      "--stop-after", opts.stop_after_seconds,
      "failover: stop once writes after the kill have not failed for this long, seconds");
  app.add_option("--max-rows", opts.max_rows, "failover: stop after this many acknowledged rows");
  app.add_option("--interval-ms", opts.interval_ms, "pause between write attempts");
  app.add_option("--query-timeout-ms", opts.query_timeout_ms, "bound on one statement");
  app.add_option("--verify-timeout", opts.verify_timeout_seconds,
                 "failover: how long to retry the final read-back, seconds");
  app.add_flag("--wait-mark", opts.wait_mark, "until-write: start timing at SIGUSR1/trigger file");
  CLI11_PARSE(app, argc, argv);

  struct sigaction sa {};
  sa.sa_handler = pgf::bench::onMark;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  sa.sa_handler = pgf::bench::onStop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  pgf::bench::Probe probe(opts);
  const nlohmann::json report = probe.run();
  std::cout << report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return report.value("error", std::string()).empty() ? 0 : 1;
}
