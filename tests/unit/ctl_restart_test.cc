// pgfleetctl restart and reload: which members are asked in which order, what is sent, what the
// answers mean and what is printed, over a MemoryDcs and a scripted MemberApi.
#include <functional>
#include <sstream>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/restart.h"
#include "dcs/memory/memory_dcs.h"
#include "fakes/fake_clock.h"
#include "fakes/scripted_member_api.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Sent = SentRequest;

Result<ApiAnswer> restarted(const Sent&) {
  return ApiAnswer{200, "restarted successfully"};
}

const std::string kN1 = "http://127.0.0.1:8008";
const std::string kN2 = "http://127.0.0.1:8009";
const std::string kN3 = "http://127.0.0.1:8010";

// n2 leads (API on 8009); n1 and n3 replicate (8008, 8010): name order is not rolling order.
class CtlRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    store_->put("/service/demo/initialize", "7312345678901234567");
    store_->put("/service/demo/config", R"({"ttl":30,"loop_wait":10})");
    store_->put("/service/demo/leader", "n2");
    store_->put("/service/demo/members/n1", fakeMemberKey(8008, "replica"));
    store_->put("/service/demo/members/n2", fakeMemberKey(8009, "master"));
    store_->put("/service/demo/members/n3", fakeMemberKey(8010, "replica"));
    target_.scope = "demo";
    target_.etcd.hosts = {"127.0.0.1:2379"};
  }
  ClusterView view() { return dcs_.load().value(); }

  std::vector<std::string> planned(const std::vector<std::string>& names) {
    auto plan = planMembers("demo", view(), names);
    if (!plan.ok())
      return {plan.error().message};
    std::vector<std::string> out;
    for (const auto& t : plan->targets)
      out.push_back(t.member + " " + t.role);
    return out;
  }

  FakeClock clock_;
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>(clock_);
  MemoryDcs dcs_{store_, "demo", "pgfleetctl", 30};
  CtlTarget target_;
  std::ostringstream out_, err_;
};

TEST(CtlRestartRequest, ParsesRolesAndBuildsTheBody) {
  EXPECT_EQ(parseRestartRole("any").value(), RestartRole::kAny);
  EXPECT_EQ(parseRestartRole("primary").value(), RestartRole::kPrimary);
  EXPECT_EQ(parseRestartRole("master").value(), RestartRole::kPrimary);
  EXPECT_EQ(parseRestartRole("replica").value(), RestartRole::kReplica);
  EXPECT_EQ(parseRestartRole("leader").error().message,
            "unknown role \"leader\": use primary, replica or any");

  RestartRequest request;
  EXPECT_EQ(restartBody(request).dump(), "{}");
  request.role = RestartRole::kPrimary;
  EXPECT_EQ(restartBody(request), json({{"role", "primary"}}));
  request.role = RestartRole::kReplica;
  request.pending = true;
  EXPECT_EQ(restartBody(request), json({{"role", "replica"}, {"restart_pending", true}}));
  request.role = RestartRole::kAny;
  EXPECT_EQ(restartBody(request), json({{"restart_pending", true}}));
  EXPECT_GE(request.timeout, Millis(120000));
  request.scheduled = "now";
  EXPECT_EQ(restartBody(request), json({{"restart_pending", true}}));
  request.scheduled = "2030-01-01T02:00:00+00:00";
  EXPECT_EQ(restartBody(request),
            json({{"restart_pending", true}, {"schedule", "2030-01-01T02:00:00+00:00"}}));
}

TEST_F(CtlRestart, PlansNamedMembersOrEveryMemberWithAnApi) {
  EXPECT_THAT(planned({}), ElementsAre("n1 replica", "n2 leader", "n3 replica"));
  EXPECT_THAT(planned({"n3", "n2", "n3"}), ElementsAre("n2 leader", "n3 replica"));
  EXPECT_THAT(planned({"n1", "n9"}), ElementsAre("member n9 does not exist in cluster demo"));

  store_->put("/service/demo/members/n4", R"({"role":"replica","state":"stopped"})");
  auto plan = planMembers("demo", view(), {});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->targets.size(), 3u);
  EXPECT_THAT(plan->left_out, ElementsAre("n4"));
  EXPECT_THAT(planned({"n4"}), ElementsAre("member n4 publishes no REST API address (api_url)"));

  store_->put("/service/demo/members/n5", R"({"role":"replica","api_url":"https://h:8008/"})");
  EXPECT_THAT(planned({}), ElementsAre("member n5: api_url \"https://h:8008/\" is not usable: "
                                       "pgfleetctl does not speak https"));

  for (const char* name : {"n1", "n2", "n3", "n5"})
    store_->erase(std::string("/service/demo/members/") + name);
  EXPECT_THAT(planned({}),
              ElementsAre("no member of cluster demo publishes a REST API address (api_url)"));
}

