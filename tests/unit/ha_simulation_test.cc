// The HA decision under a multi-agent simulation (tests/fakes/sim_cluster.h): random faults with
// invariant 1 checked after every 100 ms step and convergence required once the faults stop, and
// scripted scenarios for the failover paths that random faults reach only rarely.
#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fakes/sim_cluster.h"

namespace pgf {
namespace {

using std::chrono::seconds;

// Decisions the random faults must provoke somewhere across the seeds, so that the run covers
// every failover rule and not only the easy paths.
const std::vector<std::string> kPhrases = {
    "promoted self",   "bytes behind",        "is ahead",
    "nofailover",      "rewinding from",      "diverged",
    "dcs unreachable", "starting as primary", "still primary, retrying",
};

struct Shape {
  int ttl;
  int loop_wait;
};

// ttl 2-30 s, loop_wait 1-10 s, as operators configure them.
const Shape kShapes[] = {{2, 1}, {5, 2}, {10, 3}, {30, 10}};

TEST(HaSimulation, OneWriterUnderRandomFaultsAndConvergesAfterwards) {
  int total_promotions = 0, total_fences = 0;
  std::map<std::string, int> phrases;
  // PGFLEET_SIM_SEEDS=<n> runs more seeds (a soak run); the default keeps the test fast.
  const char* env = std::getenv("PGFLEET_SIM_SEEDS");
  const uint64_t seeds = env ? std::strtoull(env, nullptr, 10) : 24;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    const Shape& shape = kShapes[seed % std::size(kShapes)];
    SimOptions opt;
    opt.seed = seed;
    opt.ttl = shape.ttl;
    opt.loop_wait = shape.loop_wait;
    opt.node3_nofailover = seed % 3 == 0;
    opt.count_phrases = kPhrases;
    // Long enough for a few dozen faults whatever the ttl.
    opt.fault_phase = seconds(40 * shape.ttl);
    SCOPED_TRACE(fmt::format("seed {} ttl {} loop_wait {}{}", seed, shape.ttl, shape.loop_wait,
                             opt.node3_nofailover ? " node3 nofailover" : ""));
    SimCluster sim(opt);
    sim.runFaults();
    ASSERT_TRUE(sim.violations().empty()) << sim.violations().front() << "\n"
                                          << sim.history() << sim.state();
    // After the faults: every lease in the store has expired within ttl, an election takes a few
    // loops, and the rejoining members rewind and follow.
    auto took = sim.settle(seconds(4 * shape.ttl + 6 * shape.loop_wait + 10));
    ASSERT_TRUE(took.has_value()) << "did not converge\n" << sim.history() << sim.state();
    EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
    EXPECT_GT(sim.faults(), 5) << "the run injected too few faults to mean anything";
    total_promotions += sim.promotions();
    total_fences += sim.fences();
    for (const auto& [phrase, count] : sim.phrases())
      phrases[phrase] += count;
  }
  // The faults must actually have exercised failover and fencing across the seeds.
  EXPECT_GT(total_promotions, 12);
  EXPECT_GT(total_fences, 0);
  for (const auto& phrase : kPhrases)
    EXPECT_GT(phrases[phrase], 0) << "no decision said \"" << phrase
                                  << "\": that rule went untested";
}

// ---- scripted scenarios

SimOptions scripted(uint64_t seed = 7) {
  SimOptions opt;
  opt.seed = seed;
  opt.ttl = 10;
  opt.loop_wait = 3;
  return opt;
}

std::string otherThan(const std::string& a, const std::string& b = "") {
  for (const char* n : {"node1", "node2", "node3"})
    if (a != n && b != n)
      return n;
  return "";
}

TEST(HaSimulation, BootstrapRaceLeavesOneClusterEveryoneFollows) {
  SimOptions opt = scripted();
  opt.concurrent = 1.0;  // all three decide on the same empty snapshot
  SimCluster sim(opt);
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30))) << sim.history();
  std::string p = sim.primary();
  int bootstrapped = 0;
  for (const char* n : {"node1", "node2", "node3"}) {
    bootstrapped += sim.decided(n, "bootstrap: bootstrapping") ? 1 : 0;
    EXPECT_EQ(sim.postgres(n).sysid, sim.postgres(p).sysid) << n;
  }
  EXPECT_EQ(bootstrapped, 3) << "all three raced for initialize";
  EXPECT_EQ(sim.promotions(), 0) << "the winner bootstrapped as primary; nobody promoted";
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(HaSimulation, PartitionedPrimaryStopsBeforeItsLeaseExpiresThenRewindsAndFollows) {
  SimCluster sim(scripted());
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
  const std::string old = sim.primary();
  ASSERT_TRUE(sim.memory(old).lease_deadline.has_value());
  const MonoTime deadline = *sim.memory(old).lease_deadline;
  sim.partition(old, /*net=*/true, seconds(25));

  ASSERT_TRUE(sim.runUntil([&] { return !sim.postgres(old).running; }, seconds(15)));
  EXPECT_LE(sim.now(), deadline + SimCluster::kStep) << "the fence acts at the deadline, not later";
  EXPECT_TRUE(sim.decided(old, "dcs unreachable: still primary, retrying the lease renewal"));

  ASSERT_TRUE(
      sim.runUntil([&] { return !sim.primary().empty() && sim.primary() != old; }, seconds(20)))
      << sim.history();
  const std::string next = sim.primary();
  EXPECT_TRUE(sim.decided(next, "promoted self: leader key expired"));

  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(40)))
      << sim.history() << sim.state();
  EXPECT_EQ(sim.primary(), next);
  EXPECT_TRUE(sim.decided(old, "rewinding from " + next + ": former primary"));
  EXPECT_EQ(sim.memory(old).following, next);
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(HaSimulation, StandbyAheadOfTheNewLeaderIsRewoundNotLeftDiverged) {
  SimCluster sim(scripted());
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
  const std::string old = sim.primary();
  const std::string ahead = otherThan(old);
  const std::string behind = otherThan(old, ahead);
  // `behind` stops receiving; `ahead` keeps up. Then `ahead` cannot be asked (its agent is down)
  // when the primary is cut off, so `behind` wins the election with less WAL than `ahead` has.
  sim.stallReplication(behind, seconds(60));
  sim.runFor(seconds(3));
  sim.crashAgent(ahead, seconds(20));
  sim.partition(old, /*net=*/true, seconds(40));
  ASSERT_TRUE(sim.runUntil([&] { return sim.primary() == behind; }, seconds(30)))
      << sim.history() << sim.state();
  EXPECT_GT(endOf(sim.postgres(ahead).wal), endOf(sim.postgres(behind).wal));

  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(80)))
      << sim.history() << sim.state();
  EXPECT_TRUE(sim.decided(ahead, "diverged")) << sim.history();
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(HaSimulation, DeletedLeaderKeyIsTakenBackByTheRunningPrimary) {
  bool standby_waited = false;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SimCluster sim(scripted(seed));
    ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
    const std::string p = sim.primary();
    const int promotions = sim.promotions();
    sim.deleteLeaderKey();
    sim.runFor(seconds(5));
    EXPECT_EQ(sim.primary(), p);
    EXPECT_EQ(sim.promotions(), promotions);
    EXPECT_TRUE(sim.decided(p, "leader key gone while we run as primary with a valid lease"));
    for (const auto& s : {otherThan(p), otherThan(p, otherThan(p))})
      standby_waited = standby_waited || sim.decided(s, sim.primary() + " still runs as a primary");
    EXPECT_TRUE(sim.converged());
    EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
  }
  EXPECT_TRUE(standby_waited) << "in some interleaving a standby loops before the primary";
}

