// Fault schedules for the fault-injection suite: what to break, when, and for how long, relative
// to the moment a schedule starts. A schedule is plain data, made either from a seed (the same
// seed always gives the same schedule, so any failing run can be replayed) or taken from the
// named catalogue of fixed scenarios. Who a step hits ("the primary", "a replica") is resolved
// when the step starts, from the cluster as it is then.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pgf::faults {

enum class FaultKind {
  kKillAgent,               // SIGKILL of the agent; started again when the step ends
  kKillPostgres,            // SIGKILL of the postmaster (the agent restarts it)
  kFreezeAgent,             // SIGSTOP of the agent (its watchdog keeps running), SIGCONT at the end
  kFreezePostgres,          // SIGSTOP of every PostgreSQL process: a stalled disk
  kFreezeNode,              // SIGSTOP of agent, watchdog and PostgreSQL together
  kCutFromEtcd,             // the node cannot reach any etcd member
  kCutFromPeers,            // the node cannot reach the other nodes
  kIsolate,                 // the node's link is down: it reaches nobody, nobody reaches it
  kOneWayFromEtcd,          // etcd's answers to the node are lost; its requests arrive
  kOneWayToPeers,           // the node's packets to the other nodes are lost; theirs arrive
  kEtcdMemberDown,          // SIGKILL of one etcd member; started again at the end
  kEtcdMinorityWithTarget,  // one etcd member split from the other two, the node sees only it
  kEtcdMajorityDown,        // two of three etcd members killed
  kDiskFull,                // the node's file system is filled up; freed at the end
};

enum class Target { kPrimary, kReplica, kAnyNode, kNone };

struct FaultStep {
  FaultKind kind;
  Target target;
  int start_ms;     // after the schedule's start
  int duration_ms;  // the fault holds this long, then it is undone
  int member = 0;   // the etcd member a kEtcd* step names (0..2)
};

struct Schedule {
  std::string name;  // "random" or the catalogue's name
  uint64_t seed = 0;
  std::vector<FaultStep> steps;

  // When the last step ends.
  int endMs() const;
  // Whether a step freezes a whole node: only a hardware watchdog could fence it, so the checker
  // reports the overlap it measures instead of counting it as a violation.
  bool freezesANode() const;
};

const char* kindName(FaultKind kind);
const char* targetName(Target target);
// One line per step: "+3.0s 4.5s freeze-agent primary".
std::string describe(const Schedule& schedule);

// A random schedule: 1 to 3 steps of random kinds and targets, starting 2 to 10 s apart (so they
// may overlap), each holding 2 to 12 s; every fault is undone within 40 s of the start.
Schedule randomSchedule(uint64_t seed);
// The seed of the n-th schedule of a run started with `seed`.
uint64_t scheduleSeed(uint64_t run_seed, int n);

// The fixed scenarios, by name.
std::vector<Schedule> catalogue();

}  // namespace pgf::faults