TEST_F(CtlRestart, RollsThroughTheReplicasByNameThenTheLeader) {
  store_->put("/service/demo/members/n0", fakeMemberKey(8011, "replica"));
  auto plan = planMembers("demo", view(), {});
  ASSERT_TRUE(plan.ok());
  std::vector<std::string> order;
  for (const auto& t : rollingOrder(plan->targets))
    order.push_back(t.member);
  EXPECT_THAT(order, ElementsAre("n0", "n1", "n3", "n2"));

  // The order does not depend on the order it is given in.
  std::vector<MemberTarget> scrambled = {
      {"b", "replica", {}}, {"a", "leader", {}}, {"c", "replica", {}}, {"a0", "replica", {}}};
  order.clear();
  for (const auto& t : rollingOrder(scrambled))
    order.push_back(t.member);
  EXPECT_THAT(order, ElementsAre("a0", "b", "c", "a"));

  // Without a leader key, a member that publishes the primary role still goes last.
  store_->erase("/service/demo/leader");
  EXPECT_THAT(planned({}), ElementsAre("n0 replica", "n1 replica", "n2 leader", "n3 replica"));
}

TEST(CtlRestartOutcome, ReadsTheAnswers) {
  const MemberTarget t{"n3", "replica", {}};
  auto line = [&](const Result<ApiAnswer>& answer) {
    return outcomeLine(restartOutcome(t, answer));
  };
  EXPECT_EQ(line(ApiAnswer{200, "restarted successfully\n"}), "n3: restarted successfully");
  EXPECT_EQ(line(ApiAnswer{200, ""}), "n3: restarted");
  EXPECT_EQ(line(ApiAnswer{412, "restart conditions are not satisfied"}),
            "n3: skipped: restart conditions are not satisfied");
  EXPECT_EQ(line(ApiAnswer{503, "restart failed: pg_ctl: timed out"}),
            "n3: failed: 503 restart failed: pg_ctl: timed out");
  EXPECT_EQ(line(ApiAnswer{400, "unknown restart condition \"x\""}),
            "n3: failed: 400 unknown restart condition \"x\"");
  EXPECT_EQ(line(makeError(ErrorCode::kTimeout, "POST http://h:1/restart: timed out")),
            "n3: failed: POST http://h:1/restart: timed out");
  EXPECT_EQ(restartOutcome(t, ApiAnswer{412, ""}).outcome, Outcome::kSkipped);
  EXPECT_EQ(line(ApiAnswer{202, "Restart scheduled"}), "n3: Restart scheduled");
  EXPECT_EQ(line(ApiAnswer{409, "Another restart is already scheduled"}),
            "n3: failed: 409 Another restart is already scheduled");
  EXPECT_EQ(outcomeLine({"n1", "leader", Outcome::kNotTried, std::nullopt, "not tried"}),
            "n1: not tried");

  EXPECT_EQ(reloadOutcome(t, ApiAnswer{202, "reload scheduled"}).outcome, Outcome::kDone);
  EXPECT_EQ(reloadOutcome(t, ApiAnswer{200, "No changes to apply"}).outcome, Outcome::kDone);
  EXPECT_EQ(outcomeLine(reloadOutcome(t, ApiAnswer{503, "reload failed: x"})),
            "n3: failed: 503 reload failed: x");
  // A reload is never "skipped": 412 is a failure there.
  EXPECT_EQ(reloadOutcome(t, ApiAnswer{412, "no"}).outcome, Outcome::kFailed);

  EXPECT_EQ(outcomesJson({restartOutcome(t, ApiAnswer{412, "restart conditions are not satisfied"}),
                          restartOutcome(t, makeError(ErrorCode::kIo, "refused"))}),
            json::parse(R"([
              {"member":"n3","role":"replica","status":412,
               "message":"restart conditions are not satisfied"},
              {"member":"n3","role":"replica","status":null,"message":"refused"}])"));
}

