// The REST API's cluster-changing endpoints over the in-memory DCS: request validation with
// Patroni's status codes and sentences, the "failover" key they write, the wait for the new
// leader, and PATCH/PUT /config.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/cluster_actions.h"
#include "dcs/memory/memory_dcs.h"
#include "dcs/memory/memory_store.h"
#include "fakes/fake_clock.h"
#include "fakes/peer_status_builder.h"

namespace pgf {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const int64_t kPos = 0x5000060;

PeerStatus peer(const std::string& name, int64_t lsn = kPos) {
  return streamingPeer(name, lsn);
}

class ClusterActionsTest : public ::testing::Test {
 protected:
  ClusterActionsTest() {
    for (const char* name : {"node1", "node2", "node3"}) {
      nodes_.push_back(std::make_unique<MemoryDcs>(store_, "demo", name, 30));
      json data = {{"conn_url", "postgres://127.0.0.1:5432/postgres"},
                   {"api_url", "http://127.0.0.1:8008/patroni"},
                   {"state", "running"},
                   {"role", std::string(name) == "node1" ? "primary" : "replica"},
                   {"xlog_location", kPos}};
      EXPECT_TRUE(nodes_.back()->touchMember(data).ok());
    }
    EXPECT_TRUE(*nodes_[0]->acquireLeader());
    EXPECT_TRUE(nodes_[0]->setConfig(json{{"ttl", 30}, {"loop_wait", 10}}, 0).ok());
    EXPECT_TRUE(nodes_[0]->setStatus(json{{"optime", kPos}}).ok());
    peers_ = {peer("node2"), peer("node3")};
  }

  ClusterActions actions(Millis wait = Millis(5000)) {
    return ClusterActions(
        *nodes_[0], [this](const ClusterView&) { return peers_; },
        [this] {
          AgentStatus s;
          s.last_decision.reason = last_reason_;
          s.settings.paused = paused_;
          return s;
        },
        system_clock_, Millis(5), wait);
  }

  // Runs `action` while a thread plays the agents: once the request is in the "failover" key, it
  // calls `react` once.
  HttpReply whileAgentsReact(const std::function<HttpReply()>& action,
                             const std::function<void()>& react) {
    std::atomic<bool> done{false};
    std::thread agents([&] {
      while (!done) {
        if (!failoverKey().is_null()) {
          react();
          return;
        }
        std::this_thread::sleep_for(Millis(2));
      }
    });
    HttpReply r = action();
    done = true;
    agents.join();
    return r;
  }

  json failoverKey() {
    auto c = nodes_[0]->load();
    EXPECT_TRUE(c.ok());
    return c->failover.value_or(json());
  }

  FakeClock store_clock_;
  SystemClock system_clock_;
  bool paused_ = false;  // what the status snapshot says
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>(store_clock_);
  std::vector<std::unique_ptr<MemoryDcs>> nodes_;
  std::vector<PeerStatus> peers_;
  std::string last_reason_;
};

std::string inOneHour() {
  return formatIsoTime(std::chrono::system_clock::now() + std::chrono::hours(1));
}

TEST_F(ClusterActionsTest, RefusesMalformedAndImpossibleRequestsWithPatronisCodes) {
  auto a = actions();
  struct Case {
    bool failover;
    std::string body;
    int status;
    std::string says;
  } cases[] = {
      {false, "not json", 400, "must be a JSON object"},
      {false, "[1]", 400, "must be a JSON object"},
      {false, R"({"leader": 5})", 400, "\"leader\" must be a string"},
      {true, R"({"leader": "node1"})", 400, "only to a specific candidate"},
      {false, R"({"candidate": "node2"})", 400, "only from a specific leader"},
      {false, R"({"leader": "node2"})", 412, "leader name does not match"},
      {false, R"({"leader": "node1", "candidate": "node9"})", 412, "candidate does not exists"},
      {false, R"({"leader": "node1", "candidate": "node1"})", 412, "already the leader"},
      {false, R"({"leader": "node1", "scheduled_at": "2030-01-01T10:00:00"})", 400,
       "Timezone information is mandatory"},
      {false, R"({"leader": "node1", "scheduled_at": "soon"})", 422, "Unable to parse"},
      {false, R"({"leader": "node1", "scheduled_at": "2020-01-01T10:00:00Z"})", 422, "in the past"},
      {true, R"({"candidate": "node2", "scheduled_at": ")" + inOneHour() + R"("})", 400,
       "possible only from a specific leader"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    HttpReply r = c.failover ? a.failover(c.body) : a.switchover(c.body);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_THAT(r.body, HasSubstr(c.says));
  }
  EXPECT_TRUE(failoverKey().is_null()) << "nothing was written";
}

TEST_F(ClusterActionsTest, RefusesIneligibleCandidatesWithTheReason) {
  auto a = actions();
  peers_ = {peer("node2", kPos - 4 * 1048576), peer("node3")};
  peers_[1].nofailover = true;
  HttpReply r = a.switchover(R"({"leader": "node1", "candidate": "node2"})");
  EXPECT_EQ(r.status, 412);
  EXPECT_THAT(r.body, HasSubstr("node2: 4194304 bytes behind the leader"));
  r = a.switchover(R"({"leader": "node1"})");
  EXPECT_EQ(r.status, 412);
  EXPECT_THAT(r.body, HasSubstr("no good candidates have been found"));
  EXPECT_THAT(r.body, HasSubstr("node3: tagged nofailover"));
  EXPECT_TRUE(failoverKey().is_null());
}

TEST_F(ClusterActionsTest, RefusesWhilePaused) {
  ASSERT_TRUE(nodes_[0]->setConfig(json{{"pause", true}}).ok());
  HttpReply r = actions().switchover(R"({"leader": "node1", "candidate": "node2"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_THAT(r.body, HasSubstr("paused"));
}

TEST_F(ClusterActionsTest, ScheduledSwitchoverIsWrittenAndCanBeCancelled) {
  auto a = actions();
  EXPECT_EQ(a.cancelSwitchover().status, 404);
  const std::string when = inOneHour();
  HttpReply r =
      a.switchover(R"({"leader": "node1", "candidate": "node3", "scheduled_at": ")" + when + "\"}");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.body, "Switchover scheduled");
  EXPECT_EQ(failoverKey(),
            (json{{"leader", "node1"}, {"member", "node3"}, {"scheduled_at", when}}));
  r = a.cancelSwitchover();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "scheduled switchover deleted");
  EXPECT_TRUE(failoverKey().is_null());
}

