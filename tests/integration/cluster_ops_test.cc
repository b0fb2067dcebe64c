// Planned operations on a real cluster (etcd, PostgreSQL 15, HAProxy, three agents on loopback)
// through the REST API: switchover (immediate and scheduled), failover to a named candidate, pause
// and resume, and live configuration changes, with the REST API's credentials enforced.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/process.h"
#include "support/cluster_test.h"

namespace pgf::testing {
namespace {

using std::chrono::seconds;

const char* kRestPassword = "s3cret-for-tests";

class ClusterOpsTest : public ClusterTest {
 protected:
  void startCluster() {
    ClusterOptions options;
    options.ttl = 5;
    options.loop_wait = 1;
    options.retry_timeout = 2;
    options.rest_password = kRestPassword;
    options.callbacks = true;
    ClusterTest::startCluster(options);
  }

  std::string agentLog(int i) {
    std::ifstream in(fmt::format("{}/{}.agent.log", cluster_->dir(), cluster_->name(i)));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Waits until node `i` is the only primary.
  bool waitForPrimary(int i, Millis timeout) {
    return waitUntil([&] { return cluster_->primaryIndex() == i; }, timeout);
  }

  // Whether every replica's REST API reports the primary's current WAL position as received:
  // a switchover compares what the candidates report, and a clone that just finished reports
  // the start of the segment it streams from until its next loop.
  bool replicasReportThePrimaryPosition() {
    auto p = cluster_->primaryIndex();
    if (!p)
      return false;
    auto conn = PgConnection::connect(cluster_->nodeParams(*p), Millis(2000));
    if (!conn.ok())
      return false;
    auto r = conn->query("SELECT (pg_current_wal_lsn() - '0/0')::bigint");
    if (!r.ok() || r->rows.empty() || !r->rows[0][0])
      return false;
    const int64_t leader = std::stoll(*r->rows[0][0]);
    for (int i = 0; i < cluster_->nodes(); ++i) {
      if (i == *p)
        continue;
      std::string body;
      if (cluster_->restGet(i, "/patroni", &body) != 200)
        return false;
      auto doc = nlohmann::json::parse(body, nullptr, false);
      if (!doc.is_object() || !doc.contains("xlog") ||
          !doc["xlog"].value("received_location", nlohmann::json()).is_number_integer() ||
          doc["xlog"]["received_location"].get<int64_t>() < leader)
        return false;
    }
    return true;
  }

  bool everyMemberReportsPause(bool paused) {
    for (int i = 0; i < cluster_->nodes(); ++i) {
      std::string body;
      if (cluster_->restGet(i, "/patroni", &body) == 0)
        return false;
      auto doc = nlohmann::json::parse(body, nullptr, false);
      if (!doc.is_object() || doc.value("pause", false) != paused)
        return false;
    }
    return true;
  }

  // Runs pgfleetctl or patronictl with node 0's configuration (which holds the REST API
  // credentials); returns the exit code and puts the output in `output`.
  int ctl(const std::string& tool, std::vector<std::string> args, std::string* output) {
    CommandSpec spec;
    spec.argv = {tool, "-c", cluster_->configPath(0)};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    auto run = runCommand(spec, Millis(seconds(90)));
    if (!run.ok()) {
      *output = run.error().message;
      return -1;
    }
    *output = run->output;
    return run->exit_code;
  }
};

TEST_F(ClusterOpsTest, SwitchoverLosesNoRowAndTheFormerPrimaryStreamsWithoutRewind) {
  startCluster();
  const int old = *cluster_->primaryIndex();
  const int candidate = (old + 1) % 3;
  ASSERT_TRUE(
      writeThroughHaproxy("CREATE TABLE t (id serial primary key, v text)", Millis(seconds(20))));
  for (int k = 0; k < 200; ++k)
    ASSERT_TRUE(
        cluster_->query(cluster_->readWriteParams(), "INSERT INTO t (v) VALUES ('before')").ok());

  const std::string request = fmt::format(R"({{"leader": "{}", "candidate": "{}"}})",
                                          cluster_->name(old), cluster_->name(candidate));
  std::string answer;
  EXPECT_EQ(cluster_->restCall(old, "POST", "/switchover", request, &answer, false), 401);
  EXPECT_EQ(cluster_->primaryIndex(), old) << "an unauthenticated request changed nothing";

  EXPECT_EQ(cluster_->restCall(old, "POST", "/switchover", request, &answer), 200) << answer;
  EXPECT_EQ(answer, fmt::format("Successfully switched over to \"{}\"", cluster_->name(candidate)));
  ASSERT_TRUE(waitForPrimary(candidate, Millis(seconds(10))));
  EXPECT_EQ(count(cluster_->nodeParams(candidate), "t"), 200) << "acknowledged rows were lost";

  // The former primary streams from the new one on its timeline, without pg_rewind or a clone.
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO t (v) VALUES ('after')", Millis(seconds(10))));
  EXPECT_TRUE(waitUntil(
      [&] {
        auto r =
            cluster_->query(cluster_->nodeParams(old), "SELECT status FROM pg_stat_wal_receiver");
        return r.ok() && !r->rows.empty() && r->rows[0][0] && *r->rows[0][0] == "streaming" &&
               count(cluster_->nodeParams(old), "t") == 201;
      },
      Millis(seconds(30))))
      << "the former primary does not stream the new primary's rows";
  const std::string log = agentLog(old);
  EXPECT_NE(log.find("switchover: stopped cleanly and released the leader key"), std::string::npos);
  EXPECT_EQ(log.find("rewinding from"), std::string::npos) << "a switchover needs no rewind";
  EXPECT_EQ(log.find("cloning from"), log.rfind("cloning from")) << "no second clone";
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));

