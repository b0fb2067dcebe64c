#include "support/cluster_test.h"

#include <chrono>
#include <iostream>

namespace pgf::testing {

void ClusterTest::TearDown() {
  if (HasFailure() && cluster_)
    std::cerr << cluster_->logTails(80);
}

void ClusterTest::startCluster(ClusterOptions options) {
  cluster_ = std::make_unique<LocalCluster>(options);
  auto st = cluster_->start();
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_TRUE(cluster_->waitHealthy(Millis(std::chrono::seconds(120))))
      << "the cluster did not reach one primary and streaming replicas";
}

bool ClusterTest::writeThroughHaproxy(const std::string& sql, Millis timeout) {
  return waitUntil([&] { return cluster_->query(cluster_->readWriteParams(), sql).ok(); }, timeout);
}

long long ClusterTest::count(const ConnParams& params, const std::string& table) {
  auto r = cluster_->query(params, "SELECT count(*) FROM " + table);
  if (!r.ok() || r->rows.empty() || !r->rows[0][0])
    return -1;
  return std::stoll(*r->rows[0][0]);
}

}  // namespace pgf::testing
