// The fault-injection suite's checker: what the workload and the probes recorded, and the
// verdicts drawn from it once the faults have healed. Pure functions of recorded data, so that
// the unit tests can feed them histories that break each invariant.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace pgf::faults {

// One write a client sent through the instance's endpoint. Times are milliseconds on one
// monotonic clock, from the run's start.
struct WriteAttempt {
  enum class Outcome {
    kAcknowledged,  // the commit was confirmed to the client
    kRefused,       // the server refused it before it could commit (read-only, for instance)
    kUnknown,       // the connection broke or timed out: it may or may not have committed
  };
  long long id = 0;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  Outcome outcome = Outcome::kUnknown;
  int node = -1;     // which node took it (acknowledged writes only)
  int timeline = 0;  // the timeline it was written on
  int64_t lsn = 0;   // the WAL insert position when it was written
};

// One probe write sent to one node directly, whatever its role.
struct ProbeWrite {
  int node = 0;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  bool acknowledged = false;
};

// Two nodes taking writes at the same time: a write acknowledged by `intruder` while `holder`
// was taking writes (it acknowledged one before and one after, with no refusal between).
struct Overlap {
  int holder = 0;
  int intruder = 0;
  int64_t at_ms = 0;        // when the intruder's write was sent
  int64_t holder_from = 0;  // the holder's acknowledgements either side of it
  int64_t holder_to = 0;
};

struct OverlapReport {
  std::vector<Overlap> writes_let_through;
  int64_t overlap_ms = 0;  // how long two nodes' accepting spans intersected, in total
};

// Evidence of acceptance is every acknowledged probe and every acknowledged workload write; a
// node counts as accepting throughout a run of consecutive acknowledged probes of its own (from
// the end of the run's first to the start of its last), with no refused or failed probe between.
OverlapReport findOverlaps(const std::vector<ProbeWrite>& probes,
                           const std::vector<WriteAttempt>& writes);

// The timelines before the final one: the LSN at which each was left for the next.
using TimelineHistory = std::map<int, int64_t>;
// A PostgreSQL timeline history file: "parentTLI<TAB>switchpoint<TAB>reason" lines.
TimelineHistory parseTimelineHistory(const std::string& text);

struct LossReport {
  std::vector<long long> lost;          // acknowledged, not on the final primary
  std::vector<std::string> violations;  // each a sentence
  int64_t largest_loss_bytes = 0;       // the furthest a lost write was past its switch point
  int refused_but_present = 0;
};

// In synchronous mode every acknowledged write must survive. In asynchronous mode a lost write
// must have been written on a timeline the cluster left, no further than `max_lag_bytes` past
// the point where it left it (maximum_lag_on_failover), and never before that point.
LossReport checkLoss(const std::vector<WriteAttempt>& writes, const std::set<long long>& present,
                     int final_timeline, const TimelineHistory& history, bool synchronous,
                     int64_t max_lag_bytes);

}  // namespace pgf::faults