  // The callbacks ran, with (action, role, scope).
  EXPECT_TRUE(waitUntil(
      [&] {
        std::ifstream in(cluster_->callbackLog(candidate));
        std::stringstream text;
        text << in.rdbuf();
        return text.str().find("on_role_change master itest\n") != std::string::npos;
      },
      Millis(seconds(10))));
  EXPECT_TRUE(waitUntil(
      [&] {
        std::ifstream in(cluster_->callbackLog(old));
        std::stringstream text;
        text << in.rdbuf();
        return text.str().find("on_role_change replica itest\n") != std::string::npos &&
               text.str().find("on_start master itest\n") != std::string::npos;
      },
      Millis(seconds(10))));

  // The request is gone, and a switchover to a member that does not exist is refused.
  auto r = cluster_->query(cluster_->nodeParams(candidate), "SELECT 1");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(cluster_->restCall(candidate, "POST", "/switchover",
                               fmt::format(R"({{"leader": "{}", "candidate": "nobody"}})",
                                           cluster_->name(candidate)),
                               &answer),
            412);
  EXPECT_EQ(answer, "candidate does not exists");
}

TEST_F(ClusterOpsTest, ScheduledSwitchoverWaitsForItsTimeAndCanBeCancelled) {
  startCluster();
  const int old = *cluster_->primaryIndex();
  const int candidate = (old + 2) % 3;
  auto schedule = [&](seconds ahead) {
    std::string answer;
    int code = cluster_->restCall(
        old, "POST", "/switchover",
        fmt::format(R"({{"leader": "{}", "candidate": "{}", "scheduled_at": "{}"}})",
                    cluster_->name(old), cluster_->name(candidate),
                    formatIsoTime(std::chrono::system_clock::now() + ahead)),
        &answer);
    EXPECT_EQ(answer, code == 202 ? "Switchover scheduled" : answer);
    return code;
  };
  ASSERT_EQ(schedule(seconds(60)), 202);
  std::string answer;
  EXPECT_EQ(cluster_->restCall(old, "DELETE", "/switchover", "", &answer), 200);
  EXPECT_EQ(answer, "scheduled switchover deleted");
  EXPECT_EQ(cluster_->restCall(old, "DELETE", "/switchover", "", &answer), 404);

  ASSERT_EQ(schedule(seconds(4)), 202);
  const auto scheduled = std::chrono::steady_clock::now() + seconds(4);
  std::this_thread::sleep_for(seconds(2));
  EXPECT_EQ(cluster_->primaryIndex(), old) << "the switchover ran before its time";
  ASSERT_TRUE(waitForPrimary(candidate, Millis(seconds(20))));
  EXPECT_GE(std::chrono::steady_clock::now(), scheduled);
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));
}

