// Synchronous mode on a real cluster: no acknowledged row is lost over twenty SIGKILLs of the
// primary node during concurrent writes, and strict mode refuses to acknowledge commits while no
// synchronous standby runs.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/dcs_options.h"
#include "ha/sync.h"
#include "support/cluster_test.h"

namespace pgf::testing {
namespace {

using std::chrono::seconds;

constexpr int kRounds = 20;

class SyncModeTest : public ClusterTest {
 protected:
  void startSyncCluster(bool strict) {
    ClusterOptions options;
    options.ttl = 4;
    options.loop_wait = 1;
    options.retry_timeout = 1;
    options.synchronous_mode = true;
    options.synchronous_mode_strict = strict;
    startCluster(options);
  }

  // What the primary says about its standbys and the cluster, for a failure's message.
  std::string diagnostics() {
    std::string out;
    for (int i = 0; i < cluster_->nodes(); ++i) {
      std::string patroni, view;
      cluster_->restGet(i, "/patroni", &patroni);
      cluster_->restGet(i, "/cluster", &view);
      out += fmt::format("\n{} /patroni: {}\n{} /cluster: {}", cluster_->name(i), patroni,
                         cluster_->name(i), view);
    }
    return out;
  }

  // The synchronous standbys the sync key names, read from etcd, when the key belongs to the
  // current leader (empty otherwise).
  std::set<std::string> syncStandbys() {
    EtcdSettings etcd;
    etcd.hosts = {cluster_->etcdEndpoint()};
    auto dcs = makeEtcdDcs(etcdDcsOptions(etcd, "/service", "itest", "sync-test"));
    if (!dcs.ok())
      return {};
    auto view = (*dcs)->load();
    if (!view.ok() || !view->leader || !view->sync)
      return {};
    auto sync = parseSyncState(*view->sync);
    if (!sync || sync->leader != view->leader->name)
      return {};
    return std::set<std::string>(sync->standbys.begin(), sync->standbys.end());
  }
};

// Writers insert uniquely numbered rows through HAProxy and remember each acknowledged one.
class Writers {
 public:
  Writers(LocalCluster& cluster, int count) : cluster_(cluster) {
    for (int w = 0; w < count; ++w)
      threads_.emplace_back([this, w] { run(w); });
  }
  ~Writers() { stop(); }

  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }
  std::vector<long long> acked() {
    std::lock_guard<std::mutex> lk(mu_);
    return acked_;
  }

 private:
  void run(int w) {
    // Bounded: each writer stops when asked, and after at most 100000 rows.
    for (long long seq = 0; !stop_ && seq < 100000; ++seq) {
      const long long id = w * 1000000LL + seq;
      auto r = cluster_.query(cluster_.readWriteParams(),
                              fmt::format("INSERT INTO acked (id) VALUES ({})", id), Millis(3000));
      if (r.ok()) {
        std::lock_guard<std::mutex> lk(mu_);
        acked_.push_back(id);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  LocalCluster& cluster_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<long long> acked_;
  std::vector<std::thread> threads_;
};

TEST_F(SyncModeTest, NoAcknowledgedRowIsLostOverTwentyPrimaryKills) {
  startSyncCluster(false);
  ASSERT_TRUE(
      writeThroughHaproxy("CREATE TABLE acked (id bigint primary key)", Millis(seconds(20))));
  Writers writers(*cluster_, 4);
  int failovers = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(fmt::format("round {}", round));
    // Every kill finds the cluster whole again (the killed node rewound and streaming: a source
    // killed in the middle of pg_rewind leaves its target for an operator) and a synchronous
    // standby to fail over to.
    ASSERT_TRUE(cluster_->waitHealthy(Millis(seconds(90)))) << diagnostics();
    ASSERT_TRUE(
        waitUntil([&] { return cluster_->primaryIndex().has_value() && !syncStandbys().empty(); },
                  Millis(seconds(60))))
        << "no synchronous standby" << diagnostics();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    const int old = *cluster_->primaryIndex();
    cluster_->signalAgent(old, SIGKILL);
    cluster_->killPostmaster(old);
    ASSERT_TRUE(waitUntil(
        [&] {
          auto p = cluster_->primaryIndex();
          return p.has_value() && *p != old;
        },
        Millis(seconds(60))))
        << "no new primary after killing " << cluster_->name(old);
    ++failovers;
    ASSERT_TRUE(cluster_->startAgent(old).ok());
  }
  writers.stop();
  ASSERT_TRUE(cluster_->waitHealthy(Millis(seconds(90))));
  const std::vector<long long> acked = writers.acked();
  ASSERT_GT(acked.size(), 200u) << "the writers barely wrote";
  auto rows = cluster_->query(cluster_->readWriteParams(), "SELECT id FROM acked", Millis(10000));
  ASSERT_TRUE(rows.ok()) << rows.error().message;
  std::set<long long> present;
  for (const auto& row : rows->rows)
    if (row[0])
      present.insert(std::stoll(*row[0]));
  std::vector<long long> missing;
  for (long long id : acked)
    if (present.count(id) == 0)
      missing.push_back(id);
  EXPECT_EQ(failovers, kRounds);
  std::cout << fmt::format("{} failovers, {} acknowledged rows, {} missing\n", failovers,
                           acked.size(), missing.size());
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << acked.size()
                               << " acknowledged rows are missing, the first " << missing.front();
}

TEST_F(SyncModeTest, StrictModeRefusesToAcknowledgeCommitsWithoutASynchronousStandby) {
  startSyncCluster(true);
  ASSERT_TRUE(writeThroughHaproxy("CREATE TABLE strict_rows (v int)", Millis(seconds(20))));
  ASSERT_TRUE(waitUntil([&] { return !syncStandbys().empty(); }, Millis(seconds(30))));
  const int primary = *cluster_->primaryIndex();
  std::vector<int> replicas;
  for (int i = 0; i < cluster_->nodes(); ++i)
    if (i != primary)
      replicas.push_back(i);
  for (int i : replicas) {
    cluster_->signalAgent(i, SIGKILL);
    cluster_->killPostmaster(i);
  }
  // The primary keeps its lease but acknowledges nothing: a commit is still waiting after 5 s.
  auto start = std::chrono::steady_clock::now();
  auto refused = cluster_->query(cluster_->nodeParams(primary),
                                 "INSERT INTO strict_rows VALUES (1)", Millis(5000));
  EXPECT_FALSE(refused.ok()) << "a commit was acknowledged without a synchronous standby";
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(4500));
  EXPECT_EQ(cluster_->primaryIndex(), primary);
  std::string body;
  cluster_->restGet(primary, "/patroni", &body);
  EXPECT_EQ(nlohmann::json::parse(body, nullptr, false).value("role", ""), "master") << body;

  // A standby comes back: commits are acknowledged again.
  ASSERT_TRUE(cluster_->startAgent(replicas[0]).ok());
  EXPECT_TRUE(waitUntil(
      [&] {
        return cluster_
            ->query(cluster_->nodeParams(primary), "INSERT INTO strict_rows VALUES (2)",
                    Millis(2000))
            .ok();
      },
      Millis(seconds(60))));
}

}  // namespace
}  // namespace pgf::testing