TEST_F(ClusterActionsTest, ImmediateSwitchoverAnswersOnceTheCandidateLeads) {
  // The leader hands over when it sees the request; the candidate takes the lease and removes
  // the request.
  HttpReply r = whileAgentsReact(
      [&] { return actions().switchover(R"({"leader": "node1", "candidate": "node3"})"); },
      [&] {
        EXPECT_TRUE(nodes_[0]->deleteLeader().ok());
        EXPECT_TRUE(*nodes_[2]->acquireLeader());
        EXPECT_TRUE(nodes_[2]->deleteFailover().ok());
      });
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "Successfully switched over to \"node3\"");
}

TEST_F(ClusterActionsTest, FailoverToANamedCandidateWorksWithoutALeader) {
  ASSERT_TRUE(nodes_[0]->deleteLeader().ok());
  HttpReply r = whileAgentsReact([&] { return actions().failover(R"({"candidate": "node2"})"); },
                                 [&] {
                                   EXPECT_EQ(failoverKey(), (json{{"member", "node2"}}));
                                   EXPECT_TRUE(*nodes_[1]->acquireLeader());
                                   EXPECT_TRUE(nodes_[1]->deleteFailover().ok());
                                 });
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "Successfully failed over to \"node2\"");
}

TEST_F(ClusterActionsTest, ARequestTheLeaderRemovesIsReportedAsFailedWithItsReason) {
  last_reason_ = "switchover refused: candidate node3 is not running; removing the request";
  HttpReply r = whileAgentsReact(
      [&] { return actions().switchover(R"({"leader": "node1", "candidate": "node3"})"); },
      [&] { EXPECT_TRUE(nodes_[0]->deleteFailover().ok()); });
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "Switchover failed: " + last_reason_);
}

