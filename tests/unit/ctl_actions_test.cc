// pgfleetctl switchover, failover, pause and resume: what they send to which member, and what they
// print, over a MemoryDcs and a scripted MemberApi.
#include <algorithm>
#include <functional>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/pause.h"
#include "ctl/switchover.h"
#include "dcs/memory/memory_dcs.h"
#include "fakes/fake_clock.h"
#include "fakes/scripted_member_api.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using Sent = SentRequest;

std::string memberJson(int api_port, const std::string& role, json extra = json::object()) {
  json m = {{"conn_url", "postgres://127.0.0.1:" + std::to_string(api_port - 2576) + "/postgres"},
            {"api_url", "http://127.0.0.1:" + std::to_string(api_port) + "/patroni"},
            {"state", role == "master" ? "running" : "streaming"},
            {"role", role},
            {"xlog_location", 0},
            {"timeline", 1}};
  m.update(extra);
  return m.dump();
}

// n1 leads (API on 8008), n2 and n3 replicate (8009, 8010).
class CtlActions : public ::testing::Test {
 protected:
  void SetUp() override {
    store_->put("/service/demo/initialize", "7312345678901234567");
    store_->put("/service/demo/config", R"({"ttl":30,"loop_wait":10})");
    store_->put("/service/demo/leader", "n1");
    store_->put("/service/demo/members/n1", memberJson(8008, "master"));
    store_->put("/service/demo/members/n2", memberJson(8009, "replica"));
    store_->put("/service/demo/members/n3", memberJson(8010, "replica"));
    target_.scope = "demo";
    target_.etcd.hosts = {"127.0.0.1:2379"};
  }
  ClusterView view() { return dcs_.load().value(); }

  FakeClock clock_;
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>(clock_);
  MemoryDcs dcs_{store_, "demo", "pgfleetctl", 30};
  CtlTarget target_;
  std::ostringstream out_, err_;
};

Result<ApiAnswer> ok200(const Sent&) {
  return ApiAnswer{200, "ok"};
}

TEST(CtlScheduledTime, AcceptsIso8601WithAZoneOnly) {
  for (const char* good : {"2024-05-01T10:00+02:00", "2024-05-01T08:00:00Z", "2024-05-01 10:00Z",
                           "2024-05-01T10:00:00.123456-0330", "2024-05-01t10:00:59+05"})
    EXPECT_TRUE(checkScheduledTime(good).ok()) << good;
  for (const char* bad :
       {"2024-05-01T10:00", "2024-05-01", "10:00Z", "2024-13-01T10:00Z", "2024-05-01T24:00Z",
        "2024-05-01T10:00:00.Z", "2024-05-01T10:00+2", "2024-05-01T10:00Z ", "tomorrow", ""})
    EXPECT_FALSE(checkScheduledTime(bad).ok()) << bad;
}

TEST_F(CtlActions, PlansASwitchoverFromTheDcsLeader) {
  auto plan = planSwitchover("demo", view(), {});
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  EXPECT_EQ(plan->member, "n1");
  EXPECT_EQ(plan->address.base_url, "http://127.0.0.1:8008");
  EXPECT_EQ(plan->path, "/switchover");
  EXPECT_EQ(plan->body, json({{"leader", "n1"}}));
  EXPECT_EQ(plan->progress, "switching over from n1 ...");

  auto to_n2 = planSwitchover("demo", view(), {"n1", "n2", "now"});
  ASSERT_TRUE(to_n2.ok());
  EXPECT_EQ(to_n2->body, json({{"leader", "n1"}, {"candidate", "n2"}}));
  EXPECT_EQ(to_n2->progress, "switching over from n1 to n2 ...");

  auto later = planSwitchover("demo", view(), {"", "n3", "2024-05-01T10:00+02:00"});
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(
      later->body,
      json({{"leader", "n1"}, {"candidate", "n3"}, {"scheduled_at", "2024-05-01T10:00+02:00"}}));
  EXPECT_EQ(later->progress, "scheduling a switchover from n1 to n3 at 2024-05-01T10:00+02:00 ...");
}

