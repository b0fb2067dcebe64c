// Table-driven tests of decide(): each case is a cluster snapshot, the local PostgreSQL, the
// agent's memory and `now`, built from small fixture builders, mapped to the expected step and
// reason.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fakes/peer_status_builder.h"
#include "ha/candidate.h"
#include "ha/decision.h"
#include "postgres/lsn.h"

namespace pgf {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const MonoTime kNow = MonoTime{} + std::chrono::hours(1);
const std::string kSysid = "7300000000000000001";
const int64_t kPos = 0x5000060;  // 0/5000060

// ---- fixture builders

MemberInfo member(const std::string& name, const std::string& role, int64_t xlog = kPos,
                  const std::string& state = "running") {
  MemberInfo m;
  m.name = name;
  m.role = role;
  m.state = state;
  m.xlog_location = xlog;
  m.timeline = 1;
  return m;
}

MemberInfo cloneFromMember(const std::string& name, const std::string& state = "running") {
  MemberInfo m = member(name, "replica", kPos, state);
  m.tags.clonefrom = true;
  return m;
}

// Nobody has claimed the bootstrap yet.
ClusterView emptyCluster() {
  return ClusterView{};
}

// Initialized, three members, no leader key (it expired or was never taken).
ClusterView clusterWithoutLeader(std::vector<MemberInfo> members = {member("node1", "replica"),
                                                                    member("node2", "replica"),
                                                                    member("node3", "replica")}) {
  ClusterView c;
  c.initialize = kSysid;
  c.members = std::move(members);
  return c;
}

ClusterView clusterWithLeader(const std::string& leader) {
  ClusterView c = clusterWithoutLeader();
  c.leader = LeaderInfo{leader, 10, 1};
  for (auto& m : c.members)
    if (m.name == leader)
      m.role = "primary";
  return c;
}

ClusterView withOptime(ClusterView c, int64_t optime) {
  c.status = nlohmann::json{{"optime", optime}};
  return c;
}

LocalPostgres emptyPg() {
  return LocalPostgres{};
}

LocalPostgres stoppedPg(ControlState state = ControlState::kShutDownInRecovery) {
  LocalPostgres pg;
  pg.data_dir_empty = false;
  pg.sysid = kSysid;
  pg.timeline = 1;
  pg.wal_position = kPos;
  pg.control_state = state;
  return pg;
}

// What pg_basebackup leaves: the primary's pg_control ("in production") beside a backup_label.
LocalPostgres unstartedClone() {
  LocalPostgres pg = stoppedPg(ControlState::kInProduction);
  pg.unstarted_backup = true;
  return pg;
}

LocalPostgres standbyPg(int64_t lsn = kPos) {
  LocalPostgres pg = stoppedPg(ControlState::kInArchiveRecovery);
  pg.running = true;
  pg.accepting = true;
  pg.in_recovery = true;
  pg.wal_position = lsn;
  return pg;
}

LocalPostgres primaryPg(int64_t lsn = kPos) {
  LocalPostgres pg = stoppedPg(ControlState::kInProduction);
  pg.running = true;
  pg.accepting = true;
  pg.wal_position = lsn;
  return pg;
}

PeerStatus peer(const std::string& name, int64_t lsn, bool reachable = true) {
  return streamingPeer(name, lsn, reachable);
}

PeerStatus primaryPeer(const std::string& name) {
  PeerStatus p = peer(name, kPos);
  p.in_recovery = false;
  return p;
}

PeerStatus nofailoverPeer(const std::string& name, int64_t lsn) {
  PeerStatus p = peer(name, lsn);
  p.nofailover = true;
  return p;
}

// HaInput with a fluent way to vary one thing at a time.
struct In {
  HaInput in;