TEST(HaSimulation, PrimaryAgentRestartedWhileCutOffFromTheDcsDemotesAtOnce) {
  SimCluster sim(scripted());
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
  const std::string p = sim.primary();
  sim.partition(p, /*net=*/false, seconds(30));
  sim.crashAgent(p, Millis(500));
  ASSERT_TRUE(sim.runUntil([&] { return !sim.postgres(p).running; }, seconds(2)));
  EXPECT_TRUE(
      sim.decided(p, "demoting: running as primary without a lease and the dcs is unreachable"));
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(80))) << sim.history();
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(HaSimulation, PauseKeepsThePrimaryWithoutTheDcsAndNobodyPromotesUntilItStoodDown) {
  SimCluster sim(scripted());
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
  const std::string p = sim.primary();
  sim.setPaused(true);
  sim.runFor(seconds(4));
  EXPECT_TRUE(sim.decided(p, "paused: renewing the leader lease as primary"));
  // Cut off from the DCS and the others: no demotion while paused, and nobody takes over.
  sim.partition(p, /*net=*/true, seconds(40));
  sim.runFor(seconds(20));
  EXPECT_TRUE(sim.postgres(p).primary()) << sim.history();
  EXPECT_TRUE(sim.decided(p, "paused, so still primary"));
  EXPECT_EQ(sim.promotions(), 0);
  EXPECT_TRUE(sim.decided(otherThan(p), "paused: no automatic action (leader none"));
  // Resumed while it is still cut off: its key expired during the pause, so the others wait until
  // it can be seen to have stood down.
  sim.setPaused(false);
  sim.runFor(seconds(12));
  EXPECT_EQ(sim.promotions(), 0) << sim.history();
  EXPECT_TRUE(sim.decided(otherThan(p), "key expired while the cluster was paused"));
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(60))) << sim.history();
  EXPECT_EQ(sim.promotions(), 1);
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(HaSimulation, SwitchoverHandsOverWithoutLossAndTheFormerPrimaryFollowsWithoutRewind) {
  for (uint64_t seed : {7u, 8u, 9u, 10u, 11u}) {
    SCOPED_TRACE(seed);
    SimCluster sim(scripted(seed));
    ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
    const std::string p = sim.primary();
    const std::string candidate = otherThan(p);
    sim.runFor(seconds(2));
    const int64_t written = endOf(sim.postgres(p).wal);
    sim.requestSwitchover(p, candidate);
    ASSERT_TRUE(
        sim.runUntil([&] { return sim.converged() && sim.primary() == candidate; }, seconds(30)))
        << sim.history();
    EXPECT_GE(endOf(sim.postgres(candidate).wal), written) << "the candidate has every record";
    EXPECT_TRUE(sim.decided(p, "switchover: switching over to " + candidate));
    EXPECT_FALSE(sim.decided(p, "rewind")) << sim.history();
    EXPECT_EQ(sim.promotions(), 1);
    EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
  }
}