TEST_F(CtlRestart, RestartsOneMemberAtATimeAndTheLeaderLast) {
  target_.api_credentials = {"admin", "s3cret"};
  ScriptedApi api(restarted);
  RestartRequest request;
  request.pending = true;
  EXPECT_EQ(runRestart(target_, dcs_, api, request, OutputFormat::kPretty, out_, err_), 0);
  EXPECT_THAT(api.urls(), ElementsAre(kN1 + "/restart", kN3 + "/restart", kN2 + "/restart"));
  for (const auto& s : api.sent)
    EXPECT_EQ(s.method, "POST");
  for (const auto& s : api.sent) {
    EXPECT_EQ(s.body, R"({"restart_pending":true})");
    EXPECT_GE(s.timeout, Millis(120000));
    EXPECT_THAT(s.headers,
                ::testing::Contains(std::make_pair(std::string("Authorization"),
                                                   basicAuthorization({"admin", "s3cret"}))));
  }
  EXPECT_EQ(err_.str(),
            "restarting n1 (replica) ...\n"
            "restarting n3 (replica) ...\n"
            "restarting n2 (leader) ...\n");
  EXPECT_EQ(out_.str(),
            "n1: restarted successfully\n"
            "n3: restarted successfully\n"
            "n2: restarted successfully\n");
}

TEST_F(CtlRestart, AScheduledRestartIsSentToEveryMemberWithItsTime) {
  ScriptedApi api([](const Sent&) -> Result<ApiAnswer> {
    return ApiAnswer{202, "Restart scheduled"};
  });
  RestartRequest request;
  request.scheduled = "2030-01-01T02:00:00+01:00";
  EXPECT_EQ(runRestart(target_, dcs_, api, request, OutputFormat::kPretty, out_, err_), 0);
  ASSERT_EQ(api.sent.size(), 3u);
  for (const auto& s : api.sent)
    EXPECT_EQ(s.body, R"({"schedule":"2030-01-01T02:00:00+01:00"})");
  EXPECT_EQ(err_.str(),
            "scheduling a restart of n1 (replica) ...\n"
            "scheduling a restart of n3 (replica) ...\n"
            "scheduling a restart of n2 (leader) ...\n");
  EXPECT_EQ(out_.str(), "n1: Restart scheduled\nn3: Restart scheduled\nn2: Restart scheduled\n");

  // A time without a zone is refused before anything is sent.
  ScriptedApi untouched(restarted);
  std::ostringstream out, err;
  request.scheduled = "2030-01-01T02:00:00";
  EXPECT_EQ(runRestart(target_, dcs_, untouched, request, OutputFormat::kPretty, out, err), 1);
  EXPECT_TRUE(untouched.sent.empty());
  EXPECT_THAT(err.str(), ::testing::HasSubstr("invalid --scheduled"));
}

TEST_F(CtlRestart, MembersSkippedByAConditionAreNotFailures) {
  ScriptedApi api([](const Sent& s) -> Result<ApiAnswer> {
    if (s.url != kN2 + "/restart")
      return ApiAnswer{412, "restart conditions are not satisfied"};
    return ApiAnswer{200, "restarted successfully"};
  });
  RestartRequest request;
  request.role = RestartRole::kPrimary;
  EXPECT_EQ(runRestart(target_, dcs_, api, request, OutputFormat::kJson, out_, err_), 0);
  EXPECT_EQ(api.sent.size(), 3u);
  EXPECT_EQ(api.sent[0].body, R"({"role":"primary"})");
  EXPECT_EQ(err_.str(), "");
  EXPECT_EQ(json::parse(out_.str()), json::parse(R"([
    {"member":"n1","role":"replica","status":412,"message":"restart conditions are not satisfied"},
    {"member":"n3","role":"replica","status":412,"message":"restart conditions are not satisfied"},
    {"member":"n2","role":"leader","status":200,"message":"restarted successfully"}])"));
}

TEST_F(CtlRestart, AFailedReplicaStopsTheRollBeforeTheLeader) {
  ScriptedApi api([](const Sent& s) -> Result<ApiAnswer> {
    if (s.url == kN3 + "/restart")
      return ApiAnswer{503, "restart failed: postgres did not start\n"};
    return ApiAnswer{200, "restarted successfully"};
  });
  EXPECT_EQ(runRestart(target_, dcs_, api, {}, OutputFormat::kPretty, out_, err_), 1);
  EXPECT_THAT(api.urls(), ElementsAre(kN1 + "/restart", kN3 + "/restart"));
  EXPECT_EQ(out_.str(),
            "n1: restarted successfully\n"
            "n3: failed: 503 restart failed: postgres did not start\n"
            "n2: not tried\n");
  EXPECT_EQ(err_.str(),
            "restarting n1 (replica) ...\n"
            "restarting n3 (replica) ...\n"
            "pgfleetctl: restart failed on n3: 503 restart failed: postgres did not start; not "
            "tried: n2\n");

  std::ostringstream out, err;
  ScriptedApi down([](const Sent&) {
    return Result<ApiAnswer>(makeError(ErrorCode::kIo, "connect: connection refused"));
  });
  EXPECT_EQ(runRestart(target_, dcs_, down, {}, OutputFormat::kJson, out, err), 1);
  EXPECT_EQ(down.sent.size(), 1u);
  EXPECT_EQ(err.str(),
            "pgfleetctl: restart failed on n1: POST http://127.0.0.1:8008/restart: connect: "
            "connection refused; not tried: n3, n2\n");
  const json printed = json::parse(out.str());
  ASSERT_EQ(printed.size(), 3u);
  EXPECT_EQ(
      printed[2],
      json({{"member", "n2"}, {"role", "leader"}, {"status", nullptr}, {"message", "not tried"}}));
}

