// pgfleetctl reinit: which members are asked in which order, what is sent, what the answers mean
// and what is printed, over a MemoryDcs and a scripted MemberApi.
#include <sstream>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/reinit.h"
#include "dcs/memory/memory_dcs.h"
#include "fakes/fake_clock.h"
#include "fakes/scripted_member_api.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

using Sent = SentRequest;

Result<ApiAnswer> reinitialized(const Sent&) {
  return ApiAnswer{200, "reinitialized from n1"};
}

const std::string kN2 = "http://127.0.0.1:8009";
const std::string kN3 = "http://127.0.0.1:8010";
const std::string kN4 = "http://127.0.0.1:8011";

// n1 leads (API on 8008); n2, n3 and n4 replicate (8009, 8010, 8011).
class CtlReinit : public ::testing::Test {
 protected:
  void SetUp() override {
    store_->put("/service/demo/initialize", "7312345678901234567");
    store_->put("/service/demo/config", R"({"ttl":30,"loop_wait":10})");
    store_->put("/service/demo/leader", "n1");
    store_->put("/service/demo/members/n1", fakeMemberKey(8008, "master"));
    store_->put("/service/demo/members/n2", fakeMemberKey(8009, "replica"));
    store_->put("/service/demo/members/n3", fakeMemberKey(8010, "replica"));
    store_->put("/service/demo/members/n4", fakeMemberKey(8011, "replica"));
    target_.scope = "demo";
    target_.etcd.hosts = {"127.0.0.1:2379"};
  }
  ClusterView view() { return dcs_.load().value(); }

  // The planned members, or the planning error.
  std::vector<std::string> planned(const std::vector<std::string>& names) {
    auto targets = planReinit("demo", view(), names);
    if (!targets.ok())
      return {targets.error().message};
    std::vector<std::string> out;
    for (const auto& t : targets.value())
      out.push_back(t.member + " " + t.address.base_url);
    return out;
  }

  ReinitRequest request(std::vector<std::string> members) {
    ReinitRequest r;
    r.members = std::move(members);
    return r;
  }

  FakeClock clock_;
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>(clock_);
  MemoryDcs dcs_{store_, "demo", "pgfleetctl", 30};
  CtlTarget target_;
  std::ostringstream out_, err_;
};

TEST_F(CtlReinit, PlansTheNamedMembersInTheOrderGiven) {
  EXPECT_THAT(planned({"n3", "n2"}), ElementsAre("n3 " + kN3, "n2 " + kN2));
  EXPECT_THAT(planned({"n4", "n2", "n4"}), ElementsAre("n4 " + kN4, "n2 " + kN2));
}

TEST_F(CtlReinit, RefusesNoMemberUnknownMembersAndTheLeader) {
  EXPECT_THAT(planned({}), ElementsAre("name the members to reinitialize"));
  EXPECT_THAT(planned({"n2", "n9"}), ElementsAre("member n9 does not exist in cluster demo"));
  EXPECT_THAT(planned({"n2", "n1"}), ElementsAre("n1 is the leader: switch over first"));
  // The first wrong name is the one named.
  EXPECT_THAT(planned({"n1", "n9"}), ElementsAre("n1 is the leader: switch over first"));
  EXPECT_EQ(planReinit("demo", view(), {"n9"}).error().code, ErrorCode::kInvalidArgument);

  // Without a leader key, a member that publishes the primary role is the leader all the same.
  store_->erase("/service/demo/leader");
  EXPECT_THAT(planned({"n1"}), ElementsAre("n1 is the leader: switch over first"));
  // With one, the key decides: here n2 holds it while n1 still says primary.
  store_->put("/service/demo/leader", "n2");
  EXPECT_THAT(planned({"n2"}), ElementsAre("n2 is the leader: switch over first"));
  EXPECT_THAT(planned({"n1"}), ElementsAre("n1 " + std::string("http://127.0.0.1:8008")));
}

