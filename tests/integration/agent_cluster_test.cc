// The agent against real etcd, PostgreSQL 15 and HAProxy on loopback: bootstrap, failover after a
// SIGKILL of the primary's agent and server, rejoin with pg_rewind, restart of a crashed server,
// etcd loss (no writer once the ttl has passed), a clean stop handing over at once, and a former
// primary cloned again after its pg_rewind failed, and a leader completing a history that lacks
// its promotion.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "dcs/etcd/etcd_dcs.h"
#include "postgres/timeline.h"

#include "support/cluster_test.h"

namespace pgf::testing {
namespace {

using std::chrono::seconds;

class AgentClusterTest : public ClusterTest {
 protected:
  bool acceptsWrites(int i) {
    auto r = cluster_->query(cluster_->nodeParams(i), "INSERT INTO probe VALUES (default)",
                             Millis(2000));
    return r.ok();
  }
  // Creates table t with `rows` rows through HAProxy, then SIGKILLs the primary's agent and
  // PostgreSQL; *old is the former primary's index.
  void killThePrimaryAfterRows(int rows, int* old) {
    *old = *cluster_->primaryIndex();
    ASSERT_TRUE(
        writeThroughHaproxy("CREATE TABLE t (id serial primary key, v text)", Millis(seconds(20))));
    for (int k = 0; k < rows; ++k)
      ASSERT_TRUE(
          cluster_->query(cluster_->readWriteParams(), "INSERT INTO t (v) VALUES ('before')").ok());
    cluster_->signalAgent(*old, SIGKILL);
    cluster_->killPostmaster(*old);
  }
  // Starts the former primary's agent again, writes 10 more rows and expects it to become a
  // streaming replica holding every row of `primary` within 90 s.
  void expectRejoinWithEveryRow(int old, int primary) {
    ASSERT_TRUE(cluster_->startAgent(old).ok());
    for (int k = 0; k < 10; ++k)
      ASSERT_TRUE(
          cluster_->query(cluster_->readWriteParams(), "INSERT INTO t (v) VALUES ('later')").ok());
    long long expected = count(cluster_->nodeParams(primary), "t");
    EXPECT_TRUE(waitUntil(
        [&] {
          return cluster_->restGet(old, "/replica") == 200 &&
                 count(cluster_->nodeParams(old), "t") == expected;
        },
        Millis(seconds(90))))
        << "the old primary did not rejoin as a streaming replica with all " << expected
        << " rows\n"
        << cluster_->logTails();
  }
};

TEST_F(AgentClusterTest, BootstrapsOnePrimaryWithStreamingReplicasBehindHaproxy) {
  startCluster({});
  auto primary = cluster_->primaryIndex();
  ASSERT_TRUE(primary.has_value());
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE boot (v int); INSERT INTO boot VALUES (42)",
                                  Millis(seconds(20))));
  for (int i = 0; i < cluster_->nodes(); ++i) {
    if (i == *primary)
      continue;
    EXPECT_TRUE(
        waitUntil([&] { return count(cluster_->nodeParams(i), "boot") == 1; }, Millis(seconds(20))))
        << cluster_->name(i) << " did not replicate the row";
    std::string body;
    EXPECT_EQ(cluster_->restGet(i, "/replica", &body), 200) << body;
    EXPECT_EQ(cluster_->restGet(i, "/primary"), 503);
  }
  // The replicas use the physical slots the primary created for them.
  auto slots = cluster_->query(cluster_->nodeParams(*primary),
                               "SELECT count(*) FROM pg_replication_slots WHERE active");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(*slots->rows[0][0], std::to_string(cluster_->nodes() - 1));
}

// Member, host, role, state and timeline of each member, as `<tool> -c <config> list -f json`
// prints them.
std::map<std::string, std::string> listMembers(const std::string& tool, const std::string& config) {
  CommandSpec spec;
  spec.argv = {tool, "-c", config, "list", "-f", "json"};
  auto run = runCommand(spec, Millis(30000));
  std::map<std::string, std::string> out;
  if (!run.ok() || run->exit_code != 0)
    return out;
  auto doc = nlohmann::json::parse(run->output, nullptr, false);
  if (!doc.is_array())
    return out;
  for (const auto& m : doc) {
    if (!m.is_object() || !m.contains("Member"))
      continue;
    out[m["Member"].get<std::string>()] =
        fmt::format("{} {} {} {}", m.value("Host", ""), m.value("Role", ""), m.value("State", ""),
                    m.contains("TL") ? m["TL"].dump() : std::string("-"));
  }
  return out;
}