  In(std::optional<ClusterView> cluster, LocalPostgres pg, std::string self = "node2") {
    in.now = kNow;
    in.self = std::move(self);
    in.cluster = std::move(cluster);
    in.pg = std::move(pg);
  }
  In& self(std::string name) {
    in.self = std::move(name);
    return *this;
  }
  In& deadlineIn(milliseconds d) {
    in.memory.lease_deadline = kNow + d;
    return *this;
  }
  In& paused() {
    in.settings.paused = true;
    return *this;
  }
  In& rewind(bool on = true) {
    in.settings.use_pg_rewind = on;
    return *this;
  }
  In& rewindFailed() {
    in.memory.rewind_failed = true;
    return *this;
  }
  In& recloneOnFailure(bool on) {
    in.settings.reclone_on_rewind_failure = on;
    return *this;
  }
  In& recloneRefused() {
    in.memory.reclone_refused = true;
    return *this;
  }
  In& following(std::string name) {
    in.memory.following = std::move(name);
    return *this;
  }
  In& diverged() {
    in.diverged_from_leader = true;
    return *this;
  }
  In& nofailover() {
    in.tags.nofailover = true;
    return *this;
  }
  In& peers(std::vector<PeerStatus> p) {
    in.peers = std::move(p);
    return *this;
  }
  In& maxLag(int64_t bytes) {
    in.settings.maximum_lag_on_failover = bytes;
    return *this;
  }
};

struct Case {
  std::string name;
  HaInput input;
  Action action;
  std::string source = "";
  std::string reason_contains = "";
};

void expectCases(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Decision d = decide(c.input);
    EXPECT_EQ(actionName(d.action), actionName(c.action)) << d.reason;
    EXPECT_EQ(d.source, c.source) << d.reason;
    EXPECT_FALSE(d.reason.empty());
    if (!c.reason_contains.empty()) {
      EXPECT_NE(d.reason.find(c.reason_contains), std::string::npos)
          << "reason: \"" << d.reason << "\"";
    }
  }
}

// ---- rule 1: the fence

TEST(HaDecide, FenceDemotesAPrimaryPastItsDeadline) {
  expectCases({
      {"deadline passed, still leader in dcs",
       In(clusterWithLeader("node2"), primaryPg()).deadlineIn(milliseconds(-1200)).in,
       Action::kDemote, "", "lease deadline passed 1200 ms ago"},
      {"deadline exactly now", In(clusterWithLeader("node2"), primaryPg()).deadlineIn({}).in,
       Action::kDemote, "", "lease deadline passed 0 ms ago"},
      {"deadline passed while paused: no demotion, the key is still ours",
       In(clusterWithLeader("node2"), primaryPg()).deadlineIn(milliseconds(-1)).paused().in,
       Action::kRenewLease, "", "paused: renewing"},
      {"deadline passed, dcs unreadable",
       In(std::nullopt, primaryPg()).deadlineIn(milliseconds(-500)).in, Action::kDemote, "",
       "lease deadline passed 500 ms ago"},
      {"deadline passed, dcs unreadable, paused: no demotion on dcs loss",
       In(std::nullopt, primaryPg()).deadlineIn(milliseconds(-500)).paused().in,
       Action::kRenewLease, "", "no demotion while paused"},
      {"deadline passed, key expired, paused: taken back",
       In(clusterWithoutLeader(), primaryPg()).deadlineIn(seconds(-3)).paused().in,
       Action::kAcquireLease, "", "paused: no leader key"},
      {"deadline passed, no leader key",
       In(clusterWithoutLeader(), primaryPg()).deadlineIn(seconds(-3)).in, Action::kDemote},
  });
}

TEST(HaDecide, FenceDecidesForAPrimaryFoundWithoutALease) {
  expectCases({
      {"dcs unreadable", In(std::nullopt, primaryPg()).in, Action::kDemote, "",
       "dcs is unreachable"},
      {"leader key is ours", In(clusterWithLeader("node2"), primaryPg()).in, Action::kRenewLease},
      {"no leader key", In(clusterWithoutLeader(), primaryPg()).in, Action::kAcquireLease},
      {"another leader", In(clusterWithLeader("node1"), primaryPg()).in, Action::kDemote, "",
       "node1 holds the leader key"},
      {"another leader while paused: a warning, no demotion",
       In(clusterWithLeader("node1"), primaryPg()).paused().in, Action::kNone, "", "paused"},
      {"dcs unreadable while paused", In(std::nullopt, primaryPg()).paused().in,
       Action::kRenewLease, "", "no demotion while paused"},
  });
}

TEST(HaDecide, ReasonForAPassedDeadlineIsExact) {
  auto d = decide(In(clusterWithLeader("node2"), primaryPg()).deadlineIn(milliseconds(-1200)).in);
  EXPECT_EQ(d.reason,
            "demoting: lease deadline passed 1200 ms ago, the leader lease may have expired in "
            "the dcs");
}

// ---- rule 2: dcs unreadable

TEST(HaDecide, DcsUnreadable) {
  expectCases({
      {"primary with deadline ahead keeps renewing",
       In(std::nullopt, primaryPg()).deadlineIn(milliseconds(3400)).in, Action::kRenewLease, "",
       "until the deadline in 3400 ms"},
      {"standby waits", In(std::nullopt, standbyPg()).following("node1").in, Action::kNone, "",
       "dcs unreachable"},
      {"stopped server is not started", In(std::nullopt, stoppedPg()).in, Action::kNone, "",
       "dcs unreachable"},
      {"empty data is not bootstrapped", In(std::nullopt, emptyPg()).in, Action::kNone, "",
       "dcs unreachable"},
  });
  EXPECT_EQ(decide(In(std::nullopt, standbyPg()).in).reason,
            "dcs unreachable: waiting (running as a standby)");
}

