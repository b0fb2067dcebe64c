// Applies the steps of a fault schedule (schedule.h) to a FaultCluster and undoes them: resolves
// who a step hits when it starts, remembers what it did (the processes it froze, the links it
// cut), and undoes exactly that when the step ends. undoAll() puts back whatever is still broken.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "faults/fault_cluster.h"
#include "faults/schedule.h"

namespace pgf::faults {

class FaultDriver {
 public:
  FaultDriver(FaultCluster& cluster, uint64_t seed, std::function<void(const std::string&)> log);

  // Runs the schedule from now on, returning when its last step has been undone, or as soon as
  // `interrupted` (when given) turns true — then undoAll() puts everything back.
  void run(const Schedule& schedule, const std::atomic<bool>* interrupted = nullptr);
  void undoAll();

  // The processes of a process tree: `root` and every descendant (from /proc).
  static std::vector<pid_t> processTree(pid_t root);

 private:
  struct Applied {
    FaultStep step;
    int node = -1;
    std::vector<pid_t> frozen;
    std::vector<std::pair<std::string, std::string>> cuts;  // (from, to); healed both ways
    std::vector<int> killed_etcd;
  };
  Applied apply(const FaultStep& step);
  void undo(Applied& applied);
  int resolve(Target target);
  void cut(Applied& a, const std::string& from, const std::string& to, bool both_ways);

  FaultCluster& cluster_;
  std::mt19937_64 dice_;
  std::function<void(const std::string&)> log_;
  std::vector<pid_t> all_frozen_;
};

}  // namespace pgf::faults
