// pgfleet-faults: the fault-injection suite's runner. Starts a cluster on separate hosts
// (fault_cluster.h), and for every schedule — random ones from a seed, or the fixed catalogue —
// runs the workload, applies the faults, heals them, waits for the cluster to converge and
// checks the invariants. Prints one verdict per schedule (with the command that replays it), and
// appends each result to a JSON-lines file from which --summarize builds the table of
// docs/reliability.md. Exits 1 when any invariant was violated.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "faults/checker.h"
#include "faults/fault_cluster.h"
#include "faults/fault_driver.h"
#include "faults/schedule.h"
#include "faults/workload.h"
#include "postgres/lsn.h"
#include "support/local_cluster.h"

namespace pgf::faults {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;
using testing::waitUntil;

// Set by SIGINT and SIGTERM: the run stops after putting back what the current schedule broke,
// and everything it started is stopped and removed as on a normal exit.
std::atomic<bool> g_interrupted{false};
extern "C" void onInterrupt(int) {
  g_interrupted = true;
}

constexpr int64_t kMaxLagOnFailover = 1048576;  // fault_cluster.cc's maximum_lag_on_failover
constexpr Millis kConvergeTimeout(90000);

struct Options {
  uint64_t seed = 0;
  bool seed_given = false;
  int schedules = 0;
  bool catalogue = false;
  std::string only;
  std::optional<uint64_t> replay;
  bool synchronous = false;
  std::string agent = "pgfleet";  // or "patroni"
  std::string results;
  std::string summarize;
  std::string prefix = "pgfr";
  int net = 94;
};

struct Outcome {
  std::string name;
  uint64_t seed = 0;
  bool synchronous = false;
  std::string agent;
  std::vector<std::string> violations;
  std::vector<std::string> notes;
  int failovers = 0;
  int64_t recovery_ms = -1;  // from the last fault's end until the cluster converged
  int64_t longest_gap_ms = 0;
  int acknowledged = 0;
  int lost = 0;
  int64_t overlap_ms = 0;
  int writes_let_through = 0;
  int64_t largest_loss_bytes = 0;
};

void usage() {
  std::cerr << "usage: pgfleet-faults [--seed N] [--schedules N] [--catalogue] [--only NAME,...]\n"
               "                      [--replay SCHEDULE_SEED] [--synchronous]\n"
               "                      [--agent pgfleet|patroni] [--results FILE]\n"
               "       pgfleet-faults --summarize FILE\n";
}

std::string stamp() {
  auto t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
  return buf;
}

ino_t inode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The directory beside `data_dir` that the agent set aside after a failed pg_rewind and that
// still is the directory with inode `was` ("data.rewind-failed-<time>"), if there is one.
std::optional<std::string> setAsideCopy(const std::string& data_dir, ino_t was) {
  const auto dir = std::filesystem::path(data_dir);
  const std::string prefix = dir.filename().string() + ".rewind-failed-";
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir.parent_path(), ec), end; !ec && it != end;
       it.increment(ec))
    if (it->path().filename().string().rfind(prefix, 0) == 0 && inode(it->path().string()) == was)
      return it->path().string();
  return std::nullopt;
}

std::optional<std::string> queryOne(const FaultCluster& cluster, int node, const std::string& sql) {
  auto conn = PgConnection::connect(cluster.nodeParams(node), Millis(3000));
  if (!conn.ok())
    return std::nullopt;
  auto r = conn->query(sql, {}, Millis(10000));
  if (!r.ok() || r->rows.empty() || !r->rows[0][0])
    return std::nullopt;
  return *r->rows[0][0];
}

// What each member says about itself (GET /patroni), for a schedule that did not converge.
std::vector<std::string> memberStates(const FaultCluster& cluster) {
  std::vector<std::string> out;
  for (int i = 0; i < cluster.nodes(); ++i) {
    std::string body;
    const int code = cluster.restGet(i, "/patroni", &body);
    auto doc = nlohmann::json::parse(body, nullptr, false);
    if (code == 0 || !doc.is_object()) {
      out.push_back(fmt::format("{} says nothing (status {})", cluster.node(i), code));
      continue;
    }
    nlohmann::json brief = nlohmann::json::object();
    for (const char* key : {"role", "state", "timeline", "xlog", "replication"})
      if (doc.contains(key))
        brief[key] = doc[key];
    out.push_back(fmt::format("{} says {}", cluster.node(i), brief.dump()));
  }
  return out;
}

