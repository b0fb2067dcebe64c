// SimCluster: a multi-agent simulation of the HA loop in one thread. Three simulated agents share
// one MemoryStore and one FakeClock. Each agent runs decide() on what it sees and applies the
// decision with a small executor that calls its MemoryDcs the way the real agent does
// (src/agent/agent.cc), over a SimPostgres. The clock moves in 100 ms steps; in each step the
// agents' fences act, primaries take client writes, standbys stream, due agents run their loop
// (when loop_wait or the renew interval passed, or a watched DCS key changed), and the checker
// records any breach of invariant 1 (at most one server runs as a primary, and a running primary's
// leader key is alive in the store) or invariant 3 (a promotion within maximum_lag_on_failover of
// the last published position).
//
// Faults come from a seeded PRNG (runFaults) or from a test script (partition, crashAgent, ...).
// Everything is deterministic for a given seed. Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "agent/member_data.h"
#include "agent/timing.h"
#include "dcs/memory/memory_dcs.h"
#include "fakes/fake_clock.h"
#include "fakes/sim_postgres.h"
#include "ha/decision.h"

namespace pgf {

struct SimOptions {
  uint64_t seed = 1;
  int ttl = 10;
  int loop_wait = 3;
  Millis fault_phase{600000};
  // A dead agent's watchdog stops its primary at the lease deadline of its last renewal (the
  // kernel watchdog Patroni arms while it leads). Without it nothing fences a primary whose agent
  // died.
  bool watchdog = true;
  bool node3_nofailover = false;
  double concurrent = 0.5;  // chance that a step lets every due agent decide before any acts
  bool stop_at_first_violation = true;
  std::vector<std::string> count_phrases;  // reason phrases counted in phrases()
};

class SimCluster {
 public:
  // The simulated step. The agent's fence thread wakes every 50 ms; 100 ms is well inside the
  // smallest safety margin (500 ms), so stepping cannot hide a fence that reacts too late.
  static constexpr Millis kStep{100};

  explicit SimCluster(SimOptions opt);
  ~SimCluster();

  // Runs the fault phase with random faults.
  void runFaults();
  // Heals every fault, restarts dead agents, and runs until the cluster has converged and stayed
  // so for a whole ttl, or until `bound` passes. Returns how long convergence took.
  std::optional<Millis> settle(Millis bound);

  // Scripted faults (the random ones use them too). `net`: cut off from the DCS and the other
  // members; otherwise from the DCS only.
  void partition(const std::string& name, bool net, Millis len);
  void stallReplication(const std::string& name, Millis len);
  void crashPostgres(const std::string& name);
  // The agent process dies and restarts after `down`; PostgreSQL keeps running.
  void crashAgent(const std::string& name, Millis down);
  // A fault on the data itself: somebody deletes the leader key.
  void deleteLeaderKey();
  // The config key's "pause": every agent reads it on its next loop.
  void setPaused(bool paused);
  // Writes a switchover request into the "failover" key, as POST /switchover does.
  void requestSwitchover(const std::string& leader, const std::string& candidate);

  void runFor(Millis d);
  // Steps until `done()` holds (true) or `bound` passes (false).
  template <typename F>
  bool runUntil(F done, Millis bound) {
    const MonoTime end = clock_.now() + bound;
    while (clock_.now() < end && !stopped()) {
      step(false);
      if (done())
        return true;
    }
    return false;
  }

  // One primary holding the leader key; every other member runs as its standby with a history it
  // can stream.
  bool converged() const;
  // The member running as primary; "" when none or several.
  std::string primary() const;
  const SimPostgres& postgres(const std::string& name) const;
  const AgentMemory& memory(const std::string& name) const;
  // True when one of the member's latest decisions ("action: reason") contained `phrase`.
  bool decided(const std::string& name, const std::string& phrase) const;
  MonoTime now() const { return clock_.now(); }

  const std::vector<std::string>& violations() const { return violations_; }
  int promotions() const { return promotions_; }
  int fences() const { return fences_; }
  int faults() const { return faults_; }
  const std::map<std::string, int>& phrases() const { return phrases_; }
  // The latest events, one per line, and each member's state: for failure messages.
  std::string history() const;
  std::string state() const;

 private:
  struct Node;
  struct Cycle;

  bool stopped() const { return opt_.stop_at_first_violation && !violations_.empty(); }
  double elapsed() const;
  void event(const std::string& what);
  Node& node(const std::string& name);
  const Node& node(const std::string& name) const;
  Node* find(const std::string& name);
  static bool canReach(const Node& a, const Node& b);
  static void applyReachability(Node& n);
  int64_t uniform(int64_t lo, int64_t hi);
  bool chance(double p);

  void startAgent(Node& n);
  void step(bool faults);
  void healAndRestart();
  void injectFaults();
  void fence();
  void writeAndReplicate();
  bool due(Node& n);
  Cycle observe(Node& n);
  void act(Cycle& c);
  void record(Node& n, const Decision& d);
  std::vector<PeerStatus> peersOf(const Node& self);
  bool divergedFromLeader(const Node& n, const HaInput& in);
  bool renewOrAcquire(Node& n, bool acquire);
  bool copyFrom(Node& n, const std::string& from);
  void execute(Node& n, const Decision& d, const HaInput& in);
  void promote(Node& n, const HaInput& in);
  void handOver(Node& n, const Decision& d);
  void checkInvariants();

  SimOptions opt_;
  std::mt19937_64 rng_;
  FakeClock clock_;
  const MonoTime t0_ = clock_.now();
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>(clock_);
  HaSettings settings_;
  AgentTiming timing_;
  std::vector<std::unique_ptr<Node>> nodes_;
  int next_branch_ = 1;
  std::deque<std::string> events_;
  std::vector<std::string> violations_;
  int promotions_ = 0;
  int fences_ = 0;
  int faults_ = 0;
  std::map<std::string, int> phrases_;
};

}  // namespace pgf