TEST_F(AgentClusterTest, PatronictlSeesTheSameMembersRolesAndLeaderAsPgfleetctl) {
  startCluster({});
  std::map<std::string, std::string> ours, theirs;
  // Both read the DCS at slightly different moments: retry until a stable view agrees.
  bool agree = waitUntil(
      [&] {
        ours = listMembers(PGFLEET_CTL_BIN, cluster_->configPath(0));
        theirs = listMembers("patronictl", cluster_->configPath(0));
        return ours.size() == 3 && ours == theirs;
      },
      Millis(seconds(30)));
  EXPECT_TRUE(agree) << "pgfleetctl:\n"
                     << nlohmann::json(ours).dump(2) << "\npatronictl:\n"
                     << nlohmann::json(theirs).dump(2);
  int leaders = 0;
  for (const auto& [name, row] : theirs)
    leaders += row.find(" Leader ") != std::string::npos;
  EXPECT_EQ(leaders, 1);
  auto primary = cluster_->primaryIndex();
  ASSERT_TRUE(primary.has_value());
  EXPECT_NE(theirs[cluster_->name(*primary)].find(" Leader "), std::string::npos);
}

TEST_F(AgentClusterTest, KillingPrimaryAgentAndServerFailsOverAndOldPrimaryRejoins) {
  startCluster({.ttl = 5, .loop_wait = 1, .retry_timeout = 2});
  int old = -1;
  ASSERT_NO_FATAL_FAILURE(killThePrimaryAfterRows(100, &old));
  // A new primary takes writes through the same HAProxy port.
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO t (v) VALUES ('after')", Millis(seconds(60))));
  auto now_primary = cluster_->primaryIndex();
  ASSERT_TRUE(now_primary.has_value());
  EXPECT_NE(*now_primary, old);
  long long on_new = count(cluster_->nodeParams(*now_primary), "t");
  EXPECT_EQ(on_new, 101) << "rows acknowledged before the kill were lost or duplicated";

  // The killed node comes back, is rewound if needed, and streams every row the new primary has.
  ASSERT_NO_FATAL_FAILURE(expectRejoinWithEveryRow(old, *now_primary));
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(60))));
}

// Replicas judge divergence by the history key. A promotion whose write of it was lost (etcd cut
// off right after the promotion) or that recorded a wrong position is completed by the leader from
// its own timeline history file.
TEST_F(AgentClusterTest, TheLeaderCompletesAHistoryThatLacksOrMisplacesItsPromotion) {
  startCluster({.ttl = 5, .loop_wait = 1, .retry_timeout = 2});
  int old = -1;
  ASSERT_NO_FATAL_FAILURE(killThePrimaryAfterRows(10, &old));
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO t (v) VALUES ('after')", Millis(seconds(60))));
  auto primary = cluster_->primaryIndex();
  ASSERT_TRUE(primary.has_value());
  auto tl = cluster_->query(cluster_->nodeParams(*primary),
                            "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, "
                            "8))::bit(32)::int AS tl");
  ASSERT_TRUE(tl.ok() && tl->rows.size() == 1);
  int timeline = std::stoi(tl->get(0, "tl").value_or("0"));
  ASSERT_GE(timeline, 2);
  auto lineage = readTimelineHistory(cluster_->dataDir(*primary), timeline);
  ASSERT_TRUE(lineage && !lineage->empty());
  const TimelineSwitch fork = lineage->back();

  auto historyNamesTheFork = [&] {
    std::string body;
    if (cluster_->restGet(*primary, "/history", &body) != 200)
      return false;
    auto h = nlohmann::json::parse(body, nullptr, false);
    if (!h.is_array())
      return false;
    for (const auto& e : h)
      if (e.is_array() && e.size() >= 2 && e[0] == fork.parent)
        return e[1] == fork.position;
    return false;
  };
  EXPECT_TRUE(waitUntil(historyNamesTheFork, Millis(seconds(10))));

  EtcdDcsOptions o;
  o.endpoints = {cluster_->etcdEndpoint()};
  o.scope = "itest";
  o.name = "intruder";
  auto dcs = makeEtcdDcs(o);
  ASSERT_TRUE(dcs.ok()) << dcs.error().message;
  ASSERT_TRUE((*dcs)->setHistory(nlohmann::json::array()).ok());
  EXPECT_TRUE(waitUntil(historyNamesTheFork, Millis(seconds(10))))
      << "an empty history was not completed\n"
      << cluster_->logTails();
  ASSERT_TRUE((*dcs)
                  ->setHistory(nlohmann::json::array(
                      {{fork.parent, fork.position - 8, "a lower bound", "t", "node"}}))
                  .ok());
  EXPECT_TRUE(waitUntil(historyNamesTheFork, Millis(seconds(10))))
      << "a misplaced switch was not corrected\n"
      << cluster_->logTails();
}