// One primary, every other node streaming from it on its timeline.
bool converge(const FaultCluster& cluster, Millis timeout, std::string* why) {
  const auto deadline = SteadyClock::now() + timeout;
  if (!cluster.waitHealthy(timeout)) {
    auto p = cluster.primaries();
    *why = fmt::format("not converged after {} s: {} primaries", timeout.count() / 1000, p.size());
    return false;
  }
  const auto left =
      std::max(Millis(5000), std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()));
  const bool same = waitUntil(
      [&] {
        int tl = cluster.timeline(0);
        for (int i = 1; i < cluster.nodes(); ++i)
          if (cluster.timeline(i) != tl)
            return false;
        return tl > 0;
      },
      left);
  if (!same)
    *why = "the members report different timelines";
  return same;
}

class Runner {
 public:
  explicit Runner(Options options) : options_(std::move(options)) {}

  int run(const std::vector<Schedule>& schedules) {
    std::ofstream results;
    if (!options_.results.empty())
      results.open(options_.results, std::ios::app);
    int failed = 0;
    const auto begin = SteadyClock::now();
    for (size_t n = 0; n < schedules.size(); ++n) {
      if (g_interrupted) {
        std::cout << "interrupted: stopping\n";
        return 3;
      }
      if (!cluster_ && !startCluster())
        return 2;
      const Schedule& s = schedules[n];
      std::cout << fmt::format("[{}] schedule {}/{}: {}{} ({})\n{}", stamp(), n + 1,
                               schedules.size(), s.name,
                               s.name == "random" ? fmt::format(" seed {}", s.seed) : "",
                               options_.synchronous ? "synchronous" : "asynchronous", describe(s))
                << std::flush;
      Outcome o = runOne(s);
      if (g_interrupted) {
        std::cout << "interrupted: the schedule was cut short and is not counted\n";
        return 3;
      }
      const bool ok = o.violations.empty();
      failed += ok ? 0 : 1;
      std::cout << fmt::format(
          "[{}]   {}: recovery {:.1f} s, failovers {}, longest write gap {:.1f} s, {} writes "
          "acknowledged, {} lost{}\n",
          stamp(), ok ? "PASS" : "FAIL", o.recovery_ms / 1000.0, o.failovers,
          o.longest_gap_ms / 1000.0, o.acknowledged,
          o.lost > 0 ? fmt::format("{} (at most {} bytes past the switch point)", o.lost,
                                   o.largest_loss_bytes)
                     : "0",
          s.freezesANode() ? fmt::format(", overlap {} ms with {} writes let through", o.overlap_ms,
                                         o.writes_let_through)
                           : "");
      // Every violation is in the results file; the first ten say enough on the terminal.
      for (size_t v = 0; v < o.violations.size() && v < 10; ++v)
        std::cout << "    violation: " << o.violations[v] << "\n";
      if (o.violations.size() > 10)
        std::cout << fmt::format("    ... and {} more violations\n", o.violations.size() - 10);
      for (const auto& note : o.notes)
        std::cout << "    " << note << "\n";
      if (!ok) {
        std::cout << "    replay: pgfleet-faults "
                  << (s.name == "random" ? fmt::format("--replay {}", s.seed) : "--only " + s.name)
                  << (options_.synchronous ? " --synchronous" : "")
                  << (options_.agent == "patroni" ? " --agent patroni" : "") << "\n"
                  << cluster_->logTails(30);
      }
      std::cout << std::flush;
      if (results.is_open())
        results << toJson(o).dump() << "\n" << std::flush;
      if (!healthy_) {
        std::cout << "    the cluster is not healthy: starting a fresh one\n";
        cluster_.reset();
      }
    }
    std::cout << fmt::format(
        "{} of {} schedules violated an invariant ({} min)\n", failed, schedules.size(),
        std::chrono::duration_cast<seconds>(SteadyClock::now() - begin).count() / 60);
    return failed == 0 ? 0 : 1;
  }

 private:
  bool startCluster() {
    FaultClusterOptions o;
    o.prefix = options_.prefix;
    o.net = options_.net;
    o.synchronous_mode = options_.synchronous;
    o.node_disk_mb = 1024;
    if (options_.agent == "patroni")
      o.agent_binary = "/usr/bin/patroni";
    cluster_ = std::make_unique<FaultCluster>(o);
    auto st = cluster_->start();
    if (!st.ok() || !cluster_->waitHealthy(Millis(120000))) {
      std::cerr << "the cluster did not start: " << (st.ok() ? "" : st.error().message) << "\n"
                << cluster_->logTails(40);
      cluster_.reset();
      return false;
    }
    healthy_ = true;
    return true;
  }

