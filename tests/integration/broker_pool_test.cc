// pgfleet-broker's pools of pre-provisioned instances, with real instances: concurrent provisions
// of a hybrid plan each take a different pooled instance (or, once the pool is empty, one built on
// demand), succeed on their first poll with the database and extensions they asked for, and the
// pool fills up again; a `pool` plan's provision that finds the pool empty waits for its next
// instance; a broker killed during a build finishes it when it starts again; a pool its plan no
// longer wants gives its instances back.
#include <signal.h>

#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/broker_process.h"
#include "support/local_cluster.h"

namespace pgf::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

// The single-small plan's last line in examples/broker-local.yaml, after which a test adds its
// provisioning.
constexpr const char* kSingleSmallBullets =
    "bullets: [1 node, 128 MB shared buffers, 100 connections]";

class BrokerPoolTest : public BrokerTest {
 protected:
  void provisioning(const std::string& how) {
    broker_.editConfig([&](std::string& config) {
      auto at = config.find(kSingleSmallBullets);
      ASSERT_NE(at, std::string::npos);
      config.insert(at + std::string(kSingleSmallBullets).size(), "\n    provisioning: " + how);
    });
  }
  json pool() {
    for (const auto& p : call("GET", "/pgfleet/v1/pools").body.value("pools", json::array()))
      if (p.value("plan_id", "") == kSingleSmall)
        return p;
    return json();
  }
  int ready() {
    json p = pool();
    return p.is_object() ? p.value("ready", -1) : -1;
  }
  std::set<std::string> members() {
    std::set<std::string> out;
    json p = pool();
    if (p.is_object())
      for (const auto& id : p.value("instances", json::array()))
        out.insert(id.get<std::string>());
    return out;
  }
  json instance(const std::string& id) { return call("GET", "/pgfleet/v1/instances/" + id).body; }
  std::string nodesOf(const std::string& id) {
    return instance(id).value("deployment", json::object()).value("name", "");
  }
  bool hasEvent(const std::string& id, const std::string& kind) {
    for (const auto& e : instance(id).value("events", json::array()))
      if (e.value("kind", "") == kind)
        return true;
    return false;
  }
  std::string metric(const std::string& line_start) {
    BrokerAnswer m = call("GET", "/metrics");
    size_t at = m.text.find(line_start + " ");
    if (at == std::string::npos)
      return "";
    size_t end = m.text.find('\n', at);
    return m.text.substr(at + line_start.size() + 1, end - at - line_start.size() - 1);
  }
  // Binds, then checks through the binding that the instance has the database and extension
  // asked for, and takes a write.
  void usable(const std::string& id, const std::string& database) {
    BrokerAnswer bound = call("PUT", "/v2/service_instances/" + id + "/service_bindings/b",
                              {{"service_id", kService}, {"plan_id", kSingleSmall}});
    ASSERT_EQ(bound.status, 201) << bound.text;
    EXPECT_EQ(bound.body["credentials"].value("name", ""), database);
    auto conn = connectWith(bound.body["credentials"]);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    auto r = conn->query(
        "SELECT current_database() AS db, "
        "(SELECT count(*) FROM pg_extension WHERE extname = 'citext') AS citext");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->get(0, "db").value_or(""), database);
    EXPECT_EQ(r->get(0, "citext").value_or(""), "1");
    EXPECT_TRUE(conn->exec("CREATE TABLE t (v citext); INSERT INTO t VALUES ('x')").ok());
  }
  void deprovision(const std::string& id) {
    BrokerAnswer d =
        call("DELETE", "/v2/service_instances/" + id + deleteQuery(kSingleSmall), nullptr);
    ASSERT_EQ(d.status, 202) << d.text;
    BrokerAnswer done = waitOperation(id, Millis(seconds(60)));
    EXPECT_EQ(done.status, 410) << done.text;
  }
};