// ---- rule 3: paused

TEST(HaDecide, AKeyLostWhilePausedIsNotRacedForUntilItsHolderStoodDown) {
  AgentMemory memory;
  rememberLeader(memory, clusterWithLeader("node1"), true);
  EXPECT_EQ(memory.last_leader, "node1");
  EXPECT_EQ(memory.leader_lost_in_pause, "");
  rememberLeader(memory, std::nullopt, true);  // an unreadable dcs tells nothing
  EXPECT_EQ(memory.leader_lost_in_pause, "");
  rememberLeader(memory, clusterWithoutLeader(), true);
  EXPECT_EQ(memory.leader_lost_in_pause, "node1");
  rememberLeader(memory, clusterWithoutLeader(), false);  // resumed: still remembered
  EXPECT_EQ(memory.leader_lost_in_pause, "node1");

  // Resumed, node1 cannot be asked: it may still run as primary.
  In b(clusterWithoutLeader(), standbyPg());
  b.in.memory.leader_lost_in_pause = "node1";
  b.peers({peer("node1", kPos, /*reachable=*/false), peer("node3", kPos - 100)});
  Decision d = decide(b.in);
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_NE(d.reason.find("node1's key expired while the cluster was paused"), std::string::npos)
      << d.reason;
  // It answers as a standby (or as stopped): the election goes on as usual.
  b.peers({peer("node1", kPos - 100), peer("node3", kPos - 100)});
  EXPECT_EQ(decide(b.in).action, Action::kAcquireAndPromote);
  PeerStatus stopped = peer("node1", kPos - 100);
  stopped.running = false;
  b.peers({stopped, peer("node3", kPos - 100)});
  EXPECT_EQ(decide(b.in).action, Action::kAcquireAndPromote);
  // An operator naming this member as the candidate decides for it.
  b.peers({peer("node1", kPos, false), peer("node3", kPos - 100)});
  b.in.cluster->failover = nlohmann::json{{"member", "node2"}};
  EXPECT_EQ(decide(b.in).action, Action::kAcquireAndPromote) << decide(b.in).reason;
  // A new leader key ends it.
  rememberLeader(memory, clusterWithLeader("node3"), false);
  EXPECT_EQ(memory.leader_lost_in_pause, "");
}

TEST(HaDecide, PausedOnlyRenewsOurOwnLease) {
  expectCases({
      {"leader primary renews",
       In(clusterWithLeader("node2"), primaryPg()).deadlineIn(seconds(10)).paused().in,
       Action::kRenewLease, "", "paused"},
      {"no leader: no promotion", In(clusterWithoutLeader(), standbyPg()).paused().in,
       Action::kNone, "", "paused"},
      {"our leader key, server down: not restarted",
       In(clusterWithLeader("node2"), stoppedPg()).paused().in, Action::kNone, "", "paused"},
      {"another leader, stopped: not started",
       In(clusterWithLeader("node1"), stoppedPg()).paused().in, Action::kNone},
      {"empty data: no bootstrap", In(emptyCluster(), emptyPg()).paused().in, Action::kNone},
      {"standby of another leader, wrong upstream: not re-pointed",
       In(clusterWithLeader("node1"), standbyPg()).following("node3").paused().in, Action::kNone},
  });
}

// ---- rule 4: empty data directory

TEST(HaDecide, EmptyDataDirectory) {
  ClusterView clonefrom_running = clusterWithLeader("node1");
  clonefrom_running.members.push_back(cloneFromMember("node4"));
  ClusterView clonefrom_stopped = clusterWithLeader("node1");
  clonefrom_stopped.members.push_back(cloneFromMember("node4", "stopped"));
  ClusterView clonefrom_self = clusterWithLeader("node1");
  clonefrom_self.members.push_back(cloneFromMember("node5"));
  ClusterView bootstrapping = emptyCluster();
  bootstrapping.initialize = "";
  ClusterView leader_without_member = clusterWithLeader("node9");

  expectCases({
      {"bootstrap race: no initialize key", In(emptyCluster(), emptyPg()).in, Action::kBootstrap,
       "", "bootstrapping"},
      {"nofailover never bootstraps", In(emptyCluster(), emptyPg()).nofailover().in, Action::kNone,
       "", "nofailover"},
      {"someone else is bootstrapping", In(bootstrapping, emptyPg()).in, Action::kNone, "",
       "waiting for the leader to finish bootstrapping"},
      {"leader has no member key yet", In(leader_without_member, emptyPg()).in, Action::kNone, "",
       "node9"},
      {"clone from the leader", In(clusterWithLeader("node1"), emptyPg()).in, Action::kClone,
       "node1", "cloning from the leader node1"},
      {"clone from a running clonefrom member", In(clonefrom_running, emptyPg()).in, Action::kClone,
       "node4", "clonefrom"},
      {"stopped clonefrom member is skipped", In(clonefrom_stopped, emptyPg()).in, Action::kClone,
       "node1"},
      {"never clone from ourselves", In(clonefrom_self, emptyPg()).self("node5").in, Action::kClone,
       "node1"},
      {"our own leader key with no data: released, a replica takes over",
       In(clusterWithLeader("node2"), emptyPg()).in, Action::kReleaseLeader, "",
       "releasing it so that a replica takes over"},
      {"our own leader key with no data while paused: kept",
       In(clusterWithLeader("node2"), emptyPg()).paused().in, Action::kNone},
  });
}