  nlohmann::json toJson(const Outcome& o) {
    return {{"name", o.name},
            {"seed", o.seed},
            {"synchronous", o.synchronous},
            {"agent", o.agent},
            {"violations", o.violations},
            {"failovers", o.failovers},
            {"recovery_ms", o.recovery_ms},
            {"longest_gap_ms", o.longest_gap_ms},
            {"acknowledged", o.acknowledged},
            {"lost", o.lost},
            {"overlap_ms", o.overlap_ms},
            {"writes_let_through", o.writes_let_through},
            {"largest_loss_bytes", o.largest_loss_bytes}};
  }

  Outcome runOne(const Schedule& s) {
    Outcome o;
    o.name = s.name;
    o.seed = s.seed;
    o.synchronous = options_.synchronous;
    o.agent = options_.agent;
    FaultCluster& cluster = *cluster_;
    std::string why;
    if (!converge(cluster, kConvergeTimeout, &why)) {
      o.violations.push_back("before the schedule: " + why);
      healthy_ = false;
      return o;
    }
    const auto primaries = cluster.primaries();
    if (primaries.size() != 1) {
      o.violations.push_back("before the schedule: the primary changed after convergence");
      healthy_ = false;
      return o;
    }
    const int primary = primaries[0];
    std::vector<ino_t> data_dirs;
    for (int i = 0; i < cluster.nodes(); ++i)
      data_dirs.push_back(inode(cluster.dataDir(i)));

    const auto epoch = SteadyClock::now();
    Workload workload(cluster, epoch);
    if (auto st = workload.start(primary); !st.ok()) {
      o.violations.push_back("the workload could not start: " + st.error().message);
      healthy_ = false;
      return o;
    }
    std::this_thread::sleep_for(seconds(2));
    const int64_t faults_from = workload.nowMs();
    FaultDriver driver(cluster, s.seed ^ 0x5eedULL, [](const std::string& line) {
      std::cout << fmt::format("[{}]   {}\n", stamp(), line) << std::flush;
    });
    driver.run(s, &g_interrupted);
    driver.undoAll();
    if (g_interrupted)
      return o;
    const int64_t healed_at = workload.nowMs();
    const bool converged = converge(cluster, kConvergeTimeout, &why);
    o.recovery_ms = workload.nowMs() - healed_at;
    if (!converged) {
      o.violations.push_back(why);
      for (auto& state : memberStates(cluster))
        o.notes.push_back(std::move(state));
      healthy_ = false;
    }
    // The cluster takes writes again.
    const int64_t settled_at = workload.nowMs();
    std::this_thread::sleep_for(seconds(2));
    workload.stop();
    const int64_t stopped_at = workload.nowMs();
    const auto writes = workload.writes();
    const auto probes = workload.probes();
    o.acknowledged =
        static_cast<int>(std::count_if(writes.begin(), writes.end(), [](const WriteAttempt& w) {
          return w.outcome == WriteAttempt::Outcome::kAcknowledged;
        }));
    if (converged && std::none_of(writes.begin(), writes.end(), [&](const WriteAttempt& w) {
          return w.outcome == WriteAttempt::Outcome::kAcknowledged && w.start_ms >= settled_at;
        }))
      o.violations.push_back("no write was acknowledged after the cluster converged");

    // Failovers: how often the node taking the probes' writes changed.
    std::vector<ProbeWrite> acked;
    for (const auto& p : probes)
      if (p.acknowledged)
        acked.push_back(p);
    std::sort(acked.begin(), acked.end(),
              [](const ProbeWrite& a, const ProbeWrite& b) { return a.end_ms < b.end_ms; });
    for (size_t i = 1; i < acked.size(); ++i)
      o.failovers += acked[i].node != acked[i - 1].node ? 1 : 0;
    // The longest time without an acknowledged write, from the first fault on.
    std::vector<int64_t> ends;
    for (const auto& w : writes)
      if (w.outcome == WriteAttempt::Outcome::kAcknowledged && w.end_ms >= faults_from)
        ends.push_back(w.end_ms);
    std::sort(ends.begin(), ends.end());
    int64_t previous = faults_from;
    for (int64_t e : ends) {
      o.longest_gap_ms = std::max(o.longest_gap_ms, e - previous);
      previous = e;
    }
    o.longest_gap_ms = std::max(o.longest_gap_ms, stopped_at - previous);

    // Invariant 1.
    auto overlaps = findOverlaps(probes, writes);
    o.overlap_ms = overlaps.overlap_ms;
    o.writes_let_through = static_cast<int>(overlaps.writes_let_through.size());
    for (const auto& ov : overlaps.writes_let_through) {
      auto text = fmt::format(
          "node{} acknowledged a write sent at {} ms while node{} took writes ({}..{} ms)",
          ov.intruder + 1, ov.at_ms, ov.holder + 1, ov.holder_from, ov.holder_to);
      if (s.freezesANode())
        o.notes.push_back("frozen node: " + text);
      else
        o.violations.push_back("two writers: " + text);
    }

    // Invariant 5: a data directory is never removed; after a failed pg_rewind the agent may
    // set it aside whole, beside itself. The harness, as the operator would, removes what was
    // set aside once it has been found intact (the next schedule may need the room).
    for (int i = 0; i < cluster.nodes(); ++i) {
      if (inode(cluster.dataDir(i)) == data_dirs[i])
        continue;
      auto aside = setAsideCopy(cluster.dataDir(i), data_dirs[i]);
      if (!aside) {
        o.violations.push_back(fmt::format("node{}'s data directory was removed", i + 1));
        continue;
      }
      o.notes.push_back(fmt::format(
          "node{}'s data directory was set aside after a failed pg_rewind and cloned again",
          i + 1));
      std::error_code ec;
      std::filesystem::remove_all(*aside, ec);
    }

    if (!converged)
      return o;
    const auto final_primaries = cluster.primaries();
    if (final_primaries.size() != 1) {
      o.violations.push_back("the primary changed right after convergence");
      healthy_ = false;
      return o;
    }
    const int final_primary = final_primaries[0];
    // Invariant 4: every replica holds exactly the primary's rows once it has replayed its WAL.
    auto target = queryOne(cluster, final_primary, "SELECT pg_current_wal_lsn()::text");
    const std::string digest_sql =
        fmt::format("SELECT count(*) || '/' || coalesce(sum(id), 0) FROM {}", Workload::kRowsTable);
    auto primary_digest = queryOne(cluster, final_primary, digest_sql);
    for (int i = 0; i < cluster.nodes() && target && primary_digest; ++i) {
      if (i == final_primary)
        continue;
      const bool replayed = waitUntil(
          [&] {
            auto lsn =
                queryOne(cluster, i,
                         fmt::format("SELECT pg_last_wal_replay_lsn() >= '{}'::pg_lsn", *target));
            return lsn && *lsn == "t";
          },
          Millis(30000));
      auto digest = queryOne(cluster, i, digest_sql);
      if (!replayed || digest != primary_digest)
        o.violations.push_back(fmt::format(
            "node{} does not hold the primary's rows ({} against {}{})", i + 1,
            digest.value_or("?"), *primary_digest, replayed ? "" : ", never replayed up to it"));
    }

    // Invariants 2 and 3.
    auto conn = PgConnection::connect(cluster.nodeParams(final_primary), Millis(3000));
    if (!conn.ok()) {
      o.violations.push_back("the final primary cannot be read: " + conn.error().message);
      return o;
    }
    auto ids =
        conn->query(fmt::format("SELECT id FROM {}", Workload::kRowsTable), {}, Millis(30000));
    auto tl = conn->query("SELECT pg_walfile_name(pg_current_wal_lsn())");
    if (!ids.ok() || !tl.ok() || tl->rows.empty() || !tl->rows[0][0]) {
      o.violations.push_back("the final primary's rows cannot be read");
      return o;
    }
    std::set<long long> present;
    for (const auto& row : ids->rows)
      if (row[0])
        present.insert(std::stoll(*row[0]));
    const int final_timeline =
        static_cast<int>(std::stoul(tl->rows[0][0]->substr(0, 8), nullptr, 16));
    TimelineHistory history;
    if (final_timeline > 1) {
      auto text =
          conn->query(fmt::format("SELECT pg_read_file('pg_wal/{:08X}.history')", final_timeline));
      if (text.ok() && !text->rows.empty() && text->rows[0][0])
        history = parseTimelineHistory(*text->rows[0][0]);
    }
    auto loss = checkLoss(writes, present, final_timeline, history, options_.synchronous,
                          kMaxLagOnFailover);
    o.lost = static_cast<int>(loss.lost.size());
    o.largest_loss_bytes = loss.largest_loss_bytes;
    for (const auto& v : loss.violations)
      o.violations.push_back(v);
    return o;
  }

