// pgfleetctl's broker verbs against a scripted broker and a fake clock: what create, update and
// delete send, how the progress display follows last_operation (Retry-After, the default interval,
// a terminal or not), how an operation's end becomes the exit code, and bind/unbind's output.
#include <map>
#include <sstream>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/broker_bind.h"
#include "ctl/broker_instance.h"
#include "fakes/fake_clock.h"
#include "fakes/scripted_member_api.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kBase = "http://127.0.0.1:8080";

const char* kCatalog = R"({"services":[{"name":"postgresql","id":"svc","bindable":true,"plans":[
  {"id":"p-single","name":"single-small","description":"one server"},
  {"id":"p-cluster","name":"cluster-small","description":"three nodes"}]}]})";

const char* kInstance = R"({"instance_id":"mydb","service_id":"svc","plan_id":"p-single"})";

// A broker that answers from a table of (method, path) -> answers; the last answer of a list
// repeats.
class FakeBroker {
 public:
  void on(const std::string& method, const std::string& path, std::vector<ApiAnswer> answers) {
    script_[method + " " + path] = std::move(answers);
  }

  Result<ApiAnswer> answer(const SentRequest& r) {
    const std::string key = r.method + " " + r.url.substr(std::string(kBase).size());
    auto it = script_.find(key);
    if (it == script_.end())
      return ApiAnswer{404, R"({"description":"no such endpoint"})"};
    auto& answers = it->second;
    ApiAnswer a = answers.front();
    if (answers.size() > 1)
      answers.erase(answers.begin());
    return a;
  }

 private:
  std::map<std::string, std::vector<ApiAnswer>> script_;
};

class BrokerVerbsTest : public ::testing::Test {
 protected:
  BrokerVerbsTest()
      : api_([this](const SentRequest& r) { return broker_.answer(r); }),
        client_(api_, target(), Millis(5000)),
        sleeper_{clock_, [this](Millis d) {
                   sleeps_.push_back(d);
                   clock_.advance(d);
                 }} {
    broker_.on("GET", "/v2/catalog", {{200, kCatalog}});
    broker_.on("GET", "/pgfleet/v1/instances/mydb", {{200, kInstance}});
  }

  static BrokerTarget target() {
    BrokerTarget t;
    t.address = parseApiUrl(kBase).value();
    t.credentials = {"broker", "pw"};
    return t;
  }

  VerbOutput output(OutputFormat format = OutputFormat::kPretty, bool tty = false) {
    return VerbOutput{format, out_, err_, tty};
  }

  std::vector<std::string> methodsAndPaths() const {
    std::vector<std::string> out;
    for (const auto& s : api_.sent)
      out.push_back(s.method + " " + s.url.substr(std::string(kBase).size()));
    return out;
  }

  FakeBroker broker_;
  ScriptedApi api_;
  BrokerClient client_;
  FakeClock clock_;
  std::vector<Millis> sleeps_;
  Sleeper sleeper_;
  std::ostringstream out_, err_;
};

CreateRequest createRequest(const std::string& plan) {
  CreateRequest r;
  r.instance_id = "mydb";
  r.plan = plan;
  return r;
}

UpdateRequest updateRequest(const std::string& plan) {
  UpdateRequest r;
  r.instance_id = "mydb";
  r.plan = plan;
  return r;
}

const std::string kLastOp =
    "/v2/service_instances/mydb/last_operation?operation=provision-7&"
    "service_id=svc&plan_id=p-cluster";

TEST_F(BrokerVerbsTest, CreateResolvesThePlanPutsAndFollowsTheOperationToItsEnd) {
  broker_.on("PUT", "/v2/service_instances/mydb?accepts_incomplete=true",
             {{202, R"({"operation":"provision-7"})"}});
  broker_.on("GET", kLastOp,
             {{200, R"({"state":"in progress","description":"provisioning"})"},
              {200,
               R"({"state":"in progress","description":"provisioning: nodes started"})",
               {{"Retry-After", "2"}}},
              {200, R"({"state":"in progress","description":"provisioning: nodes started"})"},
              {200, R"({"state":"succeeded","description":"the instance is ready"})"}});
  CreateRequest req = createRequest("cluster-small");
  req.settings = {"database=shop"};
  EXPECT_EQ(runCreate(client_, req, sleeper_, output()), 0) << err_.str();

  EXPECT_THAT(
      methodsAndPaths(),
      ElementsAre("GET /v2/catalog", "PUT /v2/service_instances/mydb?accepts_incomplete=true",
                  "GET " + kLastOp, "GET " + kLastOp, "GET " + kLastOp, "GET " + kLastOp));
  EXPECT_EQ(
      api_.sent[1].bodyJson(),
      json::parse(R"({"service_id":"svc","plan_id":"p-cluster","organization_guid":"pgfleetctl",
              "space_guid":"pgfleetctl","parameters":{"database":"shop"},
              "context":{"platform":"pgfleetctl","organization_guid":"pgfleetctl",
                         "space_guid":"pgfleetctl","instance_name":"mydb"}})"));
  // 500 ms between polls, except after the broker's Retry-After: 2.
  EXPECT_THAT(sleeps_, ElementsAre(Millis(500), Millis(500), Millis(2000), Millis(500)));
  // Not a terminal: one line per description.
  EXPECT_EQ(err_.str(),
            "mydb: provisioning (0 s)\n"
            "mydb: provisioning: nodes started (1 s)\n"
            "mydb: the instance is ready (3 s)\n");
  EXPECT_EQ(out_.str(), "instance mydb created in 3.5 s: the instance is ready\n");
}