TEST_F(CtlActions, RefusesSwitchoversThatCannotWork) {
  auto message = [&](const SwitchoverRequest& r) {
    auto plan = planSwitchover("demo", view(), r);
    return plan.ok() ? std::string("ok") : plan.error().message;
  };
  EXPECT_EQ(message({"n2", "", ""}), "member n2 is not the leader of cluster demo");
  EXPECT_EQ(message({"", "n9", ""}), "member n9 does not exist in cluster demo");
  EXPECT_EQ(message({"", "n1", ""}), "switchover target and source are the same");
  EXPECT_THAT(message({"", "", "noon"}), StartsWith("invalid --scheduled \"noon\""));

  store_->put("/service/demo/members/n3",
              memberJson(8010, "replica", {{"tags", {{"nofailover", true}}}}));
  EXPECT_EQ(message({"", "n3", ""}), "member n3 is tagged nofailover: it cannot become the leader");
  store_->erase("/service/demo/members/n2");
  EXPECT_EQ(message({}), "no candidates found to switchover to");

  store_->put("/service/demo/members/n2", memberJson(8009, "replica"));
  store_->put("/service/demo/config", R"({"pause":true})");
  EXPECT_EQ(message({"", "", "2024-05-01T10:00Z"}),
            "can't schedule a switchover in the paused state");
  EXPECT_EQ(message({"", "n2", "now"}), "ok");

  store_->put("/service/demo/members/n1", R"({"role":"master","state":"running"})");
  EXPECT_EQ(message({}), "leader n1 publishes no REST API address (api_url)");
  store_->erase("/service/demo/leader");
  EXPECT_EQ(message({}), "cluster has no leader: use failover");
}

TEST_F(CtlActions, SwitchoverPrintsProgressAnswerAndTheNewTable) {
  target_.api_credentials = {"admin", "s3cret"};
  ScriptedApi api([&](const Sent&) -> Result<ApiAnswer> {
    // The agent answers once the candidate has taken over.
    store_->put("/service/demo/leader", "n2");
    store_->put("/service/demo/members/n1", memberJson(8008, "replica"));
    store_->put("/service/demo/members/n2", memberJson(8009, "master"));
    return ApiAnswer{200, "Successfully switched over to \"n2\"\n"};
  });
  EXPECT_EQ(runSwitchover(target_, dcs_, api, {"", "n2", ""}, OutputFormat::kPretty, out_, err_),
            0);
  ASSERT_EQ(api.sent.size(), 1u);
  EXPECT_EQ(api.sent[0].url, "http://127.0.0.1:8008/switchover");
  EXPECT_EQ(api.sent[0].method, "POST");
  EXPECT_EQ(api.sent[0].bodyJson(), json({{"leader", "n1"}, {"candidate", "n2"}}));
  EXPECT_THAT(api.sent[0].headers,
              ::testing::Contains(std::make_pair(std::string("Authorization"),
                                                 basicAuthorization({"admin", "s3cret"}))));
  EXPECT_EQ(err_.str(), "switching over from n1 to n2 ...\n");
  EXPECT_THAT(out_.str(), StartsWith("Successfully switched over to \"n2\"\n+ Cluster: demo"));
  EXPECT_THAT(out_.str(), HasSubstr("| n2     | 127.0.0.1:5433 | Leader  |"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("s3cret")));
}

TEST_F(CtlActions, SwitchoverInJsonPrintsOneObject) {
  ScriptedApi api([](const Sent&) {
    return Result<ApiAnswer>(ApiAnswer{202, "Switchover scheduled"});
  });
  EXPECT_EQ(runSwitchover(target_, dcs_, api, {"", "", "2024-05-01T10:00Z"}, OutputFormat::kJson,
                          out_, err_),
            0);
  EXPECT_EQ(err_.str(), "");
  EXPECT_EQ(json::parse(out_.str()), json({{"action", "switchover"},
                                           {"member", "n1"},
                                           {"status", 202},
                                           {"message", "Switchover scheduled"}}));
}

TEST_F(CtlActions, SwitchoverFailuresAreOneLine) {
  ScriptedApi refused([](const Sent&) {
    return Result<ApiAnswer>(ApiAnswer{412, "candidate name does not match with sync_standby\n"});
  });
  EXPECT_EQ(runSwitchover(target_, dcs_, refused, {"", "n2", ""}, OutputFormat::kJson, out_, err_),
            1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "pgfleetctl: switchover failed: 412 candidate name does not match with sync_standby\n");

  std::ostringstream out, err;
  ScriptedApi unauthorized([](const Sent&) { return Result<ApiAnswer>(ApiAnswer{401, "no"}); });
  EXPECT_EQ(runSwitchover(target_, dcs_, unauthorized, {}, OutputFormat::kJson, out, err), 1);
  EXPECT_EQ(err.str(),
            "pgfleetctl: the REST API at http://127.0.0.1:8008 refused the credentials (401): give "
            "-c with restapi.authentication\n");

  std::ostringstream out2, err2;
  ScriptedApi down([](const Sent&) {
    return Result<ApiAnswer>(makeError(ErrorCode::kIo, "connect: connection refused"));
  });
  EXPECT_EQ(runSwitchover(target_, dcs_, down, {}, OutputFormat::kJson, out2, err2), 1);
  EXPECT_EQ(err2.str(),
            "pgfleetctl: switchover failed: POST http://127.0.0.1:8008/switchover: connect: "
            "connection refused\n");

  std::ostringstream out3, err3;
  store_->erase("/service/demo/leader");
  EXPECT_EQ(runSwitchover(target_, dcs_, down, {}, OutputFormat::kPretty, out3, err3), 1);
  EXPECT_EQ(err3.str(), "pgfleetctl: cluster has no leader: use failover\n");
}

