// pgfleet-broker's self-healing with real instances: an agent and an HAProxy killed with SIGKILL
// are started again; a replica whose data directory is deleted is cloned again from the primary;
// a primary whose data directory is deleted fails over and comes back as a replica; the same for
// a replica and a primary whose control file is damaged (set aside, cloned again). No row
// acknowledged before is lost, the bound URI keeps working, and the instance reports
// healthy again with an event for each thing done. An agent that cannot start is a crash loop:
// the instance is degraded until the agent runs again.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "support/broker_process.h"
#include "support/local_cluster.h"

namespace pgf::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

class BrokerHealingTest : public BrokerTest {
 protected:
  json instance(const std::string& id) { return call("GET", "/pgfleet/v1/instances/" + id).body; }
  // The instance's health and events, for failure messages.
  std::string healing(const std::string& id) {
    json i = instance(id);
    return json{{"health", i.value("health", json())}, {"events", i.value("events", json())}}.dump(
        1);
  }
  std::string health(const std::string& id) {
    json h = instance(id).value("health", json());
    return h.is_object() ? h.value("state", "") : "";
  }
  bool hasEvent(const std::string& id, const std::string& kind) {
    for (const auto& e : instance(id).value("events", json::array()))
      if (e.value("kind", "") == kind)
        return true;
    return false;
  }
  bool waitHealth(const std::string& id, const std::string& state, Millis timeout) {
    return waitUntil([&] { return health(id) == state; }, timeout);
  }
  // The provisioned instance's directory and its nodes' PostgreSQL ports.
  void provisioned(const std::string& id, const char* plan) {
    ASSERT_EQ(
        call("PUT", "/v2/service_instances/" + id + "?accepts_incomplete=true", provisionBody(plan))
            .status,
        202);
    BrokerAnswer done = waitOperation(id, Millis(seconds(180)));
    ASSERT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();
    json d = instance(id)["deployment"];
    dir_ = state() + "/instances/" + d.value("name", "");
    pg_ports_.clear();
    for (const auto& n : d["nodes"])
      pg_ports_.push_back(n.value("pg_port", 0));
    BrokerAnswer bound = call("PUT", "/v2/service_instances/" + id + "/service_bindings/app",
                              {{"service_id", kService}, {"plan_id", plan}});
    ASSERT_EQ(bound.status, 201) << bound.text;
    credentials_ = bound.body["credentials"];
  }
  // The binding's credentials aimed at node `i` itself, not at the instance's HAProxy.
  json atNode(size_t i) const {
    json c = credentials_;
    c["port"] = pg_ports_.at(i);
    return c;
  }
  // "t" (a standby), "f" (a primary) or "" (not answering), and the rows of table t there.
  std::pair<std::string, long long> nodeState(size_t i) const {
    auto conn = connectWith(atNode(i));
    if (!conn.ok())
      return {"", -1};
    auto r = conn->query("SELECT pg_is_in_recovery() AS r, (SELECT count(*) FROM t) AS n");
    if (!r.ok())
      return {"", -1};
    return {r->get(0, "r").value_or(""), std::stoll(r->get(0, "n").value_or("-1"))};
  }
  int nodeWhere(const std::string& in_recovery) const {
    for (size_t i = 0; i < pg_ports_.size(); ++i)
      if (nodeState(i).first == in_recovery)
        return static_cast<int>(i);
    return -1;
  }
  // Every node answers with `rows` rows, one as the primary and the others as standbys.
  bool everyNodeHas(long long rows) const {
    int primaries = 0;
    for (size_t i = 0; i < pg_ports_.size(); ++i) {
      auto [recovery, n] = nodeState(i);
      if (recovery.empty() || n != rows)
        return false;
      primaries += recovery == "f" ? 1 : 0;
    }
    return primaries == 1;
  }
  // The port of the server the URI reaches once inserting `value` through it succeeds again
  // (0 when it did not within a minute).
  int portAfterInsert(int value) const {
    int port = 0;
    waitUntil(
        [&] {
          auto conn = connectWith(credentials_);
          if (!conn.ok() || !conn->exec(fmt::format("INSERT INTO t VALUES ({})", value)).ok())
            return false;
          auto p = conn->query("SELECT inet_server_port() AS p");
          port = p.ok() ? std::stoi(p->get(0, "p").value_or("0")) : 0;
          return true;
        },
        Millis(seconds(60)));
    return port;
  }
  // Removes a data directory under a running server: the server and its agent remove files of
  // it meanwhile (postmaster.pid), so a file gone before it is reached is no error.
  static void removeUnderServer(const std::string& dir) {
    std::error_code ec;
    for (int attempt = 0; attempt < 50 && fs::exists(dir); ++attempt)
      fs::remove_all(dir, ec);
    EXPECT_FALSE(fs::exists(dir)) << dir << ": " << ec.message();
  }
  bool insertThroughUri(int value) const {
    auto conn = connectWith(credentials_);
    return conn.ok() && conn->exec(fmt::format("INSERT INTO t VALUES ({})", value)).ok();
  }

