// decide() with a switchover or manual failover request in the "failover" key: the leader's
// hand-over, its refusals, scheduled requests, and the election among the replicas afterwards.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fakes/peer_status_builder.h"
#include "ha/decision.h"
#include "ha/switchover.h"

namespace pgf {
namespace {

using std::chrono::seconds;

const MonoTime kNow = MonoTime{} + std::chrono::hours(1);
const WallTime kWall = WallTime{} + std::chrono::hours(24 * 365 * 56);
const std::string kSysid = "7300000000000000001";
const int64_t kPos = 0x5000060;

MemberInfo member(const std::string& name, const std::string& role) {
  MemberInfo m;
  m.name = name;
  m.role = role;
  m.state = "running";
  m.xlog_location = kPos;
  m.timeline = 1;
  return m;
}

ClusterView cluster(const std::string& leader, nlohmann::json failover) {
  ClusterView c;
  c.initialize = kSysid;
  for (const char* name : {"node1", "node2", "node3"})
    c.members.push_back(member(name, name == leader ? "primary" : "replica"));
  if (!leader.empty())
    c.leader = LeaderInfo{leader, 10, 1};
  if (!failover.is_null())
    c.failover = std::move(failover);
  c.status = nlohmann::json{{"optime", kPos}};
  return c;
}

LocalPostgres pg(bool primary, int64_t lsn = kPos) {
  LocalPostgres p;
  p.data_dir_empty = false;
  p.sysid = kSysid;
  p.timeline = 1;
  p.wal_position = lsn;
  p.running = true;
  p.accepting = true;
  p.in_recovery = !primary;
  p.control_state = primary ? ControlState::kInProduction : ControlState::kInArchiveRecovery;
  return p;
}

PeerStatus peer(const std::string& name, int64_t lsn = kPos) {
  return streamingPeer(name, lsn);
}

HaInput leaderInput(nlohmann::json failover, std::vector<PeerStatus> peers) {
  HaInput in;
  in.now = kNow;
  in.wall_now = kWall;
  in.self = "node1";
  in.cluster = cluster("node1", std::move(failover));
  in.pg = pg(true);
  in.memory.lease_deadline = kNow + seconds(20);
  in.peers = std::move(peers);
  return in;
}

HaInput replicaInput(const std::string& self, nlohmann::json failover,
                     std::vector<PeerStatus> peers) {
  HaInput in;
  in.now = kNow;
  in.wall_now = kWall;
  in.self = self;
  in.cluster = cluster("", std::move(failover));
  in.pg = pg(false);
  in.memory.following = "node1";
  in.peers = std::move(peers);
  return in;
}

std::string at(WallTime t) {
  return formatIsoTime(t);
}

void expectAction(const Decision& d, Action action, const std::string& reason_part = "") {
  EXPECT_EQ(actionName(d.action), actionName(action)) << d.reason;
  if (!reason_part.empty()) {
    EXPECT_NE(d.reason.find(reason_part), std::string::npos) << d.reason;
  }
}

TEST(HaSwitchover, LeaderHandsOverToAHealthyCandidate) {
  HaInput in = leaderInput({{"leader", "node1"}, {"member", "node3"}},
                           {peer("node2", kPos + 100), peer("node3")});
  EXPECT_TRUE(needsPeerStatus(in));
  Decision d = decide(in);
  expectAction(d, Action::kSwitchover, "switching over to node3");
  EXPECT_EQ(d.source, "node3");
  EXPECT_FALSE(d.clear_failover) << "the new leader removes the request once it leads";
}

TEST(HaSwitchover, LeaderWithoutCandidatePicksTheBestEligibleReplica) {
  PeerStatus ahead_but_nofailover = peer("node2", kPos + 500);
  ahead_but_nofailover.nofailover = true;
  Decision d =
      decide(leaderInput({{"leader", "node1"}}, {ahead_but_nofailover, peer("node3", kPos - 10)}));
  expectAction(d, Action::kSwitchover);
  EXPECT_EQ(d.source, "node3");
}

TEST(HaSwitchover, LeaderRefusesAnIneligibleCandidateAndRemovesTheRequest) {
  PeerStatus lagging = peer("node3", kPos - 2 * 1048576);
  PeerStatus nofailover = peer("node3");
  nofailover.nofailover = true;
  PeerStatus unreachable = peer("node3");
  unreachable.reachable = false;
  PeerStatus stopped = peer("node3");
  stopped.running = false;
  struct Case {
    PeerStatus candidate;
    std::string reason;
  } cases[] = {
      {lagging, "candidate node3 is 2097152 bytes behind the leader"},
      {nofailover, "candidate node3 is tagged nofailover"},
      {unreachable, "candidate node3 is not reachable"},
      {stopped, "candidate node3 is not running"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.reason);
    Decision d = decide(
        leaderInput({{"leader", "node1"}, {"member", "node3"}}, {peer("node2"), c.candidate}));
    expectAction(d, Action::kRenewLease, "switchover refused: " + c.reason);
    EXPECT_TRUE(d.clear_failover);
  }
  Decision d = decide(leaderInput({{"leader", "node1"}, {"member", "node9"}}, {peer("node2")}));
  expectAction(d, Action::kRenewLease, "candidate node9 is not a member of the cluster");
  EXPECT_TRUE(d.clear_failover);
  PeerStatus down = peer("node2");
  down.reachable = false;
  d = decide(leaderInput({{"leader", "node1"}}, {down, stopped}));
  expectAction(d, Action::kRenewLease, "no eligible replica (node3: not running; node2: not");
  EXPECT_TRUE(d.clear_failover);
}

TEST(HaSwitchover, RequestsNotForThisLeaderAreRemoved) {
  Decision d = decide(leaderInput({{"leader", "node2"}, {"member", "node3"}}, {}));
  expectAction(d, Action::kRenewLease, "addressed to node2");
  EXPECT_TRUE(d.clear_failover);
  d = decide(leaderInput({{"member", "node1"}}, {}));
  expectAction(d, Action::kRenewLease, "we already lead");
  EXPECT_TRUE(d.clear_failover);
  // An empty object is Patroni's way of clearing the key: nothing to do, nothing to remove.
  d = decide(leaderInput(nlohmann::json::object(), {}));
  expectAction(d, Action::kRenewLease, "renewing");
  EXPECT_FALSE(d.clear_failover);
}

TEST(HaSwitchover, ScheduledRequestWaitsForItsTimeAndExpiresWhenStale) {
  auto request = [](WallTime t) {
    return nlohmann::json{{"leader", "node1"}, {"member", "node3"}, {"scheduled_at", at(t)}};
  };
  HaInput later = leaderInput(request(kWall + seconds(60)), {peer("node3")});
  EXPECT_FALSE(needsPeerStatus(later));
  Decision d = decide(later);
  expectAction(d, Action::kRenewLease, "scheduled at");
  EXPECT_FALSE(d.clear_failover);

  d = decide(leaderInput(request(kWall - seconds(1)), {peer("node3")}));
  expectAction(d, Action::kSwitchover);

  d = decide(leaderInput(request(kWall - seconds(600)), {peer("node3")}));
  expectAction(d, Action::kRenewLease, "stale");
  EXPECT_TRUE(d.clear_failover);

  d = decide(leaderInput({{"leader", "node1"}, {"scheduled_at", "tomorrow"}}, {peer("node3")}));
  expectAction(d, Action::kRenewLease, "unreadable scheduled_at");
  EXPECT_TRUE(d.clear_failover);
}

TEST(HaSwitchover, PauseAndTheFenceComeFirst) {
  HaInput paused = leaderInput({{"leader", "node1"}, {"member", "node3"}}, {peer("node3")});
  paused.settings.paused = true;
  EXPECT_FALSE(needsPeerStatus(paused));
  Decision d = decide(paused);
  expectAction(d, Action::kRenewLease, "paused");
  EXPECT_FALSE(d.clear_failover);

  HaInput expired = leaderInput({{"leader", "node1"}, {"member", "node3"}}, {peer("node3")});
  expired.memory.lease_deadline = kNow - seconds(1);
  expectAction(decide(expired), Action::kDemote, "lease deadline passed");
}

TEST(HaSwitchover, TheCandidateTakesTheFreeLeaseEvenBehindAnotherReplica) {
  HaInput in = replicaInput("node3", {{"leader", "node1"}, {"member", "node3"}},
                            {peer("node1"), peer("node2", kPos + 100)});
  in.pg = pg(false, kPos);
  EXPECT_TRUE(needsPeerStatus(in));
  Decision d = decide(in);
  expectAction(d, Action::kAcquireAndPromote, "requested switchover candidate");
  EXPECT_TRUE(d.clear_failover);
}

TEST(HaSwitchover, TheCandidateStillRespectsTheLagBoundAndARunningPrimary) {
  HaInput lagging = replicaInput("node3", {{"member", "node3"}}, {peer("node2")});
  lagging.pg = pg(false, kPos - 2 * 1048576);
  Decision d = decide(lagging);
  expectAction(d, Action::kNone, "behind the last known leader position");
  EXPECT_FALSE(d.clear_failover);

  PeerStatus still_primary = peer("node1");
  still_primary.in_recovery = false;
  d = decide(replicaInput("node3", {{"member", "node3"}}, {still_primary}));
  expectAction(d, Action::kNone, "node1 still runs as a primary");
}

TEST(HaSwitchover, OtherReplicasWaitForAHealthyCandidate) {
  Decision d = decide(replicaInput("node2", {{"leader", "node1"}, {"member", "node3"}},
                                   {peer("node1"), peer("node3")}));
  expectAction(d, Action::kNone, "waiting for node3");

  // The candidate died: the others elect among themselves, and the former leader, which stepped
  // down, does not count as a better candidate.
  PeerStatus gone = peer("node3");
  gone.reachable = false;
  d = decide(replicaInput("node2", {{"leader", "node1"}, {"member", "node3"}},
                          {peer("node1", kPos + 100), gone}));
  expectAction(d, Action::kAcquireAndPromote);
  EXPECT_TRUE(d.clear_failover);
}

TEST(HaSwitchover, TheFormerLeaderTakesTheLeaseBackOnlyIfNobodyElseCan) {
  Decision d = decide(replicaInput("node1", {{"leader", "node1"}}, {peer("node2"), peer("node3")}));
  expectAction(d, Action::kNone, "we handed the lease over");

  PeerStatus down2 = peer("node2");
  down2.reachable = false;
  PeerStatus down3 = peer("node3");
  down3.running = false;
  d = decide(replicaInput("node1", {{"leader", "node1"}}, {down2, down3}));
  expectAction(d, Action::kAcquireAndPromote);
  EXPECT_TRUE(d.clear_failover);
}

TEST(HaSwitchover, AScheduledRequestDoesNotChangeAnElection) {
  HaInput in = replicaInput(
      "node2",
      {{"leader", "node1"}, {"member", "node3"}, {"scheduled_at", at(kWall + seconds(60))}},
      {peer("node3", kPos + 100)});
  expectAction(decide(in), Action::kNone, "node3 is ahead");
}

TEST(HaSwitchover, ParsesTheKeyAsPatroniWritesIt) {
  EXPECT_FALSE(parseSwitchoverRequest(nlohmann::json::object()));
  EXPECT_FALSE(parseSwitchoverRequest("node2"));
  auto r = parseSwitchoverRequest(
      {{"leader", "a"}, {"member", "b"}, {"scheduled_at", "2026-12-01T10:00:00+01:00"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->leader, "a");
  EXPECT_EQ(r->member, "b");
  ASSERT_TRUE(r->scheduled_at);
  EXPECT_EQ(formatIsoTime(*r->scheduled_at), "2026-12-01T09:00:00.000+00:00");
  EXPECT_EQ(switchoverRequestJson(*r)["scheduled_at"], "2026-12-01T10:00:00+01:00");
  EXPECT_EQ(switchoverRequestJson(SwitchoverRequest{"a", "", std::nullopt, ""}),
            (nlohmann::json{{"leader", "a"}}));
}

TEST(IsoTime, ParsesZonesAndFractionsAndRefusesAmbiguity) {
  auto t = parseIsoTime("2026-12-01T10:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(formatIsoTime(*t), "2026-12-01T10:00:00.000+00:00");
  EXPECT_EQ(parseIsoTime("2026-12-01 10:00:00.250-0130"),
            parseIsoTime("2026-12-01T11:30:00.25+00:00"));
  EXPECT_EQ(formatIsoTime(*parseIsoTime("2026-12-01T11:30:00.25+00:00")),
            "2026-12-01T11:30:00.250+00:00");
  for (const char* bad :
       {"2026-12-01T10:00:00", "2026-12-01", "2026-02-30T10:00:00Z", "2026-12-01T25:00:00Z",
        "2026-12-01T10:00:00+0", "tomorrow", "", "2026-12-01T10:00:00Z trailing"})
    EXPECT_FALSE(parseIsoTime(bad)) << bad;
}

}  // namespace
}  // namespace pgf
