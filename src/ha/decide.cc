// decide(): the rules run in a fixed order and the first one that applies chooses the step. The
// order is the safety argument: the fence (invariant 1) comes before everything else, including
// pause and an unreadable DCS, because a primary past its lease deadline may already share the
// cluster with a new primary. Every other rule may assume that a running primary still holds a
// valid lease.
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "ha/candidate.h"
#include "ha/decision.h"
#include "ha/failsafe.h"
#include "ha/switchover.h"
#include "ha/sync.h"
#include "ha/upstream.h"
#include "postgres/lsn.h"

namespace pgf {
namespace {

using Step = std::optional<Decision>;

Decision make(Action action, std::string reason, std::string source = "") {
  return Decision{action, std::move(reason), std::move(source)};
}

bool isPrimary(const LocalPostgres& pg) {
  return pg.running && !pg.in_recovery;
}

bool isStandby(const LocalPostgres& pg) {
  return pg.running && pg.in_recovery;
}

long long millisBetween(MonoTime from, MonoTime to) {
  return std::chrono::duration_cast<Millis>(to - from).count();
}

std::string localRole(const LocalPostgres& pg) {
  if (pg.data_dir_empty)
    return "no data directory yet";
  if (!pg.running)
    return "postgresql not running";
  return pg.in_recovery ? "running as a standby" : "running as primary";
}

const std::string* leaderName(const HaInput& in) {
  return in.cluster && in.cluster->leader ? &in.cluster->leader->name : nullptr;
}

std::optional<SwitchoverRequest> switchoverRequest(const HaInput& in) {
  if (!in.cluster || !in.cluster->failover)
    return std::nullopt;
  return parseSwitchoverRequest(*in.cluster->failover);
}

bool scheduledLater(const SwitchoverRequest& r, WallTime now) {
  return r.scheduled_at && now < *r.scheduled_at;
}

// A scheduled switchover this late (the leader was down at its time) is dropped, not run by
// surprise hours later.
std::chrono::seconds staleAfter(const HaSettings& s) {
  return std::chrono::seconds(std::max(2 * s.loop_wait, 30));
}

std::string candidateText(const SwitchoverRequest& r) {
  return r.member.empty() ? std::string("the best eligible replica") : r.member;
}

// In synchronous mode, the sync key that limits who may take the lease (nullopt: no limit).
std::optional<SyncState> syncLimit(const HaInput& in) {
  if (!in.settings.synchronous_mode || !in.cluster || !in.cluster->sync)
    return std::nullopt;
  return parseSyncState(*in.cluster->sync);
}

// The replica a leader hands its lease to for `r`, or nullptr with the reason in `why`.
const PeerStatus* switchoverTarget(const HaInput& in, const SwitchoverRequest& r,
                                   std::string* why) {
  std::vector<const PeerStatus*> peers;
  for (const auto& p : in.peers)
    if (p.name != in.self)
      peers.push_back(&p);
  const auto sync = syncLimit(in);
  auto limitation = [&](const PeerStatus& p) -> std::optional<std::string> {
    if (sync && !sync->matches(p.name))
      return std::string("not a synchronous standby");
    return candidateLimitation(p, in.pg.wal_position, in.settings);
  };
  if (!r.member.empty()) {
    for (const PeerStatus* p : peers) {
      if (p->name != r.member)
        continue;
      if (auto limit = limitation(*p)) {
        *why = fmt::format("candidate {} is {}", r.member, *limit);
        return nullptr;
      }
      return p;
    }
    *why = fmt::format("candidate {} is not a member of the cluster", r.member);
    return nullptr;
  }
  std::sort(peers.begin(), peers.end(),
            [](const PeerStatus* a, const PeerStatus* b) { return betterCandidate(*a, *b); });
  std::string limits;
  for (const PeerStatus* p : peers) {
    auto limit = limitation(*p);
    if (!limit)
      return p;
    limits += fmt::format("{}{}: {}", limits.empty() ? "" : "; ", p->name, *limit);
  }
  *why = peers.empty() ? std::string("no other member") : "no eligible replica (" + limits + ")";
  return nullptr;
}

// Rule 1: a primary must hold a lease it can prove, or stop. Not while paused: then nothing
// demotes a primary, not even the loss of the DCS (rule 3 keeps or takes the key when it can).
Step fence(const HaInput& in) {
  if (!isPrimary(in.pg) || in.settings.paused)
    return std::nullopt;
  const auto& deadline = in.memory.lease_deadline;
  if (deadline) {
    if (in.now < *deadline)
      return std::nullopt;
    return make(Action::kDemote,
                fmt::format("demoting: lease deadline passed {} ms ago, the leader lease may have "
                            "expired in the dcs{}",
                            millisBetween(*deadline, in.now),
                            in.settings.paused ? " (fencing applies even while paused)" : ""));
  }
  // No deadline: the agent restarted and found its server running as primary.
  if (!in.cluster)
    return make(Action::kDemote,
                "demoting: running as primary without a lease and the dcs is unreachable");
  const std::string* leader = leaderName(in);
  if (!leader)
    return make(Action::kAcquireLease,
                "running as primary without a lease and no leader key: acquiring the lease");
  if (*leader == in.self)
    return make(Action::kRenewLease,
                "running as primary without a lease deadline and the leader key names us: "
                "renewing the lease");
  return make(Action::kDemote,
              fmt::format("demoting: running as primary without a lease while {} holds the "
                          "leader key",
                          *leader));
}

// Rule 2.
Step dcsUnreadable(const HaInput& in) {
  if (in.cluster)
    return std::nullopt;
  if (isPrimary(in.pg) && in.settings.paused)
    return make(Action::kRenewLease,
                "dcs unreachable: paused, so still primary (no demotion while paused); retrying "
                "the lease renewal");
  if (isPrimary(in.pg))  // the fence let it through, so the deadline is in the future
    return make(Action::kRenewLease,
                fmt::format("dcs unreachable: still primary, retrying the lease renewal until the "
                            "deadline in {} ms",
                            millisBetween(in.now, *in.memory.lease_deadline)));
  return make(Action::kNone, fmt::format("dcs unreachable: waiting ({})", localRole(in.pg)));
}

// Rule 3.
Step paused(const HaInput& in) {
  if (!in.settings.paused)
    return std::nullopt;
  const std::string* leader = leaderName(in);
  if (leader && *leader == in.self && isPrimary(in.pg))
    return make(Action::kRenewLease, "paused: renewing the leader lease as primary");
  if (!leader && isPrimary(in.pg))
    return make(Action::kAcquireLease, "paused: no leader key while we run as primary: taking it");
  return make(Action::kNone, fmt::format("paused: no automatic action (leader {}, {})",
                                         leader ? *leader : std::string("none"), localRole(in.pg)));
}

// Rule 4: a member we could clone from, preferring a running member tagged clonefrom.
Decision cloneSource(const HaInput& in, const MemberInfo& leader) {
  for (const auto& m : in.cluster->members)
    if (m.name != in.self && m.tags.clonefrom && m.state == "running")
      return make(Action::kClone, fmt::format("cloning from {} (tagged clonefrom)", m.name),
                  m.name);
  return make(Action::kClone, fmt::format("cloning from the leader {}", leader.name), leader.name);
}

bool rewindFailed(const HaInput& in) {
  return in.memory.rewind_failed || in.pg.rewind_failed;
}

// After a failed pg_rewind: set the data directory aside and clone afresh (invariant 5 holds:
// nothing is deleted), where the settings allow it and an earlier attempt was not refused.
Step recloneFrom(const HaInput& in, const std::string& leader, const char* what) {
  if (!in.settings.reclone_on_rewind_failure || in.memory.reclone_refused)
    return std::nullopt;
  return make(Action::kReclone,
              fmt::format("{}: pg_rewind failed, setting the data directory aside to clone it "
                          "again from {}",
                          what, leader),
              leader);
}

// A data directory that a pg_rewind into it left half rewound (the marker is there) is never
// started, as a standby or otherwise: it is set aside and cloned again from a leader, or waits.
Step halfRewound(const HaInput& in) {
  if (!in.pg.rewind_failed || in.pg.running || in.pg.data_dir_empty)
    return std::nullopt;
  const std::string* leader = leaderName(in);
  const bool another_leads = leader && *leader != in.self;
  if (another_leads)
    if (Step s = recloneFrom(in, *leader, "data directory left by a failed pg_rewind"))
      return s;
  const char* waiting = !another_leads              ? "waiting for a leader to clone from"
                        : in.memory.reclone_refused ? "setting it aside was refused, waiting for "
                                                      "pgfleetctl reinit"
                                                    : "reclone_on_rewind_failure is off, waiting "
                                                      "for pgfleetctl reinit";
  return make(Action::kNone,
              fmt::format("not starting PostgreSQL: a failed pg_rewind left the data directory "
                          "unusable; {}",
                          waiting));
}

// A data directory PostgreSQL cannot start from (its control file missing, truncated or failing
// its checksum) is set aside whole (invariant 5: nothing deleted) and cloned again from the
// leader. A leader in that state releases the key first, so that a replica takes over and this
// node clones from it: its server does not run, so it takes no writes, and the WAL it had is
// unreadable without its control file. With no other member to take over it waits for an
// operator.
Step unusableDataDirectory(const HaInput& in) {
  if (!in.pg.control_unusable || in.pg.running || in.pg.data_dir_empty)
    return std::nullopt;
  const std::string* leader = leaderName(in);
  const bool others =
      in.cluster && std::any_of(in.cluster->members.begin(), in.cluster->members.end(),
                                [&](const MemberInfo& m) { return m.name != in.self; });
  if (leader && *leader == in.self) {
    if (others)
      return make(Action::kReleaseLeader,
                  "data directory unusable (its control file is missing or damaged) while we hold "
                  "the leader key: releasing it so that a replica takes over");
    return make(Action::kNone,
                "not starting PostgreSQL: its control file is missing or damaged and no other "
                "member can take over; waiting for pgfleetctl reinit");
  }
  if (leader && !in.memory.reclone_refused)
    return make(Action::kReclone,
                fmt::format("data directory unusable (its control file is missing or damaged): "
                            "setting it aside to clone it again from {}",
                            *leader),
                *leader);
  return make(Action::kNone,
              fmt::format("not starting PostgreSQL: its control file is missing or damaged; {}",
                          leader ? "setting it aside was refused, waiting for pgfleetctl reinit"
                                 : "waiting for a leader to clone from"));
}

Step emptyDataDirectory(const HaInput& in) {
  if (!in.pg.data_dir_empty)
    return std::nullopt;
  const ClusterView& cluster = *in.cluster;
  // A member that may never lead must not win the race either: the winner becomes the leader.
  if (!cluster.initialize && in.tags.nofailover)
    return make(Action::kNone,
                "not bootstrapping: nofailover tag set, waiting for another member to bootstrap");
  if (!cluster.initialize)
    return make(Action::kBootstrap,
                "bootstrapping: data directory empty and no initialize key, racing for it");
  const std::string* leader = leaderName(in);
  if (!leader)
    return make(Action::kNone,
                "waiting for the leader to finish bootstrapping: initialize key present but no "
                "leader");
  // Our data is gone: waiting for the key to expire would wait forever (our member key keeps the
  // lease alive), and nothing of ours is left to lose. A replica takes over; we then clone from it.
  if (*leader == in.self)
    return make(Action::kReleaseLeader,
                "data directory empty while we hold the leader key: releasing it so that a "
                "replica takes over");
  const MemberInfo* member = cluster.leaderMember();
  if (!member)
    return make(Action::kNone,
                fmt::format("waiting for the leader {} to finish bootstrapping: it has no member "
                            "key yet",
                            *leader));
  return cloneSource(in, *member);
}

// Rule 5.
Step sysidMismatch(const HaInput& in) {
  const auto& init = in.cluster->initialize;
  if (!init || init->empty() || in.pg.sysid.empty() || *init == in.pg.sysid)
    return std::nullopt;
  return make(Action::kNone,
              fmt::format("system identifier mismatch: local {} vs cluster {}, refusing to join",
                          in.pg.sysid, *init));
}

// Rule 6a: a switchover request while we lead and run as primary.
Step switchoverFromLeader(const HaInput& in) {
  auto r = switchoverRequest(in);
  if (!r)
    return std::nullopt;
  auto keep = [](std::string reason, bool clear) {
    Decision d = make(Action::kRenewLease, std::move(reason));
    d.clear_failover = clear;
    return d;
  };
  if (!r->scheduled_text.empty() && !r->scheduled_at)
    return keep(fmt::format("removing a switchover request with an unreadable scheduled_at \"{}\"",
                            r->scheduled_text),
                true);
  if (scheduledLater(*r, in.wall_now))
    return keep(fmt::format("switchover to {} scheduled at {}: leading until then",
                            candidateText(*r), r->scheduled_text),
                false);
  if (r->scheduled_at && in.wall_now - *r->scheduled_at > staleAfter(in.settings))
    return keep(
        fmt::format("removing a stale switchover request scheduled at {}", r->scheduled_text),
        true);
  if (!r->leader.empty() && r->leader != in.self)
    return keep(
        fmt::format("removing a switchover request addressed to {} while we lead", r->leader),
        true);
  if (r->member == in.self)
    return keep("removing a switchover request to ourselves: we already lead", true);
  std::string why;
  const PeerStatus* target = switchoverTarget(in, *r, &why);
  if (target == nullptr)
    return keep(fmt::format("switchover refused: {}; removing the request", why), true);
  return make(Action::kSwitchover,
              fmt::format("switching over to {}: checkpoint, clean stop, then releasing the lease",
                          target->name),
              target->name);
}

// Rule 6.
Decision weLead(const HaInput& in) {
  if (!in.pg.running)
    return make(Action::kStartPrimary,
                "starting as primary: we hold the leader lease but postgresql is not running");
  if (in.pg.in_recovery)
    return make(Action::kAcquireAndPromote,
                "promoting: we hold the leader key but run as a standby");
  if (Step s = switchoverFromLeader(in))
    return std::move(*s);
  return make(Action::kRenewLease,
              fmt::format("no action: {} is the leader with the lease, renewing it", in.self));
}

// Rule 7's rejoin of a member that holds WAL the leader lacks: pg_rewind, a re-clone after a failed
// one, or wait for an operator (invariant 5: nothing is deleted automatically).
Decision rejoinByRewind(const HaInput& in, const std::string& leader, const char* what) {
  const LocalPostgres& pg = in.pg;
  if (rewindFailed(in)) {
    if (Step s = recloneFrom(in, leader, what))
      return std::move(*s);
  } else if (in.settings.use_pg_rewind) {
    return make(Action::kRewind,
                fmt::format("rewinding from {}: {} on timeline {} at {}", leader, what, pg.timeline,
                            formatLsn(pg.wal_position)),
                leader);
  }
  return make(
      Action::kNone,
      fmt::format("{} needs a rewind or reinitialize before it can follow {} ({})", what, leader,
                  !rewindFailed(in)           ? "use_pg_rewind is off"
                  : in.memory.reclone_refused ? "pg_rewind failed, and setting the data "
                                                "directory aside was refused"
                                              : "pg_rewind failed"));
}

// Rule 7.
Decision anotherLeads(const HaInput& in, const std::string& leader) {
  const LocalPostgres& pg = in.pg;
  if (isPrimary(pg))
    return make(Action::kDemote,
                fmt::format("demoting: {} holds the leader lease while we run as primary", leader));
  if (!pg.running && pg.wasPrimary())
    return rejoinByRewind(in, leader, "former primary");
  if (!pg.running && in.diverged_from_leader)
    return rejoinByRewind(in, leader, "diverged standby");
  const std::string upstream = upstreamMember(*in.cluster, in.self, in.tags.replicatefrom, leader);
  const std::string via =
      upstream == leader ? std::string() : fmt::format(" (replicatefrom; {} leads)", leader);
  if (!pg.running)
    return make(Action::kStartReplica, fmt::format("starting as a replica of {}{}", upstream, via),
                upstream);
  if (in.diverged_from_leader) {
    if (in.settings.use_pg_rewind && !rewindFailed(in))
      return make(Action::kDemote,
                  fmt::format("stopping: our WAL at {} on timeline {} diverged from {}'s history, "
                              "rewinding next",
                              formatLsn(pg.wal_position), pg.timeline, leader));
    return rejoinByRewind(in, leader, "diverged standby");
  }
  if (in.memory.following != upstream)
    return make(Action::kFollow,
                fmt::format("following {}{} (was {})", upstream, via,
                            in.memory.following.empty() ? std::string("following nobody")
                                                        : "following " + in.memory.following),
                upstream);
  return make(Action::kNone, fmt::format("following {}{}", upstream, via));
}

// Rule 8's failsafe restraint (ha/failsafe.h): no lease race while a failsafe promise holds, nor
// for a member the failsafe key leaves out.
Step failsafeRestraint(const HaInput& in) {
  if (!in.settings.failsafe_mode || !in.cluster)
    return std::nullopt;
  if (!in.failsafe_leader.empty() && in.failsafe_leader != in.self)
    return make(Action::kNone,
                fmt::format("no leader key, but {} still runs as primary in failsafe mode (its "
                            "heartbeat was accepted): not competing for the lease",
                            in.failsafe_leader));
  if (in.cluster->failsafe) {
    auto members = parseFailsafeMembers(*in.cluster->failsafe);
    if (!members.empty() && members.find(in.self) == members.end())
      return make(Action::kNone,
                  "no leader: not promoting, failsafe mode and this member is not in the "
                  "failsafe key");
  }
  return std::nullopt;
}

// Rule 8.
Decision noLeader(const HaInput& in) {
  const LocalPostgres& pg = in.pg;
  if (isPrimary(pg))  // the fence let it through: our deadline is still in the future
    return make(Action::kAcquireLease,
                "leader key gone while we run as primary with a valid lease: taking it back");
  if (!pg.running)
    return make(Action::kStartReplica,
                "no leader: starting as a standby without upstream until one is elected");
  if (in.tags.nofailover)
    return make(Action::kNone, "no leader: not promoting, nofailover tag set");
  if (Step s = failsafeRestraint(in))
    return std::move(*s);
  std::vector<PeerStatus> peers = in.peers;
  if (auto sync = syncLimit(in)) {
    // Invariant 2: only the members the sync key names hold every acknowledged commit.
    if (!sync->matches(in.self))
      return make(Action::kNone,
                  fmt::format("no leader: not promoting, synchronous mode and the sync key names "
                              "{} as the only candidates",
                              syncStateJson(*sync).dump()));
    for (auto& p : peers)
      if (!sync->matches(p.name))
        p.nofailover = true;  // may lack acknowledged commits: never a better candidate
  }
  auto r = switchoverRequest(in);
  if (r && scheduledLater(*r, in.wall_now))
    r.reset();
  const std::string& lost = in.memory.leader_lost_in_pause;
  if (!lost.empty() && lost != in.self && !(r && r->member == in.self)) {
    // Its key expired while paused, and a paused primary does not demote: unless it answers as
    // stopped or as a standby, it may still accept writes.
    bool stood_down = false;
    for (const auto& p : in.peers)
      if (p.name == lost && p.reachable && (!p.running || p.in_recovery))
        stood_down = true;
    if (!stood_down)
      return make(Action::kNone,
                  fmt::format("no leader: {}'s key expired while the cluster was paused and it "
                              "does not answer as stopped or as a standby, so it may still run "
                              "as primary; not promoting (POST /failover names a candidate)",
                              lost));
  }
  if (r && r->member == in.self) {
    // The requested candidate: the operator chose it, so a peer further ahead does not stop it;
    // the lag bound and a peer still running as primary still do.
    for (auto& p : peers)
      p.nofailover = true;
    Candidacy c =
        checkCandidacy(in.self, pg.wal_position, pg.timeline, in.settings, *in.cluster, peers);
    Decision d = make(c.eligible ? Action::kAcquireAndPromote : Action::kNone,
                      c.eligible ? std::string("taking over the lease as the requested "
                                               "switchover candidate")
                                 : std::move(c.reason));
    d.clear_failover = c.eligible;
    return d;
  }
  if (r && !r->member.empty()) {
    for (const auto& p : peers)
      if (p.name == r->member && !candidateLimitation(p, 0, in.settings))
        return make(Action::kNone,
                    fmt::format("no leader: waiting for {}, the requested candidate, to take over",
                                r->member));
    // The candidate cannot take over: the others elect among themselves.
  }
  if (r && !r->leader.empty()) {
    if (r->leader == in.self) {
      // We handed the lease over: take it back only if nobody else can.
      for (const auto& p : peers)
        if (p.name != r->member && !candidateLimitation(p, 0, in.settings))
          return make(
              Action::kNone,
              fmt::format("no leader: we handed the lease over and {} can take it", p.name));
    } else {
      for (auto& p : peers)
        if (p.name == r->leader)
          p.nofailover = true;  // the former leader stepped down: not a candidate to wait for
    }
  }
  Candidacy c =
      checkCandidacy(in.self, pg.wal_position, pg.timeline, in.settings, *in.cluster, peers);
  Decision d = make(c.eligible ? Action::kAcquireAndPromote : Action::kNone, std::move(c.reason));
  d.clear_failover = c.eligible && in.cluster->failover.has_value();
  return d;
}

}  // namespace

bool needsPeerStatus(const HaInput& in) {
  if (!in.cluster || in.settings.paused)
    return false;
  if (in.cluster->leader) {
    // A leader about to carry out a switchover checks its candidates first.
    if (in.cluster->leader->name != in.self || !isPrimary(in.pg))
      return false;
    auto r = switchoverRequest(in);
    return r && !scheduledLater(*r, in.wall_now) && (r->leader.empty() || r->leader == in.self) &&
           r->member != in.self;
  }
  if (in.tags.nofailover || failsafeRestraint(in))
    return false;
  if (in.pg.data_dir_empty || !isStandby(in.pg))
    return false;
  return !sysidMismatch(in).has_value();
}

void rememberLeader(AgentMemory& memory, const std::optional<ClusterView>& cluster, bool paused) {
  if (!cluster)
    return;
  if (cluster->leader) {
    memory.last_leader = cluster->leader->name;
    memory.leader_lost_in_pause.clear();
  } else if (paused && !memory.last_leader.empty()) {
    memory.leader_lost_in_pause = memory.last_leader;
  }
}

Decision decide(const HaInput& in) {
  for (auto rule : {fence, dcsUnreadable, paused, emptyDataDirectory, unusableDataDirectory,
                    sysidMismatch, halfRewound}) {
    if (Step s = rule(in))
      return std::move(*s);
  }
  const std::string* leader = leaderName(in);
  if (!leader)
    return noLeader(in);
  if (*leader == in.self)
    return weLead(in);
  return anotherLeads(in, *leader);
}

}  // namespace pgf
