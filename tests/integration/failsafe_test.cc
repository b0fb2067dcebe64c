// DCS failsafe mode on a real cluster (etcd, PostgreSQL 15, three agents on loopback): an etcd
// outage alone does not take a healthy cluster read-only, and as soon as a member cannot be
// reached the primary stops accepting writes before its lease could have expired.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cluster_test.h"

namespace pgf::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

constexpr int kTtl = 5;

class FailsafeTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.ttl = kTtl;
    options.loop_wait = 1;
    options.retry_timeout = 2;
    options.failsafe_mode = true;
    // The heartbeat is a POST: it must carry the REST API's credentials.
    options.rest_password = "failsafe-test-secret";
    startCluster(options);
    if (HasFatalFailure())
      return;
    primary_ = *cluster_->primaryIndex();
    ASSERT_TRUE(
        writeThroughHaproxy("CREATE TABLE beats (id bigint primary key)", Millis(seconds(20))));
    // The leader records every member in the failsafe key; every agent serves it.
    ASSERT_TRUE(waitUntil(
        [&] {
          for (int i = 0; i < cluster_->nodes(); ++i) {
            std::string body;
            if (cluster_->restGet(i, "/failsafe", &body) != 200)
              return false;
            auto doc = nlohmann::json::parse(body, nullptr, false);
            if (!doc.is_object() || doc.size() != 3)
              return false;
          }
          return true;
        },
        Millis(seconds(15))))
        << "the failsafe key never listed the three members";
  }

  bool insert(int node, long long id) {
    return cluster_
        ->query(cluster_->nodeParams(node), fmt::format("INSERT INTO beats VALUES ({})", id),
                Millis(2000))
        .ok();
  }

  bool failsafeActive(int node) {
    std::string body;
    if (cluster_->restGet(node, "/patroni", &body) == 0)
      return false;
    auto doc = nlohmann::json::parse(body, nullptr, false);
    return doc.is_object() && doc.value("failsafe_mode_is_active", false);
  }

  int primary_ = -1;
};

TEST_F(FailsafeTest, AnEtcdOutageWithEveryMemberUpLeavesThePrimaryWriting) {
  cluster_->stopEtcd();
  const auto stopped = SteadyClock::now();
  long long id = 0, failed = 0;
  bool saw_active = false;
  // Three ttl periods without etcd: every write to the primary goes through.
  while (SteadyClock::now() - stopped < seconds(3 * kTtl)) {
    if (!insert(primary_, ++id))
      ++failed;
    saw_active = saw_active || failsafeActive(primary_);
    std::this_thread::sleep_for(milliseconds(250));
  }
  EXPECT_EQ(failed, 0) << "of " << id << " writes during the etcd outage";
  // Without etcd every agent still waits for its next loop between two attempts to read it
  // (15 s at loop_wait 1 and the leader's shorter renewal interval: a few dozen, not a spin).
  for (int i = 0; i < cluster_->nodes(); ++i) {
    std::ifstream log(fmt::format("{}/{}.agent.log", cluster_->dir(), cluster_->name(i)));
    int reads = 0;
    for (std::string line; std::getline(log, line);)
      reads += line.find("reading the cluster from the dcs") != std::string::npos;
    EXPECT_LT(reads, 60) << cluster_->name(i) << " tried to read etcd " << reads << " times";
  }
  EXPECT_TRUE(saw_active) << "/patroni never reported failsafe_mode_is_active";
  EXPECT_EQ(cluster_->primaryIndexes(), std::vector<int>{primary_});

  // etcd returns: the same primary renews its lease and leaves failsafe mode.
  auto restarted = cluster_->restartEtcd();
  ASSERT_TRUE(restarted.ok()) << restarted.error().message;
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(30))));
  EXPECT_EQ(cluster_->primaryIndex(), primary_);
  EXPECT_TRUE(waitUntil([&] { return !failsafeActive(primary_); }, Millis(seconds(10))));
  EXPECT_EQ(count(cluster_->nodeParams(primary_), "beats"), id);
}

TEST_F(FailsafeTest, AnEtcdOutageWithAMemberDownEndsWritesBeforeTheLeaseCouldExpire) {
  const int replica = (primary_ + 1) % 3;
  // The replica's agent dies just before etcd stops: its member key cannot expire any more, so the
  // primary must reach it and cannot.
  cluster_->signalAgent(replica, SIGKILL);
  const auto before_stop = SteadyClock::now();
  cluster_->stopEtcd();
  std::optional<SteadyClock::time_point> first_failure;
  long long id = 0;
  while (SteadyClock::now() - before_stop < seconds(3 * kTtl)) {
    if (!insert(primary_, ++id)) {
      first_failure = SteadyClock::now();
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(first_failure) << "the primary kept writing without etcd and with a member down";
  // The lease was last renewed before etcd stopped, so it cannot outlive before_stop + ttl; the
  // primary stopped writing before then.
  auto after = std::chrono::duration_cast<milliseconds>(*first_failure - before_stop);
  EXPECT_LT(after.count(), kTtl * 1000) << "writes ended " << after.count() << " ms after etcd";
  EXPECT_FALSE(failsafeActive(primary_));
  EXPECT_TRUE(cluster_->primaryIndexes().empty());

  auto restarted = cluster_->restartEtcd();
  ASSERT_TRUE(restarted.ok()) << restarted.error().message;
  ASSERT_TRUE(cluster_->startAgent(replica).ok());
  EXPECT_TRUE(cluster_->waitHealthy(Millis(seconds(60))));
}

}  // namespace
}  // namespace pgf::testing