// ---- rule 5: system identifier

TEST(HaDecide, SystemIdentifierMismatchRefusesToJoin) {
  LocalPostgres other = stoppedPg(ControlState::kInProduction);
  other.sysid = "6999999999999999999";
  auto d = decide(In(clusterWithLeader("node1"), other).rewind().in);
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.reason,
            "system identifier mismatch: local 6999999999999999999 vs cluster "
            "7300000000000000001, refusing to join");

  LocalPostgres other_standby = standbyPg();
  other_standby.sysid = "6999999999999999999";
  HaInput no_leader = In(clusterWithoutLeader(), other_standby).in;
  EXPECT_EQ(decide(no_leader).action, Action::kNone);
  EXPECT_FALSE(needsPeerStatus(no_leader));

  ClusterView bootstrapping = clusterWithLeader("node1");
  bootstrapping.initialize = "";
  EXPECT_EQ(decide(In(bootstrapping, stoppedPg()).in).action, Action::kStartReplica)
      << "an empty initialize value is a bootstrap in progress, not a mismatch";
  LocalPostgres unknown = stoppedPg();
  unknown.sysid = "";
  EXPECT_EQ(decide(In(clusterWithLeader("node1"), unknown).in).action, Action::kStartReplica);
}

// ---- rule 6: we lead

TEST(HaDecide, WeHoldTheLeaderKey) {
  expectCases({
      {"crash restart of the leader's server",
       In(clusterWithLeader("node2"), stoppedPg(ControlState::kInProduction)).in,
       Action::kStartPrimary, "", "not running"},
      {"standby holding the key promotes", In(clusterWithLeader("node2"), standbyPg()).in,
       Action::kAcquireAndPromote},
      {"healthy primary renews",
       In(clusterWithLeader("node2"), primaryPg()).deadlineIn(seconds(20)).in, Action::kRenewLease,
       "", "node2 is the leader"},
  });
}

// ---- rule 7: another member leads

TEST(HaDecide, AnotherMemberLeads) {
  ClusterView c = clusterWithLeader("node1");
  expectCases({
      {"we still run as primary", In(c, primaryPg()).deadlineIn(seconds(5)).in, Action::kDemote, "",
       "node1 holds the leader lease"},
      {"former primary (crashed) is rewound",
       In(c, stoppedPg(ControlState::kInProduction)).rewind().in, Action::kRewind, "node1",
       "rewinding from node1"},
      {"a clone never started (backup_label) is started as a standby, not rewound",
       In(c, unstartedClone()).rewind().in, Action::kStartReplica, "node1"},
      {"former primary (clean stop) is rewound",
       In(c, stoppedPg(ControlState::kShutDown)).rewind().in, Action::kRewind, "node1"},
      {"former primary without use_pg_rewind waits", In(c, stoppedPg(ControlState::kShutDown)).in,
       Action::kNone, "", "needs a rewind or reinitialize"},
      {"former primary whose rewind failed is set aside and cloned again",
       In(c, stoppedPg(ControlState::kInProduction)).rewind().rewindFailed().in, Action::kReclone,
       "node1", "former primary: pg_rewind failed, setting the data directory aside"},
      {"without reclone_on_rewind_failure it waits",
       In(c, stoppedPg(ControlState::kInProduction))
           .rewind()
           .rewindFailed()
           .recloneOnFailure(false)
           .in,
       Action::kNone, "",
       "needs a rewind or reinitialize before it can follow node1 (pg_rewind failed)"},
      {"when setting it aside was refused it waits",
       In(c, stoppedPg(ControlState::kInProduction)).rewind().rewindFailed().recloneRefused().in,
       Action::kNone, "", "setting the data directory aside was refused"},
      {"stopped standby starts as replica", In(c, stoppedPg(ControlState::kInArchiveRecovery)).in,
       Action::kStartReplica, "node1", "starting as a replica of node1"},
      {"never-started standby", In(c, stoppedPg(ControlState::kUnknown)).in, Action::kStartReplica,
       "node1"},
      {"standby without upstream follows", In(c, standbyPg()).in, Action::kFollow, "node1",
       "following node1 (was following nobody)"},
      {"standby of the old leader re-points", In(c, standbyPg()).following("node3").in,
       Action::kFollow, "node1", "was following node3"},
      {"healthy standby", In(c, standbyPg()).following("node1").in, Action::kNone, ""},
  });
  EXPECT_EQ(decide(In(c, standbyPg()).following("node1").in).reason, "following node1");
}

