// The agent's timing, derived from the cluster's ttl, loop_wait and retry_timeout so that a primary
// always renews its lease, or demotes, before the lease can expire in etcd.
//
// The rule: a renewal sent at time t keeps the lease alive in etcd until at least t + ttl (etcd
// resets the expiry when it processes the keepalive, which is after t). The agent stops accepting
// writes at its deadline, t + ttl - safety_margin. Between two deadlines it must get one renewal
// through: renewals are attempted every renew_interval and each attempt gives up after
// request_timeout, and renew_interval + 2 * request_timeout <= ttl - safety_margin, so a primary
// survives one failed or slow attempt and still renews before its deadline.
//   safety_margin   = max(0.5 s, 10% of ttl): covers the fence's reaction time, the immediate stop
//   of
//                     PostgreSQL, and clock-rate differences between this host and etcd's
//   renew_interval  = min(loop_wait, (ttl - safety_margin) / 2)
//   request_timeout = min(retry_timeout, (ttl - safety_margin - renew_interval) / 2)
//   loop_interval   = min(loop_wait, (ttl - safety_margin) / 2): how often a member that does not
//                     lead runs its loop, so that its member key (on the same lease) never expires
//                     between two loops even when loop_wait is close to or above ttl
// Patroni's rule loop_wait + 2 * retry_timeout <= ttl is not needed: with ttl 2 / loop_wait 1 /
// retry_timeout 2 the agent renews every 0.75 s with 0.375 s timeouts and demotes 1.5 s after its
// last successful renewal was sent.
#pragma once

#include "common/clock.h"
#include "ha/decision.h"

namespace pgf {

struct AgentTiming {
  Millis ttl{30000};
  Millis safety_margin{3000};
  Millis loop_wait{10000};
  Millis renew_interval{10000};
  Millis loop_interval{10000};
  Millis request_timeout{8500};
};

AgentTiming deriveTiming(const HaSettings& settings);

}  // namespace pgf
