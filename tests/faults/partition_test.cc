// Fixed fault scenarios on separate hosts (fault_cluster.h): a primary cut off from etcd and from
// its replicas stops accepting writes before its lease can have expired, a replica takes over only
// after that, and once the links heal the former primary follows the new one; a primary whose
// agent freezes is stopped by its watchdog in time; a replica cut off from everything, or one etcd
// member dead or cut off, changes nothing for the writers.
#include <signal.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "faults/fault_cluster.h"

namespace pgf::faults {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = cluster_.start();
    ASSERT_TRUE(st.ok()) << st.error().message;
    ASSERT_TRUE(cluster_.waitHealthy(Millis(seconds(120)))) << cluster_.logTails();
  }
  void TearDown() override {
    if (HasFailure())
      std::cerr << cluster_.logTails(60);
  }

  // Whether node `node` took the row; why not goes to last_error_.
  bool insert(int node, long long id) {
    auto conn = PgConnection::connect(cluster_.nodeParams(node), Millis(1000));
    if (!conn.ok()) {
      last_error_ = conn.error().message;
      return false;
    }
    auto done = conn->exec(fmt::format("INSERT INTO beats VALUES ({})", id), Millis(1000));
    last_error_ = done.ok() ? "" : done.error().message;
    return done.ok();
  }

  std::string last_error_;

  // Writes one row to `node` every 100 ms for `window`; returns how many failed (and counts the
  // ones taken in `taken`).
  int writeFor(int node, std::chrono::milliseconds window, long long& id, int& taken) {
    int failed = 0;
    const auto until = SteadyClock::now() + window;
    while (SteadyClock::now() < until) {
      if (insert(node, ++id))
        ++taken;
      else
        ++failed;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return failed;
  }

  // Writes to `node` every 100 ms from `since` on, for at most 30 s: how long after `since` the
  // first write was refused (nullopt: none was).
  std::optional<long long> msUntilRefused(int node, SteadyClock::time_point since, long long& id) {
    while (SteadyClock::now() - since < seconds(30)) {
      if (!insert(node, ++id))
        return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - since).count();
      std::this_thread::sleep_for(milliseconds(100));
    }
    return std::nullopt;
  }

  // The node other than `old` that answers /primary within 60 s, or -1.
  int newPrimary(int old) {
    const auto deadline = SteadyClock::now() + seconds(60);
    while (SteadyClock::now() < deadline) {
      for (int p : cluster_.primaries())
        if (p != old)
          return p;
      std::this_thread::sleep_for(milliseconds(200));
    }
    return -1;
  }

  void createTable(int node) {
    auto conn = PgConnection::connect(cluster_.nodeParams(node), Millis(2000));
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE(conn->exec("CREATE TABLE beats (id bigint primary key)").ok());
  }

  long long rows(int node) {
    auto conn = PgConnection::connect(cluster_.nodeParams(node), Millis(2000));
    if (!conn.ok())
      return -1;
    auto r = conn->query("SELECT count(*) FROM beats");
    return r.ok() && !r->rows.empty() && r->rows[0][0] ? std::stoll(*r->rows[0][0]) : -1;
  }

  FaultCluster cluster_;
};

