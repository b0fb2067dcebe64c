// Fixed fault scenarios on separate hosts (fault_cluster.h): a primary cut off from etcd and from
// its replicas stops accepting writes before its lease can have expired, a replica takes over only
// after that, and once the links heal the former primary follows the new one.
#include <chrono>
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

  FaultCluster cluster_;
};

TEST_F(PartitionTest, APrimaryCutOffFromEtcdAndItsReplicasStopsBeforeItsLeaseCouldExpire) {
  const int old = cluster_.primaries().at(0);
  {
    auto conn = PgConnection::connect(cluster_.nodeParams(old), Millis(2000));
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE(conn->exec("CREATE TABLE beats (id bigint primary key)").ok());
  }
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

  std::optional<SteadyClock::time_point> refused;
  long long id = 0;
  while (SteadyClock::now() - cut_at < seconds(30)) {
    if (!insert(old, ++id)) {
      refused = SteadyClock::now();
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(refused) << "the cut-off primary kept taking writes for 30 s";
  // Its last renewal was before the cut, so its lease ends by cut_at + ttl at the latest.
  auto after = std::chrono::duration_cast<milliseconds>(*refused - cut_at).count();
  EXPECT_LT(after, 5000) << "writes were still accepted " << after << " ms after the cut";

  // A replica takes over, and never while the old primary still took writes.
  int fresh = -1;
  ASSERT_TRUE([&] {
    auto deadline = SteadyClock::now() + seconds(60);
    while (SteadyClock::now() < deadline) {
      for (int p : cluster_.primaries())
        if (p != old)
          fresh = p;
      if (fresh >= 0)
        return true;
      std::this_thread::sleep_for(milliseconds(200));
    }
    return false;
  }()) << "no replica took over";
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

}  // namespace
}  // namespace pgf::faults