TEST_F(CtlActions, FailoverGoesToTheLeaderOrElseTheCandidate) {
  auto plan = planFailover("demo", view(), "n3");
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  EXPECT_EQ(plan->address.base_url, "http://127.0.0.1:8008");
  EXPECT_EQ(plan->body, json({{"candidate", "n3"}, {"leader", "n1"}}));
  EXPECT_EQ(plan->progress, "failing over to n3 ...");
  EXPECT_EQ(planFailover("demo", view(), "").error().message, "failover needs --candidate NAME");
  EXPECT_EQ(planFailover("demo", view(), "n1").error().message,
            "failover target and source are the same");

  store_->erase("/service/demo/leader");
  ScriptedApi api([](const Sent&) {
    return Result<ApiAnswer>(ApiAnswer{200, "Successfully failed over to \"n3\""});
  });
  EXPECT_EQ(runFailover(target_, dcs_, api, "n3", OutputFormat::kPretty, out_, err_), 0);
  ASSERT_EQ(api.sent.size(), 1u);
  EXPECT_EQ(api.sent[0].url, "http://127.0.0.1:8010/failover");
  EXPECT_EQ(api.sent[0].bodyJson(), json({{"candidate", "n3"}}));
  EXPECT_EQ(err_.str(), "failing over to n3 ...\n");
  EXPECT_THAT(out_.str(), StartsWith("Successfully failed over to \"n3\"\n+ Cluster: demo"));

  std::ostringstream out, err;
  ScriptedApi refused([](const Sent&) {
    return Result<ApiAnswer>(ApiAnswer{503, "failover is not possible"});
  });
  EXPECT_EQ(runFailover(target_, dcs_, refused, "n2", OutputFormat::kPretty, out, err), 1);
  EXPECT_EQ(err.str(),
            "failing over to n2 ...\npgfleetctl: failover failed: 503 failover is not possible\n");
}

TEST_F(CtlActions, PausePlanning) {
  EXPECT_FALSE(clusterPaused(view()));
  EXPECT_TRUE(checkPauseChange(view(), true).ok());
  EXPECT_EQ(checkPauseChange(view(), false).error().message, "cluster is not paused");
  store_->put("/service/demo/config", R"({"pause":true})");
  EXPECT_TRUE(clusterPaused(view()));
  EXPECT_EQ(checkPauseChange(view(), true).error().message, "cluster is already paused");

  store_->put("/service/demo/leader", "n2");
  store_->put("/service/demo/members/n4", R"({"role":"replica","api_url":"nonsense"})");
  auto targets = pauseTargets("demo", view());
  ASSERT_TRUE(targets.ok());
  std::vector<std::string> names;
  for (const auto& t : *targets)
    names.push_back(t.member);
  EXPECT_EQ(names, (std::vector<std::string>{"n2", "n1", "n3"}));

  EXPECT_EQ(reportedPause(R"({"state":"running","pause":true})"), true);
  EXPECT_EQ(reportedPause(R"({"state":"running"})"), false);
  EXPECT_EQ(reportedPause("<html>"), std::nullopt);
}

TEST_F(CtlActions, PauseAsksTheLeaderFirstAndTheOthersWhenItIsDown) {
  ScriptedApi api([](const Sent& s) -> Result<ApiAnswer> {
    if (s.url == "http://127.0.0.1:8008/config")
      return makeError(ErrorCode::kTimeout, "timed out");
    return ApiAnswer{200, R"({"pause":true})"};
  });
  Sleeper sleeper{clock_, [&](Millis d) { clock_.advance(d); }};
  EXPECT_EQ(runPause(target_, dcs_, api, {}, OutputFormat::kPretty, sleeper, out_, err_), 0);
  ASSERT_EQ(api.sent.size(), 2u);
  EXPECT_EQ(api.sent[0].method, "PATCH");
  EXPECT_EQ(api.sent[1].url, "http://127.0.0.1:8009/config");
  EXPECT_EQ(api.sent[1].bodyJson(), json({{"pause", true}}));
  EXPECT_EQ(out_.str(), "Success: cluster management is paused\n");
  EXPECT_EQ(err_.str(), "");

  std::ostringstream out, err;
  EXPECT_EQ(runPause(target_, dcs_, api, {false}, OutputFormat::kPretty, sleeper, out, err), 1);
  EXPECT_EQ(err.str(), "pgfleetctl: cluster is not paused\n");
}