// Invariant 4 beyond former primaries: a standby whose WAL the leader never had (it was ahead
// of the new leader's fork point) is rewound before it streams, never left "following".
TEST(HaDecide, DivergedStandbyIsRewoundBeforeItFollows) {
  ClusterView c = clusterWithLeader("node1");
  expectCases({
      {"running diverged standby stops for the rewind",
       In(c, standbyPg()).following("node1").diverged().rewind().in, Action::kDemote, "",
       "diverged from node1's history, rewinding next"},
      {"stopped diverged standby is rewound",
       In(c, stoppedPg(ControlState::kInArchiveRecovery)).diverged().rewind().in, Action::kRewind,
       "node1", "rewinding from node1: diverged standby"},
      {"without use_pg_rewind it waits for an operator, still running",
       In(c, standbyPg()).following("node1").diverged().in, Action::kNone, "",
       "diverged standby needs a rewind or reinitialize"},
      {"after a failed rewind it is set aside and cloned again",
       In(c, stoppedPg(ControlState::kShutDownInRecovery)).diverged().rewind().rewindFailed().in,
       Action::kReclone, "node1", "diverged standby: pg_rewind failed"},
      {"or, without reclone_on_rewind_failure, waits",
       In(c, stoppedPg(ControlState::kShutDownInRecovery))
           .diverged()
           .rewind()
           .rewindFailed()
           .recloneOnFailure(false)
           .in,
       Action::kNone, "", "pg_rewind failed"},
      {"the flag means nothing while we lead",
       In(clusterWithLeader("node2"), standbyPg()).diverged().in, Action::kAcquireAndPromote},
      {"nor without a leader", In(clusterWithoutLeader(), standbyPg()).diverged().in,
       Action::kAcquireAndPromote},
  });
}

// A data directory a failed pg_rewind left half rewound (its marker survives an agent restart)
// is never started, not even as a standby without upstream: it is set aside and cloned from the
// leader, or waits for one.
TEST(HaDecide, AHalfRewoundDataDirectoryIsNeverStarted) {
  LocalPostgres half = stoppedPg(ControlState::kShutDown);
  half.rewind_failed = true;
  LocalPostgres half_standby = stoppedPg(ControlState::kInArchiveRecovery);
  half_standby.rewind_failed = true;
  expectCases({
      {"with a leader it is set aside", In(clusterWithLeader("node1"), half).rewind().in,
       Action::kReclone, "node1", "data directory left by a failed pg_rewind: pg_rewind failed"},
      {"whatever its control file says", In(clusterWithLeader("node1"), half_standby).in,
       Action::kReclone, "node1"},
      {"without a leader it waits instead of starting as a standby",
       In(clusterWithoutLeader(), half).rewind().in, Action::kNone, "",
       "not starting PostgreSQL: a failed pg_rewind left the data directory unusable; waiting for "
       "a leader to clone from"},
      {"without reclone_on_rewind_failure it waits for an operator",
       In(clusterWithLeader("node1"), half).recloneOnFailure(false).in, Action::kNone, "",
       "reclone_on_rewind_failure is off, waiting for pgfleetctl reinit"},
      {"after a refused set-aside it waits for an operator",
       In(clusterWithLeader("node1"), half).recloneRefused().in, Action::kNone, "",
       "setting it aside was refused, waiting for pgfleetctl reinit"},
  });
  EXPECT_FALSE(needsPeerStatus(In(clusterWithoutLeader(), half).in));
}