TEST_F(ClusterActionsTest, NobodyActingEndsInStatusUnknownAfterTheWait) {
  HttpReply r = actions(Millis(100)).switchover(R"({"leader": "node1"})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "Switchover status unknown");
}

TEST_F(ClusterActionsTest, PatchMergesAndValidatesPutReplaces) {
  auto a = actions();
  HttpReply r =
      a.patchConfig(R"({"pause": true, "postgresql": {"parameters": {"work_mem": "8MB"}}})");
  EXPECT_EQ(r.status, 200) << r.body;
  json expected = {{"ttl", 30},
                   {"loop_wait", 10},
                   {"pause", true},
                   {"postgresql", {{"parameters", {{"work_mem", "8MB"}}}}}};
  EXPECT_EQ(json::parse(r.body), expected);
  EXPECT_EQ(nodes_[1]->load()->config, expected);

  r = a.patchConfig(R"({"pause": null, "loop_wait": 5})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(nodes_[1]->load()->config->value("loop_wait", 0), 5);
  EXPECT_FALSE(nodes_[1]->load()->config->contains("pause"));

  for (const char* bad : {R"({"ttl": 1})", R"({"ttl": "30"})", R"({"loop_wait": 0})",
                          R"({"pause": "yes"})", R"({"maximum_lag_on_failover": -1})",
                          R"({"postgresql": {"parameters": {"work_mem": {"a": 1}}}})",
                          R"({"postgresql": []})", "nonsense"}) {
    SCOPED_TRACE(bad);
    auto before = nodes_[1]->load()->config;
    r = a.patchConfig(bad);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(r.body, HasSubstr("error"));
    EXPECT_EQ(nodes_[1]->load()->config, before) << "nothing changed";
  }

  r = a.putConfig(R"({"ttl": 20, "loop_wait": 2, "retry_timeout": 5})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(nodes_[1]->load()->config, (json{{"ttl", 20}, {"loop_wait", 2}, {"retry_timeout", 5}}));
  EXPECT_EQ(a.putConfig(R"({"ttl": 0})").status, 400);
}

TEST_F(ClusterActionsTest, RestartReloadAndReinitializeAskTheLoop) {
  int restarts = 0;
  Status outcome = okStatus();
  std::optional<ScheduledRestart> scheduled;
  ClusterActions a = actions();
  Result<std::string> cloned = std::string("node1");
  a.setNodeControl({[&](Millis) {
                      ++restarts;
                      return outcome;
                    },
                    [&](Millis) { return okStatus(); }, [&](Millis) { return cloned; },
                    [&](const ScheduledRestart& r) {
                      if (scheduled)
                        return false;
                      scheduled = r;
                      return true;
                    },
                    [&] {
                      bool had = scheduled.has_value();
                      scheduled.reset();
                      return had;
                    }});
  EXPECT_TRUE(a.hasNodeControl());
  // The status snapshot says: a replica without a pending restart.
  EXPECT_EQ(a.restart(R"({"role": "primary"})").status, 412);
  EXPECT_EQ(a.restart(R"({"role": "master"})").body, "restart conditions are not satisfied");
  EXPECT_EQ(a.restart(R"({"restart_pending": true})").status, 412);
  EXPECT_EQ(restarts, 0);
  EXPECT_EQ(a.restart(R"({"role": "leader"})").status, 400);
  EXPECT_EQ(a.restart(R"({"color": "blue"})").status, 400);
  EXPECT_EQ(a.restart("[]").status, 400);
  EXPECT_EQ(restarts, 0);

  HttpReply r = a.restart(R"({"role": "replica"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "restarted successfully");
  EXPECT_EQ(a.restart("").status, 200);
  EXPECT_EQ(restarts, 2);
  outcome = makeError(ErrorCode::kTimeout, "not done within 110 s");
  r = a.restart("");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "restart failed: not done within 110 s");
  EXPECT_EQ(a.cancelRestart().status, 404);
  EXPECT_EQ(a.cancelRestart().body, "no restarts are scheduled");

  // A scheduled restart: the conditions are judged at its time, not now (this member is a replica).
  r = a.restart(R"({"schedule": "2030-01-01T02:00:00+00:00", "role": "primary"})");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "Restart scheduled");
  ASSERT_TRUE(scheduled);
  EXPECT_EQ(scheduled->schedule, "2030-01-01T02:00:00+00:00");
  EXPECT_EQ(scheduled->role, "primary");
  EXPECT_FALSE(scheduled->restart_pending);
  EXPECT_EQ(scheduled->at, *parseIsoTime("2030-01-01T02:00:00Z"));
  r = a.restart(R"({"schedule": "2031-01-01T00:00:00Z"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body, "Another restart is already scheduled");
  EXPECT_EQ(a.cancelRestart().body, "scheduled restart deleted");
  EXPECT_FALSE(scheduled);
  // Patroni's refusals of a bad time, and a bad condition beside a good time.
  EXPECT_EQ(a.restart(R"({"schedule": "2030-01-01T02:00:00"})").status, 400);
  EXPECT_EQ(a.restart(R"({"schedule": "next tuesday"})").status, 422);
  EXPECT_EQ(a.restart(R"({"schedule": "2020-01-01T00:00:00Z"})").body,
            "Cannot schedule restart in the past");
  EXPECT_EQ(a.restart(R"({"schedule": 5})").status, 400);
  EXPECT_EQ(a.restart(R"({"schedule": "2030-01-01T02:00:00Z", "role": "leader"})").status, 400);
  EXPECT_FALSE(scheduled);
  paused_ = true;
  r = a.restart(R"({"schedule": "2030-01-01T02:00:00Z"})");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "Can't schedule restart in the paused state");
  paused_ = false;
  EXPECT_FALSE(scheduled);
  EXPECT_EQ(restarts, 3);

  EXPECT_EQ(a.reload().status, 202);
  EXPECT_EQ(a.reload().body, "reload scheduled");

  EXPECT_EQ(a.reinitialize("").body, "reinitialized from node1");
  EXPECT_EQ(a.reinitialize(R"({"force": true})").status, 200);
  EXPECT_EQ(a.reinitialize(R"({"force": "yes"})").status, 400);
  EXPECT_EQ(a.reinitialize(R"({"wipe": true})").status, 400);
  cloned =
      makeError(ErrorCode::kInvalidArgument, "reinitialize refused: this member is the primary");
  HttpReply refused = a.reinitialize("");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.body, "reinitialize refused: this member is the primary");
}

TEST_F(ClusterActionsTest, PatchNeedsAConfigKey) {
  auto store = std::make_shared<MemoryStore>(store_clock_);
  MemoryDcs empty(store, "demo", "node1", 30);
  ClusterActions a(
      empty, [](const ClusterView&) { return std::vector<PeerStatus>{}; },
      [] { return AgentStatus{}; }, system_clock_);
  EXPECT_EQ(a.patchConfig(R"({"pause": true})").status, 503);
}

}  // namespace
}  // namespace pgf
