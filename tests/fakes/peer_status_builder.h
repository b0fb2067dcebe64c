// A PeerStatus as a healthy standby's REST API reports it, and this member's own streaming standby,
// for unit tests of decisions that weigh the other members.
#pragma once

#include <cstdint>
#include <string>

#include "ha/decision.h"

namespace pgf {

inline PeerStatus streamingPeer(const std::string& name, int64_t lsn, bool reachable = true) {
  PeerStatus p;
  p.name = name;
  p.reachable = reachable;
  p.running = true;
  p.in_recovery = true;
  p.wal_position = lsn;
  p.timeline = 1;
  return p;
}

inline LocalPostgres runningStandby(const std::string& sysid, int64_t lsn) {
  LocalPostgres pg;
  pg.data_dir_empty = false;
  pg.sysid = sysid;
  pg.timeline = 1;
  pg.wal_position = lsn;
  pg.control_state = ControlState::kInArchiveRecovery;
  pg.running = true;
  pg.accepting = true;
  pg.in_recovery = true;
  return pg;
}

}  // namespace pgf