TEST_F(BrokerVerbsTest, OnATerminalTheProgressIsOneLineRewritten) {
  broker_.on("PUT", "/v2/service_instances/mydb?accepts_incomplete=true",
             {{202, R"({"operation":"provision-7"})"}});
  broker_.on("GET", kLastOp,
             {{200, R"({"state":"in progress","description":"provisioning"})"},
              {200, R"({"state":"succeeded","description":"the instance is ready"})"}});
  CreateRequest req = createRequest("p-cluster");
  EXPECT_EQ(runCreate(client_, req, sleeper_, output(OutputFormat::kPretty, true)), 0);
  EXPECT_EQ(err_.str(),
            "\r\033[Kmydb: provisioning (0 s)\r\033[Kmydb: the instance is ready (1 s)\n");
}

TEST_F(BrokerVerbsTest, AFailedOperationExitsOneWithTheBrokersDescription) {
  broker_.on("PUT", "/v2/service_instances/mydb?accepts_incomplete=true",
             {{202, R"({"operation":"provision-7"})"}});
  broker_.on("GET", kLastOp,
             {{200, R"({"state":"failed","description":"provisioning failed: no port free"})"}});
  CreateRequest req = createRequest("cluster-small");
  req.wait.timeout = Millis(60000);
  EXPECT_EQ(runCreate(client_, req, sleeper_, output(OutputFormat::kJson)), 1);
  EXPECT_EQ(err_.str(),
            "pgfleetctl: creating instance mydb failed: provisioning failed: no port free\n");
  // json mode: no progress, one document.
  auto doc = json::parse(out_.str());
  EXPECT_EQ(doc["state"], "failed");
  EXPECT_EQ(doc["operation"], "provision-7");
  EXPECT_EQ(doc["description"], "provisioning failed: no port free");
}

TEST_F(BrokerVerbsTest, TheWaitEndsAtTheTimeoutWithItsOwnExitCode) {
  broker_.on("PUT", "/v2/service_instances/mydb?accepts_incomplete=true",
             {{202, R"({"operation":"provision-7"})", {{"Retry-After", "5"}}}});
  broker_.on("GET", kLastOp, {{200, R"({"state":"in progress","description":"provisioning"})"}});
  CreateRequest req = createRequest("cluster-small");
  req.wait.timeout = Millis(6700);
  EXPECT_EQ(runCreate(client_, req, sleeper_, output()), kExitGaveUp);
  // The last sleep ends at the deadline, never past it.
  EXPECT_THAT(sleeps_,
              ElementsAre(Millis(5000), Millis(500), Millis(500), Millis(500), Millis(200)));
  EXPECT_THAT(err_.str(), HasSubstr("pgfleetctl: gave up waiting for instance mydb after"));
}

TEST_F(BrokerVerbsTest, AnUnknownPlanListsThePlansAndSendsNothing) {
  CreateRequest req = createRequest("huge");
  EXPECT_EQ(runCreate(client_, req, sleeper_, output()), 1);
  EXPECT_EQ(err_.str(),
            "pgfleetctl: no plan \"huge\" in the catalog: the plans are single-small, "
            "cluster-small\n");
  EXPECT_THAT(methodsAndPaths(), ElementsAre("GET /v2/catalog"));
}

