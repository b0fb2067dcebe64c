// A PeerStatus as a healthy standby's REST API reports it, for unit tests of decisions that weigh
// the other members.
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

}  // namespace pgf
