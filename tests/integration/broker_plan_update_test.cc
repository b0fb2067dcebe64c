// pgfleet-broker's plan and parameter changes (PATCH) on real instances: a single server moves to
// a bigger plan with one restart; moves that would lose capacity or data are refused with 422 and
// change nothing; parameters add an extension live and change PostgreSQL settings (one restart
// for a setting read at start, none for one a reload takes); a cluster turns synchronous live (no
// restart), finishing after the broker is killed half-way; a cluster moves to bigger resources
// one node at a time, with one switchover, while a writer runs through the bound URI: no
// acknowledged row is lost, and the writes that fail fall in one short window; and a single
// server grows into a cluster while a writer runs, without one failed write; and a plan's newer
// maintenance version rolls every node's agent onto it, one node at a time with one switchover,
// finishing after the broker is killed half-way, without losing a row.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/broker_process.h"
#include "support/local_cluster.h"

namespace pgf::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kSingleMedium = "5f232f03-bcbd-4951-83f6-604f8cf980c9";
constexpr const char* kClusterMedium = "525f9d5a-4fde-45a2-a0ae-5a76997d139f";
constexpr const char* kClusterSmallSync = "8b26edc4-75dd-4274-8cc3-70f24ad7edd6";

// Inserts numbered rows into `table` through a binding's URI every 20 ms (reconnecting after an
// error, each statement bounded by 5 s) until stopped, for at most 4 minutes and 20000 rows.
class Writer {
 public:
  explicit Writer(json credentials, std::string table = "w")
      : credentials_(std::move(credentials)), table_(std::move(table)) {
    auto conn = connectWith(credentials_);
    created_ =
        conn.ok() &&
        conn->exec(fmt::format("CREATE TABLE IF NOT EXISTS {} (id int PRIMARY KEY)", table_)).ok();
    thread_ = std::thread([this] { run(); });
  }
  ~Writer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }
  bool created() const { return created_; }
  const std::string& table() const { return table_; }
  const std::vector<int>& acknowledged() const { return acknowledged_; }
  // The windows of consecutive failed writes: how many, and the longest.
  std::pair<int, Clock::duration> failures() const {
    int windows = 0;
    Clock::duration longest{0};
    std::optional<Clock::time_point> failing_since;
    for (const auto& [at, ok] : attempts_) {
      if (!ok && !failing_since) {
        failing_since = at;
        ++windows;
      } else if (ok && failing_since) {
        longest = std::max(longest, at - *failing_since);
        failing_since.reset();
      }
    }
    if (failing_since)
      longest = Clock::duration::max();  // still failing at the end
    return {windows, longest};
  }

 private:
  void run() {
    std::optional<PgConnection> conn;
    const auto until = Clock::now() + seconds(240);
    for (int id = 1; id <= 20000 && !stop_ && Clock::now() < until; ++id) {
      bool ok = false;
      if (!conn) {
        auto c = connectWith(credentials_);
        if (c.ok() && c->exec("SET statement_timeout = 5000").ok())
          conn.emplace(std::move(*c));
      }
      if (conn) {
        ok = conn->exec(fmt::format("INSERT INTO {} VALUES ({})", table_, id)).ok();
        if (!ok)
          conn.reset();
      }
      attempts_.emplace_back(Clock::now(), ok);
      if (ok)
        acknowledged_.push_back(id);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  json credentials_;
  std::string table_;
  bool created_ = false;
  std::atomic<bool> stop_{false};
  std::vector<int> acknowledged_;
  std::vector<std::pair<Clock::time_point, bool>> attempts_;
  std::thread thread_;
};

class BrokerPlanUpdateTest : public BrokerTest {
 protected:
  void provisioned(const std::string& id, const char* plan) {
    ASSERT_EQ(
        call("PUT", "/v2/service_instances/" + id + "?accepts_incomplete=true", provisionBody(plan))
            .status,
        202);
    BrokerAnswer done = waitOperation(id, Millis(seconds(180)));
    ASSERT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();
    BrokerAnswer bound = call("PUT", "/v2/service_instances/" + id + "/service_bindings/app",
                              {{"service_id", kService}, {"plan_id", plan}});
    ASSERT_EQ(bound.status, 201) << bound.text;
    credentials_ = bound.body["credentials"];
    pg_ports_.clear();
    const json deployment = instance(id)["deployment"];
    for (const auto& n : deployment["nodes"])
      pg_ports_.push_back(n.value("pg_port", 0));
  }
  json instance(const std::string& id) { return call("GET", "/pgfleet/v1/instances/" + id).body; }
  BrokerAnswer patch(const std::string& id, const char* plan, bool async = true) {
    return call("PATCH", "/v2/service_instances/" + id + (async ? "?accepts_incomplete=true" : ""),
                {{"service_id", kService}, {"plan_id", plan}});
  }
  std::string planOf(const std::string& id) {
    return call("GET", "/v2/service_instances/" + id).body.value("plan_id", "");
  }
  // The value of a SQL expression on node i (its own port, not the instance's endpoint).
  std::string atNode(size_t i, const std::string& expression) const {
    json c = credentials_;
    c["port"] = pg_ports_.at(i);
    auto conn = connectWith(c);
    if (!conn.ok())
      return "";
    auto r = conn->query("SELECT " + expression + " AS v");
    return r.ok() ? r->get(0, "v").value_or("") : "";
  }
  std::string primarySays(const std::string& expression) const {
    for (size_t i = 0; i < pg_ports_.size(); ++i)
      if (atNode(i, "pg_is_in_recovery()") == "f")
        return atNode(i, expression);
    return "";
  }

  // Not one acknowledged row lost (looked for on the primary: a write whose answer was lost may
  // be there too), and the writes that failed form at most one window, shorter than 15 s.
  void expectNoRowLostAndOneWindow(const Writer& writer) const {
    const std::vector<int>& acknowledged = writer.acknowledged();
    ASSERT_FALSE(acknowledged.empty());
    std::string ids;
    for (int id : acknowledged)
      ids += (ids.empty() ? "" : ",") + std::to_string(id);
    EXPECT_EQ(
        primarySays(fmt::format("(SELECT count(*) FROM {} WHERE id IN ({}))", writer.table(), ids)),
        std::to_string(acknowledged.size()));
    auto [windows, longest] = writer.failures();
    EXPECT_LE(windows, 1);
    EXPECT_LT(longest, seconds(15));
  }

  json credentials_;
  std::vector<int> pg_ports_;
};

TEST_F(BrokerPlanUpdateTest, ASingleServerGrowsWithOneRestartAndRefusedMovesChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_NO_FATAL_FAILURE(provisioned("grow", kSingleSmall));
  {
    auto conn = connectWith(credentials_);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE(conn->exec("CREATE TABLE t AS SELECT generate_series(1, 500) AS id").ok());
  }
  const std::string started = atNode(0, "pg_postmaster_start_time()");

  // Refused: a move made synchronously.
  BrokerAnswer sync = patch("grow", kSingleMedium, false);
  EXPECT_EQ(sync.status, 422);
  EXPECT_EQ(sync.body.value("error", ""), "AsyncRequired");
  EXPECT_EQ(planOf("grow"), kSingleSmall);
  EXPECT_EQ(atNode(0, "pg_postmaster_start_time()"), started);

  // Bigger resources: one restart, while a writer runs through the bound URI.
  Writer writer(credentials_);
  ASSERT_TRUE(writer.created());
  std::this_thread::sleep_for(seconds(1));
  BrokerAnswer bigger = patch("grow", kSingleMedium);
  ASSERT_EQ(bigger.status, 202) << bigger.text;
  EXPECT_EQ(patch("grow", kSingleMedium).status, 202)
      << "the same change again: the same operation";
  BrokerAnswer done = waitOperation("grow", Millis(seconds(120)));
  std::this_thread::sleep_for(seconds(1));
  writer.stop();
  ASSERT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();
  // Not one acknowledged row lost; the failed writes form one window at most (the restart).
  ASSERT_NO_FATAL_FAILURE(expectNoRowLostAndOneWindow(writer));
  EXPECT_EQ(planOf("grow"), kSingleMedium);
  EXPECT_EQ(atNode(0, "current_setting('shared_buffers')"), "512MB");
  EXPECT_EQ(atNode(0, "current_setting('max_connections')"), "200");
  EXPECT_NE(atNode(0, "pg_postmaster_start_time()"), started);
  EXPECT_EQ(atNode(0, "(SELECT count(*) FROM t)"), "500");
  const std::string restarted = atNode(0, "pg_postmaster_start_time()");

  // Back to the smaller plan: fewer connections and a smaller disk, refused; nothing changes.
  BrokerAnswer smaller = patch("grow", kSingleSmall);
  EXPECT_EQ(smaller.status, 422) << smaller.text;
  EXPECT_NE(smaller.body.value("description", "").find("nothing was changed"), std::string::npos);
  EXPECT_EQ(planOf("grow"), kSingleMedium);
  EXPECT_EQ(atNode(0, "current_setting('shared_buffers')"), "512MB");
  EXPECT_EQ(atNode(0, "pg_postmaster_start_time()"), restarted);
  EXPECT_EQ(patch("grow", kSingleMedium).status, 200) << "already on that plan";
  BrokerAnswer to_small_cluster = patch("grow", kClusterSmall);
  EXPECT_EQ(to_small_cluster.status, 422) << "fewer connections: " << to_small_cluster.text;
  EXPECT_EQ(planOf("grow"), kSingleMedium);

  // Parameters: an extension added live; dropping one, renaming the database or an extension the
  // plan does not offer are refused, and change nothing.
  auto parameters = [&](const json& p) {
    return call("PATCH", "/v2/service_instances/grow?accepts_incomplete=true",
                {{"service_id", kService}, {"parameters", p}});
  };
  auto citext = [&] {
    auto conn = connectWith(credentials_);
    if (!conn.ok())
      return std::string();
    auto r = conn->query("SELECT count(*) AS n FROM pg_extension WHERE extname = 'citext'");
    return r.ok() ? r->get(0, "n").value_or("") : "";
  };
  EXPECT_EQ(citext(), "0");
  BrokerAnswer add = parameters({{"extensions", {"citext"}}});
  EXPECT_EQ(add.status, 200) << add.text;
  EXPECT_EQ(citext(), "1");
  EXPECT_EQ(call("GET", "/v2/service_instances/grow").body["parameters"]["extensions"],
            json({"citext"}));
  BrokerAnswer drop = parameters({{"extensions", json::array()}});
  EXPECT_EQ(drop.status, 422) << drop.text;
  EXPECT_NE(drop.body.value("description", "").find("citext"), std::string::npos);
  BrokerAnswer rename = parameters({{"database", "other"}});
  EXPECT_EQ(rename.status, 422) << rename.text;
  EXPECT_EQ(parameters({{"extensions", {"not-offered"}}}).status, 400);
  EXPECT_EQ(citext(), "1");
  EXPECT_EQ(call("GET", "/v2/service_instances/grow").body["parameters"]["extensions"],
            json({"citext"}));
  EXPECT_EQ(atNode(0, "(SELECT count(*) FROM t)"), "500");

  // Settings: one PostgreSQL reads only at start makes one restart; a reloadable one alone none;
  // lowering max_locks_per_transaction or a setting the schema does not offer is refused.
  const json more_locks = {{"statement_timeout", 60000}, {"max_locks_per_transaction", 128}};
  BrokerAnswer set = parameters({{"settings", more_locks}});
  ASSERT_EQ(set.status, 202) << set.text;
  BrokerAnswer applied = waitOperation("grow", Millis(seconds(120)));
  ASSERT_EQ(applied.body.value("state", ""), "succeeded") << applied.text << brokerLog();
  EXPECT_EQ(atNode(0, "current_setting('max_locks_per_transaction')"), "128");
  EXPECT_EQ(atNode(0, "current_setting('statement_timeout')"), "1min");
  EXPECT_NE(atNode(0, "pg_postmaster_start_time()"), restarted);
  EXPECT_EQ(call("GET", "/v2/service_instances/grow").body["parameters"]["settings"], more_locks);
  const std::string with_locks = atNode(0, "pg_postmaster_start_time()");
  BrokerAnswer fewer_locks = parameters({{"settings", {{"max_locks_per_transaction", 64}}}});
  EXPECT_EQ(fewer_locks.status, 422) << fewer_locks.text;
  EXPECT_NE(fewer_locks.body.value("description", "").find("cannot go down"), std::string::npos);
  EXPECT_EQ(parameters({{"settings", {{"fsync", "off"}}}}).status, 400);
  BrokerAnswer shorter = parameters(
      {{"settings", {{"statement_timeout", 30000}, {"max_locks_per_transaction", 128}}}});
  ASSERT_EQ(shorter.status, 202) << shorter.text;
  BrokerAnswer reloaded = waitOperation("grow", Millis(seconds(120)));
  ASSERT_EQ(reloaded.body.value("state", ""), "succeeded") << reloaded.text << brokerLog();
  EXPECT_TRUE(waitUntil([&] { return atNode(0, "current_setting('statement_timeout')") == "30s"; },
                        Millis(seconds(10))));
  EXPECT_EQ(atNode(0, "pg_postmaster_start_time()"), with_locks) << "a reload, not a restart";
  EXPECT_EQ(atNode(0, "current_setting('max_locks_per_transaction')"), "128");
  EXPECT_EQ(atNode(0, "(SELECT count(*) FROM t)"), "500");
}

TEST_F(BrokerPlanUpdateTest, AClusterTurnsSynchronousLiveThenResizesRollingWithoutLosingARow) {
  // The broker is killed right after it changed the cluster's configuration; the next one
  // finishes the change.
  ASSERT_NO_FATAL_FAILURE(startBroker({{"PGFLEET_BROKER_KILL_AT", "configuration changed"}}));
  ASSERT_NO_FATAL_FAILURE(provisioned("rolling", kClusterSmall));
  std::vector<std::string> started;
  for (size_t i = 0; i < pg_ports_.size(); ++i)
    started.push_back(atNode(i, "pg_postmaster_start_time()"));
  // A writer through the bound URI while replication turns synchronous: not one write fails.
  Writer sync_writer(credentials_, "s");
  ASSERT_TRUE(sync_writer.created());
  std::this_thread::sleep_for(seconds(1));
  ASSERT_EQ(patch("rolling", kClusterSmallSync).status, 202);
  ASSERT_TRUE(broker_.waitExit(Millis(seconds(60)))) << brokerLog();
  ASSERT_NO_FATAL_FAILURE(startBroker());
  BrokerAnswer sync = waitOperation("rolling", Millis(seconds(120)));
  std::this_thread::sleep_for(seconds(1));
  sync_writer.stop();
  ASSERT_EQ(sync.body.value("state", ""), "succeeded") << sync.text << brokerLog();
  ASSERT_NO_FATAL_FAILURE(expectNoRowLostAndOneWindow(sync_writer));
  EXPECT_EQ(sync_writer.failures().first, 0);
  EXPECT_EQ(planOf("rolling"), kClusterSmallSync);
  EXPECT_TRUE(waitUntil(
      [&] { return !primarySays("current_setting('synchronous_standby_names')").empty(); },
      Millis(seconds(30))));
  for (size_t i = 0; i < pg_ports_.size(); ++i)
    EXPECT_EQ(atNode(i, "pg_postmaster_start_time()"), started[i]) << "no restart, node" << i;

  // A writer through the bound URI while the cluster moves to bigger resources (and back to
  // asynchronous replication).
  Writer writer(credentials_);
  ASSERT_TRUE(writer.created());
  std::this_thread::sleep_for(seconds(1));
  BrokerAnswer resize = patch("rolling", kClusterMedium);
  BrokerAnswer resized =
      resize.status == 202 ? waitOperation("rolling", Millis(seconds(240))) : resize;
  std::this_thread::sleep_for(seconds(1));
  writer.stop();
  ASSERT_EQ(resize.status, 202) << resize.text;
  ASSERT_EQ(resized.body.value("state", ""), "succeeded") << resized.text << brokerLog();
  EXPECT_EQ(planOf("rolling"), kClusterMedium);

  // Every node runs the new resources; one switchover was made; replication is asynchronous again.
  for (size_t i = 0; i < pg_ports_.size(); ++i) {
    EXPECT_EQ(atNode(i, "current_setting('shared_buffers')"), "512MB") << "node" << i;
    EXPECT_EQ(atNode(i, "current_setting('max_connections')"), "200") << "node" << i;
  }
  int switchovers = 0;
  for (const auto& step : instance("rolling")["last_operation"].value("steps", json::array()))
    if (step.is_string() && step.get<std::string>().rfind("switched over", 0) == 0)
      ++switchovers;
  EXPECT_EQ(switchovers, 1) << instance("rolling")["last_operation"].dump();
  EXPECT_TRUE(
      waitUntil([&] { return primarySays("current_setting('synchronous_standby_names')") == ""; },
                Millis(seconds(30))));

  // Not one acknowledged row lost; the failed writes form at most one window, a short one.
  ASSERT_NO_FATAL_FAILURE(expectNoRowLostAndOneWindow(writer));

  // Back to a single server: refused, nothing changed.
  BrokerAnswer shrink = patch("rolling", kSingleMedium);
  EXPECT_EQ(shrink.status, 422) << shrink.text;
  EXPECT_NE(shrink.body.value("description", "").find("replicas"), std::string::npos)
      << shrink.text;
  EXPECT_EQ(planOf("rolling"), kClusterMedium);
}

TEST_F(BrokerPlanUpdateTest, ASingleServerGrowsIntoAClusterWhileItsUriKeepsWorking) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_NO_FATAL_FAILURE(provisioned("solo", kSingleSmall));
  const std::string started = atNode(0, "pg_postmaster_start_time()");
  Writer writer(credentials_);
  ASSERT_TRUE(writer.created());
  std::this_thread::sleep_for(seconds(1));
  BrokerAnswer grow = patch("solo", kClusterSmall);
  BrokerAnswer grown = grow.status == 202 ? waitOperation("solo", Millis(seconds(180))) : grow;
  std::this_thread::sleep_for(seconds(1));
  writer.stop();
  ASSERT_EQ(grow.status, 202) << grow.text;
  ASSERT_EQ(grown.body.value("state", ""), "succeeded") << grown.text << brokerLog();
  EXPECT_EQ(planOf("solo"), kClusterSmall);

  // The primary never stopped, and no write failed.
  EXPECT_EQ(atNode(0, "pg_postmaster_start_time()"), started);
  auto [windows, longest] = writer.failures();
  EXPECT_EQ(windows, 0);
  const std::vector<int>& acknowledged = writer.acknowledged();
  ASSERT_FALSE(acknowledged.empty());

  // Three nodes, the two new ones replicas holding every acknowledged row; a new binding reads
  // from a replica through its read-only URI.
  const json deployment = instance("solo")["deployment"];
  pg_ports_.clear();
  for (const auto& n : deployment["nodes"])
    pg_ports_.push_back(n.value("pg_port", 0));
  ASSERT_EQ(pg_ports_.size(), 3u);
  const std::string rows = std::to_string(acknowledged.size());
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(atNode(i, "pg_is_in_recovery()"), "t") << "node" << i;
    EXPECT_TRUE(waitUntil(
        [&] {
          return atNode(i, fmt::format("(SELECT count(*) FROM w WHERE id <= {})",
                                       acknowledged.back())) == rows;
        },
        Millis(seconds(30))))
        << "node" << i;
  }
  BrokerAnswer reader = call("PUT", "/v2/service_instances/solo/service_bindings/reader",
                             {{"service_id", kService}, {"plan_id", kClusterSmall}});
  ASSERT_EQ(reader.status, 201) << reader.text;
  auto ro = connectWith(reader.body["credentials"], true);
  ASSERT_TRUE(ro.ok()) << ro.error().message;
  auto in_recovery = ro->query("SELECT pg_is_in_recovery() AS r");
  ASSERT_TRUE(in_recovery.ok());
  EXPECT_EQ(in_recovery->get(0, "r").value_or(""), "t");
  EXPECT_TRUE(waitUntil(
      [&] {
        json h = instance("solo").value("health", json());
        return h.is_object() && h.value("state", "") == "healthy";
      },
      Millis(seconds(30))))
      << instance("solo").dump();
}

