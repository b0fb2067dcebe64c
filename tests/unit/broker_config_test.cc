// The broker's configuration and catalog: the shipped example, the environment overrides, and
// every mistake the broker must refuse to start with.
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "broker/broker_config.h"

namespace pgf {
namespace {

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end())
      return std::nullopt;
    return it->second;
  };
}

std::string exampleText() {
  std::ifstream in(std::string(PGFLEET_SOURCE_DIR) + "/examples/broker-local.yaml");
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

const char* kPlan = R"(
  - id: p1
    name: single-small
    description: one server
)";

std::string config(const std::string& plans = kPlan, const std::string& service = "  id: s1\n") {
  return "broker:\n  username: u\n  password: a-long-enough-secret\n  state_dir: /var/lib/x\n"
         "service:\n" +
         service + "plans:" + plans;
}

std::string errorOf(const std::string& text) {
  auto r = parseBrokerConfig(text, envOf({}));
  return r.ok() ? "(accepted)" : r.error().message;
}

TEST(BrokerConfig, TheShippedExampleOffersTheFivePlans) {
  auto r =
      parseBrokerConfig(exampleText(), envOf({{"PGFLEET_BROKER_PASSWORD", "0123456789abcdef"}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->warnings.empty()) << r->warnings.front();
  const BrokerConfig& c = r->config;
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.username, "broker");
  EXPECT_EQ(c.password, "0123456789abcdef");
  EXPECT_TRUE(c.etcd.empty());
  EXPECT_EQ(c.nice, -5);
  EXPECT_EQ(c.catalog.service_name, "postgresql");
  std::vector<std::string> names;
  for (const auto& p : c.catalog.plans)
    names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"single-small", "single-medium", "cluster-small",
                                             "cluster-medium", "cluster-small-sync"}));
  const Plan* sync = c.catalog.planById("8b26edc4-75dd-4274-8cc3-70f24ad7edd6");
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(sync->nodes, 3);
  EXPECT_TRUE(sync->synchronous_mode);
  EXPECT_EQ(sync->resources.shared_buffers, "128MB");
  EXPECT_EQ(sync->resources.disk_quota_mb, 1024);
  EXPECT_EQ(sync->maintenance_version, "1.0.0");
  // The schema alias is resolved: every plan carries the whole schema.
  EXPECT_EQ(sync->schema["properties"]["database"]["type"], "string");
  EXPECT_EQ(sync->schema["$schema"], "http://json-schema.org/draft-04/schema#");
}