TEST_F(ClusterOpsTest, ScheduledRestartRunsAtItsTimeAndCanBeCancelled) {
  startCluster();
  const int primary = *cluster_->primaryIndex();
  const int replica = (primary + 1) % 3;
  auto schedule = [&](int node, seconds ahead, const std::string& extra, std::string* answer) {
    return cluster_->restCall(
        node, "POST", "/restart",
        fmt::format(R"({{"schedule": "{}"{}}})",
                    formatIsoTime(std::chrono::system_clock::now() + ahead), extra),
        answer);
  };
  auto scheduledIn = [&](int node) {
    std::string body;
    cluster_->restGet(node, "/patroni", &body);
    auto doc = nlohmann::json::parse(body, nullptr, false);
    return doc.is_object() && doc.contains("scheduled_restart");
  };

  // On the primary: scheduled, shown, refused a second time, cancelled.
  std::string answer;
  ASSERT_EQ(schedule(primary, seconds(60), "", &answer), 202) << answer;
  EXPECT_EQ(answer, "Restart scheduled");
  EXPECT_TRUE(scheduledIn(primary));
  EXPECT_EQ(schedule(primary, seconds(90), "", &answer), 409);
  EXPECT_EQ(cluster_->restCall(primary, "DELETE", "/restart", "", &answer), 200);
  EXPECT_EQ(answer, "scheduled restart deleted");
  EXPECT_FALSE(scheduledIn(primary));
  EXPECT_EQ(cluster_->restCall(primary, "DELETE", "/restart", "", &answer), 404);

  // On a replica: it runs at its time, not before.
  const pid_t before = cluster_->postmasterPid(replica);
  ASSERT_GT(before, 0);
  ASSERT_EQ(schedule(replica, seconds(4), R"(, "role": "replica")", &answer), 202) << answer;
  const auto due = std::chrono::steady_clock::now() + seconds(4);
  std::this_thread::sleep_for(seconds(2));
  EXPECT_EQ(cluster_->postmasterPid(replica), before) << "the restart ran before its time";
  EXPECT_TRUE(scheduledIn(replica));
  ASSERT_TRUE(waitUntil(
      [&] {
        pid_t now = cluster_->postmasterPid(replica);
        return now > 0 && now != before;
      },
      Millis(seconds(20))))
      << "the scheduled restart never ran";
  EXPECT_GE(std::chrono::steady_clock::now(), due);
  EXPECT_TRUE(waitUntil([&] { return !scheduledIn(replica); }, Millis(seconds(5))));
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));
  EXPECT_EQ(cluster_->primaryIndex(), primary);

  // A condition that no longer holds at the time skips it.
  const pid_t again = cluster_->postmasterPid(replica);
  ASSERT_EQ(schedule(replica, seconds(2), R"(, "role": "primary")", &answer), 202) << answer;
  EXPECT_TRUE(waitUntil([&] { return !scheduledIn(replica); }, Millis(seconds(15))));
  std::this_thread::sleep_for(seconds(1));
  EXPECT_EQ(cluster_->postmasterPid(replica), again);
}

