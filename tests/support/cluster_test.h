// The fixture integration tests of a whole cluster share: it starts a LocalCluster, waits until it
// is healthy, prints every agent's log tail when a test failed, and offers the few queries such
// tests keep asking.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "support/local_cluster.h"

namespace pgf::testing {

class ClusterTest : public ::testing::Test {
 protected:
  void TearDown() override;

  // Starts the cluster and waits (up to two minutes) for one primary and streaming replicas.
  void startCluster(ClusterOptions options);
  // Runs a statement through HAProxy's read-write port, retrying until `timeout`.
  bool writeThroughHaproxy(const std::string& sql, Millis timeout);
  // SELECT count(*) FROM `table` on `params`; -1 when the query fails.
  long long count(const ConnParams& params, const std::string& table);

  std::unique_ptr<LocalCluster> cluster_;
};

}  // namespace pgf::testing
