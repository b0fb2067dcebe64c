// The REST API, metrics and `pgfleetctl list` of real agents: a three-node cluster on loopback
// (etcd, PostgreSQL 15, HAProxy), read the way HAProxy, Prometheus and an operator read it.
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "support/local_cluster.h"

namespace pgf::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class RestApiLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<LocalCluster>(ClusterOptions{});
    auto st = cluster_->start();
    ASSERT_TRUE(st.ok()) << st.error().message;
    ASSERT_TRUE(cluster_->waitHealthy(Millis(120000))) << cluster_->logTails(60);
    auto p = cluster_->primaryIndex();
    ASSERT_TRUE(p.has_value());
    primary_ = *p;
    replica_ = (primary_ + 1) % cluster_->nodes();
  }
  void TearDown() override {
    if (HasFailure() && cluster_)
      std::cerr << cluster_->logTails(60);
  }

  json getJson(int node, const std::string& path, int expected_status = 200) {
    std::string body;
    EXPECT_EQ(cluster_->restGet(node, path, &body), expected_status) << path << ": " << body;
    auto j = json::parse(body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << path << ": " << body;
    return j;
  }

  // Polls until every replica has published a WAL position in its member key.
  bool waitForPositions() {
    return waitUntil(
        [&] {
          std::string body;
          if (cluster_->restGet(primary_, "/cluster", &body) != 200)
            return false;
          auto doc = json::parse(body, nullptr, false);
          if (doc.is_discarded() || doc["members"].size() != 3)
            return false;
          for (const auto& m : doc["members"])
            if (m["role"] != "leader" && !m["lag"].is_number())
              return false;
          return true;
        },
        Millis(30000));
  }

  std::unique_ptr<LocalCluster> cluster_;
  int primary_ = 0;
  int replica_ = 0;
};

TEST_F(RestApiLiveTest, StatusDocumentsHealthChecksMetricsAndList) {
  json p = getJson(primary_, "/patroni");
  EXPECT_EQ(p["state"], "running");
  EXPECT_EQ(p["role"], "master");
  EXPECT_GT(p["xlog"]["location"].get<int64_t>(), 0);
  EXPECT_GE(p["timeline"].get<int>(), 1);
  // Filled once the agent publishes them; the shape is checked in the unit tests.
  if (p.contains("server_version")) {
    EXPECT_GE(p["server_version"].get<int>(), 150000);
  }
  EXPECT_EQ(p["patroni"]["scope"], "itest");
  EXPECT_FALSE(p["database_system_identifier"].get<std::string>().empty());
  EXPECT_TRUE(p.contains("postmaster_start_time"));
  EXPECT_FALSE(p.contains("cluster_unlocked"));
  EXPECT_EQ(p["pgfleet"]["is_leader"], true);
  EXPECT_FALSE(p["pgfleet"]["last_decision"]["reason"].get<std::string>().empty());

  json r = getJson(replica_, "/patroni");
  EXPECT_EQ(r["role"], "replica");
  EXPECT_GT(r["xlog"]["replayed_location"].get<int64_t>(), 0);
  EXPECT_EQ(r["database_system_identifier"], p["database_system_identifier"]);

  EXPECT_EQ(cluster_->restGet(primary_, "/primary"), 200);
  EXPECT_EQ(cluster_->restGet(primary_, "/replica"), 503);
  EXPECT_EQ(cluster_->restGet(replica_, "/primary"), 503);
  EXPECT_EQ(cluster_->restGet(replica_, "/replica?lag=16MB"), 200);
  EXPECT_EQ(cluster_->restGet(replica_, "/replica?lag=abc"), 400);
  for (int i = 0; i < cluster_->nodes(); ++i) {
    EXPECT_EQ(cluster_->restGet(i, "/health"), 200) << i;
    EXPECT_EQ(cluster_->restGet(i, "/liveness"), 200) << i;
    EXPECT_EQ(cluster_->restGet(i, "/readiness"), 200) << i;
    EXPECT_EQ(cluster_->restGet(i, "/read-only"), 200) << i;
  }

  ASSERT_TRUE(waitForPositions());
  json c = getJson(replica_, "/cluster");
  ASSERT_EQ(c["members"].size(), 3u);
  int leaders = 0;
  for (const auto& m : c["members"]) {
    EXPECT_EQ(m["host"], "127.0.0.1");
    EXPECT_TRUE(m["port"].is_number());
    if (m["role"] == "leader") {
      ++leaders;
      EXPECT_EQ(m["name"], cluster_->name(primary_));
    }
  }
  EXPECT_EQ(leaders, 1);
  EXPECT_EQ(getJson(primary_, "/config")["ttl"], 5);
  EXPECT_TRUE(getJson(primary_, "/history").is_array());

  std::string metrics;
  ASSERT_EQ(cluster_->restGet(primary_, "/metrics", &metrics), 200);
  EXPECT_THAT(metrics, HasSubstr("pgfleet_is_leader{scope=\"itest\",member=\"" +
                                 cluster_->name(primary_) + "\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("pgfleet_replication_lag_bytes{scope=\"itest\",member=\"" +
                                 cluster_->name(replica_) + "\"} "));
  EXPECT_THAT(metrics, HasSubstr("patroni_primary{scope=\"itest\"} 1\n"));

  CommandSpec ctl;
  ctl.argv = {PGFLEET_CTL_BIN, "-c", cluster_->configPath(0), "list", "-f", "json"};
  auto list = runCommand(ctl, Millis(30000));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->exit_code, 0) << list->output;
  auto rows = json::parse(list->output);
  ASSERT_EQ(rows.size(), 3u);
  int leader_rows = 0;
  for (const auto& row : rows)
    leader_rows += row["Role"] == "Leader" ? 1 : 0;
  EXPECT_EQ(leader_rows, 1);
}

}  // namespace
}  // namespace pgf::testing
