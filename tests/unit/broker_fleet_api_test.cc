// The broker's read-only /pgfleet/v1/instances endpoints, served in-process by the project's own
// HTTP server from a real store, and read by pgfleetctl's instances and show over loopback: what
// they show, that they never show a secret, and that they keep the broker's authentication.
#include "broker/fleet_api.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "broker/osb_api.h"
#include "ctl/broker_instances.h"

namespace pgf {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kPassword = "broker-password-1";
constexpr const char* kSecret = "superuser-secret-xyz";

Catalog catalog() {
  Catalog c;
  c.service_id = "svc";
  Plan single;
  single.id = "p-single";
  single.name = "single-small";
  single.description = "one server";
  Plan cluster = single;
  cluster.id = "p-cluster";
  cluster.name = "cluster-small";
  cluster.nodes = 3;
  c.plans = {single, cluster};
  return c;
}

class FleetApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("broker_fleet_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = Store::open((dir_ / "broker.db").string());
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
    fleet_ = std::make_unique<FleetApi>(catalog_, *store_);
    osb_ = std::make_unique<OsbApi>(catalog_, "broker", kPassword, nullptr, fleet_.get());
    server_ =
        std::make_unique<HttpServer>([this](const HttpRequest& r) { return osb_->handle(r); });
    ASSERT_TRUE(server_->start("127.0.0.1", 0).ok());
  }

  void TearDown() override {
    server_->stop();
    std::filesystem::remove_all(dir_);
  }

  // A ready cluster with ports, a binding, and a finished provision journaled in three steps; and
  // a single server still being provisioned.
  void addInstances() {
    InstanceRecord c;
    c.id = "shop";
    c.service_id = "svc";
    c.plan_id = "p-cluster";
    c.parameters = {{"database", "shop"}};
    c.organization_guid = "org";
    c.space_guid = "space";
    c.ready = true;
    c.deployment = {{"name", "pgf-abcdefghij"},
                    {"superuser_password", kSecret},
                    {"replication_password", kSecret},
                    {"database", "shop"},
                    {"read_write_port", 20000},
                    {"read_only_port", 20001},
                    {"ports",
                     {{"rw", 20000},
                      {"ro", 20001},
                      {"pg0", 20002},
                      {"api0", 20003},
                      {"pg1", 20004},
                      {"api1", 20005},
                      {"pg2", 20006},
                      {"api2", 20007}}}};
    OperationRecord op;
    op.kind = OpKind::kProvision;
    op.instance_id = "shop";
    op.description = "provisioning";
    op.request = {{"by", {{"platform", "cloudfoundry"}, {"identity", {{"user_id", "u-1"}}}}}};
    auto id = store_->beginOperation(op, [&] { return store_->putInstance(c); });
    ASSERT_TRUE(id.ok());
    for (const char* step : {"ports reserved", "nodes started", "nodes healthy"})
      ASSERT_TRUE(store_->journal(*id, step).ok());
    ASSERT_TRUE(store_->finishOperation(*id, OpState::kSucceeded, "the instance is ready").ok());
    BindingRecord b;
    b.id = "app1";
    b.instance_id = "shop";
    b.ready = true;
    b.credentials = {{"password", kSecret}};
    ASSERT_TRUE(store_->putBinding(b).ok());
    HealthRecord h;
    h.instance_id = "shop";
    h.state = "healthy";
    h.nodes = json::array(
        {{{"name", "node0"}, {"agent", true}, {"role", "primary"}},
         {{"name", "node1"}, {"agent", false}, {"role", ""}},
         {{"name", "node2"}, {"agent", true}, {"role", "replica"}, {"streaming", true}}});
    ASSERT_TRUE(store_->putHealth(h).ok());
    ASSERT_TRUE(
        store_->addEvent("shop", "agent-restarted", "the agent of node1 was not running").ok());

    InstanceRecord s;
    s.id = "blog";
    s.service_id = "svc";
    s.plan_id = "p-single";
    s.deployment = {{"name", "pgf-0123456789"}, {"superuser_password", kSecret}};
    op.instance_id = "blog";
    auto started = store_->beginOperation(op, [&] { return store_->putInstance(s); });
    ASSERT_TRUE(started.ok());
  }

