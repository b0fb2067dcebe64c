#include "faults/checker.h"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "postgres/lsn.h"

namespace pgf::faults {

namespace {

struct Span {
  int64_t from;
  int64_t to;
};

// A write's commit record follows the position it read by whatever other sessions wrote in
// between: a lost write may read a position slightly before the switch point.
constexpr int64_t kPositionSlack = 64 * 1024;

}  // namespace

OverlapReport findOverlaps(const std::vector<ProbeWrite>& probes,
                           const std::vector<WriteAttempt>& writes) {
  std::map<int, std::vector<ProbeWrite>> by_node;
  for (const auto& p : probes)
    by_node[p.node].push_back(p);
  // Every acknowledgement, as (node, sent, confirmed).
  struct Ack {
    int node;
    int64_t start;
    int64_t end;
  };
  std::vector<Ack> acks;
  for (const auto& p : probes)
    if (p.acknowledged)
      acks.push_back({p.node, p.start_ms, p.end_ms});
  for (const auto& w : writes)
    if (w.outcome == WriteAttempt::Outcome::kAcknowledged && w.node >= 0)
      acks.push_back({w.node, w.start_ms, w.end_ms});

  std::map<int, std::vector<Span>> spans;
  for (auto& [node, list] : by_node) {
    std::sort(list.begin(), list.end(),
              [](const ProbeWrite& a, const ProbeWrite& b) { return a.start_ms < b.start_ms; });
    // Runs of consecutive acknowledged probes: from the end of the first to the start of the
    // last.
    size_t first = 0;
    for (size_t i = 0; i <= list.size(); ++i) {
      if (i < list.size() && list[i].acknowledged)
        continue;
      // list[first, i) is a run (possibly empty).
      if (i >= first + 2 && list[i - 1].start_ms > list[first].end_ms)
        spans[node].push_back({list[first].end_ms, list[i - 1].start_ms});
      first = i + 1;
    }
  }

  OverlapReport report;
  for (const auto& [holder, list] : spans) {
    for (const auto& span : list) {
      for (const auto& ack : acks)
        if (ack.node != holder && ack.start > span.from && ack.end < span.to)
          report.writes_let_through.push_back({holder, ack.node, ack.start, span.from, span.to});
      for (const auto& [other, other_list] : spans) {
        if (other <= holder)
          continue;
        for (const auto& o : other_list) {
          const int64_t from = std::max(span.from, o.from);
          const int64_t to = std::min(span.to, o.to);
          if (to > from)
            report.overlap_ms += to - from;
        }
      }
    }
  }
  return report;
}

TimelineHistory parseTimelineHistory(const std::string& text) {
  TimelineHistory out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    int parent = 0;
    std::string lsn;
    if (!(fields >> parent >> lsn) || line.empty() || line[0] == '#')
      continue;
    auto position = parseLsn(lsn);
    if (position.ok())
      out[parent] = *position;
  }
  return out;
}

LossReport checkLoss(const std::vector<WriteAttempt>& writes, const std::set<long long>& present,
                     int final_timeline, const TimelineHistory& history, bool synchronous,
                     int64_t max_lag_bytes) {
  LossReport report;
  for (const auto& w : writes) {
    if (w.outcome == WriteAttempt::Outcome::kRefused && present.count(w.id)) {
      ++report.refused_but_present;
      report.violations.push_back(fmt::format("write {} was refused but is there", w.id));
      continue;
    }
    if (w.outcome != WriteAttempt::Outcome::kAcknowledged || present.count(w.id))
      continue;
    report.lost.push_back(w.id);
    if (synchronous) {
      report.violations.push_back(fmt::format(
          "write {} acknowledged by node{} in synchronous mode is gone", w.id, w.node + 1));
      continue;
    }
    if (w.timeline == final_timeline) {
      report.violations.push_back(
          fmt::format("write {} acknowledged on the final timeline {} is gone", w.id, w.timeline));
      continue;
    }
    auto left = history.find(w.timeline);
    if (left == history.end()) {
      report.violations.push_back(fmt::format(
          "write {} acknowledged on timeline {}, which the final timeline {} does not descend "
          "from, is gone",
          w.id, w.timeline, final_timeline));
      continue;
    }
    const int64_t past = w.lsn - left->second;
    report.largest_loss_bytes = std::max(report.largest_loss_bytes, past);
    if (past < -kPositionSlack)
      report.violations.push_back(
          fmt::format("write {} at {} on timeline {} is gone although the cluster left that "
                      "timeline only at {}",
                      w.id, formatLsn(w.lsn), w.timeline, formatLsn(left->second)));
    else if (past > max_lag_bytes)
      report.violations.push_back(fmt::format(
          "write {} at {} on timeline {} is gone, {} bytes past the switch point {} "
          "(maximum_lag_on_failover {})",
          w.id, formatLsn(w.lsn), w.timeline, past, formatLsn(left->second), max_lag_bytes));
  }
  return report;
}

}  // namespace pgf::faults