  std::string dir_;
  std::vector<int> pg_ports_;
  json credentials_;
};

TEST_F(BrokerHealingTest, AClusterHealsKilledProcessesAndLostDataDirectoriesWithoutLosingARow) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_NO_FATAL_FAILURE(provisioned("heal-c", kClusterSmall));
  {
    auto conn = connectWith(credentials_);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE(conn->exec("CREATE TABLE t (id int)").ok());
    ASSERT_TRUE(conn->exec("INSERT INTO t SELECT generate_series(1, 100)").ok());
  }
  EXPECT_TRUE(waitHealth("heal-c", "healthy", Millis(seconds(30)))) << healing("heal-c");
  EXPECT_EQ(call("GET", "/v2/service_instances/heal-c").body["metadata"]["attributes"]["health"],
            "healthy");

  // The primary's agent and HAProxy killed: both run again, and the URI reaches the same
  // primary, which stays up past the killed agent's lease (its watchdog stands down).
  const int leader = nodeWhere("f");
  ASSERT_GE(leader, 0);
  const std::string leader_dir = fmt::format("{}/node{}", dir_, leader);
  const pid_t postmaster = pidIn(leader_dir + "/data/postmaster.pid");
  const pid_t agent = pidIn(leader_dir + "/agent.pid");
  const pid_t haproxy = pidIn(dir_ + "/haproxy.pid");
  ASSERT_GT(agent, 1);
  ASSERT_GT(haproxy, 1);
  signalProcess(agent, SIGKILL);
  signalProcess(haproxy, SIGKILL);
  EXPECT_TRUE(waitUntil(
      [&] {
        const pid_t a = pidIn(leader_dir + "/agent.pid");
        const pid_t h = pidIn(dir_ + "/haproxy.pid");
        return a != agent && processAlive(a) && h != haproxy && processAlive(h);
      },
      Millis(seconds(30))))
      << brokerLog();
  EXPECT_TRUE(waitUntil([&] { return insertThroughUri(101); }, Millis(seconds(30))));
  std::this_thread::sleep_for(seconds(20));  // past the ttl (15 s) of the killed agent's lease
  EXPECT_EQ(pidIn(leader_dir + "/data/postmaster.pid"), postmaster);
  EXPECT_TRUE(processAlive(postmaster));
  EXPECT_EQ(nodeWhere("f"), leader);
  EXPECT_TRUE(waitHealth("heal-c", "healthy", Millis(seconds(60)))) << healing("heal-c");
  EXPECT_TRUE(hasEvent("heal-c", "agent-restarted")) << healing("heal-c");
  EXPECT_TRUE(hasEvent("heal-c", "haproxy-restarted")) << healing("heal-c");
  ASSERT_TRUE(waitUntil([&] { return everyNodeHas(101); }, Millis(seconds(60))));

  // A replica's data directory deleted: cloned again, a streaming standby with every row.
  const int replica = nodeWhere("t");
  ASSERT_GE(replica, 0);
  const std::string replica_data = fmt::format("{}/node{}/data", dir_, replica);
  removeUnderServer(replica_data);
  EXPECT_TRUE(
      waitUntil([&] { return fs::exists(replica_data + "/PG_VERSION"); }, Millis(seconds(60))));
  ASSERT_TRUE(insertThroughUri(102));
  EXPECT_TRUE(waitUntil([&] { return everyNodeHas(102); }, Millis(seconds(90))))
      << healing("heal-c") << brokerLog();
  EXPECT_TRUE(waitHealth("heal-c", "healthy", Millis(seconds(60)))) << healing("heal-c");

  // The primary's data directory deleted: a replica takes over, the URI reaches it, and the old
  // primary comes back as a standby. Every row acknowledged before is there.
  const int primary = nodeWhere("f");
  ASSERT_GE(primary, 0);
  removeUnderServer(fmt::format("{}/node{}/data", dir_, primary));
  const int new_port = portAfterInsert(103);
  EXPECT_GT(new_port, 0) << brokerLog();
  EXPECT_NE(new_port, pg_ports_[primary]);
  EXPECT_TRUE(waitUntil([&] { return everyNodeHas(103); }, Millis(seconds(90))))
      << "a row acknowledged before the primary's data directory was lost is missing, or a node "
         "did not come back\n"
      << healing("heal-c");
  EXPECT_EQ(nodeState(primary).first, "t");
  EXPECT_TRUE(waitHealth("heal-c", "healthy", Millis(seconds(60)))) << healing("heal-c");
  EXPECT_TRUE(hasEvent("heal-c", "primary-changed")) << healing("heal-c");

  if (HasFailure())
    return;  // the instance is left for PGFLEET_KEEP_TEST_DIRS
  auto pids = broker_.recordedPids();
  ASSERT_EQ(call("DELETE", "/v2/service_instances/heal-c" + deleteQuery(kClusterSmall)).status,
            202);
  EXPECT_EQ(waitOperation("heal-c", Millis(seconds(120))).status, 410) << brokerLog();
  for (pid_t pid : pids)
    EXPECT_FALSE(processAlive(pid)) << "pid " << pid << " still runs";
  EXPECT_EQ(instanceDirectories(), 0u);
}