TEST_F(CtlActions, ResumeSendsNullAndReportsFailures) {
  store_->put("/service/demo/config", R"({"pause":true})");
  Sleeper sleeper{clock_, [&](Millis d) { clock_.advance(d); }};
  ScriptedApi api(ok200);
  PauseOptions resume;
  resume.pause = false;
  EXPECT_EQ(runPause(target_, dcs_, api, resume, OutputFormat::kJson, sleeper, out_, err_), 0);
  ASSERT_EQ(api.sent.size(), 1u);
  EXPECT_EQ(api.sent[0].bodyJson().dump(), R"({"pause":null})");
  EXPECT_EQ(json::parse(out_.str()), json({{"action", "resume"},
                                           {"member", "n1"},
                                           {"status", 200},
                                           {"message", "Success: cluster management is resumed"}}));

  std::ostringstream out, err;
  ScriptedApi refused([](const Sent&) { return Result<ApiAnswer>(ApiAnswer{503, "dcs down"}); });
  EXPECT_EQ(runPause(target_, dcs_, refused, resume, OutputFormat::kPretty, sleeper, out, err), 1);
  EXPECT_EQ(err.str(), "pgfleetctl: resume failed: 503 dcs down\n");
  EXPECT_EQ(refused.sent.size(), 1u);  // an answer, even a refusal, ends the search

  std::ostringstream out2, err2;
  ScriptedApi down([](const Sent&) {
    return Result<ApiAnswer>(makeError(ErrorCode::kIo, "connection refused"));
  });
  EXPECT_EQ(runPause(target_, dcs_, down, resume, OutputFormat::kPretty, sleeper, out2, err2), 1);
  EXPECT_EQ(down.sent.size(), 3u);
  EXPECT_THAT(err2.str(), StartsWith("pgfleetctl: resume failed: no member's REST API answered "
                                     "(n1: PATCH http://127.0.0.1:8008/config: connection "
                                     "refused; n2: "));
  const std::string line = err2.str();
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST_F(CtlActions, PauseWaitPollsEveryMemberUntilAllAgree) {
  int naps = 0;  // n2 answers from the second poll on, n3 reports the pause from the fourth
  ScriptedApi api([&](const Sent& s) -> Result<ApiAnswer> {
    if (s.method == "PATCH")
      return ApiAnswer{200, "{}"};
    if (s.url == "http://127.0.0.1:8009/patroni" && naps < 1)
      return makeError(ErrorCode::kIo, "connection refused");
    if (s.url == "http://127.0.0.1:8010/patroni" && naps < 3)
      return ApiAnswer{200, R"({"state":"running"})"};
    return ApiAnswer{200, R"({"state":"running","pause":true})"};
  });
  Sleeper sleeper{clock_, [&](Millis d) {
                    EXPECT_EQ(d, Millis(1000));
                    clock_.advance(d);
                    ++naps;
                  }};
  PauseOptions options;
  options.wait = true;
  EXPECT_EQ(runPause(target_, dcs_, api, options, OutputFormat::kPretty, sleeper, out_, err_), 0);
  EXPECT_EQ(err_.str(),
            "waiting for 2 members (n2, n3) ...\n"
            "waiting for 1 member (n3) ...\n");
  EXPECT_EQ(out_.str(), "Success: cluster management is paused\n");
  EXPECT_EQ(naps, 3);
  EXPECT_EQ(api.sent.size(), 1u + 4 * 3);
}

TEST_F(CtlActions, PauseWaitGivesUpAfterItsTimeout) {
  ScriptedApi api([](const Sent& s) -> Result<ApiAnswer> {
    if (s.url == "http://127.0.0.1:8010/patroni")
      return ApiAnswer{200, R"({"pause":false})"};
    return ApiAnswer{200, R"({"pause":true})"};
  });
  const MonoTime start = clock_.now();
  Sleeper sleeper{clock_, [&](Millis d) { clock_.advance(d); }};
  PauseOptions options;
  options.wait = true;
  EXPECT_EQ(runPause(target_, dcs_, api, options, OutputFormat::kJson, sleeper, out_, err_), 1);
  EXPECT_EQ(clock_.now() - start, options.wait_timeout);
  // Every poll, the last one at the deadline too, had at least a poll interval to get its answer.
  ASSERT_EQ(api.sent.size(), 1u + 3 * 31);
  for (const auto& s : api.sent) {
    EXPECT_GE(s.timeout, options.poll_interval) << s.url;
    EXPECT_LE(s.timeout, options.request_timeout) << s.url;
  }
  EXPECT_EQ(api.sent.back().timeout, options.poll_interval);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(), "pgfleetctl: pause requested, but n3 did not apply it within 30 s\n");
}

}  // namespace
}  // namespace pgf::ctl
