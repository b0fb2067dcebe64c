// DCS failsafe mode: the failsafe key, the heartbeat, the primary's verdict on the members'
// answers, and the restraint it puts on the lease race (ha/failsafe.h).
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fakes/peer_status_builder.h"
#include "ha/decision.h"
#include "ha/failsafe.h"

namespace pgf {
namespace {

const MonoTime kNow = MonoTime{} + std::chrono::hours(1);
const int64_t kPos = 0x5000060;

ClusterView clusterWithoutLeader() {
  ClusterView c;
  c.initialize = "7300000000000000001";
  for (const char* name : {"node1", "node2", "node3"}) {
    MemberInfo m;
    m.name = name;
    m.role = "replica";
    m.state = "running";
    m.xlog_location = kPos;
    m.timeline = 1;
    m.api_url = std::string("http://127.0.0.1:800") + name[4] + "/patroni";
    c.members.push_back(m);
  }
  return c;
}

HaInput standbyWithoutLeader(const std::string& self) {
  HaInput in;
  in.now = kNow;
  in.self = self;
  in.cluster = clusterWithoutLeader();
  in.pg = runningStandby("7300000000000000001", kPos);
  in.settings.failsafe_mode = true;
  in.peers = {streamingPeer("node1", kPos - 100), streamingPeer("node3", kPos - 100)};
  return in;
}

TEST(HaFailsafe, TheKeyListsEveryMemberWithAnApiUrlAndTheLeader) {
  ClusterView c = clusterWithoutLeader();
  c.members[2].api_url.clear();  // a member that never published one cannot be asked
  auto key = failsafeMembersJson(c, "node1", "http://10.0.0.1:8008/patroni");
  EXPECT_EQ(key, (nlohmann::json{{"node1", "http://10.0.0.1:8008/patroni"},
                                 {"node2", "http://127.0.0.1:8002/patroni"}}));
  auto members = parseFailsafeMembers(key);
  EXPECT_EQ(members.size(), 2u);
  EXPECT_EQ(members["node2"], "http://127.0.0.1:8002/patroni");
  // Patroni's value is the same mapping; anything else reads as no members.
  EXPECT_TRUE(parseFailsafeMembers(nlohmann::json::array()).empty());
  EXPECT_EQ(parseFailsafeMembers({{"a", "http://x/patroni"}, {"b", 5}}).size(), 1u);
}

TEST(HaFailsafe, HeartbeatRoundTripsAndRejectsMalformedBodies) {
  FailsafeHeartbeat h{"node1", "postgres://127.0.0.1:5432/postgres",
                      "http://127.0.0.1:8008/patroni", 5};
  auto back = parseFailsafeHeartbeat(failsafeHeartbeatJson(h).dump());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->name, "node1");
  EXPECT_EQ(back->conn_url, h.conn_url);
  EXPECT_EQ(back->api_url, h.api_url);
  EXPECT_EQ(back->ttl, 5);
  // Patroni's own heartbeat has no ttl: the receiver's applies.
  auto patroni = parseFailsafeHeartbeat(R"({"name":"n1","conn_url":"x","api_url":"y"})");
  ASSERT_TRUE(patroni);
  EXPECT_EQ(patroni->ttl, 0);
  EXPECT_FALSE(parseFailsafeHeartbeat("not json"));
  EXPECT_FALSE(parseFailsafeHeartbeat("[1]"));
  EXPECT_FALSE(parseFailsafeHeartbeat(R"({"name":""})"));
  EXPECT_FALSE(parseFailsafeHeartbeat(R"({"name":7})"));
  auto huge = parseFailsafeHeartbeat(R"({"name":"n","ttl":-3})");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->ttl, 0);
}

TEST(HaFailsafe, ThePrimaryStaysOnlyWhenEveryOtherMemberAccepts) {
  std::map<std::string, std::string> members = {{"node1", "u1"}, {"node2", "u2"}, {"node3", "u3"}};
  EXPECT_FALSE(failsafeRefusal(members, "node1", {{"node2", true, ""}, {"node3", true, ""}}));

  auto one_silent =
      failsafeRefusal(members, "node1", {{"node2", true, ""}, {"node3", false, "timed out"}});
  ASSERT_TRUE(one_silent);
  EXPECT_NE(one_silent->find("node3 (timed out)"), std::string::npos) << *one_silent;

  auto not_asked = failsafeRefusal(members, "node1", {{"node2", true, ""}});
  ASSERT_TRUE(not_asked);
  EXPECT_NE(not_asked->find("node3 (not asked)"), std::string::npos) << *not_asked;

  auto refused = failsafeRefusal(
      members, "node1", {{"node2", false, "500 Running as a leader"}, {"node3", true, ""}});
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("Running as a leader"), std::string::npos);

  // A primary the key does not list, or an empty key, proves nothing.
  EXPECT_TRUE(failsafeRefusal(members, "node4", {{"node2", true, ""}, {"node3", true, ""}}));
  EXPECT_TRUE(failsafeRefusal({}, "node1", {}));
  // A single-member cluster has nobody to ask.
  EXPECT_FALSE(failsafeRefusal({{"node1", "u1"}}, "node1", {}));
}

TEST(HaFailsafe, AMemberThatAcceptedAHeartbeatDoesNotRaceForTheLease) {
  HaInput in = standbyWithoutLeader("node2");
  ASSERT_EQ(decide(in).action, Action::kAcquireAndPromote) << decide(in).reason;
  in.failsafe_leader = "node1";
  Decision d = decide(in);
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_NE(d.reason.find("node1 still runs as primary in failsafe mode"), std::string::npos)
      << d.reason;
  EXPECT_FALSE(needsPeerStatus(in));
  // Even the candidate of a manual failover waits.
  in.cluster->failover = nlohmann::json{{"member", "node2"}};
  EXPECT_EQ(decide(in).action, Action::kNone);
  // The promise only binds in failsafe mode.
  in.settings.failsafe_mode = false;
  EXPECT_EQ(decide(in).action, Action::kAcquireAndPromote);
}

TEST(HaFailsafe, AMemberMissingFromTheFailsafeKeyNeverTakesTheLease) {
  HaInput in = standbyWithoutLeader("node2");
  in.cluster->failsafe = nlohmann::json{{"node1", "u1"}, {"node3", "u3"}};
  Decision d = decide(in);
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_NE(d.reason.find("not in the failsafe key"), std::string::npos) << d.reason;
  // Listed: it races as usual.
  in.cluster->failsafe = nlohmann::json{{"node1", "u1"}, {"node2", "u2"}, {"node3", "u3"}};
  EXPECT_EQ(decide(in).action, Action::kAcquireAndPromote) << decide(in).reason;
  // An empty or unreadable key restricts nobody.
  in.cluster->failsafe = nlohmann::json::object();
  EXPECT_EQ(decide(in).action, Action::kAcquireAndPromote);
}

TEST(HaFailsafe, APrimaryWithoutItsKeyStillTakesItBackWhileItsDeadlineHolds) {
  // After a DCS outage the lease may have expired while failsafe kept the primary running.
  HaInput in = standbyWithoutLeader("node1");
  in.pg.in_recovery = false;
  in.pg.control_state = ControlState::kInProduction;
  in.memory.lease_deadline = kNow + std::chrono::seconds(2);
  in.failsafe_leader.clear();
  EXPECT_EQ(decide(in).action, Action::kAcquireLease);
  // Past its deadline it demotes, failsafe or not.
  in.memory.lease_deadline = kNow - std::chrono::milliseconds(1);
  EXPECT_EQ(decide(in).action, Action::kDemote);
}

}  // namespace
}  // namespace pgf