  ctl::BrokerClient client(const std::string& password = kPassword) {
    ctl::BrokerTarget t;
    t.address = ctl::parseApiUrl("http://127.0.0.1:" + std::to_string(server_->port())).value();
    t.credentials = {"broker", password};
    t.password_source = "PGFLEET_BROKER_PASSWORD";
    return ctl::BrokerClient(transport_, t, Millis(5000));
  }

  std::filesystem::path dir_;
  Catalog catalog_ = catalog();
  std::unique_ptr<Store> store_;
  std::unique_ptr<FleetApi> fleet_;
  std::unique_ptr<OsbApi> osb_;
  std::unique_ptr<HttpServer> server_;
  ctl::HttpMemberApi transport_;
  std::ostringstream out_, err_;
};

TEST_F(FleetApiTest, InstancesListsEveryInstanceWithItsPlanStateAndEndpoint) {
  auto broker = client();
  ASSERT_EQ(ctl::runInstances(broker, {ctl::OutputFormat::kPretty, out_, err_, false}), 0);
  EXPECT_EQ(out_.str(), "the broker has no instances\n");
  out_.str("");

  addInstances();
  ASSERT_EQ(ctl::runInstances(broker, {ctl::OutputFormat::kJson, out_, err_, false}), 0)
      << err_.str();
  auto list = json::parse(out_.str());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["instance_id"], "blog");  // sorted by id
  EXPECT_EQ(list[0]["plan_name"], "single-small");
  EXPECT_EQ(list[0]["ready"], false);
  EXPECT_EQ(list[0]["last_operation"]["state"], "in progress");
  EXPECT_FALSE(list[0]["deployment"].contains("read_write_port"));  // no ports reserved yet
  EXPECT_EQ(list[1]["instance_id"], "shop");
  EXPECT_EQ(list[1]["nodes"], 3);
  EXPECT_EQ(list[1]["deployment"]["read_only_port"], 20001);
  EXPECT_FALSE(list[1].contains("bindings"));  // only show has them
  EXPECT_THAT(out_.str(), Not(HasSubstr(kSecret)));

  out_.str("");
  ASSERT_EQ(ctl::runInstances(broker, {ctl::OutputFormat::kPretty, out_, err_, false}), 0);
  EXPECT_THAT(out_.str(),
              HasSubstr("| blog     | single-small  |     1 | provision in progress | "));
  EXPECT_THAT(out_.str(), HasSubstr("| shop     | cluster-small |"));
  EXPECT_THAT(out_.str(),
              HasSubstr("| provision succeeded   | healthy | 127.0.0.1:20000 (read-only 20001) |"));
  EXPECT_THAT(out_.str(), HasSubstr("| provision in progress |         | "));
}

TEST_F(FleetApiTest, ShowHasTheDetailButNoSecret) {
  addInstances();
  auto broker = client();
  ASSERT_EQ(ctl::runShow(broker, "shop", {ctl::OutputFormat::kJson, out_, err_, false}), 0);
  auto doc = json::parse(out_.str());
  EXPECT_EQ(doc["parameters"], json({{"database", "shop"}}));
  EXPECT_EQ(doc["last_operation"]["operation"], "provision-1");
  EXPECT_EQ(doc["last_operation"]["steps"],
            json({"ports reserved", "nodes started", "nodes healthy"}));
  EXPECT_EQ(doc["last_operation"]["requested_by"],
            json({{"platform", "cloudfoundry"}, {"identity", {{"user_id", "u-1"}}}}));
  EXPECT_EQ(doc["deployment"]["nodes"][2],
            json({{"name", "node2"}, {"pg_port", 20006}, {"api_port", 20007}}));
  EXPECT_EQ(doc["bindings"][0]["binding_id"], "app1");
  EXPECT_THAT(out_.str(), Not(HasSubstr(kSecret)));

  out_.str("");
  ASSERT_EQ(ctl::runShow(broker, "shop", {ctl::OutputFormat::kPretty, out_, err_, false}), 0);
  const std::string text = out_.str();
  EXPECT_THAT(text, HasSubstr("Instance:        shop\n"));
  EXPECT_THAT(text, HasSubstr("Plan:            cluster-small (p-cluster)\n"));
  EXPECT_THAT(text, HasSubstr("Last operation:  provision succeeded: the instance is ready "
                              "(provision-1)\n"));
  EXPECT_THAT(text, HasSubstr("  steps done:    ports reserved, nodes started, nodes healthy\n"));
  EXPECT_THAT(text, HasSubstr("  requested by:  \"cloudfoundry\" {\"user_id\":\"u-1\"}\n"));
  EXPECT_THAT(text, HasSubstr("Read-only:       127.0.0.1:20001\n"));
  EXPECT_THAT(text, HasSubstr("Bindings:        app1\n"));
  EXPECT_THAT(text, HasSubstr("| node2 |           20006 |         20007 | replica (streaming) |"));
  EXPECT_THAT(text, HasSubstr("| node0 |           20002 |         20003 | primary             |"));
  EXPECT_THAT(text, HasSubstr("| node1 |           20004 |         20005 | agent not running   |"));
  EXPECT_THAT(text, HasSubstr("Health:          healthy since 20"));
  EXPECT_THAT(text, HasSubstr("Events (newest last):"));
  EXPECT_THAT(text, HasSubstr("| agent-restarted | the agent of node1 was not running |"));
  EXPECT_THAT(text, Not(HasSubstr(kSecret)));

  err_.str("");
  EXPECT_EQ(ctl::runShow(broker, "nope", {ctl::OutputFormat::kPretty, out_, err_, false}), 1);
  EXPECT_EQ(err_.str(), "pgfleetctl: the broker has no instance \"nope\"\n");
}