// A data directory whose control file is missing or damaged is never started: a replica sets it
// aside and clones again from the leader; a leader releases the key first (when another member
// can take over); without a leader, or after a refused set-aside, it waits.
TEST(HaDecide, AnUnusableDataDirectoryIsSetAsideAndClonedAgain) {
  LocalPostgres broken = stoppedPg(ControlState::kUnknown);
  broken.control_unusable = true;
  broken.sysid = "0";  // what a damaged control file may print
  ClusterView alone;
  alone.initialize = kSysid;
  alone.leader = LeaderInfo{"node2", 10, 1};
  alone.members = {member("node2", "primary")};
  expectCases({
      {"a replica sets it aside and clones from the leader (whatever system identifier the "
       "damaged file printed)",
       In(clusterWithLeader("node1"), broken).in, Action::kReclone, "node1",
       "data directory unusable (its control file is missing or damaged): setting it aside to "
       "clone it again from node1"},
      {"the leader releases the key", In(clusterWithLeader("node2"), broken).in,
       Action::kReleaseLeader, "", "releasing it so that a replica takes over"},
      {"a lone leader waits for an operator", In(alone, broken).in, Action::kNone, "",
       "no other member can take over"},
      {"without a leader it waits", In(clusterWithoutLeader(), broken).in, Action::kNone, "",
       "waiting for a leader to clone from"},
      {"after a refused set-aside it waits",
       In(clusterWithLeader("node1"), broken).recloneRefused().in, Action::kNone, "",
       "setting it aside was refused"},
      {"nor while paused", In(clusterWithLeader("node1"), broken).paused().in, Action::kNone, "",
       "paused"},
  });
}

// ---- rule 8: no leader

TEST(HaDecide, NoLeaderCandidateChoice) {
  ClusterView c = clusterWithoutLeader();
  ClusterView lagging = withOptime(clusterWithoutLeader(), kPos + 2 * 1048576);
  ClusterView close = withOptime(clusterWithoutLeader(), kPos + 1048576);
  ClusterView old_primary_member = clusterWithoutLeader(
      {member("node1", "primary", kPos + 5 * 1048576), member("node2", "replica")});
  expectCases({
      {"stopped server starts without upstream", In(c, stoppedPg()).in, Action::kStartReplica, "",
       "without upstream"},
      {"former primary after a whole-cluster stop starts as a standby",
       In(c, stoppedPg(ControlState::kShutDown)).in, Action::kStartReplica, ""},
      {"primary with a valid lease takes the key back",
       In(c, primaryPg()).deadlineIn(seconds(4)).in, Action::kAcquireLease},
      {"nofailover never promotes", In(c, standbyPg()).nofailover().in, Action::kNone, "",
       "nofailover"},
      {"too far behind the last optime", In(lagging, standbyPg()).in, Action::kNone, "",
       "bytes behind"},
      {"exactly at the lag limit", In(close, standbyPg()).in, Action::kAcquireAndPromote},
      {"larger lag limit allows it", In(lagging, standbyPg()).maxLag(4 * 1048576).in,
       Action::kAcquireAndPromote},
      {"lag against a primary member's xlog_location", In(old_primary_member, standbyPg()).in,
       Action::kNone, "", "0/5500060"},
      {"a reachable peer still runs as primary",
       In(c, standbyPg()).peers({primaryPeer("node1"), peer("node3", kPos)}).in, Action::kNone, "",
       "node1 still runs as a primary"},
      {"an unreachable primary is ignored",
       In(c, standbyPg())
           .peers({[] {
             auto p = primaryPeer("node1");
             p.reachable = false;
             return p;
           }()})
           .in,
       Action::kAcquireAndPromote, "", "among 1 reachable members"},
      {"a reachable peer is ahead",
       In(c, standbyPg()).peers({peer("node1", kPos - 10), peer("node3", kPos + 8)}).in,
       Action::kNone, "", "node3 is ahead (0/5000068 > our 0/5000060)"},
      {"the furthest peer is named",
       In(c, standbyPg()).peers({peer("node1", kPos + 8), peer("node3", kPos + 16)}).in,
       Action::kNone, "", "node3 is ahead"},
      {"a nofailover peer ahead does not block",
       In(c, standbyPg()).peers({nofailoverPeer("node3", kPos + 100), peer("node1", kPos)}).in,
       Action::kAcquireAndPromote, "", "among 3 reachable members"},
      {"an unreachable peer ahead is ignored",
       In(c, standbyPg()).peers({peer("node3", kPos + 100, false), peer("node1", kPos - 1)}).in,
       Action::kAcquireAndPromote, "", "among 2 reachable members"},
      {"equal positions: both may race", In(c, standbyPg()).peers({peer("node1", kPos)}).in,
       Action::kAcquireAndPromote},
      {"our own entry in peers is ignored",
       In(c, standbyPg()).peers({peer("node2", kPos + 100)}).in, Action::kAcquireAndPromote, "",
       "among 1 reachable members"},
  });
}