TEST_F(BrokerHealingTest, DamagedControlFilesAreSetAsideAndClonedAgainWithoutLosingARow) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_NO_FATAL_FAILURE(provisioned("heal-d", kClusterSmall));
  {
    auto conn = connectWith(credentials_);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE(conn->exec("CREATE TABLE t (id int)").ok());
    ASSERT_TRUE(conn->exec("INSERT INTO t SELECT generate_series(1, 100)").ok());
  }
  ASSERT_TRUE(waitUntil([&] { return everyNodeHas(100); }, Millis(seconds(60))));
  // The supervisor has seen the instance whole (and which node is the primary).
  EXPECT_TRUE(waitHealth("heal-d", "healthy", Millis(seconds(30)))) << healing("heal-d");
  // Node i's server killed and its control file truncated while its agent is held (SIGSTOP), so
  // that the agent finds, when it goes on, a data directory PostgreSQL cannot start from.
  auto damage = [&](int i) {
    const std::string node_dir = fmt::format("{}/node{}", dir_, i);
    const pid_t agent = pidIn(node_dir + "/agent.pid");
    const pid_t postmaster = pidIn(node_dir + "/data/postmaster.pid");
    ASSERT_GT(agent, 1);
    ASSERT_GT(postmaster, 1);
    signalProcess(agent, SIGSTOP);
    signalProcess(postmaster, SIGKILL);
    EXPECT_TRUE(waitUntil([&] { return !processAlive(postmaster); }, Millis(seconds(10))));
    fs::resize_file(node_dir + "/data/global/pg_control", 0);
    signalProcess(agent, SIGCONT);
  };
  auto setAside = [&](int i) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fmt::format("{}/node{}", dir_, i), ec))
      if (e.path().filename().string().rfind("data.rewind-failed-", 0) == 0)
        return true;
    return false;
  };

  // A replica: set aside whole and cloned again, streaming with every row.
  const int replica = nodeWhere("t");
  ASSERT_GE(replica, 0);
  ASSERT_NO_FATAL_FAILURE(damage(replica));
  ASSERT_TRUE(insertThroughUri(101));
  EXPECT_TRUE(waitUntil([&] { return everyNodeHas(101); }, Millis(seconds(90))))
      << healing("heal-d") << brokerLog();
  EXPECT_TRUE(setAside(replica)) << "the damaged data directory is kept beside the new one";
  EXPECT_EQ(nodeState(replica).first, "t");
  EXPECT_TRUE(waitHealth("heal-d", "healthy", Millis(seconds(60)))) << healing("heal-d");

  // The primary: it gives up the leader key, a replica takes over (the URI reaches it), and the
  // former primary is cloned again as a replica. Every acknowledged row is there.
  const int primary = nodeWhere("f");
  ASSERT_GE(primary, 0);
  ASSERT_NO_FATAL_FAILURE(damage(primary));
  const int new_port = portAfterInsert(102);
  EXPECT_GT(new_port, 0) << brokerLog();
  EXPECT_NE(new_port, pg_ports_[primary]);
  EXPECT_TRUE(waitUntil([&] { return everyNodeHas(102); }, Millis(seconds(90))))
      << healing("heal-d");
  EXPECT_TRUE(setAside(primary));
  EXPECT_EQ(nodeState(primary).first, "t");
  EXPECT_TRUE(waitHealth("heal-d", "healthy", Millis(seconds(60)))) << healing("heal-d");
}