TEST_F(ClusterOpsTest, ReplicatefromCascadesAndFallsBackToTheLeader) {
  ClusterOptions options;
  options.rest_password = kRestPassword;
  options.replicatefrom = {{2, "node2"}};  // node3 streams from node2
  ClusterTest::startCluster(options);
  if (HasFatalFailure())
    return;
  // node1 leads, so that node3's upstream is a replica.
  if (int p = *cluster_->primaryIndex(); p != 0) {
    // A freshly cloned node1 may not have published that it caught up yet (412 until then).
    std::string answer;
    ASSERT_TRUE(waitUntil(
        [&] {
          return cluster_->restCall(
                     p, "POST", "/switchover",
                     fmt::format(R"({{"leader": "{}", "candidate": "node1"}})", cluster_->name(p)),
                     &answer) == 200;
        },
        Millis(seconds(20))))
        << answer;
    ASSERT_TRUE(waitForPrimary(0, Millis(seconds(30))));
  }
  auto senderPort = [&](int node) {
    auto r = cluster_->query(cluster_->nodeParams(node),
                             "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = "
                             "'streaming'");
    return r.ok() && !r->rows.empty() && r->rows[0][0] ? *r->rows[0][0] : std::string();
  };
  auto slots = [&] {
    auto r = cluster_->query(cluster_->nodeParams(0),
                             "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') "
                             "FROM pg_replication_slots");
    return r.ok() && !r->rows.empty() && r->rows[0][0] ? *r->rows[0][0] : std::string("?");
  };
  const std::string node1_port = cluster_->nodeParams(0).at("port");
  const std::string node2_port = cluster_->nodeParams(1).at("port");
  ASSERT_TRUE(waitUntil([&] { return senderPort(2) == node2_port; }, Millis(seconds(20))))
      << "node3 streams from port " << senderPort(2) << ", not from node2";
  EXPECT_TRUE(waitUntil([&] { return slots() == "node2"; }, Millis(seconds(10))))
      << "the leader's slots: " << slots();
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE cascade (id int)", Millis(seconds(10))));
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO cascade VALUES (1)", Millis(seconds(10))));
  EXPECT_TRUE(waitUntil([&] { return count(cluster_->nodeParams(2), "cascade") == 1; },
                        Millis(seconds(10))));

  // Its upstream gone, node3 streams from the leader, through a slot the leader keeps for it.
  cluster_->signalAgent(1, SIGTERM);
  ASSERT_TRUE(waitUntil([&] { return senderPort(2) == node1_port; }, Millis(seconds(20))))
      << "node3 streams from port " << senderPort(2) << ", not from the leader";
  EXPECT_TRUE(waitUntil([&] { return slots() == "node3"; }, Millis(seconds(10))))
      << "the leader's slots: " << slots();
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO cascade VALUES (2)", Millis(seconds(10))));
  EXPECT_TRUE(waitUntil([&] { return count(cluster_->nodeParams(2), "cascade") == 2; },
                        Millis(seconds(10))));

  // node2 back: node3 cascades from it again.
  ASSERT_TRUE(cluster_->startAgent(1).ok());
  EXPECT_TRUE(waitUntil([&] { return senderPort(2) == node2_port; }, Millis(seconds(30))))
      << "node3 streams from port " << senderPort(2);
  EXPECT_TRUE(waitUntil([&] { return slots() == "node2"; }, Millis(seconds(10))))
      << "the leader's slots: " << slots();
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));
}

TEST_F(ClusterOpsTest, FailoverToANamedCandidateWorksWithoutAHealthyLeader) {
  startCluster();
  const int old = *cluster_->primaryIndex();
  const int candidate = (old + 1) % 3;
  ASSERT_TRUE(
      writeThroughHaproxy("CREATE TABLE f (v int); INSERT INTO f VALUES (1)", Millis(seconds(20))));
  ASSERT_TRUE(waitUntil([&] { return count(cluster_->nodeParams(candidate), "f") == 1; },
                        Millis(seconds(10))));
  cluster_->signalAgent(old, SIGKILL);
  cluster_->killPostmaster(old);
  std::string answer;
  EXPECT_EQ(cluster_->restCall(candidate, "POST", "/failover",
                               fmt::format(R"({{"candidate": "{}"}})", cluster_->name(candidate)),
                               &answer),
            200)
      << answer;
  EXPECT_EQ(answer, fmt::format("Successfully failed over to \"{}\"", cluster_->name(candidate)));
  EXPECT_TRUE(waitForPrimary(candidate, Millis(seconds(10))));
  EXPECT_EQ(count(cluster_->nodeParams(candidate), "f"), 1);
  ASSERT_TRUE(cluster_->startAgent(old).ok());
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(90))));
  EXPECT_EQ(cluster_->primaryIndex(), candidate);
}