// Invariant 3 across timelines: WAL on a timeline the cluster left is a branch nobody follows,
// however far it goes. A former primary that could not be rewound (its new leader died before it
// could) must not take over from a replica on the newer timeline: the newer timeline's
// acknowledged writes would be lost. Found by the fault suite (a killed primary agent, then its
// successor cut off with an etcd minority).
TEST(HaDecide, AStandbyOnAnOlderTimelineNeverTakesOverFromANewerOne) {
  auto onTimeline = [](LocalPostgres pg, int timeline) {
    pg.timeline = timeline;
    return pg;
  };
  auto peerOn = [](const std::string& name, int64_t lsn, int timeline) {
    PeerStatus p = peer(name, lsn);
    p.timeline = timeline;
    return p;
  };
  ClusterView history = clusterWithoutLeader();
  history.history =
      nlohmann::json::array({nlohmann::json::array({1, kPos, "promoted", "", "node3"})});
  ClusterView member_on_2 = clusterWithoutLeader();
  member_on_2.members[2].timeline = 2;  // node3's key
  expectCases({
      {"behind the history key's timeline", In(history, standbyPg(kPos + 5 * 1048576)).in,
       Action::kNone, "", "our timeline 1 is behind the cluster's timeline 2"},
      {"behind a member key's timeline", In(member_on_2, standbyPg(kPos + 5 * 1048576)).in,
       Action::kNone, "", "behind the cluster's timeline 2"},
      {"behind a reachable peer's timeline, further along in bytes",
       In(clusterWithoutLeader(), standbyPg(kPos + 5 * 1048576))
           .peers({peerOn("node1", kPos, 2)})
           .in,
       Action::kNone, "", "behind the cluster's timeline 2"},
      {"a peer further along on an older timeline is not ahead",
       In(history, onTimeline(standbyPg(kPos), 2))
           .peers({peerOn("node1", kPos + 5 * 1048576, 1)})
           .in,
       Action::kAcquireAndPromote, "", "among 2 reachable members"},
      {"a peer on a newer timeline is ahead",
       In(history, onTimeline(standbyPg(kPos), 2)).peers({peerOn("node1", kPos - 100, 3)}).in,
       Action::kNone, "", "our timeline 2 is behind the cluster's timeline 3"},
      {"on the newest timeline, the position decides",
       In(history, onTimeline(standbyPg(kPos), 2)).peers({peerOn("node1", kPos + 8, 2)}).in,
       Action::kNone, "", "node1 is ahead (0/5000068 > our 0/5000060)"},
  });
}

TEST(HaCandidate, NewerTimelinesOrderFirst) {
  PeerStatus old_far = peer("a", kPos + 1000);
  old_far.timeline = 1;
  PeerStatus new_near = peer("b", kPos);
  new_near.timeline = 2;
  EXPECT_TRUE(betterCandidate(new_near, old_far));
  EXPECT_FALSE(betterCandidate(old_far, new_near));
}

TEST(HaDecide, PromotionReasonNamesPositionAndCount) {
  auto d = decide(In(clusterWithoutLeader(), standbyPg())
                      .peers({peer("node1", kPos - 0x60), peer("node3", 0, false)})
                      .in);
  EXPECT_EQ(d.action, Action::kAcquireAndPromote);
  EXPECT_EQ(d.reason,
            "promoted self: leader key expired, highest WAL position 0/5000060 among 2 reachable "
            "members");
}

TEST(HaDecide, LagReasonNamesBothPositions) {
  auto d = decide(In(withOptime(clusterWithoutLeader(), 0x7000000), standbyPg()).in);
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.reason,
            "not promoting: WAL position 0/5000060 is 33554336 bytes behind the last known leader "
            "position 0/7000000 (maximum_lag_on_failover 1048576)");
}

// ---- needsPeerStatus

TEST(HaDecide, NeedsPeerStatusExactlyWhenTheCandidateCheckRuns) {
  EXPECT_TRUE(needsPeerStatus(In(clusterWithoutLeader(), standbyPg()).in));
  // The lag check is part of the candidate check: peers are still asked.
  EXPECT_TRUE(needsPeerStatus(In(withOptime(clusterWithoutLeader(), 0x7000000), standbyPg()).in));

  EXPECT_FALSE(needsPeerStatus(In(std::nullopt, standbyPg()).in));
  EXPECT_FALSE(needsPeerStatus(In(clusterWithLeader("node1"), standbyPg()).in));
  EXPECT_FALSE(needsPeerStatus(In(clusterWithoutLeader(), stoppedPg()).in));
  EXPECT_FALSE(needsPeerStatus(In(clusterWithoutLeader(), primaryPg()).deadlineIn(seconds(5)).in));
  EXPECT_FALSE(needsPeerStatus(In(clusterWithoutLeader(), standbyPg()).nofailover().in));
  EXPECT_FALSE(needsPeerStatus(In(clusterWithoutLeader(), standbyPg()).paused().in));
  EXPECT_FALSE(needsPeerStatus(In(clusterWithoutLeader(), emptyPg()).in));
}

