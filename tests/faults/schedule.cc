#include "faults/schedule.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

namespace pgf::faults {

int Schedule::endMs() const {
  int end = 0;
  for (const auto& step : steps)
    end = std::max(end, step.start_ms + step.duration_ms);
  return end;
}

bool Schedule::freezesANode() const {
  return std::any_of(steps.begin(), steps.end(),
                     [](const FaultStep& s) { return s.kind == FaultKind::kFreezeNode; });
}

const char* kindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKillAgent:
      return "kill-agent";
    case FaultKind::kKillPostgres:
      return "kill-postgres";
    case FaultKind::kFreezeAgent:
      return "freeze-agent";
    case FaultKind::kFreezePostgres:
      return "freeze-postgres";
    case FaultKind::kFreezeNode:
      return "freeze-node";
    case FaultKind::kCutFromEtcd:
      return "cut-from-etcd";
    case FaultKind::kCutFromPeers:
      return "cut-from-peers";
    case FaultKind::kIsolate:
      return "isolate";
    case FaultKind::kOneWayFromEtcd:
      return "lose-etcd-answers";
    case FaultKind::kOneWayToPeers:
      return "lose-packets-to-peers";
    case FaultKind::kEtcdMemberDown:
      return "etcd-member-down";
    case FaultKind::kEtcdMinorityWithTarget:
      return "etcd-minority-with";
    case FaultKind::kEtcdMajorityDown:
      return "etcd-majority-down";
    case FaultKind::kDiskFull:
      return "disk-full";
  }
  return "?";
}

const char* targetName(Target target) {
  switch (target) {
    case Target::kPrimary:
      return "primary";
    case Target::kReplica:
      return "replica";
    case Target::kAnyNode:
      return "any-node";
    case Target::kNone:
      return "";
  }
  return "?";
}

std::string describe(const Schedule& schedule) {
  std::string out;
  for (const auto& step : schedule.steps) {
    out += fmt::format("  +{:.1f}s for {:.1f}s {}", step.start_ms / 1000.0,
                       step.duration_ms / 1000.0, kindName(step.kind));
    if (step.target != Target::kNone)
      out += fmt::format(" {}", targetName(step.target));
    if (step.kind == FaultKind::kEtcdMemberDown ||
        step.kind == FaultKind::kEtcdMinorityWithTarget ||
        step.kind == FaultKind::kEtcdMajorityDown)
      out += fmt::format(" etcd{}", step.member + 1);
    out += "\n";
  }
  return out;
}

namespace {

constexpr FaultKind kAllKinds[] = {
    FaultKind::kKillAgent,        FaultKind::kKillPostgres,   FaultKind::kFreezeAgent,
    FaultKind::kFreezePostgres,   FaultKind::kFreezeNode,     FaultKind::kCutFromEtcd,
    FaultKind::kCutFromPeers,     FaultKind::kIsolate,        FaultKind::kOneWayFromEtcd,
    FaultKind::kOneWayToPeers,    FaultKind::kEtcdMemberDown, FaultKind::kEtcdMinorityWithTarget,
    FaultKind::kEtcdMajorityDown, FaultKind::kDiskFull,
};

// Values from the generator alone (not std::uniform_int_distribution, whose results differ
// between standard libraries), so a seed means the same schedule everywhere.
class Dice {
 public:
  explicit Dice(uint64_t seed) : gen_(seed) {}
  int between(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(gen_() % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  std::mt19937_64 gen_;
};

bool hitsANode(FaultKind kind) {
  return kind != FaultKind::kEtcdMemberDown && kind != FaultKind::kEtcdMajorityDown;
}

}  // namespace

uint64_t scheduleSeed(uint64_t run_seed, int n) {
  // splitmix64 of (run seed, n): neighbouring runs share no schedules.
  uint64_t z = run_seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(n + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Schedule randomSchedule(uint64_t seed) {
  Dice dice(seed);
  Schedule s;
  s.name = "random";
  s.seed = seed;
  const int steps = dice.between(1, 3);
  int start = 0;
  for (int i = 0; i < steps; ++i) {
    FaultStep step{};
    step.kind = kAllKinds[dice.between(0, std::size(kAllKinds) - 1)];
    if (hitsANode(step.kind)) {
      // The primary is where the invariants are at stake: half of the node faults hit it.
      const int t = dice.between(0, 3);
      step.target = t < 2 ? Target::kPrimary : (t == 2 ? Target::kReplica : Target::kAnyNode);
    } else {
      step.target = Target::kNone;
    }
    step.member = dice.between(0, 2);
    step.start_ms = start;
    step.duration_ms = dice.between(20, 120) * 100;
    s.steps.push_back(step);
    start += dice.between(20, 100) * 100;
  }
  return s;
}

std::vector<Schedule> catalogue() {
  auto one = [](std::string name, FaultKind kind, Target target, int duration_ms) {
    Schedule s;
    s.name = std::move(name);
    s.steps.push_back({kind, target, 0, duration_ms, 0});
    return s;
  };
  std::vector<Schedule> out = {
      one("primary-agent-killed", FaultKind::kKillAgent, Target::kPrimary, 12000),
      one("primary-postgres-killed", FaultKind::kKillPostgres, Target::kPrimary, 5000),
      one("primary-agent-frozen", FaultKind::kFreezeAgent, Target::kPrimary, 12000),
      one("primary-postgres-frozen", FaultKind::kFreezePostgres, Target::kPrimary, 12000),
      one("primary-node-frozen", FaultKind::kFreezeNode, Target::kPrimary, 12000),
      one("primary-cut-from-etcd", FaultKind::kCutFromEtcd, Target::kPrimary, 12000),
      one("primary-cut-from-replicas", FaultKind::kCutFromPeers, Target::kPrimary, 12000),
      one("primary-isolated", FaultKind::kIsolate, Target::kPrimary, 12000),
      one("primary-loses-etcd-answers", FaultKind::kOneWayFromEtcd, Target::kPrimary, 12000),
      one("primary-loses-packets-to-replicas", FaultKind::kOneWayToPeers, Target::kPrimary, 12000),
      one("replica-isolated", FaultKind::kIsolate, Target::kReplica, 12000),
      one("replica-postgres-frozen", FaultKind::kFreezePostgres, Target::kReplica, 12000),
      one("replica-disk-full", FaultKind::kDiskFull, Target::kReplica, 12000),
      one("primary-disk-full", FaultKind::kDiskFull, Target::kPrimary, 12000),
      one("etcd-member-down", FaultKind::kEtcdMemberDown, Target::kNone, 12000),
      one("primary-with-etcd-minority", FaultKind::kEtcdMinorityWithTarget, Target::kPrimary,
          12000),
      one("etcd-majority-down", FaultKind::kEtcdMajorityDown, Target::kNone, 12000),
  };
  // Faults during recovery: the new primary is isolated while the old one is still cut off.
  Schedule twice;
  twice.name = "failover-during-failover";
  twice.steps.push_back({FaultKind::kCutFromEtcd, Target::kPrimary, 0, 20000, 0});
  twice.steps.push_back({FaultKind::kIsolate, Target::kPrimary, 10000, 8000, 0});
  out.push_back(twice);
  return out;
}

}  // namespace pgf::faults