  Options options_;
  std::unique_ptr<FaultCluster> cluster_;
  bool healthy_ = false;
};

int64_t median(std::vector<int64_t> v) {
  if (v.empty())
    return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The table of docs/reliability.md, from the JSON lines of one or more runs.
int summarize(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "cannot read " << path << "\n";
    return 2;
  }
  struct Row {
    int runs = 0;
    int violations = 0;
    int failovers = 0;
    int lost = 0;
    int let_through = 0;
    int64_t overlap_ms = 0;
    std::vector<int64_t> recovery;
    std::vector<int64_t> gap;
  };
  std::map<std::tuple<std::string, std::string, bool>, Row> rows;
  std::string line;
  std::map<std::string, Row> totals;  // by agent
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded())
      continue;
    const std::string agent = j.value("agent", std::string("pgfleet"));
    for (Row* r : {&rows[{j["name"].get<std::string>(), agent, j["synchronous"].get<bool>()}],
                   &totals[agent]}) {
      r->runs += 1;
      r->violations += j["violations"].empty() ? 0 : 1;
      r->failovers += j["failovers"].get<int>();
      r->lost += j["lost"].get<int>();
      r->let_through += j["writes_let_through"].get<int>();
      r->overlap_ms += j["overlap_ms"].get<int64_t>();
      r->recovery.push_back(j["recovery_ms"].get<int64_t>());
      r->gap.push_back(j["longest_gap_ms"].get<int64_t>());
    }
  }
  std::cout << "| Scenario | Agent | Mode | Runs | Runs with an invariant violated | Failovers | "
               "Median recovery | Median longest write gap | Acknowledged writes lost | "
               "Frozen-node overlap |\n|---|---|---|---|---|---|---|---|---|---|\n";
  auto print = [](const std::string& name, const std::string& agent, const std::string& mode,
                  const Row& r) {
    std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {:.1f} s | {:.1f} s | {} | {} |\n",
                             name, agent, mode, r.runs, r.violations, r.failovers,
                             median(r.recovery) / 1000.0, median(r.gap) / 1000.0, r.lost,
                             r.let_through || r.overlap_ms
                                 ? fmt::format("{} ms, {} writes", r.overlap_ms, r.let_through)
                                 : "–");
  };
  for (const auto& [key, r] : rows)
    print(std::get<0>(key), std::get<1>(key), std::get<2>(key) ? "sync" : "async", r);
  for (const auto& [agent, total] : totals)
    print("**all**", agent, "", total);
  return 0;
}

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--seed") {
        o.seed = std::stoull(value());
        o.seed_given = true;
      } else if (a == "--schedules") {
        o.schedules = std::stoi(value());
      } else if (a == "--catalogue") {
        o.catalogue = true;
      } else if (a == "--only") {
        o.only = value();
      } else if (a == "--replay") {
        o.replay = std::stoull(value());
      } else if (a == "--synchronous") {
        o.synchronous = true;
      } else if (a == "--agent") {
        o.agent = value();
        if (o.agent != "pgfleet" && o.agent != "patroni") {
          std::cerr << "--agent is pgfleet or patroni\n";
          return 2;
        }
      } else if (a == "--results") {
        o.results = value();
      } else if (a == "--summarize") {
        o.summarize = value();
      } else {
        usage();
        return 2;
      }
    } catch (const std::exception&) {
      std::cerr << a << " takes a number\n";
      return 2;
    }
  }
  if (!o.summarize.empty())
    return summarize(o.summarize);
  if (!o.seed_given)
    o.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count() &
                                   0xffffffffULL);
  std::vector<Schedule> schedules;
  if (o.catalogue)
    schedules = catalogue();
  for (size_t from = 0; from < o.only.size();) {
    size_t comma = o.only.find(',', from);
    if (comma == std::string::npos)
      comma = o.only.size();
    const std::string name = o.only.substr(from, comma - from);
    from = comma + 1;
    auto all = catalogue();
    auto it =
        std::find_if(all.begin(), all.end(), [&](const Schedule& s) { return s.name == name; });
    if (it == all.end()) {
      std::cerr << "no scenario named " << name << " in the catalogue\n";
      return 2;
    }
    schedules.push_back(*it);
  }
  if (o.replay)
    schedules.push_back(randomSchedule(*o.replay));
  for (int n = 0; n < o.schedules; ++n)
    schedules.push_back(randomSchedule(scheduleSeed(o.seed, n)));
  if (schedules.empty()) {
    usage();
    return 2;
  }
  if (o.schedules > 0)
    std::cout << "random schedules from seed " << o.seed << "\n";
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // The workload's sessions see servers shut down under them; their warnings are expected.
  setenv("PGOPTIONS", "-c client_min_messages=error", 1);
  return Runner(o).run(schedules);
}

}  // namespace
}  // namespace pgf::faults

int main(int argc, char** argv) {
  return pgf::faults::main(argc, argv);
}