TEST_F(ClusterOpsTest, PauseStopsEveryAutomaticActionUntilResume) {
  startCluster();
  const int old = *cluster_->primaryIndex();
  std::string answer;
  EXPECT_EQ(cluster_->restCall(old, "PATCH", "/config", R"({"pause": "maybe"})", &answer), 400);
  EXPECT_EQ(cluster_->restCall(old, "PATCH", "/config", R"({"pause": true})", &answer), 200)
      << answer;
  EXPECT_EQ(nlohmann::json::parse(answer).value("pause", false), true);
  ASSERT_TRUE(waitUntil([&] { return everyMemberReportsPause(true); }, Millis(seconds(10))));
  std::string list;
  EXPECT_EQ(cluster_->restGet((old + 1) % 3, "/cluster", &list), 200);
  EXPECT_EQ(nlohmann::json::parse(list).value("pause", false), true);

  // A switchover is refused while paused.
  EXPECT_EQ(cluster_->restCall(old, "POST", "/switchover",
                               fmt::format(R"({{"leader": "{}"}})", cluster_->name(old)), &answer),
            409);

  // No demotion on the loss of etcd while paused: two ttl periods without it, and every write to
  // the primary goes through.
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE paused_writes (i int)", Millis(seconds(10))));
  cluster_->stopEtcd();
  const auto etcd_gone = std::chrono::steady_clock::now();
  int written = 0, failed = 0;
  while (std::chrono::steady_clock::now() - etcd_gone < seconds(10)) {
    if (cluster_->query(cluster_->nodeParams(old), "INSERT INTO paused_writes VALUES (1)").ok())
      ++written;
    else
      ++failed;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(failed, 0) << "of " << written + failed << " writes while paused without etcd";
  EXPECT_EQ(cluster_->primaryIndexes(), std::vector<int>{old});
  auto etcd_back = cluster_->restartEtcd();
  ASSERT_TRUE(etcd_back.ok()) << etcd_back.error().message;
  ASSERT_TRUE(waitUntil([&] { return everyMemberReportsPause(true); }, Millis(seconds(15))));
  EXPECT_EQ(cluster_->primaryIndex(), old);

  // The primary's server dies: nobody restarts it and nobody takes over, for longer than a ttl.
  cluster_->killPostmaster(old);
  std::this_thread::sleep_for(seconds(8));
  EXPECT_EQ(cluster_->postmasterPid(old) > 0 && processAlive(cluster_->postmasterPid(old)), false)
      << "the paused agent restarted PostgreSQL";
  EXPECT_TRUE(cluster_->primaryIndexes().empty()) << "a member took over while paused";

  EXPECT_EQ(cluster_->restCall((old + 1) % 3, "PATCH", "/config", R"({"pause": null})", &answer),
            200)
      << answer;
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(60))));
  EXPECT_TRUE(everyMemberReportsPause(false));
}

TEST_F(ClusterOpsTest, ConfigChangesReachEveryAgentWithoutARestart) {
  startCluster();
  const int primary = *cluster_->primaryIndex();
  std::string answer;
  EXPECT_EQ(cluster_->restCall(primary, "PATCH", "/config", R"({"ttl": 1})", &answer), 400);
  EXPECT_NE(answer.find("ttl must be an integer of at least 2"), std::string::npos) << answer;
  EXPECT_EQ(cluster_->restCall(primary, "PATCH", "/config",
                               R"({"ttl": 8, "loop_wait": 2, "maximum_lag_on_failover": 2097152})",
                               &answer),
            200)
      << answer;
  // Every agent reads the key on its next loop: no restart.
  EXPECT_TRUE(waitUntil(
      [&] {
        for (int i = 0; i < cluster_->nodes(); ++i) {
          std::string body;
          cluster_->restGet(i, "/config", &body);
          auto doc = nlohmann::json::parse(body, nullptr, false);
          if (!doc.is_object() || doc.value("ttl", 0) != 8 || doc.value("loop_wait", 0) != 2)
            return false;
        }
        return true;
      },
      Millis(seconds(10))));
  std::string metrics;
  EXPECT_TRUE(waitUntil(
      [&] {
        cluster_->restGet(primary, "/metrics", &metrics);
        return metrics.find(fmt::format("pgfleet_ttl_seconds{{scope=\"itest\",member=\"{}\"}} 8\n",
                                        cluster_->name(primary))) != std::string::npos;
      },
      Millis(seconds(10))))
      << metrics.substr(0, 2000);
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(20))));
}