TEST_F(CtlReinit, RefusesMembersWithoutAUsableApi) {
  store_->put("/service/demo/members/n5", R"({"role":"replica","state":"stopped"})");
  EXPECT_THAT(planned({"n2", "n5"}),
              ElementsAre("member n5 publishes no REST API address (api_url)"));
  store_->put("/service/demo/members/n6", R"({"role":"replica","api_url":"https://h:8008/"})");
  EXPECT_THAT(planned({"n6"}), ElementsAre("member n6: api_url \"https://h:8008/\" is not usable: "
                                           "pgfleetctl does not speak https"));
}

TEST(CtlReinitRequest, BuildsTheBody) {
  ReinitRequest request;
  EXPECT_EQ(reinitBody(request).dump(), "{}");
  request.force = true;
  EXPECT_EQ(reinitBody(request).dump(), R"({"force":true})");
  EXPECT_GE(request.timeout, Millis(600000));
}

TEST(CtlReinitOutcome, ReadsTheAnswers) {
  const MemberTarget t{"n3", "replica", {}};
  auto line = [&](const Result<ApiAnswer>& answer) {
    return outcomeLine(reinitOutcome(t, answer));
  };
  EXPECT_EQ(line(ApiAnswer{200, "reinitialized from n1\n"}), "n3: reinitialized from n1");
  EXPECT_EQ(line(ApiAnswer{200, ""}), "n3: reinitialized");
  EXPECT_EQ(line(ApiAnswer{503, "reinitialize failed: pg_basebackup exited with status 1"}),
            "n3: failed: 503 reinitialize failed: pg_basebackup exited with status 1");
  EXPECT_EQ(line(ApiAnswer{503, "reinitialize refused: no leader to clone from"}),
            "n3: failed: 503 reinitialize refused: no leader to clone from");
  EXPECT_EQ(line(ApiAnswer{404, R"({"error":"not found"})"}), "n3: failed: 404 not found");
  EXPECT_EQ(line(makeError(ErrorCode::kTimeout, "POST http://h:1/reinitialize: timed out")),
            "n3: failed: POST http://h:1/reinitialize: timed out");
  EXPECT_EQ(reinitOutcome(t, ApiAnswer{200, "x"}).outcome, Outcome::kDone);
  // Nothing is ever "skipped": a 412 is a failure.
  EXPECT_EQ(reinitOutcome(t, ApiAnswer{412, "x"}).outcome, Outcome::kFailed);

  EXPECT_EQ(reinitOutcomesJson({reinitOutcome(t, ApiAnswer{200, "reinitialized from n1"}),
                                reinitOutcome(t, makeError(ErrorCode::kIo, "refused")),
                                {"n4", "replica", Outcome::kNotTried, std::nullopt, "not tried"}}),
            json::parse(R"([
              {"member":"n3","status":200,"message":"reinitialized from n1"},
              {"member":"n3","status":null,"message":"refused"},
              {"member":"n4","status":null,"message":"not tried"}])"));
}

TEST_F(CtlReinit, ReinitializesOneMemberAtATimeInTheOrderGiven) {
  target_.api_credentials = {"admin", "s3cret"};
  ScriptedApi api(reinitialized);
  EXPECT_EQ(runReinit(target_, dcs_, api, request({"n3", "n2"}), OutputFormat::kPretty, out_, err_),
            0);
  EXPECT_THAT(api.urls(), ElementsAre(kN3 + "/reinitialize", kN2 + "/reinitialize"));
  for (const auto& s : api.sent) {
    EXPECT_EQ(s.method, "POST");
    EXPECT_EQ(s.body, "{}");
    EXPECT_EQ(s.timeout, kReinitTimeout);
    EXPECT_THAT(s.headers,
                ::testing::Contains(std::make_pair(std::string("Authorization"),
                                                   basicAuthorization({"admin", "s3cret"}))));
    EXPECT_THAT(s.headers, ::testing::Contains(std::make_pair(std::string("Content-Type"),
                                                              std::string("application/json"))));
  }
  EXPECT_EQ(err_.str(),
            "reinitializing n3 from the leader ...\n"
            "reinitializing n2 from the leader ...\n");
  EXPECT_EQ(out_.str(),
            "n3: reinitialized from n1\n"
            "n2: reinitialized from n1\n");
}

TEST_F(CtlReinit, ForceAndALongerTimeoutAreSent) {
  ScriptedApi api(reinitialized);
  ReinitRequest r = request({"n2"});
  r.force = true;
  r.timeout = Millis(900000);
  EXPECT_EQ(runReinit(target_, dcs_, api, r, OutputFormat::kJson, out_, err_), 0);
  ASSERT_EQ(api.sent.size(), 1u);
  EXPECT_EQ(api.sent[0].bodyJson(), json({{"force", true}}));
  EXPECT_EQ(api.sent[0].timeout, Millis(900000));
  EXPECT_EQ(err_.str(), "");
  EXPECT_EQ(json::parse(out_.str()),
            json::parse(R"([{"member":"n2","status":200,"message":"reinitialized from n1"}])"));
}

TEST_F(CtlReinit, TheFirstFailureStopsTheRest) {
  ScriptedApi api([](const Sent& s) -> Result<ApiAnswer> {
    if (s.url == kN3 + "/reinitialize")
      return ApiAnswer{503, "reinitialize failed: pg_basebackup exited with status 1\n"};
    return ApiAnswer{200, "reinitialized from n1"};
  });
  EXPECT_EQ(
      runReinit(target_, dcs_, api, request({"n2", "n3", "n4"}), OutputFormat::kPretty, out_, err_),
      1);
  EXPECT_THAT(api.urls(), ElementsAre(kN2 + "/reinitialize", kN3 + "/reinitialize"));
  EXPECT_EQ(out_.str(),
            "n2: reinitialized from n1\n"
            "n3: failed: 503 reinitialize failed: pg_basebackup exited with status 1\n"
            "n4: not tried\n");
  EXPECT_EQ(err_.str(),
            "reinitializing n2 from the leader ...\n"
            "reinitializing n3 from the leader ...\n"
            "pgfleetctl: reinit failed on n3: 503 reinitialize failed: pg_basebackup exited with "
            "status 1; not tried: n4\n");

  std::ostringstream out, err;
  ScriptedApi down(
      [](const Sent&) { return Result<ApiAnswer>(makeError(ErrorCode::kTimeout, "timed out")); });
  EXPECT_EQ(
      runReinit(target_, dcs_, down, request({"n4", "n2", "n3"}), OutputFormat::kJson, out, err),
      1);
  EXPECT_EQ(down.sent.size(), 1u);
  EXPECT_EQ(err.str(),
            "pgfleetctl: reinit failed on n4: POST http://127.0.0.1:8011/reinitialize: timed out; "
            "not tried: n2, n3\n");
  EXPECT_EQ(json::parse(out.str()), json::parse(R"([
    {"member":"n4","status":null,"message":"POST http://127.0.0.1:8011/reinitialize: timed out"},
    {"member":"n2","status":null,"message":"not tried"},
    {"member":"n3","status":null,"message":"not tried"}])"));
}

TEST_F(CtlReinit, ARefusalOrMissingCredentialsIsAFailure) {
  ScriptedApi api([](const Sent&) -> Result<ApiAnswer> {
    return ApiAnswer{503, "reinitialize refused: no leader to clone from"};
  });
  EXPECT_EQ(runReinit(target_, dcs_, api, request({"n2"}), OutputFormat::kPretty, out_, err_), 1);
  EXPECT_EQ(err_.str(),
            "reinitializing n2 from the leader ...\n"
            "pgfleetctl: reinit failed on n2: 503 reinitialize refused: no leader to clone from\n");

  std::ostringstream out, err;
  ScriptedApi locked([](const Sent&) -> Result<ApiAnswer> { return ApiAnswer{401, "no"}; });
  EXPECT_EQ(
      runReinit(target_, dcs_, locked, request({"n2", "n3"}), OutputFormat::kPretty, out, err), 1);
  EXPECT_EQ(locked.sent.size(), 1u);
  EXPECT_EQ(out.str(),
            "n2: failed: the REST API at http://127.0.0.1:8009 refused the credentials (401): give "
            "-c with restapi.authentication\n"
            "n3: not tried\n");
  EXPECT_THAT(err.str(), ::testing::EndsWith("; not tried: n3\n"));
}

TEST_F(CtlReinit, NothingIsSentWhenAMemberIsWrong) {
  ScriptedApi api(reinitialized);
  for (const auto& [names, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, "name the members to reinitialize"},
           {{"n2", "n9"}, "member n9 does not exist in cluster demo"},
           {{"n2", "n1"}, "n1 is the leader: switch over first"}}) {
    std::ostringstream out, err;
    EXPECT_EQ(runReinit(target_, dcs_, api, request(names), OutputFormat::kPretty, out, err), 1);
    EXPECT_EQ(out.str(), "");
    EXPECT_EQ(err.str(), "pgfleetctl: " + message + "\n");
  }
  EXPECT_TRUE(api.sent.empty());

  store_->erase("/service/demo/initialize");
  store_->erase("/service/demo/config");
  store_->erase("/service/demo/leader");
  for (const char* name : {"n1", "n2", "n3", "n4"})
    store_->erase(std::string("/service/demo/members/") + name);
  EXPECT_EQ(runReinit(target_, dcs_, api, request({"n2"}), OutputFormat::kPretty, out_, err_), 1);
  EXPECT_THAT(err_.str(), ::testing::HasSubstr("no cluster demo"));
  EXPECT_TRUE(api.sent.empty());
}

}  // namespace
}  // namespace pgf::ctl