TEST(BrokerConfig, ASingleServerLoopsSlowlyAClusterHoldsAShortLeaseUnlessThePlanSays) {
  auto r =
      parseBrokerConfig(exampleText(), envOf({{"PGFLEET_BROKER_PASSWORD", "0123456789abcdef"}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  for (const auto& p : r->config.catalog.plans) {
    SCOPED_TRACE(p.name);
    if (p.nodes == 1)
      EXPECT_EQ(std::vector<int>({p.ttl, p.loop_wait, p.retry_timeout}),
                std::vector<int>({30, 10, 10}));
    else
      EXPECT_EQ(std::vector<int>({p.ttl, p.loop_wait, p.retry_timeout}),
                std::vector<int>({15, 2, 5}));
  }
  auto set = parseBrokerConfig(
      config(std::string(kPlan) +
             "    nodes: 3\n    timing: {ttl: 8, loop_wait: 1, retry_timeout: 2}\n"),
      envOf({}));
  ASSERT_TRUE(set.ok()) << set.error().message;
  const Plan& p = set->config.catalog.plans.front();
  EXPECT_EQ(std::vector<int>({p.ttl, p.loop_wait, p.retry_timeout}), std::vector<int>({8, 1, 2}));
}

TEST(BrokerConfig, TheEnvironmentWinsOverTheFile) {
  auto r = parseBrokerConfig(config(), envOf({{"PGFLEET_BROKER_LISTEN", "127.0.0.9:9443"},
                                              {"PGFLEET_BROKER_USER", "platform"},
                                              {"PGFLEET_BROKER_PASSWORD", "from-the-environment"},
                                              {"PGFLEET_STATE_DIR", "/srv/pgfleet"}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->config.listen_host, "127.0.0.9");
  EXPECT_EQ(r->config.listen_port, 9443);
  EXPECT_EQ(r->config.username, "platform");
  EXPECT_EQ(r->config.password, "from-the-environment");
  EXPECT_EQ(r->config.state_dir, "/srv/pgfleet");
}

TEST(BrokerConfig, AShortPasswordIsAcceptedWithAWarning) {
  auto r = parseBrokerConfig(config(), envOf({{"PGFLEET_BROKER_PASSWORD", "short"}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("shorter than 12 characters"), std::string::npos);
}

TEST(BrokerConfig, RefusesWhatIsMissingOrWrongSayingWhere) {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"[]", "the configuration must be a YAML mapping"},
      {"broker:\n  username: u\n  state_dir: /x\nservice: {id: s}\nplans:" + std::string(kPlan),
       "broker.password: is required (or set PGFLEET_BROKER_PASSWORD)"},
      {"broker:\n  password: p\n  state_dir: /x\nservice: {id: s}\nplans:" + std::string(kPlan),
       "broker.username: is required (or set PGFLEET_BROKER_USER)"},
      {"broker:\n  username: a:b\n  password: p\n  state_dir: /x\nservice: {id: s}\nplans:" +
           std::string(kPlan),
       "broker.username: must not contain ':' (HTTP basic authentication)"},
      {"broker:\n  username: u\n  password: p\nservice: {id: s}\nplans:" + std::string(kPlan),
       "broker.state_dir: is required (or set PGFLEET_STATE_DIR)"},
      {"broker:\n  username: u\n  password: p\n  state_dir: rel\nservice: {id: s}\nplans:" +
           std::string(kPlan),
       "broker.state_dir: must be an absolute path, got \"rel\""},
      {"broker:\n  listen: 127.0.0.1:99999\n  username: u\n  password: p\n  state_dir: /x\n"
       "service: {id: s}\nplans:" +
           std::string(kPlan),
       "broker.listen: port 99999 is outside 1..65535"},
      {"broker:\n  username: u\n  password: p\n  state_dir: /x\n  nice: -21\n"
       "service: {id: s}\nplans:" +
           std::string(kPlan),
       "broker.nice: must be between -20 and 19, got -21"},
      {"broker:\n  username: u\n  password: p\n  state_dir: /x\n  provision_timeout: 5\n"
       "service: {id: s}\nplans:" +
           std::string(kPlan),
       "broker.provision_timeout: must be between 10 and 86400 seconds, got 5"},
      {config(kPlan, "  name: postgresql\n"), "service.id: is required"},
      {config(kPlan, "  id: s1\n  name: post gres\n"),
       "service.name: \"post gres\" may hold only letters, digits, '.', '_' and '-'"},
      {config(" []\n"), "plans: must be a list of at least one plan"},
      {config("\n  - name: a\n    description: d\n"), "plans[0].id: is required"},
      {config("\n  - id: p1\n    name: a\n"), "plans[0].description: is required"},
      {config("\n  - id: p1\n    name: a\n    description: ''\n"),
       "plans[0].description: must not be empty"},
      {config(std::string(kPlan) + "    timing: {loop_wait: 0}\n"),
       "plans[0].timing.loop_wait: must be 1 to 3600 seconds, got 0"},
      {config(std::string(kPlan) + "    timing: {ttl: 10}\n"),
       "plans[0].timing: ttl (10) must be at least loop_wait + 2 * retry_timeout (10 + 2 * 10)"},
      {config("\n  - id: s1\n    name: a\n    description: d\n"),
       "plans[0].id: \"s1\" is already the id of the service or another plan"},
      {config(std::string(kPlan) + "  - id: p2\n    name: single-small\n    description: d\n"),
       "plans[1].name: \"single-small\" is already the name of another plan"},
      {config(std::string(kPlan) + "  - id: p1\n    name: b\n    description: d\n"),
       "plans[1].id: \"p1\" is already the id of the service or another plan"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    nodes: 2\n"),
       "plans[0].nodes: must be 1 or 3, got 2"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    synchronous_mode: true\n"),
       "plans[0].synchronous_mode: needs a cluster (nodes: 3): a single server has no standby to "
       "wait for"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    resources: {max_connections: "
              "5}\n"),
       "plans[0].resources.max_connections: must be between 10 and 10000, got 5"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    resources: {disk_quota_mb: "
              "-1}\n"),
       "plans[0].resources.disk_quota_mb: must not be negative, got -1"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    parameters: {work_mem: [1]}\n"),
       "plans[0].parameters.work_mem: must be a string, number or boolean"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    maintenance_info: {version: "
              "'1.0'}\n"),
       "plans[0].maintenance_info.version: \"1.0\" is not a SemVer 2.0 version (such as 1.0.0)"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    schema: {type: object}\n"),
       "plans[0].schema: needs \"$schema\" (for example http://json-schema.org/draft-04/schema#)"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    schema: {$schema: x, type: "
              "array}\n"),
       "plans[0].schema: must describe an object (type: object)"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    schema: {$schema: x, "
              "properties: {a: {$ref: 'http://example.com/s.json'}}}\n"),
       "plans[0].schema: must not use a $ref outside itself"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    schema: {$schema: x, "
              "properties: {a: {format: email}}}\n"),
       "plans[0].schema: uses \"format\", which the broker cannot check parameters against (see "
       "docs/broker.md)"},
      {config("\n  - id: p1\n    name: a\n    description: d\n    schema: [1]\n"),
       "plans[0].schema: must be a mapping (a JSON Schema)"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(errorOf(c.text), c.error) << c.text;
}

TEST(BrokerConfig, TheProvisionTimeoutIsFiveMinutesUnlessSet) {
  auto r = parseBrokerConfig(config(), envOf({}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->config.provision_timeout_seconds, 300);
  std::string text = config();
  text.replace(text.find("broker:\n"), 8, "broker:\n  provision_timeout: 20\n");
  r = parseBrokerConfig(text, envOf({}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->config.provision_timeout_seconds, 20);
  EXPECT_TRUE(r->warnings.empty());
}

TEST(BrokerConfig, UnknownKeysAreWarnedAboutNotFatal) {
  auto r = parseBrokerConfig(
      config("\n  - id: p1\n    name: a\n    description: d\n    colour: blue\n") + "extra: 1\n",
      envOf({}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->warnings.size(), 2u);
  EXPECT_NE(r->warnings[0].find("extra"), std::string::npos);
  EXPECT_NE(r->warnings[1].find("plans[0].colour"), std::string::npos);
}

TEST(BrokerCatalog, PlansAreBuiltOnDemandUnlessTheyKeepAPool) {
  auto plain = parseBrokerConfig(config(), envOf({}));
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(plain->config.catalog.plans[0].provisioning.strategy, ProvisioningStrategy::kOnDemand);
  EXPECT_FALSE(plain->config.catalog.plans[0].provisioning.pooled());

  auto pooled = parseBrokerConfig(
      config(std::string(kPlan) +
             "    provisioning: {strategy: hybrid, pool_size: 3, refill_concurrency: 2}\n"),
      envOf({}));
  ASSERT_TRUE(pooled.ok()) << pooled.error().message;
  const Provisioning& p = pooled->config.catalog.plans[0].provisioning;
  EXPECT_EQ(p.strategy, ProvisioningStrategy::kHybrid);
  EXPECT_EQ(strategyName(p.strategy), "hybrid");
  EXPECT_EQ(p.pool_size, 3);
  EXPECT_EQ(p.refill_concurrency, 2);
  EXPECT_TRUE(p.pooled());

  auto pool_only = parseBrokerConfig(
      config(std::string(kPlan) + "    provisioning: {strategy: pool, pool_size: 1}\n"), envOf({}));
  ASSERT_TRUE(pool_only.ok()) << pool_only.error().message;
  EXPECT_EQ(pool_only->config.catalog.plans[0].provisioning.strategy, ProvisioningStrategy::kPool);
  EXPECT_EQ(pool_only->config.catalog.plans[0].provisioning.refill_concurrency, 1);

  EXPECT_EQ(errorOf(config(std::string(kPlan) + "    provisioning: {strategy: eager}\n")),
            "plans[0].provisioning.strategy: must be on_demand, pool or hybrid, got \"eager\"");
  EXPECT_EQ(errorOf(config(std::string(kPlan) + "    provisioning: {strategy: pool}\n")),
            "plans[0].provisioning.pool_size: must be at least 1 with strategy pool");
  EXPECT_EQ(errorOf(config(std::string(kPlan) +
                           "    provisioning: {strategy: hybrid, pool_size: 101}\n")),
            "plans[0].provisioning.pool_size: must be 0 to 100, got 101");
  EXPECT_EQ(
      errorOf(config(std::string(kPlan) + "    provisioning: {strategy: hybrid, pool_size: 1, "
                                          "refill_concurrency: 0}\n")),
      "plans[0].provisioning.refill_concurrency: must be 1 to 16, got 0");
  EXPECT_EQ(errorOf(config(std::string(kPlan) + "    provisioning: hybrid\n"))
                .rfind("plans[0].provisioning: must be a mapping", 0),
            0u);
}

TEST(BrokerCatalog, SemVer) {
  for (const char* good : {"0.0.0", "1.0.0", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1",
                           "1.0.0-0.3.7", "1.0.0+build.5", "1.0.0-rc.1+sha.5114f85"})
    EXPECT_TRUE(isSemVer(good)) << good;
  for (const char* bad : {"", "1", "1.0", "1.0.0.0", "01.0.0", "1.02.0", "1.0.0-", "1.0.0+",
                          "1.0.0-01", "1.0.0-a..b", "v1.0.0", "1.0.0 ", "1.x.0"})
    EXPECT_FALSE(isSemVer(bad)) << bad;
}

TEST(BrokerCatalog, TheCatalogDocumentFollowsOsb) {
  auto r =
      parseBrokerConfig(exampleText(), envOf({{"PGFLEET_BROKER_PASSWORD", "0123456789abcdef"}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  nlohmann::json doc = r->config.catalog.toJson();
  ASSERT_EQ(doc["services"].size(), 1u);
  const auto& s = doc["services"][0];
  EXPECT_EQ(s["name"], "postgresql");
  EXPECT_EQ(s["id"], "e0bbd32b-944e-4a1e-bf83-db238487ce21");
  EXPECT_EQ(s["bindable"], true);
  EXPECT_EQ(s["instances_retrievable"], true);
  EXPECT_EQ(s["bindings_retrievable"], true);
  EXPECT_EQ(s["plan_updateable"], true);
  ASSERT_EQ(s["plans"].size(), 5u);
  for (const auto& p : s["plans"]) {
    for (const char* field : {"id", "name", "description"})
      EXPECT_TRUE(p[field].is_string() && !p[field].get<std::string>().empty()) << p.dump();
    EXPECT_EQ(p["maintenance_info"]["version"], "1.0.0");
    EXPECT_TRUE(p["schemas"]["service_instance"]["create"]["parameters"].contains("$schema"));
    EXPECT_TRUE(p["schemas"]["service_instance"]["update"]["parameters"].contains("$schema"));
  }
  EXPECT_EQ(s["plans"][2]["metadata"]["nodes"], 3);
  // A plan without a schema or maintenance_info leaves both out.
  auto minimal = parseBrokerConfig(config(), envOf({}));
  ASSERT_TRUE(minimal.ok()) << minimal.error().message;
  auto plan = minimal->config.catalog.toJson()["services"][0]["plans"][0];
  EXPECT_FALSE(plan.contains("schemas"));
  EXPECT_FALSE(plan.contains("maintenance_info"));
}

}  // namespace
}  // namespace pgf