TEST_F(ClusterOpsTest, ParametersApplyByReloadAndAPendingRestartEndsWithARollingRestart) {
  startCluster();
  const int primary = *cluster_->primaryIndex();
  auto setting = [&](int i, const std::string& name) {
    auto r = cluster_->query(cluster_->nodeParams(i), "SHOW " + name);
    return r.ok() && !r->rows.empty() && r->rows[0][0] ? *r->rows[0][0] : std::string();
  };
  auto pendingRestart = [&](int i) {
    std::string body;
    cluster_->restGet(i, "/patroni", &body);
    auto doc = nlohmann::json::parse(body, nullptr, false);
    return doc.is_object() && doc.value("pending_restart", false);
  };
  std::string answer;
  ASSERT_EQ(cluster_->restCall(primary, "PATCH", "/config",
                               R"({"postgresql": {"parameters": {"work_mem": "7MB",
                                   "max_locks_per_transaction": 128}}})",
                               &answer),
            200)
      << answer;
  for (int i = 0; i < cluster_->nodes(); ++i) {
    EXPECT_TRUE(waitUntil([&] { return setting(i, "work_mem") == "7MB"; }, Millis(seconds(10))))
        << cluster_->name(i) << " did not reload work_mem";
    EXPECT_TRUE(waitUntil([&] { return pendingRestart(i); }, Millis(seconds(10))))
        << cluster_->name(i) << " does not report pending_restart";
    EXPECT_EQ(setting(i, "max_locks_per_transaction"), "64");
  }

  // Rolling: the replicas first (a standby needs at least the primary's lock table), then the
  // primary, which keeps its lease throughout.
  std::vector<int> order;
  for (int i = 0; i < cluster_->nodes(); ++i)
    if (i != primary)
      order.push_back(i);
  order.push_back(primary);
  for (int i : order) {
    EXPECT_EQ(cluster_->restCall(i, "POST", "/restart", R"({"restart_pending": true})", &answer),
              200)
        << cluster_->name(i) << ": " << answer;
    EXPECT_EQ(answer, "restarted successfully");
    EXPECT_EQ(setting(i, "max_locks_per_transaction"), "128");
    EXPECT_TRUE(waitUntil([&] { return !pendingRestart(i); }, Millis(seconds(10))));
    EXPECT_EQ(cluster_->restCall(i, "POST", "/restart", R"({"restart_pending": true})", &answer),
              412)
        << answer;
  }
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));
  EXPECT_EQ(cluster_->primaryIndex(), primary) << "a restart is not a failover";
  EXPECT_EQ(cluster_->restCall(primary, "POST", "/reload", "", &answer), 202) << answer;
  EXPECT_EQ(cluster_->restCall(primary, "POST", "/restart", "", &answer, false), 401);
}

TEST_F(ClusterOpsTest, ReinitializeClonesAReplicaAgainAndIsRefusedOnThePrimary) {
  startCluster();
  const int primary = *cluster_->primaryIndex();
  const int replica = (primary + 1) % 3;
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE r (v int); INSERT INTO r VALUES (1), (2)",
                                  Millis(seconds(20))));
  std::string answer;
  EXPECT_EQ(cluster_->restCall(primary, "POST", "/reinitialize", "", &answer), 503);
  EXPECT_EQ(answer, "reinitialize refused: this member is the primary");
  struct stat before {};
  ASSERT_EQ(::stat((cluster_->dataDir(replica) + "/base").c_str(), &before), 0);

  EXPECT_EQ(cluster_->restCall(replica, "POST", "/reinitialize", R"({"force": true})", &answer),
            200)
      << answer;
  EXPECT_EQ(answer, "reinitialized from " + cluster_->name(primary));
  struct stat after {};
  ASSERT_EQ(::stat((cluster_->dataDir(replica) + "/base").c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino) << "the data directory was not cloned again";
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO r VALUES (3)", Millis(seconds(10))));
  EXPECT_TRUE(waitUntil([&] { return count(cluster_->nodeParams(replica), "r") == 3; },
                        Millis(seconds(30))));
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));
  EXPECT_EQ(cluster_->primaryIndex(), primary);
}