TEST_F(PartitionTest, APrimaryCutOffFromEtcdAndItsReplicasStopsBeforeItsLeaseCouldExpire) {
  const int old = cluster_.primaries().at(0);
  createTable(old);
  if (HasFatalFailure())
    return;
  // Cut off from every etcd member and every other node; the machine still reaches it, so the
  // test sees when it stops taking writes.
  NetLab& lab = cluster_.lab();
  const auto cut_at = SteadyClock::now();
  for (int k = 0; k < 3; ++k)
    ASSERT_TRUE(lab.cut(cluster_.node(old), cluster_.etcdHost(k)).ok());
  for (int j = 0; j < cluster_.nodes(); ++j) {
    if (j != old) {
      ASSERT_TRUE(lab.cut(cluster_.node(old), cluster_.node(j)).ok());
    }
  }

  long long id = 0;
  auto refused = msUntilRefused(old, cut_at, id);
  ASSERT_TRUE(refused) << "the cut-off primary kept taking writes for 30 s";
  // Its last renewal was before the cut, so its lease ends by cut_at + ttl at the latest.
  EXPECT_LT(*refused, 5000) << "writes were still accepted " << *refused << " ms after the cut";

  // A replica takes over, and never while the old primary still took writes.
  const int fresh = newPrimary(old);
  ASSERT_GE(fresh, 0) << "no replica took over";
  EXPECT_FALSE(insert(old, ++id)) << "two nodes take writes";
  bool taken = false;
  for (int attempt = 0; attempt < 25 && !taken; ++attempt) {
    taken = insert(fresh, ++id);
    if (!taken)
      std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_TRUE(taken) << "the new primary " << cluster_.node(fresh) << ": " << last_error_;

  // Healed: one primary, the former one streaming from it.
  ASSERT_TRUE(lab.healAll().ok());
  EXPECT_TRUE(cluster_.waitHealthy(Millis(seconds(90))));
  EXPECT_EQ(cluster_.primaries(), std::vector<int>{fresh});
}

TEST_F(PartitionTest, AReplicaCutOffFromEverythingLeavesThePrimaryAloneAndCatchesUp) {
  const int primary = cluster_.primaries().at(0);
  const int replica = (primary + 1) % cluster_.nodes();
  createTable(primary);
  if (HasFatalFailure())
    return;
  ASSERT_TRUE(cluster_.lab().isolate(cluster_.node(replica)).ok());
  long long id = 0;
  int taken = 0;
  // Two ttl periods: the primary keeps its lease and its writes, nobody else is elected.
  EXPECT_EQ(writeFor(primary, milliseconds(10000), id, taken), 0) << last_error_;
  EXPECT_EQ(cluster_.primaries(), std::vector<int>{primary});
  ASSERT_TRUE(cluster_.lab().healAll().ok());
  EXPECT_TRUE(cluster_.waitHealthy(Millis(seconds(60))));
  EXPECT_EQ(cluster_.primaries(), std::vector<int>{primary});
  EXPECT_TRUE([&] {
    auto deadline = SteadyClock::now() + seconds(20);
    while (SteadyClock::now() < deadline) {
      if (rows(replica) == taken)
        return true;
      std::this_thread::sleep_for(milliseconds(200));
    }
    return false;
  }()) << "the replica has "
       << rows(replica) << " of " << taken << " rows";
}

TEST_F(PartitionTest, OneEtcdMemberDownChangesNothing) {
  const int primary = cluster_.primaries().at(0);
  createTable(primary);
  if (HasFatalFailure())
    return;
  // The member every agent names first.
  cluster_.signalEtcd(0, SIGKILL);
  long long id = 0;
  int taken = 0;
  EXPECT_EQ(writeFor(primary, milliseconds(10000), id, taken), 0) << last_error_;
  EXPECT_EQ(cluster_.primaries(), std::vector<int>{primary});
  // Cut off instead of dead: the same.
  ASSERT_TRUE(cluster_.startEtcd(0).ok());
  for (int i = 0; i < cluster_.nodes(); ++i)
    ASSERT_TRUE(cluster_.lab().cut(cluster_.node(i), cluster_.etcdHost(1)).ok());
  EXPECT_EQ(writeFor(primary, milliseconds(10000), id, taken), 0) << last_error_;
  EXPECT_EQ(cluster_.primaries(), std::vector<int>{primary});
  ASSERT_TRUE(cluster_.lab().healAll().ok());
  EXPECT_TRUE(cluster_.waitHealthy(Millis(seconds(30))));
}

TEST_F(PartitionTest, AFrozenPrimaryAgentIsFencedByItsWatchdog) {
  const int old = cluster_.primaries().at(0);
  createTable(old);
  if (HasFatalFailure())
    return;
  // The agent freezes (a stalled process); its PostgreSQL does not. Only the watchdog process the
  // agent armed can stop it before the lease runs out.
  const auto frozen_at = SteadyClock::now();
  cluster_.signalAgent(old, SIGSTOP);
  long long id = 0;
  auto refused = msUntilRefused(old, frozen_at, id);
  ASSERT_TRUE(refused) << "the frozen agent's primary kept taking writes for 30 s";
  EXPECT_LT(*refused, 5000) << "writes were still accepted " << *refused << " ms after the freeze";
  const int fresh = newPrimary(old);
  ASSERT_GE(fresh, 0) << "no replica took over";
  EXPECT_FALSE(insert(old, ++id)) << "two nodes take writes";

  // Thawed, the agent finds another leader and rejoins as its replica.
  cluster_.signalAgent(old, SIGCONT);
  EXPECT_TRUE(cluster_.waitHealthy(Millis(seconds(90))));
  EXPECT_EQ(cluster_.primaries(), std::vector<int>{fresh});
}

TEST_F(PartitionTest, EtcdWithoutAMajorityLeavesNoWriterUntilItReturns) {
  const int old = cluster_.primaries().at(0);
  createTable(old);
  if (HasFatalFailure())
    return;
  // etcd3 alone cannot commit anything: no lease can be renewed or taken.
  const auto lost_at = SteadyClock::now();
  cluster_.signalEtcd(0, SIGKILL);
  cluster_.signalEtcd(1, SIGKILL);
  long long id = 0;
  auto refused = msUntilRefused(old, lost_at, id);
  ASSERT_TRUE(refused) << "the primary kept taking writes without an etcd majority";
  EXPECT_LT(*refused, 5000) << "writes were still accepted " << *refused
                            << " ms after the majority went";
  std::this_thread::sleep_for(seconds(5));
  EXPECT_TRUE(cluster_.primaries().empty()) << "a writer without an etcd majority";

  ASSERT_TRUE(cluster_.startEtcd(0).ok());
  ASSERT_TRUE(cluster_.startEtcd(1).ok());
  EXPECT_TRUE(cluster_.waitHealthy(Millis(seconds(90))));
  EXPECT_EQ(cluster_.primaries().size(), 1u);
}

}  // namespace
}  // namespace pgf::faults