// ---- whole-space properties

// Every combination of a few local states, snapshots, deadlines and pause: the safety properties
// hold for all of them, not only for the hand-picked cases above.
TEST(HaDecide, SafetyPropertiesOverTheWholeInputSpace) {
  std::vector<LocalPostgres> pgs = {emptyPg(), stoppedPg(), stoppedPg(ControlState::kInProduction),
                                    standbyPg(), primaryPg()};
  std::vector<std::optional<ClusterView>> clusters = {
      std::nullopt, emptyCluster(), clusterWithoutLeader(), clusterWithLeader("node1"),
      clusterWithLeader("node2")};
  std::vector<std::optional<milliseconds>> deadlines = {std::nullopt, milliseconds(-1),
                                                        milliseconds(0), milliseconds(1)};
  int checked = 0;
  for (const auto& pg : pgs)
    for (const auto& cluster : clusters)
      for (const auto& deadline : deadlines)
        for (bool paused : {false, true})
          for (bool rewind : {false, true})
            for (bool failed : {false, true}) {
              In b(cluster, pg);
              if (failed && !pg.data_dir_empty && !pg.running)
                b.in.pg.rewind_failed = true;
              if (deadline)
                b.deadlineIn(*deadline);
              if (paused)
                b.paused();
              b.rewind(rewind);
              Decision d = decide(b.in);
              ++checked;
              std::string where = std::string(actionName(d.action)) + ": " + d.reason;
              bool primary = pg.running && !pg.in_recovery;
              if (primary && deadline && *deadline <= milliseconds(0) && !paused) {
                EXPECT_EQ(d.action, Action::kDemote) << where;
              }
              if (primary && !deadline && !cluster && !paused) {
                EXPECT_EQ(d.action, Action::kDemote) << where;
              }
              // While paused nothing touches PostgreSQL, not even a lost lease; a primary may
              // still keep or take back its own leader key.
              if (paused) {
                EXPECT_TRUE(d.action == Action::kNone || d.action == Action::kRenewLease ||
                            (primary && d.action == Action::kAcquireLease))
                    << where;
              }
              if (!cluster) {
                EXPECT_TRUE(d.action == Action::kNone || d.action == Action::kRenewLease ||
                            d.action == Action::kDemote)
                    << where;
              }
              if (d.action == Action::kAcquireAndPromote || d.action == Action::kStartPrimary) {
                ASSERT_TRUE(cluster.has_value()) << where;
                EXPECT_TRUE(!cluster->leader || cluster->leader->name == "node2") << where;
              }
              // decide() never removes data; it sets a directory aside only after a failed rewind,
              // to clone it from another leader, and never starts a half rewound one.
              if (d.action == Action::kReclone) {
                EXPECT_TRUE(failed && !paused && cluster && cluster->leader &&
                            cluster->leader->name != "node2")
                    << where;
              }
              if (b.in.pg.rewind_failed) {
                EXPECT_TRUE(d.action == Action::kNone || d.action == Action::kReclone) << where;
              }
              if (d.action == Action::kClone || d.action == Action::kRewind ||
                  d.action == Action::kFollow) {
                EXPECT_FALSE(d.source.empty() || d.source == "node2") << where;
              }
            }
  EXPECT_EQ(checked, 5 * 5 * 4 * 2 * 2 * 2);
}

// ---- candidate ordering

TEST(HaCandidate, OrdersPeersBestFirst) {
  PeerStatus unreachable_far = peer("a", kPos + 1000, false);
  PeerStatus primary = primaryPeer("z");
  PeerStatus far = peer("y", kPos + 100);
  PeerStatus near_b = peer("b", kPos);
  PeerStatus near_c = peer("c", kPos);
  std::vector<PeerStatus> v = {near_c, unreachable_far, far, near_b, primary};
  std::sort(v.begin(), v.end(), betterCandidate);
  std::vector<std::string> names;
  for (const auto& p : v)
    names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"z", "y", "b", "c", "a"}));
  EXPECT_FALSE(betterCandidate(near_b, near_b));
}

TEST(HaCandidate, LastKnownLeaderPosition) {
  EXPECT_EQ(lastKnownLeaderPosition(clusterWithoutLeader()), 0);
  EXPECT_EQ(lastKnownLeaderPosition(withOptime(clusterWithoutLeader(), 42)), 42);
  ClusterView c =
      clusterWithoutLeader({member("node1", "master", 100), member("node2", "primary", 300),
                            member("node3", "replica", 900)});
  EXPECT_EQ(lastKnownLeaderPosition(c), 300);
  EXPECT_EQ(lastKnownLeaderPosition(withOptime(c, 200)), 200) << "optime wins when published";
}

}  // namespace
}  // namespace pgf
