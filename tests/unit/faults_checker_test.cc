// The fault-injection suite's checker on recorded histories that keep or break each invariant:
// two nodes taking writes at once, acknowledged writes lost in synchronous mode, losses in
// asynchronous mode within and beyond the lag bound, refused writes that appear anyway.
#include <gtest/gtest.h>

#include "faults/checker.h"

namespace pgf::faults {
namespace {

using Outcome = WriteAttempt::Outcome;

// Probes of `node` every 100 ms from `from` to `to` (each taking 10 ms), all with `ok`.
void probeSeries(std::vector<ProbeWrite>& out, int node, int64_t from, int64_t to, bool ok) {
  for (int64_t t = from; t < to; t += 100)
    out.push_back({node, t, t + 10, ok});
}

WriteAttempt acked(long long id, int node, int timeline, int64_t lsn, int64_t at = 0) {
  WriteAttempt w;
  w.id = id;
  w.start_ms = at;
  w.end_ms = at + 5;
  w.outcome = Outcome::kAcknowledged;
  w.node = node;
  w.timeline = timeline;
  w.lsn = lsn;
  return w;
}

TEST(FaultChecker, AHandOverWithARefusalBetweenIsNoOverlap) {
  std::vector<ProbeWrite> probes;
  probeSeries(probes, 0, 0, 1000, true);
  probeSeries(probes, 0, 1000, 3000, false);  // node1 stopped taking writes
  probeSeries(probes, 1, 0, 2000, false);
  probeSeries(probes, 1, 2000, 3000, true);  // then node2 started
  auto report = findOverlaps(probes, {acked(1, 1, 2, 0, 2500)});
  EXPECT_TRUE(report.writes_let_through.empty());
  EXPECT_EQ(report.overlap_ms, 0);
}

TEST(FaultChecker, AWriteTakenWhileAnotherNodeTookWritesIsAnOverlap) {
  std::vector<ProbeWrite> probes;
  probeSeries(probes, 0, 0, 3000, true);     // node1 never stopped
  probeSeries(probes, 1, 2000, 3000, true);  // node2 took writes too, probed at the same moments
  auto report = findOverlaps(probes, {});
  ASSERT_FALSE(report.writes_let_through.empty());
  EXPECT_EQ(report.writes_let_through[0].holder, 0);
  EXPECT_EQ(report.writes_let_through[0].intruder, 1);
  EXPECT_GT(report.overlap_ms, 700);
  // Probed at other moments, the same.
  probes.clear();
  probeSeries(probes, 0, 0, 3000, true);
  probeSeries(probes, 1, 2037, 3000, true);
  EXPECT_FALSE(findOverlaps(probes, {}).writes_let_through.empty());
}

TEST(FaultChecker, AClientWriteOnAnotherNodeInsideASpanIsAnOverlap) {
  std::vector<ProbeWrite> probes;
  probeSeries(probes, 0, 0, 1000, true);
  auto report = findOverlaps(probes, {acked(7, 2, 1, 0, 450)});
  ASSERT_EQ(report.writes_let_through.size(), 1u);
  EXPECT_EQ(report.writes_let_through[0].intruder, 2);
  EXPECT_EQ(report.writes_let_through[0].at_ms, 450);
  // The same write on the holder itself is no overlap.
  EXPECT_TRUE(findOverlaps(probes, {acked(7, 0, 1, 0, 450)}).writes_let_through.empty());
}

TEST(FaultChecker, ParsesATimelineHistoryFile) {
  auto h = parseTimelineHistory(
      "1\t0/5000028\tno recovery target specified\n\n"
      "2\t0/7000100\tno recovery target specified\n");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.at(1), 0x5000028);
  EXPECT_EQ(h.at(2), 0x7000100);
}

TEST(FaultChecker, SynchronousModeLosesNothingAcknowledged) {
  std::vector<WriteAttempt> writes = {acked(1, 0, 1, 100), acked(2, 0, 1, 200)};
  WriteAttempt unknown;
  unknown.id = 3;
  writes.push_back(unknown);  // never confirmed: may be missing
  auto ok = checkLoss(writes, {1, 2}, 2, {{1, 150}}, true, 1 << 20);
  EXPECT_TRUE(ok.violations.empty());
  auto lost = checkLoss(writes, {1}, 2, {{1, 150}}, true, 1 << 20);
  EXPECT_EQ(lost.lost, std::vector<long long>{2});
  ASSERT_EQ(lost.violations.size(), 1u);
}

TEST(FaultChecker, AsynchronousLossIsBoundedByTheLagPastTheSwitchPoint) {
  const int64_t switch_point = 0x3000000;
  std::vector<WriteAttempt> writes = {acked(1, 0, 1, switch_point - 100),
                                      acked(2, 0, 1, switch_point + 5000)};
  // Write 2 came after the switch point, within the bound.
  auto within = checkLoss(writes, {1}, 2, {{1, switch_point}}, false, 1 << 20);
  EXPECT_TRUE(within.violations.empty());
  EXPECT_EQ(within.largest_loss_bytes, 5000);
  // Beyond maximum_lag_on_failover.
  writes.push_back(acked(3, 0, 1, switch_point + (2 << 20)));
  auto beyond = checkLoss(writes, {1}, 2, {{1, switch_point}}, false, 1 << 20);
  EXPECT_EQ(beyond.violations.size(), 1u);
  // Well before the switch point: that write was on the surviving history.
  writes = {acked(4, 0, 1, switch_point - (1 << 20))};
  EXPECT_EQ(checkLoss(writes, {}, 2, {{1, switch_point}}, false, 1 << 20).violations.size(), 1u);
  // On the final timeline, or on one the final timeline does not descend from.
  writes = {acked(5, 1, 2, switch_point + 10), acked(6, 2, 3, switch_point + 10)};
  EXPECT_EQ(checkLoss(writes, {}, 2, {{1, switch_point}}, false, 1 << 20).violations.size(), 2u);
}

TEST(FaultChecker, ARefusedWriteThatIsThereAnywayIsAViolation) {
  WriteAttempt refused;
  refused.id = 9;
  refused.outcome = Outcome::kRefused;
  auto report = checkLoss({refused}, {9}, 1, {}, false, 1 << 20);
  EXPECT_EQ(report.refused_but_present, 1);
  EXPECT_EQ(report.violations.size(), 1u);
  EXPECT_TRUE(checkLoss({refused}, {}, 1, {}, false, 1 << 20).violations.empty());
}

}  // namespace
}  // namespace pgf::faults
