// A simulated PostgreSQL for the HA simulation (sim_cluster.h): just enough state for decide() to
// read (LocalPostgres) and for the simulation to tell whether a standby can stream from its
// upstream.
//
// WAL is modelled as a lineage of branches: every start of writes (bootstrap, promotion, start as
// primary) opens a branch with a unique id, whatever timeline number it gets. A standby can stream
// only from an upstream whose lineage contains all of its own, as PostgreSQL refuses to follow a
// history that forked before its position; so divergence is detected even when two branches got
// the same timeline number.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "postgres/state.h"

namespace pgf {

struct WalSegment {
  int branch = 0;
  int timeline = 1;
  int64_t end = 0;  // WAL up to here was written on this branch
};
using WalLineage = std::vector<WalSegment>;

inline int64_t endOf(const WalLineage& l) {
  return l.empty() ? 0 : l.back().end;
}

// True when every byte of `a` is also in `b`: a standby holding `a` can stream from `b`.
inline bool isPrefix(const WalLineage& a, const WalLineage& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (i >= b.size() || a[i].branch != b[i].branch)
      return false;
    bool last = i + 1 == a.size();
    if (!last && a[i].end != b[i].end)
      return false;
    if (last)
      return a[i].end <= b[i].end;
  }
  return true;
}

// `l` cut at position `pos` (what a standby streaming from `l` has once it reached `pos`).
inline WalLineage truncated(const WalLineage& l, int64_t pos) {
  WalLineage out;
  for (const auto& s : l) {
    out.push_back(s);
    if (s.end >= pos) {
      out.back().end = pos;
      break;
    }
  }
  return out;
}

struct SimPostgres {
  bool has_data = false;
  bool running = false;
  bool in_recovery = false;
  WalLineage wal;
  ControlState control = ControlState::kUnknown;
  std::string sysid;
  std::string upstream;  // member streamed from ("" = none)

  bool primary() const { return running && !in_recovery; }
  int timeline() const { return wal.empty() ? 0 : wal.back().timeline; }

  LocalPostgres probe() const {
    LocalPostgres pg;
    pg.data_dir_empty = !has_data;
    pg.running = running;
    pg.accepting = running;
    pg.in_recovery = in_recovery;
    pg.timeline = timeline();
    pg.wal_position = endOf(wal);
    pg.sysid = sysid;
    pg.control_state = control;
    pg.following_host = upstream;
    return pg;
  }
  // Immediate stop or crash: the control file keeps the state it last ran in.
  void stopImmediate() { running = false; }
  void startStandby(const std::string& from) {
    running = true;
    in_recovery = true;
    control = ControlState::kInArchiveRecovery;
    upstream = from;
  }
  // Starts accepting writes on a new branch (a promotion passes timeline() + 1).
  void startWritable(int branch, int new_timeline) {
    running = true;
    in_recovery = false;
    control = ControlState::kInProduction;
    upstream.clear();
    wal.push_back(WalSegment{branch, new_timeline, endOf(wal)});
  }
};

}  // namespace pgf
