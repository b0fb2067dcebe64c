// Synchronous mode: the leader's plan for synchronous_standby_names and the sync key (the order
// that keeps invariant 2), and who may take the lease when the leader is gone.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fakes/peer_status_builder.h"
#include "ha/decision.h"
#include "ha/sync.h"

namespace pgf {
namespace {

const int64_t kPos = 0x5000000;

ClusterView cluster(nlohmann::json sync = nullptr) {
  ClusterView c;
  c.initialize = "7300000000000000001";
  for (const char* name : {"node1", "node2", "node3"}) {
    MemberInfo m;
    m.name = name;
    m.state = "running";
    m.role = std::string(name) == "node1" ? "primary" : "replica";
    c.members.push_back(m);
  }
  if (!sync.is_null())
    c.sync = std::move(sync);
  c.status = nlohmann::json{{"optime", kPos}};
  return c;
}

ReplicaConnection row(const std::string& name, const std::string& sync_state, int64_t flush) {
  return ReplicaConnection{name, "streaming", sync_state, flush};
}

SyncInput input(const ClusterView& c, std::vector<ReplicaConnection> rows, std::string ssn) {
  SyncInput in;
  in.self = "node1";
  in.cluster = &c;
  in.replication = std::move(rows);
  in.applied_ssn = std::move(ssn);
  in.primary_lsn = kPos;
  return in;
}

TEST(HaSync, ParsesAndWritesTheKeyAsPatroniDoes) {
  auto s = parseSyncState({{"leader", "node1"}, {"sync_standby", "node3, node2"}});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->standbys, (std::vector<std::string>{"node2", "node3"}));
  EXPECT_TRUE(s->matches("node1"));
  EXPECT_TRUE(s->matches("node3"));
  EXPECT_FALSE(s->matches("node4"));
  EXPECT_EQ(syncStateJson(*s),
            (nlohmann::json{{"leader", "node1"}, {"sync_standby", "node2,node3"}}));
  EXPECT_EQ(syncStateJson(SyncState{"node1", {}}),
            (nlohmann::json{{"leader", "node1"}, {"sync_standby", nullptr}}));
  EXPECT_FALSE(parseSyncState(nlohmann::json::object()));
  EXPECT_FALSE(parseSyncState({{"leader", ""}}));
  EXPECT_EQ(synchronousStandbyNames({"node2", "no\"de"}, false),
            "FIRST 2 (\"node2\", \"no\"\"de\")");
  EXPECT_EQ(synchronousStandbyNames({}, false), "");
  EXPECT_EQ(synchronousStandbyNames({}, true), "*");
}

TEST(HaSync, AStandbyEntersTheKeyOnlyAfterItWasSynchronousAndCaughtUp) {
  // A new leader: the key still names the old one.
  ClusterView c = cluster({{"leader", "node0"}, {"sync_standby", "node1"}});
  SyncPlan p =
      planSync(input(c, {row("node2", "async", kPos), row("node3", "async", kPos - 10)}, "*"));
  ASSERT_TRUE(p.write_before);
  EXPECT_EQ(*p.write_before, (SyncState{"node1", {}})) << "first: only we may take over";
  EXPECT_EQ(p.desired, (std::vector<std::string>{"node2"}));
  EXPECT_EQ(p.ssn, std::string("FIRST 1 (\"node2\")"));
  EXPECT_FALSE(p.write_after) << "rows describe the old setting: not judged yet";

  c = cluster({{"leader", "node1"}, {"sync_standby", nullptr}});
  SyncInput in = input(c, {row("node2", "sync", kPos - 100), row("node3", "async", kPos - 200)},
                       "FIRST 1 (\"node2\")");
  p = planSync(in);
  EXPECT_FALSE(p.write_before);
  EXPECT_FALSE(p.ssn);
  EXPECT_FALSE(p.write_after) << "first seen synchronous: remember where the primary was";
  EXPECT_EQ(p.seen_sync_at.at("node2"), kPos);

  in.seen_sync_at = p.seen_sync_at;
  in.primary_lsn = kPos + 500;
  p = planSync(in);
  EXPECT_FALSE(p.write_after) << "not flushed up to that point yet";
  in.replication[0].flush_lsn = kPos;
  p = planSync(in);
  ASSERT_TRUE(p.write_after);
  EXPECT_EQ(*p.write_after, (SyncState{"node1", {"node2"}}));
}

TEST(HaSync, AStandbyLeavesTheKeyBeforeItLeavesTheSetting) {
  ClusterView c = cluster({{"leader", "node1"}, {"sync_standby", "node2"}});
  // node2 disconnected; node3 streams.
  SyncPlan p = planSync(input(c, {row("node3", "async", kPos)}, "FIRST 1 (\"node2\")"));
  ASSERT_TRUE(p.write_before);
  EXPECT_EQ(*p.write_before, (SyncState{"node1", {}}));
  EXPECT_EQ(p.ssn, std::string("FIRST 1 (\"node3\")"));

  // Nobody left: strict mode keeps every commit waiting, the other mode goes asynchronous; either
  // way the key names nobody but us.
  SyncInput none = input(c, {}, "FIRST 1 (\"node2\")");
  p = planSync(none);
  EXPECT_EQ(*p.write_before, (SyncState{"node1", {}}));
  EXPECT_EQ(p.ssn, std::string(""));
  none.strict = true;
  EXPECT_EQ(planSync(none).ssn, std::string("*"));
}

TEST(HaSync, KeepsTheCurrentStandbyAndSkipsNosyncAndStoppedMembers) {
  ClusterView c = cluster({{"leader", "node1"}, {"sync_standby", "node3"}});
  SyncPlan p = planSync(input(c, {row("node2", "async", kPos + 100), row("node3", "sync", kPos)},
                              "FIRST 1 (\"node3\")"));
  EXPECT_EQ(p.desired, (std::vector<std::string>{"node3"})) << "no needless swap";
  EXPECT_FALSE(p.write_before);
  EXPECT_FALSE(p.ssn);

  c.members[2].tags.nosync = true;
  p = planSync(
      input(c, {row("node2", "async", kPos), row("node3", "sync", kPos)}, "FIRST 1 (\"node3\")"));
  EXPECT_EQ(p.desired, (std::vector<std::string>{"node2"}));
  EXPECT_EQ(*p.write_before, (SyncState{"node1", {}}));

  c.members[1].state = "stopped";
  SyncInput two = input(c, {row("node2", "async", kPos), row("node3", "sync", kPos)}, "x");
  two.node_count = 2;
  EXPECT_TRUE(planSync(two).desired.empty());
}

HaInput noLeader(const std::string& self, nlohmann::json sync) {
  HaInput in;
  in.self = self;
  in.cluster = cluster(std::move(sync));
  in.settings.synchronous_mode = true;
  in.pg.data_dir_empty = false;
  in.pg.sysid = "7300000000000000001";
  in.pg.timeline = 1;
  in.pg.running = true;
  in.pg.accepting = true;
  in.pg.in_recovery = true;
  in.pg.wal_position = kPos;
  in.pg.control_state = ControlState::kInArchiveRecovery;
  return in;
}

TEST(HaSync, OnlyAMemberTheKeyNamesTakesTheLease) {
  nlohmann::json key = {{"leader", "node1"}, {"sync_standby", "node3"}};
  HaInput async_standby = noLeader("node2", key);
  async_standby.peers = {streamingPeer("node3", kPos - 100)};
  Decision d = decide(async_standby);
  EXPECT_EQ(d.action, Action::kNone) << d.reason;
  EXPECT_NE(d.reason.find("synchronous mode"), std::string::npos) << d.reason;

  // The synchronous standby promotes even though the other one is further ahead: that one may
  // hold commits nobody acknowledged, never one the synchronous standby lacks.
  HaInput sync_standby = noLeader("node3", key);
  sync_standby.pg.wal_position = kPos - 100;
  sync_standby.peers = {streamingPeer("node2", kPos)};
  d = decide(sync_standby);
  EXPECT_EQ(d.action, Action::kAcquireAndPromote) << d.reason;

  // A key that names no standby lets nobody but the old leader take over.
  d = decide(noLeader("node3", {{"leader", "node1"}, {"sync_standby", nullptr}}));
  EXPECT_EQ(d.action, Action::kNone) << d.reason;

  // Without synchronous mode the key does not matter.
  HaInput off = noLeader("node2", key);
  off.settings.synchronous_mode = false;
  EXPECT_EQ(decide(off).action, Action::kAcquireAndPromote);
}

TEST(HaSync, ASwitchoverGoesOnlyToASynchronousStandby) {
  HaInput in = noLeader("node1", {{"leader", "node1"}, {"sync_standby", "node3"}});
  in.cluster->leader = LeaderInfo{"node1", 1, 1};
  in.pg.in_recovery = false;
  in.pg.control_state = ControlState::kInProduction;
  in.memory.lease_deadline = in.now + std::chrono::seconds(10);
  in.cluster->failover = nlohmann::json{{"leader", "node1"}, {"member", "node2"}};
  in.peers = {streamingPeer("node2", kPos), streamingPeer("node3", kPos)};
  Decision d = decide(in);
  EXPECT_EQ(d.action, Action::kRenewLease);
  EXPECT_NE(d.reason.find("candidate node2 is not a synchronous standby"), std::string::npos)
      << d.reason;
  in.cluster->failover = nlohmann::json{{"leader", "node1"}};
  d = decide(in);
  EXPECT_EQ(d.action, Action::kSwitchover) << d.reason;
  EXPECT_EQ(d.source, "node3");
}

}  // namespace
}  // namespace pgf