TEST_F(AgentClusterTest, KillingOnlyThePrimaryAgentNeverLeavesTwoWriters) {
  startCluster({.ttl = 4, .loop_wait = 1, .retry_timeout = 2});
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE probe (id serial)", Millis(seconds(20))));
  int old = *cluster_->primaryIndex();
  pid_t old_postmaster = cluster_->postmasterPid(old);
  ASSERT_GT(old_postmaster, 0);

  cluster_->signalAgent(old, SIGKILL);
  // The orphaned PostgreSQL must stop (the agent's watchdog fences it at the lease deadline) before
  // anyone else can be promoted: sample every node's writability until well after the failover.
  int most_writers = 0;
  bool new_primary = false;
  auto until = std::chrono::steady_clock::now() + seconds(20);
  while (std::chrono::steady_clock::now() < until) {
    int writers = 0;
    for (int i = 0; i < cluster_->nodes(); ++i) {
      bool w = acceptsWrites(i);
      writers += w;
      if (w && i != old)
        new_primary = true;
    }
    most_writers = std::max(most_writers, writers);
    std::this_thread::sleep_for(Millis(100));
  }
  EXPECT_LE(most_writers, 1) << "two nodes accepted writes at the same time";
  EXPECT_TRUE(new_primary) << "no other node took over";
  EXPECT_FALSE(processAlive(old_postmaster)) << "the orphaned primary kept running";
}

TEST_F(AgentClusterTest, CrashedPrimaryServerIsRestartedWithoutFailover) {
  startCluster({.ttl = 10, .loop_wait = 1, .retry_timeout = 2});
  int primary = *cluster_->primaryIndex();
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE c (v int)", Millis(seconds(20))));
  auto tl_before = cluster_->query(cluster_->nodeParams(primary),
                                   "SELECT timeline_id FROM pg_control_checkpoint()");
  ASSERT_TRUE(tl_before.ok());

  cluster_->killPostmaster(primary);
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO c VALUES (1)", Millis(seconds(30))));
  EXPECT_EQ(cluster_->primaryIndex(), primary) << "a crash of PostgreSQL alone caused a failover";
  auto tl_after = cluster_->query(cluster_->nodeParams(primary),
                                  "SELECT timeline_id FROM pg_control_checkpoint()");
  ASSERT_TRUE(tl_after.ok());
  EXPECT_EQ(*tl_after->rows[0][0], *tl_before->rows[0][0]);
}