TEST_F(BrokerVerbsTest, ARefusedCreateShowsTheDescriptionAndNoWaitReturnsAtOnce) {
  broker_.on("PUT", "/v2/service_instances/mydb?accepts_incomplete=true",
             {{400, R"({"description":"parameters.database: does not match ^[a-z_]"})"},
              {202, R"({"operation":"provision-7"})"}});
  CreateRequest req = createRequest("single-small");
  req.settings = {"database=Bad"};
  EXPECT_EQ(runCreate(client_, req, sleeper_, output()), 1);
  EXPECT_EQ(
      err_.str(),
      "pgfleetctl: creating instance mydb: 400: parameters.database: does not match ^[a-z_]\n");

  req.wait.wait = false;
  out_.str("");
  EXPECT_EQ(runCreate(client_, req, sleeper_, output()), 0);
  EXPECT_EQ(
      out_.str(),
      "creating instance mydb (operation provision-7): follow it with pgfleetctl show mydb\n");
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(BrokerVerbsTest, DeleteSendsTheInstancesIdsAndWaitsUntilItIsGone) {
  const std::string del =
      "/v2/service_instances/mydb?service_id=svc&plan_id=p-single&accepts_incomplete=true";
  const std::string poll =
      "/v2/service_instances/mydb/last_operation?operation=deprovision-9&service_id=svc&"
      "plan_id=p-single";
  broker_.on("DELETE", del, {{202, R"({"operation":"deprovision-9"})"}});
  broker_.on("GET", poll,
             {{200, R"({"state":"in progress","description":"deprovisioning"})"}, {410, "{}"}});
  EXPECT_EQ(runDelete(client_, "mydb", WaitOptions{}, sleeper_, output()), 0) << err_.str();
  EXPECT_THAT(methodsAndPaths(), ElementsAre("GET /pgfleet/v1/instances/mydb", "DELETE " + del,
                                             "GET " + poll, "GET " + poll));
  EXPECT_EQ(out_.str(), "instance mydb deleted in 1.0 s\n");

  // The same in JSON, the broker answering 410 at the first poll.
  broker_.on("DELETE", del, {{202, R"({"operation":"deprovision-9"})"}});
  broker_.on("GET", poll, {{410, "{}"}});
  out_.str("");
  EXPECT_EQ(runDelete(client_, "mydb", WaitOptions{}, sleeper_, output(OutputFormat::kJson)), 0);
  auto doc = json::parse(out_.str());
  EXPECT_EQ(doc["state"], "gone");
  EXPECT_EQ(doc["description"], "the instance is gone");
}

TEST_F(BrokerVerbsTest, DeletingAnInstanceThatIsGoneSucceeds) {
  broker_.on("GET", "/pgfleet/v1/instances/gone",
             {{404, R"({"description":"no instance \"gone\""})"}});
  EXPECT_EQ(runDelete(client_, "gone", WaitOptions{}, sleeper_, output()), 0);
  EXPECT_EQ(out_.str(), "instance gone deleted: it was already gone\n");
  EXPECT_THAT(methodsAndPaths(), ElementsAre("GET /pgfleet/v1/instances/gone"));

  // Gone between the look-up and the DELETE: the broker's 410.
  broker_.on("DELETE",
             "/v2/service_instances/mydb?service_id=svc&plan_id=p-single&accepts_incomplete=true",
             {{410, "{}"}});
  out_.str("");
  EXPECT_EQ(runDelete(client_, "mydb", WaitOptions{}, sleeper_, output(OutputFormat::kJson)), 0);
  EXPECT_EQ(json::parse(out_.str())["state"], "gone");
}

TEST_F(BrokerVerbsTest, UpdateSendsOnlyWhatChangesAndShowsARefusal) {
  broker_.on("PATCH", "/v2/service_instances/mydb?accepts_incomplete=true",
             {{422, R"({"description":"changing an instance's plan is not supported"})"}});
  UpdateRequest req = updateRequest("cluster-small");
  EXPECT_EQ(runUpdate(client_, req, sleeper_, output()), 1);
  EXPECT_EQ(api_.sent.back().bodyJson(), json::parse(R"({"service_id":"svc","plan_id":"p-cluster",
                            "previous_values":{"plan_id":"p-single"}})"));
  EXPECT_EQ(err_.str(),
            "pgfleetctl: updating instance mydb: 422: changing an instance's plan is not "
            "supported\n");

  UpdateRequest nothing = updateRequest("");
  err_.str("");
  EXPECT_EQ(runUpdate(client_, nothing, sleeper_, output()), 1);
  EXPECT_EQ(err_.str(), "pgfleetctl: nothing to change: give --plan or parameters\n");
}

TEST_F(BrokerVerbsTest, BindPrintsTheCredentialsAndUnbindToleratesAGoneBinding) {
  const std::string bind = "/v2/service_instances/mydb/service_bindings/app%201";
  broker_.on("PUT", bind,
             {{201, R"({"credentials":{"uri":"postgresql://u:p@127.0.0.1:20000/app","port":20000,
                        "username":"u"}})"}});
  EXPECT_EQ(runBind(client_, "mydb", "app 1", output()), 0);
  EXPECT_EQ(out_.str(),
            "port:      20000\n"
            "uri:       postgresql://u:p@127.0.0.1:20000/app\n"
            "username:  u\n");
  EXPECT_EQ(api_.sent.back().bodyJson()["plan_id"], "p-single");

  broker_.on("DELETE", bind + "?service_id=svc&plan_id=p-single", {{200, "{}"}, {410, "{}"}});
  out_.str("");
  EXPECT_EQ(runUnbind(client_, "mydb", "app 1", output()), 0);
  EXPECT_EQ(runUnbind(client_, "mydb", "app 1", output()), 0);
  EXPECT_EQ(out_.str(),
            "binding app 1 of instance mydb removed: its role is dropped\n"
            "binding app 1 of instance mydb was already gone\n");

  broker_.on("PUT", bind,
             {{422, R"({"error":"ConcurrencyError","description":"an operation is running"})"}});
  EXPECT_EQ(runBind(client_, "mydb", "app 1", output()), 1);
  EXPECT_EQ(err_.str(),
            "pgfleetctl: binding app 1 to instance mydb: 422 ConcurrencyError: an operation is "
            "running\n");
}

}  // namespace
}  // namespace pgf::ctl