TEST(HaSimulation, SwitchoverToAnUnreachableCandidateIsRefused) {
  SimCluster sim(scripted());
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
  const std::string p = sim.primary();
  const std::string candidate = otherThan(p);
  sim.partition(candidate, /*net=*/true, seconds(20));
  sim.requestSwitchover(p, candidate);
  sim.runFor(seconds(5));
  EXPECT_EQ(sim.primary(), p);
  EXPECT_TRUE(sim.decided(p, "switchover refused: candidate " + candidate)) << sim.history();
  EXPECT_EQ(sim.promotions(), 0);
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(HaSimulation, CrashedPrimaryServerIsRestartedByItsAgent) {
  SimCluster sim(scripted());
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
  const std::string p = sim.primary();
  sim.crashPostgres(p);
  ASSERT_TRUE(sim.runUntil([&] { return sim.primary() == p; }, seconds(10)));
  EXPECT_TRUE(sim.decided(p, "start_primary: starting as primary"));
  EXPECT_EQ(sim.promotions(), 0);
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(HaSimulation, WholeClusterRestartElectsTheFurthestMember) {
  SimCluster sim(scripted());
  ASSERT_TRUE(sim.runUntil([&] { return sim.converged(); }, seconds(30)));
  const std::string p = sim.primary();
  for (const auto& s : {otherThan(p), otherThan(p, otherThan(p))})
    sim.stallReplication(s, seconds(120));
  sim.runFor(seconds(3));
  // Everything stops; the agents come back after every lease has expired.
  for (const char* n : {"node1", "node2", "node3"}) {
    sim.crashAgent(n, seconds(15));
    sim.crashPostgres(n);
  }
  ASSERT_TRUE(sim.runUntil([&] { return !sim.primary().empty(); }, seconds(40))) << sim.history();
  EXPECT_EQ(sim.primary(), p) << "the old primary has the most WAL\n" << sim.history();
  EXPECT_TRUE(sim.decided(p, "no leader: starting as a standby without upstream"));
  EXPECT_EQ(sim.promotions(), 1) << "one election, one winner";
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

// The checker itself: without a watchdog, a primary whose agent died keeps running after its
// lease expired, and another member takes over. The simulation must notice the second writer
// (this is why a leader's agent arms a watchdog).
TEST(HaSimulation, CheckerCatchesAPrimaryNobodyFences) {
  int caught = 0;
  for (uint64_t seed = 1; seed <= 12 && caught == 0; ++seed) {
    SimOptions opt;
    opt.seed = seed;
    opt.ttl = 5;
    opt.loop_wait = 2;
    opt.fault_phase = seconds(400);
    opt.watchdog = false;
    SimCluster sim(opt);
    sim.runFaults();
    if (sim.violations().empty())
      continue;
    ++caught;
    // Either the old primary outlived its leader key, or two primaries ran at once.
    const std::string& v = sim.violations().front();
    EXPECT_TRUE(v.find("runs as primary but the leader key is") != std::string::npos ||
                v.find("primaries:") != std::string::npos)
        << v;
  }
  EXPECT_GT(caught, 0);
}

}  // namespace
}  // namespace pgf