TEST_F(BrokerHealingTest, AnAgentThatKeepsDyingIsACrashLoopAndTheInstanceDegradedUntilItRuns) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_NO_FATAL_FAILURE(provisioned("heal-s", kSingleSmall));
  EXPECT_TRUE(waitHealth("heal-s", "healthy", Millis(seconds(30)))) << healing("heal-s");
  {
    auto conn = connectWith(credentials_);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE(conn->exec("CREATE TABLE t (id int)").ok());
  }

  // The agent's configuration is broken, then the agent killed: each start dies at once.
  const std::string config = dir_ + "/node0/agent.yml";
  std::string original;
  {
    std::ifstream in(config);
    original.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_FALSE(original.empty());
  {
    std::ofstream out(config, std::ios::trunc);
    out << "scope: [this is not a configuration\n";
  }
  signalProcess(pidIn(dir_ + "/node0/agent.pid"), SIGKILL);
  EXPECT_TRUE(waitUntil([&] { return hasEvent("heal-s", "crash-loop"); }, Millis(seconds(90))))
      << healing("heal-s") << brokerLog();
  EXPECT_TRUE(waitHealth("heal-s", "degraded", Millis(seconds(10)))) << healing("heal-s");
  EXPECT_TRUE(hasEvent("heal-s", "agent-restarted"));
  const std::string metrics = call("GET", "/metrics").text;
  EXPECT_NE(metrics.find("pgfleet_broker_crash_loops_total 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("pgfleet_instance_health{instance_id=\"heal-s\",state=\"degraded\"} 1"),
            std::string::npos)
      << metrics;

  // Repaired: the next start (at most a minute later) runs, and the instance is healthy again.
  {
    std::ofstream out(config, std::ios::trunc);
    out << original;
  }
  EXPECT_TRUE(waitHealth("heal-s", "healthy", Millis(seconds(90))))
      << healing("heal-s") << brokerLog();
  EXPECT_TRUE(waitUntil([&] { return insertThroughUri(1); }, Millis(seconds(30))));
}

}  // namespace
}  // namespace pgf::testing