TEST_F(FleetApiTest, HealthAndEventsAreShownAndMetricsCountInstancesByHealth) {
  addInstances();
  HttpRequest req;
  req.method = "GET";
  req.path = "/pgfleet/v1/instances/shop";
  req.headers.emplace_back("authorization", ctl::basicAuthorization({"broker", kPassword}));
  HttpReply shop = osb_->handle(req);
  ASSERT_EQ(shop.status, 200);
  auto doc = json::parse(shop.body);
  EXPECT_EQ(doc["health"]["state"], "healthy");
  EXPECT_EQ(doc["health"]["nodes"].size(), 3u);
  ASSERT_EQ(doc["events"].size(), 1u);
  EXPECT_EQ(doc["events"][0]["kind"], "agent-restarted");
  req.path = "/pgfleet/v1/instances";
  auto list = json::parse(osb_->handle(req).body)["instances"];
  EXPECT_EQ(list[0]["health"], nullptr);              // blog: never checked
  EXPECT_FALSE(list[1]["health"].contains("nodes"));  // only show has them
  EXPECT_FALSE(list[1].contains("events"));

  // A change of state moves `since`; the same state keeps it.
  HealthRecord h{"shop", "recovering", "node1: agent not running", json::array(), ""};
  ASSERT_TRUE(store_->putHealth(h).ok());
  auto first = store_->health("shop");
  ASSERT_TRUE(first.ok() && first->has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  h.reason = "node1: replica not streaming";
  ASSERT_TRUE(store_->putHealth(h).ok());
  auto second = store_->health("shop");
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->reason, "node1: replica not streaming");
  EXPECT_EQ((*second)->since, (*first)->since);

  req.path = "/metrics";
  HttpReply metrics = osb_->handle(req);
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("pgfleet_broker_instances{state=\"recovering\"} 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("pgfleet_broker_instances{state=\"provisioning\"} 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("pgfleet_broker_instances{state=\"healthy\"} 0\n"));
  EXPECT_THAT(metrics.body,
              HasSubstr("pgfleet_instance_health{instance_id=\"shop\",state=\"recovering\"} 1\n"));
  EXPECT_THAT(metrics.body,
              HasSubstr("pgfleet_instance_health{instance_id=\"shop\",state=\"healthy\"} 0\n"));
  EXPECT_THAT(metrics.body, Not(HasSubstr("instance_id=\"blog\"")));  // not ready
  req.headers.clear();
  EXPECT_EQ(osb_->handle(req).status, 401);  // the broker's authentication
}

TEST_F(FleetApiTest, PoolsAreShownWithTheirCountsAndPooledInstancesAreNotListedAsInstances) {
  addInstances();
  catalog_.plans[0].provisioning.strategy = ProvisioningStrategy::kHybrid;
  catalog_.plans[0].provisioning.pool_size = 2;
  PoolKeeper pool(catalog_, *store_, PoolHooks{});
  fleet_->setPool(&pool);
  InstanceRecord ready;
  ready.id = "pool-ready";
  ready.service_id = "svc";
  ready.plan_id = ready.pool = "p-single";
  ready.ready = true;
  ready.deployment = {{"name", "pgf-pooled0001"}, {"superuser_password", kSecret}};
  InstanceRecord building = ready;
  building.id = "pool-building";
  building.ready = false;
  ASSERT_TRUE(store_->putInstance(ready).ok());
  ASSERT_TRUE(store_->putInstance(building).ok());
  pool.noteClaim("p-single");
  pool.noteMiss("p-single");
  pool.noteMiss("p-single");

  HttpRequest req;
  req.method = "GET";
  req.path = "/pgfleet/v1/pools";
  req.headers.emplace_back("authorization", ctl::basicAuthorization({"broker", kPassword}));
  HttpReply pools = osb_->handle(req);
  ASSERT_EQ(pools.status, 200);
  auto doc = json::parse(pools.body)["pools"];
  ASSERT_EQ(doc.size(), 1u);
  EXPECT_EQ(doc[0]["plan_name"], "single-small");
  EXPECT_EQ(doc[0]["strategy"], "hybrid");
  EXPECT_EQ(doc[0]["size"], 2);
  EXPECT_EQ(doc[0]["ready"], 1);
  EXPECT_EQ(doc[0]["building"], 1);
  EXPECT_EQ(doc[0]["claims"], 1);
  EXPECT_EQ(doc[0]["misses"], 2);
  EXPECT_THAT(pools.body, Not(HasSubstr(kSecret)));

  req.path = "/pgfleet/v1/instances";
  auto list = json::parse(osb_->handle(req).body)["instances"];
  ASSERT_EQ(list.size(), 2u);  // shop and blog only
  req.path = "/pgfleet/v1/instances/pool-ready";
  auto one = json::parse(osb_->handle(req).body);
  EXPECT_EQ(one["pool"], "p-single");

  req.path = "/metrics";
  HttpReply metrics = osb_->handle(req);
  EXPECT_THAT(metrics.body, HasSubstr("pgfleet_pool_size{plan=\"single-small\"} 2\n"));
  EXPECT_THAT(metrics.body,
              HasSubstr("pgfleet_pool_instances{plan=\"single-small\",state=\"ready\"} 1\n"));
  EXPECT_THAT(metrics.body,
              HasSubstr("pgfleet_pool_instances{plan=\"single-small\",state=\"building\"} 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("pgfleet_pool_claims_total{plan=\"single-small\"} 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("pgfleet_pool_misses_total{plan=\"single-small\"} 2\n"));
  EXPECT_THAT(metrics.body, Not(HasSubstr("pool-ready")));  // not among the instances

  auto broker = client();
  ASSERT_EQ(ctl::runPools(broker, {ctl::OutputFormat::kPretty, out_, err_, false}), 0)
      << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("Plan"));
  EXPECT_THAT(out_.str(), HasSubstr("single-small"));
  EXPECT_THAT(out_.str(), HasSubstr("hybrid"));
  fleet_->setPool(nullptr);
}

TEST_F(FleetApiTest, TheEndpointsKeepTheBrokersAuthenticationButNeedNoApiVersion) {
  auto wrong = client("not-the-password");
  EXPECT_EQ(ctl::runInstances(wrong, {ctl::OutputFormat::kPretty, out_, err_, false}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("refused the credentials of user broker (401)"));

  HttpRequest req;
  req.method = "GET";
  req.path = "/pgfleet/v1/instances";
  req.headers.emplace_back("authorization", ctl::basicAuthorization({"broker", kPassword}));
  EXPECT_EQ(osb_->handle(req).status, 200);  // no X-Broker-API-Version
  req.method = "DELETE";
  EXPECT_EQ(osb_->handle(req).status, 405);
  req.method = "GET";
  req.path = "/pgfleet/v1/nothing";
  EXPECT_EQ(osb_->handle(req).status, 404);
  req.path = "/pgfleet/v1/instances/a/b";
  EXPECT_EQ(osb_->handle(req).status, 404);
}

}  // namespace
}  // namespace pgf