TEST_F(ClusterOpsTest, PgfleetctlAndPatronictlDriveTheSameCluster) {
  startCluster();
  const int first = *cluster_->primaryIndex();
  const int second = (first + 1) % 3;
  const int third = (first + 2) % 3;
  std::string out;
  ASSERT_TRUE(waitUntil([&] { return replicasReportThePrimaryPosition(); }, Millis(seconds(30))));

  EXPECT_EQ(
      ctl(PGFLEET_CTL_BIN, {"switchover", "--candidate", cluster_->name(second), "--force"}, &out),
      0)
      << out;
  EXPECT_NE(out.find(fmt::format("Successfully switched over to \"{}\"", cluster_->name(second))),
            std::string::npos)
      << out;
  EXPECT_TRUE(waitForPrimary(second, Millis(seconds(10))));
  ASSERT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));

  // patronictl speaks to pgfleet's REST API the same way.
  EXPECT_EQ(ctl("patronictl",
                {"switchover", "--leader", cluster_->name(second), "--candidate",
                 cluster_->name(third), "--force"},
                &out),
            0)
      << out;
  EXPECT_NE(out.find(fmt::format("Successfully switched over to \"{}\"", cluster_->name(third))),
            std::string::npos)
      << out;
  EXPECT_TRUE(waitForPrimary(third, Millis(seconds(10))));
  ASSERT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));

  EXPECT_EQ(ctl("patronictl", {"pause", "--wait"}, &out), 0) << out;
  EXPECT_TRUE(everyMemberReportsPause(true));
  EXPECT_EQ(ctl(PGFLEET_CTL_BIN, {"pause"}, &out), 1) << out;
  EXPECT_NE(out.find("pgfleetctl: cluster is already paused"), std::string::npos) << out;
  EXPECT_EQ(ctl("patronictl", {"resume", "--wait"}, &out), 0) << out;
  EXPECT_TRUE(everyMemberReportsPause(false));
  EXPECT_EQ(ctl(PGFLEET_CTL_BIN, {"pause", "--wait"}, &out), 0) << out;
  EXPECT_TRUE(everyMemberReportsPause(true));
  EXPECT_EQ(ctl(PGFLEET_CTL_BIN, {"resume", "--wait"}, &out), 0) << out;
  EXPECT_TRUE(everyMemberReportsPause(false));

  EXPECT_EQ(ctl(PGFLEET_CTL_BIN,
                {"edit-config", "--set", "loop_wait=2", "--pg", "work_mem=8MB", "--force"}, &out),
            0)
      << out;
  for (const std::string& tool : {std::string(PGFLEET_CTL_BIN), std::string("patronictl")}) {
    EXPECT_EQ(ctl(tool, {"show-config"}, &out), 0) << out;
    EXPECT_NE(out.find("loop_wait: 2"), std::string::npos) << tool << ":\n" << out;
    EXPECT_NE(out.find("work_mem: 8MB"), std::string::npos) << tool << ":\n" << out;
  }

  // Two switchovers: two timeline switches in the history, each naming its new leader.
  EXPECT_EQ(ctl(PGFLEET_CTL_BIN, {"history", "-f", "json"}, &out), 0) << out;
  auto history = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(history.is_array()) << out;
  ASSERT_GE(history.size(), 2u);
  EXPECT_EQ(history[history.size() - 2][4], cluster_->name(second));
  EXPECT_EQ(history.back()[4], cluster_->name(third));

  // A rolling restart of every member, and a replica cloned anew, keep the same leader.
  EXPECT_EQ(ctl(PGFLEET_CTL_BIN, {"restart", "--force"}, &out), 0) << out;
  for (int i = 0; i < cluster_->nodes(); ++i)
    EXPECT_NE(out.find(cluster_->name(i) + ": restarted successfully"), std::string::npos) << out;
  EXPECT_EQ(ctl(PGFLEET_CTL_BIN, {"reinit", "itest", cluster_->name(first), "--force"}, &out), 0)
      << out;
  EXPECT_NE(out.find(cluster_->name(first) + ": reinitialized from " + cluster_->name(third)),
            std::string::npos)
      << out;
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));
  EXPECT_EQ(cluster_->primaryIndex(), third);

  // Without the credentials the REST API refuses, and pgfleetctl says so in one line.
  CommandSpec spec;
  spec.argv = {PGFLEET_CTL_BIN, "--etcd", cluster_->etcdEndpoint(), "--scope", "itest", "pause"};
  auto refused = runCommand(spec, Millis(seconds(30)));
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->exit_code, 1);
  EXPECT_NE(refused->output.find("refused the credentials (401)"), std::string::npos)
      << refused->output;
}

}  // namespace
}  // namespace pgf::testing
