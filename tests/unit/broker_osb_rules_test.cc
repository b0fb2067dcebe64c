// The rules of ../shared/OSB.md that the broker can be held to without PostgreSQL, driven
// in-process through OsbApi with a real store and an InstanceService whose instances never start
// a process (the plans' template does not exist, so a provision fails before the backend is
// asked): every status code and error code of the spec's error cases, idempotent repeats, and
// hostile ids and parameters. A refused request must leave the store exactly as it was.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "broker/instances.h"
#include "broker/osb_api.h"
#include "broker/store.h"
#include "common/base64.h"
#include "common/http_message.h"
#include "common/http_server.h"
#include "deploy/local_backend.h"

namespace pgf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The ids of examples/broker-local.yaml, whose catalog the tests serve.
constexpr const char* kService = "e0bbd32b-944e-4a1e-bf83-db238487ce21";
constexpr const char* kSingle = "3b8c5ecc-e36f-4066-8cc0-22124da2cc00";
constexpr const char* kCluster = "347487b1-13d0-4e3f-bf75-3091dc23a86f";
constexpr const char* kDelete =
    "?service_id=e0bbd32b-944e-4a1e-bf83-db238487ce21&plan_id="
    "3b8c5ecc-e36f-4066-8cc0-22124da2cc00";

Catalog exampleCatalog() {
  YAML::Node doc = YAML::LoadFile(std::string(PGFLEET_SOURCE_DIR) + "/examples/broker-local.yaml");
  std::vector<std::string> warnings;
  auto catalog = parseCatalog(doc["service"], doc["plans"], warnings);
  EXPECT_TRUE(catalog.ok()) << catalog.error().message;
  return catalog.ok() ? *catalog : Catalog{};
}

json provisionBody(const std::string& plan = kSingle, json parameters = json::object()) {
  return {{"service_id", kService},
          {"plan_id", plan},
          {"organization_guid", "org"},
          {"space_guid", "space"},
          {"parameters", std::move(parameters)}};
}

json bindBody() {
  return {{"service_id", kService}, {"plan_id", kSingle}};
}

class OsbRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           fmt::format("broker_osb_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "agent") << "#!/bin/sh\nexit 1\n";
    auto store = Store::open((dir_ / "broker.db").string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    LocalBackendOptions bo;
    bo.state_dir = (dir_ / "state").string();
    bo.agent_bin = (dir_ / "agent").string();
    auto backend = LocalBackend::create(bo);
    ASSERT_TRUE(backend.ok()) << backend.error().message;
    backend_ = std::move(*backend);
    InstanceServiceOptions io;
    io.catalog = exampleCatalog();
    io.templates_dir = (dir_ / "no-templates").string();
    io.sql_timeout = Millis(2000);
    service_ = std::make_unique<InstanceService>(io, *store_, *backend_);
    api_ = std::make_unique<OsbApi>(io.catalog, "broker", "secret-password", service_.get());
  }
  void TearDown() override {
    api_.reset();
    service_.reset();
    backend_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  // A request as the HTTP server hands it over: `target` percent-encoded, with its query.
  static HttpRequest request(const std::string& method, const std::string& target,
                             std::string body = "") {
    HttpRequest r;
    r.method = method;
    EXPECT_TRUE(parseRequestTarget(target, &r.path, &r.query)) << target;
    r.raw_path = target.substr(0, target.find('?'));
    r.headers.emplace_back("authorization",
                           "Basic " + base64Encode(std::string("broker:secret-password")));
    r.headers.emplace_back("x-broker-api-version", "2.14");
    r.body = std::move(body);
    return r;
  }
  HttpReply answer(const HttpRequest& req) {
    HttpReply r = api_->handle(req);
    return r.deferred ? r.deferred() : r;
  }
  HttpReply call(const std::string& method, const std::string& target, const json& body) {
    return answer(request(method, target, body.is_null() ? "" : body.dump()));
  }

  // Seeds the store as a request would have left it, with no worker running: an instance and
  // its provision, in progress or finished.
  int64_t seedInstance(const std::string& id, OpState provision, bool ready,
                       json parameters = json::object()) {
    InstanceRecord r;
    r.id = id;
    r.service_id = kService;
    r.plan_id = kSingle;
    r.parameters = std::move(parameters);
    r.maintenance_version = "1.0.0";
    r.ready = ready;
    // Port 1: nothing listens there, so that SQL on this instance fails at once.
    r.deployment = {{"name", "pgf-seed-" + id}, {"read_write_port", 1}};
    OperationRecord op;
    op.kind = OpKind::kProvision;
    op.instance_id = id;
    auto op_id = store_->beginOperation(op, [&] { return store_->putInstance(r); });
    EXPECT_TRUE(op_id.ok());
    if (provision != OpState::kInProgress) {
      EXPECT_TRUE(store_->finishOperation(*op_id, provision, "seeded").ok());
    }
    return *op_id;
  }
  int64_t seedOperation(const std::string& id, OpKind kind, const std::string& binding = "") {
    OperationRecord op;
    op.kind = kind;
    op.instance_id = id;
    op.binding_id = binding;
    auto op_id = store_->beginOperation(op);
    EXPECT_TRUE(op_id.ok());
    return *op_id;
  }
  void seedBinding(const std::string& id, const std::string& bid, bool ready) {
    BindingRecord b;
    b.id = bid;
    b.instance_id = id;
    b.credentials = {{"username", "b_seeded"}, {"password", "x"}};
    b.ready = ready;
    ASSERT_TRUE(store_->putBinding(b).ok());
  }

  // Everything the store holds, for "nothing changed".
  json snapshot() {
    json out = json::array();
    auto all = store_->instances();
    EXPECT_TRUE(all.ok());
    for (const auto& i : *all) {
      json b = json::array();
      auto bindings = store_->bindings(i.id);
      EXPECT_TRUE(bindings.ok());
      for (const auto& x : *bindings)
        b.push_back({x.id, x.ready, x.credentials});
      auto last = store_->lastOperation(i.id);
      EXPECT_TRUE(last.ok());
      auto ports = store_->ports(i.id);
      EXPECT_TRUE(ports.ok());
      out.push_back({i.id, i.plan_id, i.parameters, i.ready, b, *ports,
                     last->has_value() ? (*last)->token() + " " + (*last)->description : ""});
    }
    auto unfinished = store_->unfinishedOperations();
    EXPECT_TRUE(unfinished.ok());
    out.push_back(unfinished->size());
    return out;
  }
  size_t instanceDirectories() {
    std::error_code ec;
    size_t n = 0;
    for (auto it = fs::directory_iterator(dir_ / "state" / "instances", ec);
         !ec && it != fs::directory_iterator(); ++it)
      ++n;
    return n;
  }
  // Polls last_operation until it is no longer "in progress"; the final answer.
  HttpReply settle(const std::string& id) {
    HttpReply r;
    for (int i = 0; i < 200; ++i) {
      r = call("GET", "/v2/service_instances/" + id + "/last_operation", nullptr);
      if (r.status != 200 || json::parse(r.body).value("state", "") != "in progress")
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return r;
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LocalBackend> backend_;
  std::unique_ptr<InstanceService> service_;
  std::unique_ptr<OsbApi> api_;
};

struct Case {
  const char* rule;  // where OSB.md says so
  std::string method;
  std::string target;
  std::string body;
  int status;
  std::string error;         // the `error` code, "" when the spec names none
  std::string token = "";    // the `operation` a 202 must carry
  bool credentials = false;  // a 200 that must carry them
};

std::string dump(const json& j) {
  return j.dump();
}

TEST_F(OsbRulesTest, EveryErrorCaseGetsTheSpecsStatusAndCodeAndChangesNothing) {
  seedInstance("ready", OpState::kSucceeded, true, {{"database", "shop"}});
  seedBinding("ready", "b-ready", true);
  seedBinding("ready", "b-new", false);
  seedOperation("ready", OpKind::kBind, "b-new");
  const int64_t provisioning = seedInstance("provisioning", OpState::kInProgress, false);
  seedInstance("failed", OpState::kFailed, false);
  seedInstance("updating", OpState::kSucceeded, true);
  seedOperation("updating", OpKind::kUpdate);
  seedInstance("deprovisioning", OpState::kSucceeded, true);
  const int64_t deprovisioning = seedOperation("deprovisioning", OpKind::kDeprovision);
  // An instance on an older maintenance version than its plan's.
  seedInstance("older", OpState::kSucceeded, true);
  {
    auto older = store_->instance("older");
    ASSERT_TRUE(older.ok() && older->has_value());
    InstanceRecord r = **older;
    r.maintenance_version = "0.9.0";
    ASSERT_TRUE(store_->putInstance(r).ok());
  }
  const std::string prov_token = fmt::format("provision-{}", provisioning);
  const std::string deprov_token = fmt::format("deprovision-{}", deprovisioning);
  const std::string si = "/v2/service_instances/";
  const std::string ai = "?accepts_incomplete=true";
  json wrong_mi = provisionBody();
  wrong_mi["maintenance_info"] = {{"version", "9.9.9"}};
  json patch_mi = {{"service_id", kService}, {"maintenance_info", {{"version", "2.0.0"}}}};

  const std::vector<Case> cases = {
      // §4 provision
      {"§4 malformed", "PUT", si + "new" + ai, "{not json", 400, ""},
      {"§4 malformed", "PUT", si + "new" + ai, "[1, 2]", 400, ""},
      {"§4 malformed", "PUT", si + "new" + ai, "", 400, ""},
      {"§4 missing field", "PUT", si + "new" + ai, dump({{"plan_id", kSingle}}), 400, ""},
      {"§4 missing field", "PUT", si + "new" + ai, dump({{"service_id", kService}}), 400, ""},
      {"§4 malformed", "PUT", si + "new" + ai, dump({{"service_id", 7}, {"plan_id", kSingle}}), 400,
       ""},
      {"§4 unknown service", "PUT", si + "new" + ai,
       dump({{"service_id", "nope"}, {"plan_id", kSingle}}), 400, ""},
      {"§4 unknown plan", "PUT", si + "new" + ai, dump(provisionBody("nope")), 400, ""},
      {"§3 AsyncRequired", "PUT", si + "new", dump(provisionBody()), 422, "AsyncRequired"},
      {"§3 AsyncRequired", "PUT", si + "new?accepts_incomplete=false", dump(provisionBody()), 422,
       "AsyncRequired"},
      {"§4 MaintenanceInfoConflict", "PUT", si + "new" + ai, dump(wrong_mi), 422,
       "MaintenanceInfoConflict"},
      {"§4 parameters", "PUT", si + "new" + ai, dump(provisionBody(kSingle, "x")), 400, ""},
      {"§4 parameters", "PUT", si + "new" + ai,
       dump(provisionBody(kSingle, {{"database", "x'; DROP DATABASE postgres; --"}})), 400, ""},
      {"§4 parameters", "PUT", si + "new" + ai,
       dump(provisionBody(kSingle, {{"database", "app\"; SELECT 1; --"}})), 400, ""},
      {"§4 parameters", "PUT", si + "new" + ai,
       dump(provisionBody(kSingle, {{"extensions", {"citext; DROP ROLE postgres"}}})), 400, ""},
      {"§4 parameters", "PUT", si + "new" + ai,
       dump(provisionBody(kSingle, {{"extensions", "citext"}})), 400, ""},
      {"§4 parameters", "PUT", si + "new" + ai,
       dump(provisionBody(kSingle, {{"owner", "postgres"}})), 400, ""},
      {"§4/§13.1 same, done", "PUT", si + "ready" + ai,
       dump(provisionBody(kSingle, {{"database", "shop"}})), 200, ""},
      {"§4/§13.1 same, running", "PUT", si + "provisioning" + ai, dump(provisionBody()), 202, "",
       prov_token},
      {"§4 other plan", "PUT", si + "ready" + ai,
       dump(provisionBody(kCluster, {{"database", "shop"}})), 409, ""},
      {"§4 other parameters", "PUT", si + "ready" + ai,
       dump(provisionBody(kSingle, {{"database", "other"}})), 409, ""},
      {"§4 other plan, running", "PUT", si + "provisioning" + ai, dump(provisionBody(kCluster)),
       409, ""},
      {"§4 a failed one", "PUT", si + "failed" + ai, dump(provisionBody()), 409, ""},
      // §5 fetch instance
      {"§5 unknown", "GET", si + "new", "", 404, ""},
      {"§5 provisioning", "GET", si + "provisioning", "", 404, ""},
      {"§5 failed", "GET", si + "failed", "", 404, ""},
      {"§5 updating", "GET", si + "updating", "", 422, "ConcurrencyError"},
      {"§5 ready", "GET", si + "ready", "", 200, ""},
      // §6 update
      {"§6 malformed", "PATCH", si + "ready", "{", 400, ""},
      {"§6 missing service_id", "PATCH", si + "ready", dump({{"plan_id", kSingle}}), 400, ""},
      {"§6 unknown service", "PATCH", si + "ready", dump({{"service_id", "nope"}}), 400, ""},
      {"§6 unknown plan", "PATCH", si + "ready",
       dump({{"service_id", kService}, {"plan_id", "nope"}}), 400, ""},
      {"§6 plan change while another operation runs", "PATCH", si + "updating" + ai,
       dump({{"service_id", kService}, {"plan_id", kCluster}}), 422, "ConcurrencyError"},
      {"§6 unsupported parameters", "PATCH", si + "ready",
       dump({{"service_id", kService}, {"parameters", {{"database", "x"}}}}), 422, ""},
      {"§6 MaintenanceInfoConflict", "PATCH", si + "ready", dump(patch_mi), 422,
       "MaintenanceInfoConflict"},
      {"§3 AsyncRequired (a maintenance roll)", "PATCH", si + "older",
       dump({{"service_id", kService}, {"maintenance_info", {{"version", "1.0.0"}}}}), 422,
       "AsyncRequired"},
      {"§6 MaintenanceInfoConflict (an older version)", "PATCH", si + "older" + ai,
       dump({{"service_id", kService}, {"maintenance_info", {{"version", "0.9.0"}}}}), 422,
       "MaintenanceInfoConflict"},
      {"§6 unknown instance", "PATCH", si + "new", dump({{"service_id", kService}}), 404, ""},
      {"§6/§13.7 context only", "PATCH", si + "ready",
       dump({{"service_id", kService}, {"context", {{"platform", "cloudfoundry"}}}}), 200, ""},
      // §7 bind
      {"§7 malformed", "PUT", si + "ready/service_bindings/b", "{", 400, ""},
      {"§7 rotation, not binding_rotatable", "PUT", si + "ready/service_bindings/b",
       dump(
           {{"service_id", kService}, {"plan_id", kSingle}, {"predecessor_binding_id", "b-ready"}}),
       400, ""},
      {"§7 missing plan_id", "PUT", si + "ready/service_bindings/b",
       dump({{"service_id", kService}}), 400, ""},
      {"§7 unknown service", "PUT", si + "ready/service_bindings/b",
       dump({{"service_id", "nope"}, {"plan_id", kSingle}}), 400, ""},
      {"§7 unknown plan", "PUT", si + "ready/service_bindings/b",
       dump({{"service_id", kService}, {"plan_id", "nope"}}), 400, ""},
      {"§7 parameters", "PUT", si + "ready/service_bindings/b",
       dump({{"service_id", kService}, {"plan_id", kSingle}, {"parameters", {{"role", "x"}}}}), 400,
       ""},
      {"§7 unknown instance", "PUT", si + "new/service_bindings/b", dump(bindBody()), 404, ""},
      {"§7 instance provisioning", "PUT", si + "provisioning/service_bindings/b", dump(bindBody()),
       422, "ConcurrencyError"},
      {"§7 instance failed", "PUT", si + "failed/service_bindings/b", dump(bindBody()), 422,
       "ConcurrencyError"},
      {"§7 instance deprovisioning", "PUT", si + "deprovisioning/service_bindings/b",
       dump(bindBody()), 422, "ConcurrencyError"},
      {"§7 binding being created", "PUT", si + "ready/service_bindings/b-new", dump(bindBody()),
       422, "ConcurrencyError"},
      {"§7/§13.1 same binding", "PUT", si + "ready/service_bindings/b-ready", dump(bindBody()), 200,
       "", "", true},
      // §9 fetch binding
      {"§9 unknown", "GET", si + "ready/service_bindings/nope", "", 404, ""},
      {"§9 being created", "GET", si + "ready/service_bindings/b-new", "", 404, ""},
      {"§9 unknown instance", "GET", si + "new/service_bindings/b-ready", "", 404, ""},
      {"§9 ready", "GET", si + "ready/service_bindings/b-ready", "", 200, "", "", true},
      // §10 unbind
      {"§10 missing service_id", "DELETE",
       si + "ready/service_bindings/b-ready?plan_id=" + std::string(kSingle), "", 400, ""},
      {"§10 missing plan_id", "DELETE",
       si + "ready/service_bindings/b-ready?service_id=" + std::string(kService), "", 400, ""},
      {"§10 unknown binding", "DELETE", si + "ready/service_bindings/nope" + kDelete, "", 410, ""},
      {"§10 unknown instance", "DELETE", si + "new/service_bindings/b" + kDelete, "", 410, ""},
      // §11 deprovision
      {"§11 missing service_id", "DELETE",
       si + "ready?accepts_incomplete=true&plan_id=" + std::string(kSingle), "", 400, ""},
      {"§11 missing plan_id", "DELETE",
       si + "ready?accepts_incomplete=true&service_id=" + std::string(kService), "", 400, ""},
      {"§11/§13.2 unknown", "DELETE", si + "new" + kDelete + "&accepts_incomplete=true", "", 410,
       ""},
      {"§11 AsyncRequired", "DELETE", si + "ready" + kDelete, "", 422, "AsyncRequired"},
      {"§11 same, running", "DELETE", si + "deprovisioning" + kDelete + "&accepts_incomplete=true",
       "", 202, "", deprov_token},
      // §3 last_operation
      {"§3 unknown", "GET", si + "new/last_operation", "", 404, ""},
      {"§3 unknown with a token", "GET", si + "new/last_operation?operation=" + prov_token, "", 404,
       ""},
      {"§3 another's token", "GET", si + "ready/last_operation?operation=" + prov_token, "", 400,
       ""},
      {"§3 no such token", "GET", si + "ready/last_operation?operation=provision-99999", "", 400,
       ""},
      {"§3 garbage token", "GET", si + "ready/last_operation?operation=%FF%22;--", "", 400, ""},
      {"§3 running", "GET", si + "provisioning/last_operation?operation=" + prov_token, "", 200,
       ""},
      {"§3 binding unknown", "GET", si + "ready/service_bindings/nope/last_operation", "", 404, ""},
      {"§3 binding running", "GET", si + "ready/service_bindings/b-new/last_operation", "", 200,
       ""},
      // §1 hostile ids: not UTF-8, control characters, too long, empty
      {"§1 NUL", "PUT", si + "a%00b" + ai, dump(provisionBody()), 400, ""},
      {"§1 not UTF-8", "PUT", si + "%FF%FE" + ai, dump(provisionBody()), 400, ""},
      {"§1 overlong UTF-8", "PUT", si + "%C0%AF" + ai, dump(provisionBody()), 400, ""},
      {"§1 newline", "PUT", si + "a%0D%0Ab" + ai, dump(provisionBody()), 400, ""},
      {"§1 too long", "PUT", si + std::string(1025, 'a') + ai, dump(provisionBody()), 400, ""},
      {"§1 empty", "PUT", si + ai, dump(provisionBody()), 400, ""},
      {"§1 empty binding", "PUT", si + "ready/service_bindings/" + ai, dump(bindBody()), 400, ""},
      {"§1 NUL binding", "PUT", si + "ready/service_bindings/%00", dump(bindBody()), 400, ""},
      {"§1 not UTF-8 path", "GET", "/v2/%FF", "", 404, ""},
      {"§1 encoded slash", "GET", "/v2%2Fservice_instances/ready", "", 404, ""},
      {"§1 405", "POST", si + "ready", "{}", 405, ""},
      {"§1 405", "PUT", si + "ready/last_operation", "{}", 405, ""},
  };

  const json before = snapshot();
  // A bind of b-new is running: it holds the instance's claim until its deferred answer is made.
  HttpReply running =
      api_->handle(request("PUT", si + "ready/service_bindings/b-new", dump(bindBody())));
  ASSERT_TRUE(static_cast<bool>(running.deferred)) << running.body;
  for (const Case& c : cases) {
    SCOPED_TRACE(fmt::format("{}: {} {} {}", c.rule, c.method, c.target.substr(0, 120),
                             c.body.substr(0, 120)));
    auto req = request(c.method, c.target, c.body);
    req.headers.emplace_back("x-broker-api-request-identity", "req-42");
    HttpReply r = answer(req);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    auto doc = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(doc.is_object()) << r.body;
    EXPECT_EQ(r.headers["X-Broker-API-Request-Identity"], "req-42");
    if (!c.error.empty()) {
      EXPECT_EQ(doc.value("error", ""), c.error) << r.body;
    } else {
      EXPECT_FALSE(doc.contains("error")) << r.body;
    }
    if (r.status >= 400 && r.status != 410) {  // a 410's body is {} (§10, §11)
      EXPECT_FALSE(doc.value("description", "").empty()) << r.body;
    }
    if (!c.token.empty()) {
      EXPECT_EQ(doc.value("operation", ""), c.token);
    }
    if (c.credentials) {
      EXPECT_EQ(doc["credentials"].value("username", ""), "b_seeded") << r.body;
    }
    if (r.status == 202) {
      EXPECT_FALSE(doc.contains("credentials")) << "§7: never credentials in a 202";
    }
    EXPECT_FALSE(doc.contains("instance_usable")) << "§1: only on update or deprovision errors";
  }
  EXPECT_EQ(snapshot(), before);
  // With no bind running, b-new is what a failed attempt left: it is rolled back before binding
  // afresh, which here (no PostgreSQL) fails and changes nothing either.
  HttpReply leftover = running.deferred();
  EXPECT_EQ(leftover.status, 500) << leftover.body;
  EXPECT_NE(leftover.body.find("left a role that cannot be dropped yet"), std::string::npos)
      << leftover.body;
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(instanceDirectories(), 0u);
}

TEST_F(OsbRulesTest, FetchAndLastOperationSayWhatTheSpecAsks) {
  seedInstance("ready", OpState::kSucceeded, true, {{"database", "shop"}});
  HttpReply fetched = call("GET", "/v2/service_instances/ready", nullptr);
  ASSERT_EQ(fetched.status, 200);
  EXPECT_EQ(json::parse(fetched.body), (json{{"service_id", kService},
                                             {"plan_id", kSingle},
                                             {"parameters", {{"database", "shop"}}},
                                             {"maintenance_info", {{"version", "1.0.0"}}}}));
  HttpReply last = call("GET", "/v2/service_instances/ready/last_operation", nullptr);
  ASSERT_EQ(last.status, 200);
  EXPECT_EQ(json::parse(last.body), (json{{"state", "succeeded"}, {"description", "seeded"}}));
}

TEST_F(OsbRulesTest, DeprovisionDuringProvisionHaltsItAndForgetsTheInstance) {
  seedInstance("inst", OpState::kInProgress, false);
  HttpReply del = call(
      "DELETE", std::string("/v2/service_instances/inst") + kDelete + "&accepts_incomplete=true",
      nullptr);
  ASSERT_EQ(del.status, 202) << del.body;
  EXPECT_EQ(json::parse(del.body).value("operation", "").rfind("deprovision-", 0), 0u);
  EXPECT_EQ(settle("inst").status, 410) << "§11: 410 once the delete is done";
  EXPECT_EQ(call("GET", "/v2/service_instances/inst", nullptr).status, 404);
  EXPECT_EQ(snapshot(), json::array({0}));
  // A repeated delete of the instance now gone: 410.
  EXPECT_EQ(call("DELETE",
                 std::string("/v2/service_instances/inst") + kDelete + "&accepts_incomplete=true",
                 nullptr)
                .status,
            410);
}

TEST_F(OsbRulesTest, AFailedProvisionSaysWhyAndItsOrphanMitigationCleansUp) {
  HttpReply put =
      call("PUT", "/v2/service_instances/orphan?accepts_incomplete=true", provisionBody());
  ASSERT_EQ(put.status, 202) << put.body;
  HttpReply failed = settle("orphan");
  ASSERT_EQ(failed.status, 200) << failed.body;
  auto doc = json::parse(failed.body);
  EXPECT_EQ(doc.value("state", ""), "failed");
  EXPECT_NE(doc.value("description", "").find("deployment manifest"), std::string::npos)
      << failed.body;
  auto ports = store_->ports("orphan");
  ASSERT_TRUE(ports.ok());
  EXPECT_FALSE(ports->empty()) << "the provision got as far as reserving ports";
  // §4: the same PUT again does not pretend it is being made.
  EXPECT_EQ(
      call("PUT", "/v2/service_instances/orphan?accepts_incomplete=true", provisionBody()).status,
      409);

  HttpReply del = call(
      "DELETE", std::string("/v2/service_instances/orphan") + kDelete + "&accepts_incomplete=true",
      nullptr);
  ASSERT_EQ(del.status, 202) << del.body;
  EXPECT_EQ(settle("orphan").status, 410);
  EXPECT_EQ(snapshot(), json::array({0}));
  ports = store_->ports("orphan");
  ASSERT_TRUE(ports.ok());
  EXPECT_TRUE(ports->empty());
  EXPECT_EQ(instanceDirectories(), 0u);
}

TEST_F(OsbRulesTest, HostileIdsAreDataNeverPathsOrRoutes) {
  // Quotes, semicolons, dot segments and an encoded "/" are characters of an id (OSB §1): the
  // instance is made under that id, as data, and nothing is named after it on disk.
  for (const std::string& encoded :
       {std::string("x'%22;DROP%20TABLE%20instances;--"), std::string(".."),
        std::string("..%2F..%2Fetc%2Fpasswd"), std::string("a%2Fservice_bindings%2Fb"),
        std::string("%E2%98%83%20%24(reboot)")}) {
    std::string id;
    ASSERT_TRUE(percentDecode(encoded, &id));
    SCOPED_TRACE(id);
    const std::string path = "/v2/service_instances/" + encoded;
    HttpReply put = call("PUT", path + "?accepts_incomplete=true", provisionBody());
    ASSERT_EQ(put.status, 202) << put.body;
    auto stored = store_->instance(id);
    ASSERT_TRUE(stored.ok());
    ASSERT_TRUE(stored->has_value()) << "the id as sent, decoded once";
    EXPECT_EQ((*stored)->deployment.value("name", "").rfind("pgf-", 0), 0u)
        << "the instance's directory and scope are named by the broker";
    HttpReply last = settle(encoded);
    EXPECT_EQ(last.status, 200) << last.body;
    HttpReply del = call("DELETE", path + kDelete + "&accepts_incomplete=true", nullptr);
    EXPECT_EQ(del.status, 202) << del.body;
    EXPECT_EQ(settle(encoded).status, 410);
  }
  EXPECT_EQ(snapshot(), json::array({0}));
  auto bindings = store_->bindings("a");
  ASSERT_TRUE(bindings.ok());
  EXPECT_TRUE(bindings->empty());
  EXPECT_EQ(instanceDirectories(), 0u);
  EXPECT_FALSE(fs::exists(dir_ / "etc"));
}

TEST_F(OsbRulesTest, UnknownFieldsAreIgnored) {
  json body = provisionBody();
  body["x-vendor-extension"] = {{"anything", {1, 2, 3}}};
  body["context"] = {{"platform", "cloudfoundry"}, {"unknown", true}};
  body["maintenance_info"] = {{"version", "1.0.0"}, {"description", "ignored"}};
  HttpReply put = call("PUT", "/v2/service_instances/ext?accepts_incomplete=true", body);
  EXPECT_EQ(put.status, 202) << put.body;
  settle("ext");
}

TEST_F(OsbRulesTest, TheRequestIdentityIsEchoedOnADeferredAnswerToo) {
  seedInstance("ready", OpState::kSucceeded, true);
  auto req = request("PUT", "/v2/service_instances/ready/service_bindings/b1", bindBody().dump());
  req.headers.emplace_back("x-broker-api-request-identity", "bind-7");
  HttpReply first = api_->handle(req);
  ASSERT_TRUE(static_cast<bool>(first.deferred)) << "bind answers from a worker thread";
  HttpReply late = first.deferred();
  // Nothing listens where the seeded instance's PostgreSQL would: the bind fails.
  EXPECT_EQ(late.status, 500) << late.body;
  EXPECT_EQ(late.headers["X-Broker-API-Request-Identity"], "bind-7");
  EXPECT_NE(late.body.find("a retry of this bind, an unbind or the broker's next start removes it"),
            std::string::npos)
      << "the half-made binding could not be removed either: the answer must not say otherwise";
}

// §1: a body sent as something other than JSON is refused; JSON with a charset, or with no
// Content-Type at all, is read.
TEST_F(OsbRulesTest, ABodyThatIsNotSentAsJsonIs400AndChangesNothing) {
  seedInstance("ready", OpState::kSucceeded, true, {{"database", "shop"}});
  const json before = snapshot();
  for (const char* type : {"application/x-www-form-urlencoded", "text/plain", "application/xml"}) {
    for (const auto& [method, target, body] :
         std::vector<std::tuple<std::string, std::string, json>>{
             {"PUT", "/v2/service_instances/new?accepts_incomplete=true", provisionBody()},
             {"PATCH", "/v2/service_instances/ready", {{"service_id", kService}}},
             {"PUT", "/v2/service_instances/ready/service_bindings/b1", bindBody()}}) {
      auto req = request(method, target, body.dump());
      req.headers.emplace_back("content-type", type);
      HttpReply r = answer(req);
      EXPECT_EQ(r.status, 400) << method << " " << target << " as " << type << ": " << r.body;
      EXPECT_NE(r.body.find("Content-Type"), std::string::npos) << r.body;
    }
  }
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(instanceDirectories(), 0u);
  for (const char* type : {"application/json", "Application/JSON; charset=utf-8"}) {
    auto req =
        request("PATCH", "/v2/service_instances/ready", json{{"service_id", kService}}.dump());
    req.headers.emplace_back("content-type", type);
    EXPECT_EQ(answer(req).status, 200) << type;
  }
  EXPECT_EQ(call("PATCH", "/v2/service_instances/ready", {{"service_id", kService}}).status, 200);
}

// A provision or deprovision is decided and committed (an fsync) on a worker thread, so that the
// server's thread, which reads every request, never waits for a disk: nothing is written before
// the deferred part runs.
TEST_F(OsbRulesTest, ProvisionAndDeprovisionCommitOnAWorkerThread) {
  HttpReply put = api_->handle(request("PUT", "/v2/service_instances/later?accepts_incomplete=true",
                                       provisionBody().dump()));
  ASSERT_TRUE(static_cast<bool>(put.deferred));
  auto none = store_->instance("later");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(put.deferred().status, 202);
  settle("later");
  HttpReply del = api_->handle(request(
      "DELETE", "/v2/service_instances/later" + std::string(kDelete) + "&accepts_incomplete=true"));
  ASSERT_TRUE(static_cast<bool>(del.deferred));
  auto last = store_->lastOperation("later");
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->kind, OpKind::kProvision);
  EXPECT_EQ(del.deferred().status, 202);
}

// §3: while an operation runs, last_operation says when to poll again; once it has ended, not.
TEST_F(OsbRulesTest, LastOperationSendsRetryAfterWhileTheOperationRuns) {
  seedInstance("provisioning", OpState::kInProgress, false);
  seedInstance("ready", OpState::kSucceeded, true);
  seedBinding("ready", "b1", false);
  seedOperation("ready", OpKind::kBind, "b1");
  HttpReply running = call("GET", "/v2/service_instances/provisioning/last_operation", nullptr);
  ASSERT_EQ(running.status, 200);
  EXPECT_EQ(json::parse(running.body).value("state", ""), "in progress");
  EXPECT_EQ(running.headers["Retry-After"], "1");
  HttpReply binding =
      call("GET", "/v2/service_instances/ready/service_bindings/b1/last_operation", nullptr);
  ASSERT_EQ(binding.status, 200);
  EXPECT_EQ(binding.headers["Retry-After"], "1");
  HttpReply done = call("GET", "/v2/service_instances/ready/last_operation", nullptr);
  ASSERT_EQ(done.status, 200);
  EXPECT_EQ(json::parse(done.body).value("state", ""), "succeeded");
  EXPECT_EQ(done.headers.count("Retry-After"), 0u);
}

// §1: X-Broker-API-Originating-Identity is kept with the operation it started (for audit), and a
// value that is not base64 JSON is kept as its platform alone, never refused.
TEST_F(OsbRulesTest, TheOriginatingIdentityIsKeptWithTheOperation) {
  auto req = request("PUT", "/v2/service_instances/audited?accepts_incomplete=true",
                     provisionBody().dump());
  req.headers.emplace_back("x-broker-api-originating-identity",
                           "cloudfoundry " + base64Encode(R"({"user_id":"683ea748-3092"})"));
  ASSERT_EQ(answer(req).status, 202);
  auto op = store_->lastOperation("audited");
  ASSERT_TRUE(op.ok() && op->has_value());
  EXPECT_EQ((*op)->request.value("by", json()),
            (json{{"platform", "cloudfoundry"}, {"identity", {{"user_id", "683ea748-3092"}}}}));
  settle("audited");

  auto garbled = request("PUT", "/v2/service_instances/garbled?accepts_incomplete=true",
                         provisionBody().dump());
  garbled.headers.emplace_back("x-broker-api-originating-identity", "kubernetes %%%not-base64\xff");
  ASSERT_EQ(answer(garbled).status, 202);
  op = store_->lastOperation("garbled");
  ASSERT_TRUE(op.ok() && op->has_value());
  EXPECT_EQ((*op)->request.value("by", json()),
            (json{{"platform", "kubernetes"}, {"identity", nullptr}}));
  settle("garbled");

  ASSERT_EQ(call("PUT", "/v2/service_instances/anonymous?accepts_incomplete=true", provisionBody())
                .status,
            202);
  op = store_->lastOperation("anonymous");
  ASSERT_TRUE(op.ok() && op->has_value());
  EXPECT_FALSE((*op)->request.contains("by"));
  settle("anonymous");
}

// Sends `request` as it is to 127.0.0.1:port and returns what comes back before the server
// closes the connection (or 5 s pass).
std::string exchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, 5000) > 0) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

