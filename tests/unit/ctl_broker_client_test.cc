// pgfleetctl's way to the broker: where it is and which credentials it uses (flags, environment,
// password files), the headers every request carries, how refusals and silence become messages,
// the catalog's plans, and -p/--parameters.
#include "ctl/broker_client.h"

#include <cstdio>
#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/broker_catalog.h"
#include "ctl/broker_instance.h"
#include "fakes/scripted_member_api.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

Environment envOf(std::map<std::string, std::string> vars) {
  return [vars](const char* name) {
    auto it = vars.find(name);
    return it == vars.end() ? std::string() : it->second;
  };
}

std::string writeFile(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << content;
  return path;
}

TEST(CtlBrokerClient, DefaultsAreTheLocalSetupsBroker) {
  const std::string file = writeFile("broker.password", "from-the-file\n");
  auto t = resolveBroker({}, envOf({}), file);
  std::remove(file.c_str());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->address.base_url, "http://127.0.0.1:8080");
  EXPECT_EQ(t->credentials.username, "broker");
  EXPECT_EQ(t->credentials.password, "from-the-file");
  EXPECT_EQ(t->password_source, file);

  auto none = resolveBroker({}, envOf({}), ::testing::TempDir() + "no-such-password-file");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->credentials.password, "");
  EXPECT_EQ(none->password_source, "");
}

TEST(CtlBrokerClient, TheEnvironmentFillsWhatTheCommandLineLeavesOut) {
  const std::string file = writeFile("default.password", "default");
  auto env = envOf({{"PGFLEET_BROKER_URL", "http://10.0.0.5:9090/"},
                    {"PGFLEET_BROKER_USER", "ops"},
                    {"PGFLEET_BROKER_PASSWORD", "from-env"}});
  auto t = resolveBroker({}, env, file);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->address.base_url, "http://10.0.0.5:9090");
  EXPECT_EQ(t->address.port, 9090);
  EXPECT_EQ(t->credentials.username, "ops");
  EXPECT_EQ(t->credentials.password, "from-env");
  EXPECT_EQ(t->password_source, "PGFLEET_BROKER_PASSWORD");

  const std::string given = writeFile("given.password", "from-flag\r\n");
  auto flags = resolveBroker({"http://[::1]:8081", "admin", given}, env, file);
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->address.base_url, "http://[::1]:8081");
  EXPECT_EQ(flags->credentials.username, "admin");
  EXPECT_EQ(flags->credentials.password, "from-flag");
  EXPECT_EQ(flags->password_source, "--password-file " + given);
  std::remove(file.c_str());
  std::remove(given.c_str());
}

TEST(CtlBrokerClient, BadUrlsAndPasswordFilesAreRefusedWithTheReason) {
  auto path = resolveBroker({"http://h:1/v2", "", ""}, envOf({}), "");
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.error().message, "broker URL \"http://h:1/v2\" has a path: give http://host:port");
  auto tls = resolveBroker({"https://h:1", "", ""}, envOf({}), "");
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.error().message, HasSubstr("does not speak https"));

  const std::string missing = ::testing::TempDir() + "missing.password";
  auto unreadable = resolveBroker({"", "", missing}, envOf({}), "");
  ASSERT_FALSE(unreadable.ok());
  EXPECT_EQ(unreadable.error().message,
            "--password-file " + missing + ": cannot read it: No such file or directory");
  const std::string empty = writeFile("empty.password", "\n");
  auto blank = resolveBroker({"", "", empty}, envOf({}), "");
  std::remove(empty.c_str());
  ASSERT_FALSE(blank.ok());
  EXPECT_THAT(blank.error().message, HasSubstr("the file is empty"));
}

BrokerTarget target(const std::string& password = "s3cret-password",
                    const std::string& source = "PGFLEET_BROKER_PASSWORD") {
  BrokerTarget t;
  t.address = parseApiUrl("http://127.0.0.1:8080").value();
  t.credentials = {"broker", password};
  t.password_source = source;
  return t;
}

TEST(CtlBrokerClient, EveryRequestCarriesTheApiVersionAndBasicAuth) {
  ScriptedApi api([](const SentRequest&) {
    return Result<ApiAnswer>(
        ApiAnswer{202, R"({"operation":"provision-1"})", {{"Retry-After", "3"}}});
  });
  BrokerClient broker(api, target(), Millis(1234));
  auto get = broker.call("GET", "/v2/catalog");
  auto put =
      broker.call("PUT", instancePath("my db/1", "?accepts_incomplete=true"), json{{"a", 1}});
  ASSERT_TRUE(get.ok());
  ASSERT_TRUE(put.ok());
  ASSERT_EQ(api.sent.size(), 2u);
  for (const auto& sent : api.sent) {
    EXPECT_EQ(headerOf(sent.headers, "X-Broker-API-Version"), "2.17");
    EXPECT_EQ(headerOf(sent.headers, "Authorization"),
              basicAuthorization({"broker", "s3cret-password"}));
    EXPECT_EQ(sent.timeout, Millis(1234));
  }
  EXPECT_EQ(headerOf(api.sent[0].headers, "Content-Type"), "");
  EXPECT_EQ(headerOf(api.sent[1].headers, "Content-Type"), "application/json");
  EXPECT_EQ(api.sent[1].url,
            "http://127.0.0.1:8080/v2/service_instances/my%20db%2F1?accepts_incomplete=true");
  EXPECT_EQ(api.sent[1].bodyJson(), json({{"a", 1}}));
  EXPECT_EQ(put->status, 202);
  EXPECT_EQ(put->body.value("operation", ""), "provision-1");
  EXPECT_EQ(put->retry_after, "3");
}