TEST_F(AgentClusterTest, LosingEtcdStopsEveryWriterUntilItReturns) {
  startCluster({.ttl = 4, .loop_wait = 1, .retry_timeout = 2});
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE probe (id serial)", Millis(seconds(20))));
  int primary = *cluster_->primaryIndex();
  ASSERT_TRUE(acceptsWrites(primary));

  cluster_->stopEtcd();
  // Once the ttl has passed, no node accepts a write.
  std::this_thread::sleep_for(seconds(4));
  for (int i = 0; i < cluster_->nodes(); ++i)
    EXPECT_FALSE(acceptsWrites(i)) << cluster_->name(i) << " accepted a write without etcd";

  ASSERT_TRUE(cluster_->restartEtcd().ok());
  ASSERT_TRUE(
      waitUntil([&] { return cluster_->primaryIndexes().size() == 1; }, Millis(seconds(60))));
  EXPECT_TRUE(writeThroughHaproxy("INSERT INTO probe VALUES (default)", Millis(seconds(30))));
  EXPECT_EQ(cluster_->primaryIndexes().size(), 1u);
}

TEST_F(AgentClusterTest, CleanStopOfPrimaryAgentHandsOverBeforeTheLeaseExpires) {
  // A long ttl: a failover faster than it proves the leader key was released, not expired.
  startCluster({.ttl = 30, .loop_wait = 2, .retry_timeout = 5});
  int old = *cluster_->primaryIndex();
  auto t0 = std::chrono::steady_clock::now();
  cluster_->signalAgent(old, SIGTERM);
  ASSERT_TRUE(waitUntil(
      [&] {
        auto p = cluster_->primaryIndex();
        return p && *p != old;
      },
      Millis(seconds(25))))
      << "no new primary before the old lease could have expired";
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, seconds(25));
  EXPECT_TRUE(writeThroughHaproxy("CREATE TABLE after_stop (v int)", Millis(seconds(20))));
}

// A former primary whose pg_rewind ran and failed is neither rewound again nor started: its data
// directory is renamed beside itself, whole (DESIGN.md invariant 5), and the node is cloned afresh
// from the new primary. The rewind is made to fail with a directory pg_rewind cannot read.
TEST_F(AgentClusterTest, AFormerPrimaryWhoseRewindFailsIsSetAsideAndClonedAgain) {
  startCluster({.ttl = 5, .loop_wait = 1, .retry_timeout = 2});
  int old = -1;
  ASSERT_NO_FATAL_FAILURE(killThePrimaryAfterRows(50, &old));
  ASSERT_TRUE(writeThroughHaproxy("INSERT INTO t (v) VALUES ('after')", Millis(seconds(60))));
  auto now_primary = cluster_->primaryIndex();
  ASSERT_TRUE(now_primary.has_value());

  const std::string data = cluster_->dataDir(old);
  struct stat before {};
  ASSERT_EQ(::stat(data.c_str(), &before), 0);
  // Owned by root and closed to everybody else: PostgreSQL's crash recovery only logs it, and
  // pg_rewind, which lists every file of its target before it changes any, fails on it.
  const std::string unreadable = data + "/unreadable";
  ASSERT_EQ(::mkdir(unreadable.c_str(), 0), 0) << std::strerror(errno);

  ASSERT_NO_FATAL_FAILURE(expectRejoinWithEveryRow(old, *now_primary));

  // The old directory is still there, whole, under a new name beside the data directory.
  std::vector<std::string> aside;
  const auto node_dir = std::filesystem::path(data).parent_path();
  for (const auto& entry : std::filesystem::directory_iterator(node_dir))
    if (entry.path().filename().string().rfind("data.rewind-failed-", 0) == 0)
      aside.push_back(entry.path().string());
  ASSERT_EQ(aside.size(), 1u) << "expected one set-aside directory in " << node_dir;
  struct stat moved {};
  ASSERT_EQ(::stat(aside[0].c_str(), &moved), 0);
  EXPECT_EQ(moved.st_ino, before.st_ino) << "the set-aside directory is not the old one";
  EXPECT_TRUE(std::filesystem::exists(aside[0] + "/PG_VERSION"));
  EXPECT_TRUE(std::filesystem::exists(aside[0] + "/pgfleet.rewind_failed"))
      << "the failed rewind was not recorded in the directory it left behind";
  EXPECT_TRUE(std::filesystem::exists(aside[0] + "/unreadable"));
  EXPECT_FALSE(std::filesystem::exists(data + "/pgfleet.rewind_failed"));
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(60))));
}

}  // namespace
}  // namespace pgf::testing