TEST_F(OsbRulesTest, HostileRequestsGetCleanJsonErrorsAndTheBrokerKeepsAnswering) {
  HttpServer server([this](const HttpRequest& req) { return api_->handle(req); });
  ASSERT_TRUE(server.start("127.0.0.1", 0).ok());
  const std::string auth = "Authorization: Basic " + base64Encode("broker:secret-password") +
                           "\r\nX-Broker-API-Version: 2.17\r\n";
  const std::string put = "PUT /v2/service_instances/x?accepts_incomplete=true HTTP/1.1\r\n";
  const std::string body = provisionBody().dump();
  struct Hostile {
    std::string what;
    std::string request;
    int status;
  };
  const std::vector<Hostile> hostile = {
      // Refused from its headers: not one byte of the 100 MiB is read or buffered.
      {"huge body", put + auth + "Content-Length: 104857600\r\n\r\n", 413},
      {"just over 1 MiB", put + auth + "Content-Length: 1048577\r\n\r\n" + body, 413},
      {"chunked body", put + auth + "Transfer-Encoding: chunked\r\n\r\n5\r\n{}{}{\r\n0\r\n\r\n",
       411},
      {"huge header", put + auth + "X-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431},
      {"garbage", "\x16\x03\x01 hello\r\n\r\n", 400},
      {"bad length", put + auth + "Content-Length: -1\r\n\r\n", 400},
      {"bad escape", "GET /v2/service_instances/%zz HTTP/1.1\r\n" + auth + "\r\n", 400},
      {"NUL in the id",
       "PUT /v2/service_instances/a" + std::string(1, '\0') +
           "b?accepts_incomplete=true HTTP/1.1\r\n" + auth +
           fmt::format("Content-Length: {}\r\n\r\n", body.size()) + body,
       400},
      {"truncated JSON",
       put + auth + fmt::format("Content-Length: {}\r\n\r\n", body.size() - 1) +
           body.substr(0, body.size() - 1),
       400},
      {"deeply nested JSON",
       put + auth + "Content-Length: 200000\r\n\r\n" + std::string(100000, '[') +
           std::string(100000, ']'),
       400},
  };
  for (const auto& h : hostile) {
    SCOPED_TRACE(h.what);
    const auto started = std::chrono::steady_clock::now();
    const std::string answer = exchange(server.port(), h.request);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
    EXPECT_EQ(answer.rfind(fmt::format("HTTP/1.1 {} ", h.status), 0), 0u) << answer.substr(0, 200);
    EXPECT_NE(answer.find("Content-Type: application/json"), std::string::npos);
    auto doc = json::parse(answer.substr(std::min(answer.size(), answer.find("\r\n\r\n") + 4)),
                           nullptr, false);
    ASSERT_TRUE(doc.is_object()) << answer.substr(0, 200);
    EXPECT_FALSE(doc.value("description", "").empty());
    EXPECT_FALSE(doc.contains("error")) << "OSB keeps `error` for its CamelCase codes";
  }
  EXPECT_EQ(snapshot(), json::array({0}));
  EXPECT_EQ(instanceDirectories(), 0u);
  const std::string catalog =
      exchange(server.port(), "GET /v2/catalog HTTP/1.1\r\n" + auth + "\r\n");
  EXPECT_EQ(catalog.rfind("HTTP/1.1 200 ", 0), 0u) << "the broker still answers";
  server.stop();
}

TEST_F(OsbRulesTest, ABindOrUnbindTheServerNeverStartedLeavesTheInstanceFree) {
  seedInstance("free", OpState::kSucceeded, true);
  seedBinding("free", "b-old", true);
  const std::string bindings = "/v2/service_instances/free/service_bindings/";
  const std::string unbind_query = "?service_id=" + std::string(kService) + "&plan_id=" + kSingle;
  for (const auto& [method, target, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"PUT", bindings + "b-1", dump(bindBody())},
           {"DELETE", bindings + "b-old" + unbind_query, ""}}) {
    SCOPED_TRACE(method);
    {
      // Accepted, then dropped unrun, as the HTTP server does when too many are running (503).
      HttpReply refused = api_->handle(request(method, target, body));
      ASSERT_TRUE(static_cast<bool>(refused.deferred)) << refused.body;
    }
    HttpReply next = api_->handle(request("PUT", bindings + "b-2", dump(bindBody())));
    EXPECT_TRUE(static_cast<bool>(next.deferred))
        << "the instance is still claimed: " << next.status << " " << next.body;
  }
}

}  // namespace
}  // namespace pgf