TEST(CtlBrokerClient, RefusedCredentialsAndSilenceSaySoWithoutThePassword) {
  ScriptedApi refused([](const SentRequest&) { return Result<ApiAnswer>(ApiAnswer{401, "{}"}); });
  BrokerClient with_password(refused, target(), Millis(1000));
  auto r = with_password.call("GET", "/v2/catalog");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "the broker at http://127.0.0.1:8080 refused the credentials of user broker (401): "
            "check the password from PGFLEET_BROKER_PASSWORD");
  EXPECT_THAT(r.error().message, Not(HasSubstr("s3cret-password")));
  BrokerClient without(refused, target("", ""), Millis(1000));
  EXPECT_THAT(without.call("GET", "/v2/catalog").error().message,
              HasSubstr("no password was given: use --password-file or PGFLEET_BROKER_PASSWORD"));

  ScriptedApi silent([](const SentRequest&) {
    return Result<ApiAnswer>(makeError(ErrorCode::kIo, "connect: Connection refused"));
  });
  BrokerClient nobody(silent, target(), Millis(1000));
  auto down = nobody.catalog();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, ErrorCode::kIo);
  EXPECT_EQ(down.error().message,
            "the broker at http://127.0.0.1:8080 is unreachable (GET /v2/catalog: connect: "
            "Connection refused): is pgfleet-broker running there? (--broker, PGFLEET_BROKER_URL)");
}

TEST(CtlBrokerClient, RefusalsShowTheStatusTheCodeAndTheDescription) {
  BrokerAnswer a;
  a.status = 422;
  a.body = {{"error", "ConcurrencyError"}, {"description", "an operation is in progress"}};
  EXPECT_EQ(refusalText(a), "422 ConcurrencyError: an operation is in progress");
  a.body = {{"description", "unknown plan_id"}};
  a.status = 400;
  EXPECT_EQ(refusal("creating instance x", a).message, "creating instance x: 400: unknown plan_id");
  a.status = 502;
  a.body = nullptr;
  a.text = "Bad gateway\n";
  EXPECT_EQ(refusalText(a), "502: Bad gateway");
  a.text = "{}";
  EXPECT_EQ(refusalText(a), "502");
}

json catalog() {
  return json::parse(R"({"services":[{"name":"postgresql","id":"svc","bindable":true,
    "plan_updateable":false,"plans":[
      {"id":"p-single","name":"single-small","description":"one server","metadata":{"nodes":1}},
      {"id":"p-cluster","name":"cluster-small","description":"three nodes","bindable":false,
       "plan_updateable":true,"metadata":{"nodes":3}}]}]})");
}

TEST(CtlBrokerCatalog, PlansAreFoundByNameOrIdAndAnUnknownOneListsThem) {
  auto service = findService(catalog());
  ASSERT_TRUE(service.ok());
  EXPECT_EQ(findPlan(*service, "cluster-small")->value("id", ""), "p-cluster");
  EXPECT_EQ(findPlan(*service, "p-single")->value("name", ""), "single-small");
  auto unknown = findPlan(*service, "huge");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message,
            "no plan \"huge\" in the catalog: the plans are single-small, cluster-small");
  EXPECT_FALSE(findService(json::object()).ok());
}

TEST(CtlBrokerCatalog, TheTableShowsEachPlanWithThePlanOverridingTheService) {
  EXPECT_EQ(formatCatalogTable(catalog()),
            "+ Service: postgresql (svc) +-------+----------+------------+-------------+\n"
            "| Plan          | Id        | Nodes | Bindable | Updateable | Description |\n"
            "+---------------+-----------+-------+----------+------------+-------------+\n"
            "| single-small  | p-single  |     1 | yes      | no         | one server  |\n"
            "| cluster-small | p-cluster |     3 | no       | yes        | three nodes |\n"
            "+---------------+-----------+-------+----------+------------+-------------+\n");
}

TEST(CtlBrokerParameters, SettingsAreJsonWhenTheyParseAndStringsOtherwise) {
  auto p = parseParameters(
      {"database=shop", "n=10", "on=true", R"(extensions=["pg_trgm"])", R"(quoted="10")", "empty="},
      R"({"database":"ignored","x":1})");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(*p, json::parse(R"({"database":"shop","n":10,"on":true,"extensions":["pg_trgm"],
                                "quoted":"10","empty":"","x":1})"));
  EXPECT_EQ(parseParameters({"novalue"}, "").error().message,
            "invalid parameter \"novalue\": expected KEY=VALUE");
  EXPECT_FALSE(parseParameters({"=x"}, "").ok());
  EXPECT_FALSE(parseParameters({}, "[1]").ok());
  EXPECT_EQ(*parseParameters({}, ""), json::object());
}

}  // namespace
}  // namespace pgf::ctl
