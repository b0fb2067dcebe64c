// Cascading replication: whom a replica tagged replicatefrom streams from, which members the
// leader keeps slots for, and the decisions that follow from it.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "fakes/peer_status_builder.h"
#include "ha/decision.h"
#include "ha/upstream.h"

namespace pgf {
namespace {

const int64_t kPos = 0x5000060;

MemberInfo member(const std::string& name, const std::string& role,
                  const std::string& replicatefrom = "") {
  MemberInfo m;
  m.name = name;
  m.role = role;
  m.state = "running";
  m.conn_url = "postgres://127.0.0.1:5432/postgres";
  m.xlog_location = kPos;
  m.timeline = 1;
  m.tags.replicatefrom = replicatefrom;
  return m;
}

// node1 leads; node2 is a replica; node3 is tagged replicatefrom: node2.
ClusterView cascade() {
  ClusterView c;
  c.initialize = "7300000000000000001";
  c.leader = LeaderInfo{"node1", 10, 1};
  c.members = {member("node1", "master"), member("node2", "replica"),
               member("node3", "replica", "node2")};
  return c;
}

TEST(HaUpstream, AReplicaStreamsFromItsReplicatefromMemberWhileThatOneRunsAsAReplica) {
  ClusterView c = cascade();
  EXPECT_EQ(upstreamMember(c, "node3", "node2", "node1"), "node2");
  EXPECT_EQ(upstreamMember(c, "node3", "", "node1"), "node1");
  EXPECT_EQ(upstreamMember(c, "node3", "node3", "node1"), "node1") << "itself";
  EXPECT_EQ(upstreamMember(c, "node3", "node1", "node1"), "node1") << "the leader";
  EXPECT_EQ(upstreamMember(c, "node3", "node9", "node1"), "node1") << "no such member";

  ClusterView stopped = c;
  stopped.members[1].state = "stopped";
  EXPECT_EQ(upstreamMember(stopped, "node3", "node2", "node1"), "node1");
  ClusterView primary = c;
  primary.members[1].role = "master";  // promoted, but not (yet) the leader
  EXPECT_EQ(upstreamMember(primary, "node3", "node2", "node1"), "node1");
  ClusterView no_url = c;
  no_url.members[1].conn_url.clear();
  EXPECT_EQ(upstreamMember(no_url, "node3", "node2", "node1"), "node1");
}

TEST(HaUpstream, TheLeaderKeepsSlotsOnlyForTheMembersStreamingFromIt) {
  ClusterView c = cascade();
  EXPECT_EQ(membersStreamingFrom(c, "node1"), (std::set<std::string>{"node2"}));
  // Its upstream gone, node3 streams from the leader again, which keeps its slot again.
  c.members[1].state = "stopped";
  EXPECT_EQ(membersStreamingFrom(c, "node1"), (std::set<std::string>{"node2", "node3"}));
}

HaInput replicaInput(const ClusterView& c, const std::string& following) {
  HaInput in;
  in.now = MonoTime{} + std::chrono::hours(1);
  in.self = "node3";
  in.tags.replicatefrom = "node2";
  in.cluster = c;
  in.pg = runningStandby("7300000000000000001", kPos);
  in.memory.following = following;
  return in;
}

TEST(HaUpstream, TheDecisionFollowsTheUpstreamAndFallsBackToTheLeader) {
  ClusterView c = cascade();
  Decision d = decide(replicaInput(c, "node1"));
  EXPECT_EQ(d.action, Action::kFollow);
  EXPECT_EQ(d.source, "node2");
  EXPECT_NE(d.reason.find("replicatefrom; node1 leads"), std::string::npos) << d.reason;

  d = decide(replicaInput(c, "node2"));
  EXPECT_EQ(d.action, Action::kNone) << d.reason;

  HaInput stopped = replicaInput(c, "");
  stopped.pg.running = false;
  stopped.pg.accepting = false;
  d = decide(stopped);
  EXPECT_EQ(d.action, Action::kStartReplica);
  EXPECT_EQ(d.source, "node2");

  // node2 goes away: back to the leader.
  c.members.erase(c.members.begin() + 1);
  d = decide(replicaInput(c, "node2"));
  EXPECT_EQ(d.action, Action::kFollow);
  EXPECT_EQ(d.source, "node1");
}

}  // namespace
}  // namespace pgf
