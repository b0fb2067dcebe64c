// The fault-injection suite's workload: clients that write uniquely numbered rows through the
// cluster's read-write endpoint (like a libpq client with every node in its connection string and
// target_session_attrs=read-write: it connects to the node that takes writes), recording every
// attempt and whether it was acknowledged; and one probe per node that writes to that node
// directly every 100 ms, whatever its role, recording when it accepted a write.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faults/checker.h"
#include "faults/fault_cluster.h"

namespace pgf::faults {

class Workload {
 public:
  // `epoch`: time zero of every recorded time.
  Workload(const FaultCluster& cluster, std::chrono::steady_clock::time_point epoch,
           int clients = 3);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Creates the tables (on the node that takes writes) and starts the clients and probes.
  Status start(int primary);
  void stop();

  std::vector<WriteAttempt> writes() const;
  std::vector<ProbeWrite> probes() const;
  int64_t nowMs() const;

  static constexpr const char* kRowsTable = "fx_rows";
  static constexpr const char* kProbeTable = "fx_probes";

 private:
  void client(int index);
  void probe(int node);

  const FaultCluster& cluster_;
  std::chrono::steady_clock::time_point epoch_;
  int clients_;
  std::atomic<bool> running_{false};
  std::atomic<long long> next_id_{0};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::vector<WriteAttempt> writes_;
  std::vector<ProbeWrite> probes_;
};

}  // namespace pgf::faults