TEST_F(CtlRestart, TheLeaderFailingIsAFailureToo) {
  ScriptedApi api([](const Sent& s) -> Result<ApiAnswer> {
    if (s.url == kN2 + "/restart")
      return ApiAnswer{401, "no"};
    return ApiAnswer{200, "restarted successfully"};
  });
  RestartRequest request;
  request.members = {"n2", "n1"};
  EXPECT_EQ(runRestart(target_, dcs_, api, request, OutputFormat::kPretty, out_, err_), 1);
  EXPECT_THAT(api.urls(), ElementsAre(kN1 + "/restart", kN2 + "/restart"));
  EXPECT_THAT(err_.str(), HasSubstr("\npgfleetctl: restart failed on n2: the REST API at "
                                    "http://127.0.0.1:8009 refused the credentials (401)"));
  EXPECT_THAT(err_.str(), ::testing::Not(HasSubstr("not tried")));
}

TEST_F(CtlRestart, NothingIsRestartedWhenAMemberIsUnknown) {
  ScriptedApi api(restarted);
  RestartRequest request;
  request.members = {"n1", "n9"};
  EXPECT_EQ(runRestart(target_, dcs_, api, request, OutputFormat::kPretty, out_, err_), 1);
  EXPECT_TRUE(api.sent.empty());
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(), "pgfleetctl: member n9 does not exist in cluster demo\n");
}

TEST_F(CtlRestart, MembersWithoutAnApiAreLeftOutWithAWarning) {
  store_->put("/service/demo/members/n4", R"({"role":"replica","state":"stopped"})");
  ScriptedApi api(restarted);
  EXPECT_EQ(runRestart(target_, dcs_, api, {}, OutputFormat::kJson, out_, err_), 0);
  EXPECT_EQ(api.sent.size(), 3u);
  EXPECT_EQ(err_.str(), "pgfleetctl: warning: left out n4: no REST API address (api_url)\n");
}

TEST_F(CtlRestart, ReloadAsksEveryMemberEvenAfterAFailure) {
  ScriptedApi api([](const Sent& s) -> Result<ApiAnswer> {
    if (s.url == kN1 + "/reload")
      return makeError(ErrorCode::kTimeout, "timed out");
    return ApiAnswer{202, "reload scheduled"};
  });
  EXPECT_EQ(runReload(target_, dcs_, api, {}, kReloadTimeout, OutputFormat::kPretty, out_, err_),
            1);
  EXPECT_THAT(api.urls(), ElementsAre(kN1 + "/reload", kN2 + "/reload", kN3 + "/reload"));
  for (const auto& s : api.sent)
    EXPECT_EQ(s.method, "POST");
  EXPECT_EQ(api.sent[0].body, "");
  EXPECT_EQ(api.sent[0].timeout, kReloadTimeout);
  EXPECT_EQ(out_.str(),
            "n1: failed: POST http://127.0.0.1:8008/reload: timed out\n"
            "n2: reload scheduled\n"
            "n3: reload scheduled\n");
  EXPECT_EQ(err_.str(),
            "reloading n1 (replica) ...\n"
            "reloading n2 (leader) ...\n"
            "reloading n3 (replica) ...\n"
            "pgfleetctl: reload failed on n1\n");

  std::ostringstream out, err;
  ScriptedApi ok([](const Sent&) { return Result<ApiAnswer>(ApiAnswer{202, "reload scheduled"}); });
  EXPECT_EQ(runReload(target_, dcs_, ok, {"n3"}, kReloadTimeout, OutputFormat::kJson, out, err), 0);
  EXPECT_THAT(ok.urls(), ElementsAre(kN3 + "/reload"));
  EXPECT_EQ(err.str(), "");
  EXPECT_EQ(json::parse(out.str()),
            json::parse(
                R"([{"member":"n3","role":"replica","status":202,"message":"reload scheduled"}])"));
}

}  // namespace
}  // namespace pgf::ctl