TEST_F(BrokerPoolTest, ConcurrentProvisionsTakeDistinctPooledInstancesAndThePoolRefills) {
  provisioning("{strategy: hybrid, pool_size: 2, refill_concurrency: 2}");
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_TRUE(waitUntil([&] { return ready() == 2; }, Millis(seconds(120))))
      << pool().dump() << brokerLog();
  const std::set<std::string> pooled = members();
  std::set<std::string> pooled_nodes;
  for (const auto& id : pooled)
    pooled_nodes.insert(nodesOf(id));
  ASSERT_EQ(pooled_nodes.size(), 2u);
  // Pooled instances belong to no tenant: neither listed nor reachable through OSB.
  EXPECT_TRUE(call("GET", "/pgfleet/v1/instances").body["instances"].empty());
  EXPECT_EQ(call("GET", "/v2/service_instances/" + *pooled.begin()).status, 404);
  EXPECT_EQ(metric("pgfleet_pool_instances{plan=\"single-small\",state=\"ready\"}"), "2");

  // Three provisions at once: two take the pooled instances, one is built on demand.
  const std::vector<std::string> ids = {"shop-a", "shop-b", "shop-c"};
  std::vector<std::future<std::string>> first_polls;
  for (const auto& id : ids)
    first_polls.push_back(std::async(std::launch::async, [this, id] {
      BrokerAnswer put =
          call("PUT", "/v2/service_instances/" + id + "?accepts_incomplete=true",
               provisionBody(kSingleSmall, {{"database", "shop"}, {"extensions", {"citext"}}}));
      if (put.status != 202)
        return "PUT answered " + std::to_string(put.status) + ": " + put.text;
      return call("GET", "/v2/service_instances/" + id + "/last_operation").body.value("state", "");
    }));
  std::vector<std::string> from_pool, on_demand;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string state = first_polls[i].get();
    if (state == "succeeded")
      from_pool.push_back(ids[i]);
    else
      on_demand.push_back(ids[i]);
    EXPECT_TRUE(state == "succeeded" || state == "in progress") << ids[i] << ": " << state;
  }
  ASSERT_EQ(from_pool.size(), 2u) << brokerLog();
  std::set<std::string> claimed_nodes;
  for (const auto& id : from_pool) {
    claimed_nodes.insert(nodesOf(id));
    EXPECT_TRUE(hasEvent(id, "claimed"));
  }
  EXPECT_EQ(claimed_nodes, pooled_nodes) << "each pooled instance went to exactly one provision";
  ASSERT_EQ(on_demand.size(), 1u);
  BrokerAnswer built = waitOperation(on_demand[0], Millis(seconds(120)));
  EXPECT_EQ(built.body.value("state", ""), "succeeded") << built.text << brokerLog();
  EXPECT_EQ(pooled_nodes.count(nodesOf(on_demand[0])), 0u);
  for (const auto& id : ids)
    ASSERT_NO_FATAL_FAILURE(usable(id, "shop")) << id;
  EXPECT_EQ(metric("pgfleet_pool_claims_total{plan=\"single-small\"}"), "2");
  EXPECT_EQ(metric("pgfleet_pool_misses_total{plan=\"single-small\"}"), "1");

  // The pool fills up again, with new instances.
  ASSERT_TRUE(waitUntil([&] { return ready() == 2; }, Millis(seconds(120))))
      << pool().dump() << brokerLog();
  for (const auto& id : members())
    EXPECT_EQ(pooled.count(id), 0u) << id;
  EXPECT_EQ(call("GET", "/pgfleet/v1/instances").body["instances"].size(), 3u);

  for (const auto& id : ids)
    ASSERT_NO_FATAL_FAILURE(deprovision(id));
  EXPECT_EQ(instanceDirectories(), 2u) << "only the pool's instances are left";
}

TEST_F(BrokerPoolTest, APoolPlanWaitsForItsPoolWhichSurvivesABrokerKillAndIsGivenBack) {
  provisioning("{strategy: pool, pool_size: 1}");
  ASSERT_NO_FATAL_FAILURE(startBroker());
  // The pool is still being built: the provision waits for it rather than building on demand.
  ASSERT_EQ(call("PUT", "/v2/service_instances/w?accepts_incomplete=true",
                 provisionBody(kSingleSmall, {{"database", "shop"}, {"extensions", {"citext"}}}))
                .status,
            202);
  BrokerAnswer first = call("GET", "/v2/service_instances/w/last_operation");
  EXPECT_EQ(first.body.value("state", ""), "in progress") << first.text;
  BrokerAnswer done = waitOperation("w", Millis(seconds(120)));
  ASSERT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();
  EXPECT_TRUE(hasEvent("w", "claimed"));
  ASSERT_NO_FATAL_FAILURE(usable("w", "shop"));
  EXPECT_EQ(metric("pgfleet_pool_misses_total{plan=\"single-small\"}"), "1");

  // The broker killed while the pool's next instance is being built: the next broker finishes
  // that same instance.
  ASSERT_TRUE(waitUntil([&] { return pool().value("building", 0) == 1; }, Millis(seconds(30))))
      << pool().dump();
  const std::set<std::string> building = members();
  stopBroker(SIGKILL);
  ASSERT_NO_FATAL_FAILURE(startBroker());
  ASSERT_TRUE(waitUntil([&] { return ready() == 1; }, Millis(seconds(120))))
      << pool().dump() << brokerLog();
  EXPECT_EQ(members(), building);
  EXPECT_EQ(instanceDirectories(), 2u);

  // The plan turned back to on demand: its pool is given back, the tenant's instance stays.
  stopBroker(SIGTERM);
  broker_.editConfig([](std::string& config) {
    auto at = config.find("{strategy: pool, pool_size: 1}");
    ASSERT_NE(at, std::string::npos);
    config.replace(at, std::string("{strategy: pool, pool_size: 1}").size(),
                   "{strategy: on_demand}");
  });
  ASSERT_NO_FATAL_FAILURE(startBroker());
  EXPECT_TRUE(waitUntil([&] { return instanceDirectories() == 1; }, Millis(seconds(60))))
      << brokerLog();
  EXPECT_TRUE(waitUntil([&] { return members().empty(); }, Millis(seconds(10)))) << pool().dump();
  auto conn = connectWith(call("GET", "/v2/service_instances/w/service_bindings/b")
                              .body.value("credentials", json::object()));
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  EXPECT_TRUE(conn->exec("INSERT INTO t VALUES ('y')").ok());
}

}  // namespace
}  // namespace pgf::testing