TEST_F(BrokerPlanUpdateTest, ANewMaintenanceVersionRollsEveryAgentWithOneSwitchover) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_NO_FATAL_FAILURE(provisioned("maint", kClusterSmall));
  const json deployment = instance("maint")["deployment"];
  const std::string node_dir = state() + "/instances/" + deployment.value("name", "") + "/";
  std::vector<std::string> nodes;
  std::vector<pid_t> agents;
  std::vector<std::string> started;
  for (size_t i = 0; i < deployment["nodes"].size(); ++i) {
    nodes.push_back(deployment["nodes"][i].value("name", ""));
    agents.push_back(pidIn(node_dir + nodes.back() + "/agent.pid"));
    ASSERT_GT(agents.back(), 0) << nodes.back();
    started.push_back(atNode(i, "pg_postmaster_start_time()"));
  }
  EXPECT_EQ(call("GET", "/v2/service_instances/maint").body["maintenance_info"]["version"],
            "1.0.0");

  // The operator bumps the plans' maintenance version and restarts the broker, which is killed
  // once the replicas run their new agents.
  stopBroker(SIGTERM);
  broker_.editConfig([](std::string& yaml) {
    for (size_t at = yaml.find("version: 1.0.0"); at != std::string::npos;
         at = yaml.find("version: 1.0.0", at))
      yaml.replace(at, 14, "version: 1.1.0");
  });
  ASSERT_NO_FATAL_FAILURE(startBroker({{"PGFLEET_BROKER_KILL_AT", "replicas restarted"}}));
  auto maintenance = [&](const char* version) {
    return call("PATCH", "/v2/service_instances/maint?accepts_incomplete=true",
                {{"service_id", kService}, {"maintenance_info", {{"version", version}}}});
  };
  BrokerAnswer stale = maintenance("1.0.0");
  EXPECT_EQ(stale.status, 422) << stale.text;
  EXPECT_EQ(stale.body.value("error", ""), "MaintenanceInfoConflict");
  // A change of settings alone (a reload) keeps the instance on its version: no agent restarts.
  BrokerAnswer setting =
      call("PATCH", "/v2/service_instances/maint?accepts_incomplete=true",
           {{"service_id", kService}, {"parameters", {{"settings", {{"lock_timeout", 60000}}}}}});
  ASSERT_EQ(setting.status, 202) << setting.text;
  BrokerAnswer set = waitOperation("maint", Millis(seconds(60)));
  ASSERT_EQ(set.body.value("state", ""), "succeeded") << set.text << brokerLog();
  EXPECT_EQ(call("GET", "/v2/service_instances/maint").body["maintenance_info"]["version"],
            "1.0.0");
  for (size_t i = 0; i < nodes.size(); ++i)
    EXPECT_EQ(pidIn(node_dir + nodes[i] + "/agent.pid"), agents[i]) << nodes[i];
  EXPECT_TRUE(waitUntil([&] { return primarySays("current_setting('lock_timeout')") == "1min"; },
                        Millis(seconds(10))));

  Writer writer(credentials_);
  ASSERT_TRUE(writer.created());
  std::this_thread::sleep_for(seconds(1));
  BrokerAnswer roll = maintenance("1.1.0");
  const bool killed = broker_.waitExit(Millis(seconds(180)));
  if (killed) {
    ASSERT_NO_FATAL_FAILURE(startBroker());
  }
  BrokerAnswer rolled = waitOperation("maint", Millis(seconds(240)));
  std::this_thread::sleep_for(seconds(1));
  writer.stop();
  ASSERT_EQ(roll.status, 202) << roll.text;
  ASSERT_TRUE(killed) << "the broker was to be killed once the replicas were restarted"
                      << brokerLog();
  ASSERT_EQ(rolled.body.value("state", ""), "succeeded") << rolled.text << brokerLog();
  EXPECT_EQ(call("GET", "/v2/service_instances/maint").body["maintenance_info"]["version"],
            "1.1.0");
  EXPECT_EQ(planOf("maint"), kClusterSmall);

  // Every node runs a new agent and a restarted PostgreSQL; each was restarted once (the next
  // broker skipped the replicas the killed one had done), with one switchover.
  for (size_t i = 0; i < nodes.size(); ++i) {
    const pid_t now = pidIn(node_dir + nodes[i] + "/agent.pid");
    EXPECT_GT(now, 0) << nodes[i];
    EXPECT_NE(now, agents[i]) << nodes[i];
    EXPECT_NE(atNode(i, "pg_postmaster_start_time()"), started[i]) << nodes[i];
  }
  const json steps = instance("maint")["last_operation"].value("steps", json::array());
  int switchovers = 0;
  std::map<std::string, int> restarts;
  for (const auto& step : steps) {
    const std::string text = step.is_string() ? step.get<std::string>() : "";
    if (text.rfind("switched over", 0) == 0)
      ++switchovers;
    for (const auto& n : nodes)
      if (text == n + " restarted")
        ++restarts[n];
  }
  EXPECT_EQ(switchovers, 1) << steps.dump();
  for (const auto& n : nodes)
    EXPECT_EQ(restarts[n], 1) << n << ": " << steps.dump();

  // Not one acknowledged row lost; the failed writes form at most one short window.
  ASSERT_NO_FATAL_FAILURE(expectNoRowLostAndOneWindow(writer));
  EXPECT_EQ(maintenance("1.1.0").status, 200) << "already on that version";
}

}  // namespace
}  // namespace pgf::testing
