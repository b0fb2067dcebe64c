#include "fakes/sim_cluster.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "postgres/lsn.h"

namespace pgf {
namespace {

constexpr int64_t kFirstLsn = 0x1000000;
const char* const kScope = "sim";
const std::string kLeaderKey = "/service/sim/leader";
const std::string kStatusKey = "/service/sim/status";
const std::string kFailoverKey = "/service/sim/failover";

}  // namespace

struct SimCluster::Node {
  std::string name;
  MemberIdentity identity;
  SimPostgres pg;
  bool agent_alive = true;
  MonoTime agent_back_at{};
  std::unique_ptr<MemoryDcs> dcs;
  AgentMemory memory;
  int min_ttl = 0;
  MonoTime next_loop_at{};
  int64_t seen_revision = 0;
  bool run_again = true;
  std::optional<MonoTime> watchdog_deadline;
  bool net_partitioned = false;  // cut off from the DCS and from the other members
  bool dcs_partitioned = false;  // cut off from the DCS only
  MonoTime heal_at{};
  MonoTime stalled_until{};  // replication receives nothing until then (a slow disk, say)
  std::string last_reason;
  std::deque<std::string> decisions;  // the latest "action: reason" lines
};

// One HA cycle, as Agent::cycle runs it, in two halves: observe and decide, then act. A step may
// let every due agent decide before any of them acts: the interleaving in which races on the DCS
// (bootstrap, leader key) really happen.
struct SimCluster::Cycle {
  Node* node;
  MonoTime start;
  HaInput in;
  Decision d;
};

SimCluster::SimCluster(SimOptions opt) : opt_(std::move(opt)), rng_(opt_.seed) {
  settings_.ttl = opt_.ttl;
  settings_.loop_wait = opt_.loop_wait;
  settings_.retry_timeout = opt_.loop_wait;
  settings_.use_pg_rewind = true;
  timing_ = deriveTiming(settings_);
  for (int i = 1; i <= 3; ++i) {
    auto n = std::make_unique<Node>();
    n->name = fmt::format("node{}", i);
    n->identity.conn_url = fmt::format("postgres://127.0.0.1:{}/postgres", 5431 + i);
    n->identity.api_url = fmt::format("http://127.0.0.1:{}/patroni", 8007 + i);
    n->identity.version = "sim";
    n->identity.tags.nofailover = opt_.node3_nofailover && i == 3;
    nodes_.push_back(std::move(n));
  }
  for (auto& n : nodes_)
    startAgent(*n);
}

SimCluster::~SimCluster() = default;

// ---- running

void SimCluster::runFaults() {
  const MonoTime end = clock_.now() + opt_.fault_phase;
  while (clock_.now() < end && !stopped())
    step(true);
}

std::optional<Millis> SimCluster::settle(Millis bound) {
  for (auto& n : nodes_) {
    n->net_partitioned = n->dcs_partitioned = false;
    n->stalled_until = clock_.now();
    if (!n->agent_alive)
      startAgent(*n);
    applyReachability(*n);
  }
  const MonoTime start = clock_.now();
  MonoTime converged_since = start;
  bool converged_now = false;
  while (clock_.now() - start < bound && !stopped()) {
    step(false);
    if (!converged()) {
      converged_now = false;
      continue;
    }
    if (!converged_now) {
      converged_now = true;
      converged_since = clock_.now();
    }
    if (clock_.now() - converged_since >= std::chrono::seconds(opt_.ttl))
      return std::chrono::duration_cast<Millis>(converged_since - start);
  }
  return std::nullopt;
}

void SimCluster::runFor(Millis d) {
  const MonoTime end = clock_.now() + d;
  while (clock_.now() < end && !stopped())
    step(false);
}

void SimCluster::step(bool faults) {
  clock_.advance(kStep);
  healAndRestart();
  if (faults)
    injectFaults();
  fence();
  writeAndReplicate();
  std::vector<Node*> order;
  for (auto& n : nodes_)
    order.push_back(n.get());
  std::shuffle(order.begin(), order.end(), rng_);
  if (chance(opt_.concurrent)) {
    std::vector<Cycle> cycles;
    for (Node* n : order)
      if (due(*n))
        cycles.push_back(observe(*n));
    for (auto& c : cycles)
      act(c);
  } else {
    for (Node* n : order) {
      if (!due(*n))
        continue;
      Cycle c = observe(*n);
      act(c);
    }
  }
  checkInvariants();
}

// ---- faults

void SimCluster::partition(const std::string& name, bool net, Millis len) {
  Node& n = node(name);
  (net ? n.net_partitioned : n.dcs_partitioned) = true;
  n.heal_at = clock_.now() + len;
  applyReachability(n);
  event(fmt::format("{}: {} partition for {} ms", name, net ? "network" : "dcs", len.count()));
}

void SimCluster::stallReplication(const std::string& name, Millis len) {
  node(name).stalled_until = clock_.now() + len;
  event(fmt::format("{}: replication stalled for {} ms", name, len.count()));
}

void SimCluster::crashPostgres(const std::string& name) {
  Node& n = node(name);
  if (!n.pg.running)
    return;
  n.pg.stopImmediate();
  event(name + ": postgresql crashed");
}

void SimCluster::crashAgent(const std::string& name, Millis down) {
  Node& n = node(name);
  n.agent_alive = false;
  // The watchdog keeps the timeout of its last ping: an agent that restarted and crashed again
  // before renewing leaves the earlier one armed.
  if (opt_.watchdog && n.memory.lease_deadline)
    n.watchdog_deadline = n.memory.lease_deadline;
  n.dcs.reset();
  n.agent_back_at = clock_.now() + down;
  event(fmt::format("{}: agent crashed for {} ms", name, down.count()));
}

void SimCluster::deleteLeaderKey() {
  store_->erase(kLeaderKey);
  event("leader key deleted");
}

void SimCluster::setPaused(bool paused) {
  settings_.paused = paused;
  event(paused ? "cluster paused" : "cluster resumed");
}

void SimCluster::requestSwitchover(const std::string& leader, const std::string& candidate) {
  nlohmann::json request = {{"leader", leader}};
  if (!candidate.empty())
    request["member"] = candidate;
  store_->put(kFailoverKey, request.dump());
  event(fmt::format("switchover requested from {} to {}", leader,
                    candidate.empty() ? std::string("any") : candidate));
}

void SimCluster::healAndRestart() {
  const MonoTime now = clock_.now();
  for (auto& n : nodes_) {
    if ((n->net_partitioned || n->dcs_partitioned) && now >= n->heal_at) {
      n->net_partitioned = n->dcs_partitioned = false;
      applyReachability(*n);
      event(n->name + ": partition healed");
    }
    if (!n->agent_alive && now >= n->agent_back_at) {
      startAgent(*n);
      event(n->name + ": agent restarted");
    }
  }
}

void SimCluster::injectFaults() {
  // About one fault every two ttl, so a fault often lands while the last one still matters.
  const double p = static_cast<double>(kStep.count()) / (2.0 * opt_.ttl * 1000);
  if (!chance(p))
    return;
  ++faults_;
  Node& n = *nodes_[uniform(0, static_cast<int64_t>(nodes_.size()) - 1)];
  const int64_t ttl_ms = opt_.ttl * 1000LL;
  switch (uniform(0, 4)) {
    case 0:
    case 1:
      if (!n.net_partitioned && !n.dcs_partitioned)
        partition(n.name, chance(0.5), Millis(uniform(500, 3 * ttl_ms)));
      return;
    case 2:
      // Lag beyond maximum_lag_on_failover within a few seconds of writes.
      stallReplication(n.name, Millis(uniform(1000, 2 * ttl_ms)));
      return;
    case 3:
      crashPostgres(n.name);
      return;
    default:
      if (n.agent_alive)
        crashAgent(n.name, Millis(uniform(200, 2 * ttl_ms)));
      return;
  }
}

// ---- the world between loops

// The agent's fence thread, and for a dead agent the watchdog it armed while leading.
void SimCluster::fence() {
  if (settings_.paused)
    return;  // paused: the agents hold their fence and disarm their watchdogs
  const MonoTime now = clock_.now();
  for (auto& n : nodes_) {
    if (n->agent_alive && n->memory.lease_deadline) {
      n->watchdog_deadline.reset();
      if (now < *n->memory.lease_deadline)
        continue;
      n->memory.lease_deadline.reset();
      if (n->pg.running) {
        n->pg.stopImmediate();
        ++fences_;
        event(n->name + ": fence stopped postgresql at the lease deadline");
      }
    } else if (n->watchdog_deadline && now >= *n->watchdog_deadline) {
      n->watchdog_deadline.reset();
      if (n->pg.primary()) {
        n->pg.stopImmediate();
        ++fences_;
        event(n->name + ": watchdog stopped postgresql");
      }
    }
  }
}

void SimCluster::writeAndReplicate() {
  for (auto& n : nodes_)
    if (n->pg.primary())
      n->pg.wal.back().end += uniform(0, 64 * 1024);
  for (auto& s : nodes_) {
    if (!s->pg.running || !s->pg.in_recovery || s->pg.upstream.empty() ||
        clock_.now() < s->stalled_until)
      continue;
    Node* u = find(s->pg.upstream);
    if (!u || !u->pg.primary() || !canReach(*s, *u) || u->pg.sysid != s->pg.sysid ||
        !isPrefix(s->pg.wal, u->pg.wal))
      continue;
    int64_t target = std::min(endOf(u->pg.wal), endOf(s->pg.wal) + uniform(0, 96 * 1024));
    s->pg.wal = truncated(u->pg.wal, std::max(target, endOf(s->pg.wal)));
  }
}

// ---- the agent

// A fresh agent process: empty memory, a new DCS client without a lease.
void SimCluster::startAgent(Node& n) {
  n.agent_alive = true;
  n.dcs = std::make_unique<MemoryDcs>(store_, kScope, n.name, settings_.ttl);
  applyReachability(n);
  n.memory = AgentMemory{};
  n.memory.new_node = !n.pg.has_data;
  n.min_ttl = settings_.ttl;
  n.run_again = true;
  n.seen_revision = 0;
}

bool SimCluster::due(Node& n) {
  if (!n.agent_alive)
    return false;
  return n.run_again || clock_.now() >= n.next_loop_at ||
         n.dcs->waitForChange(n.seen_revision, Millis(0));
}

SimCluster::Cycle SimCluster::observe(Node& n) {
  Cycle c{&n, clock_.now(), {}, {}};
  n.run_again = false;
  HaInput& in = c.in;
  in.now = c.start;
  in.wall_now = clock_.wallNow();
  in.self = n.name;
  in.tags = n.identity.tags;
  in.settings = settings_;
  in.pg = n.pg.probe();
  auto loaded = n.dcs->load();
  if (loaded.ok())
    in.cluster = std::move(loaded).value();
  rememberLeader(n.memory, in.cluster, settings_.paused);
  in.memory = n.memory;
  if (needsPeerStatus(in))
    in.peers = peersOf(n);
  in.diverged_from_leader = divergedFromLeader(n, in);
  c.d = decide(in);
  record(n, c.d);
  return c;
}

void SimCluster::act(Cycle& c) {
  Node& n = *c.node;
  if (!n.agent_alive)
    return;
  execute(n, c.d, c.in);
  const bool promoted = c.d.action != Action::kAcquireAndPromote || n.pg.primary();
  if (c.d.clear_failover && promoted)
    ignoreError(n.dcs->deleteFailover(), "best effort, as in the agent");
  if (c.in.cluster) {
    LocalPostgres after = n.pg.probe();
    ignoreError(n.dcs->touchMember(buildMemberData(n.identity, after, "")),
                "best effort, as in the agent");
    if (n.memory.lease_deadline && n.pg.primary())
      ignoreError(n.dcs->setStatus({{"optime", endOf(n.pg.wal)}}), "best effort");
    n.seen_revision = c.in.cluster->revision;
  }
  n.next_loop_at = c.start + (n.memory.lease_deadline ? timing_.renew_interval : timing_.loop_wait);
}

void SimCluster::record(Node& n, const Decision& d) {
  if (d.action != Action::kNone || d.reason != n.last_reason)
    event(fmt::format("{}: {}: {}", n.name, actionName(d.action), d.reason));
  n.last_reason = d.reason;
  n.decisions.push_back(fmt::format("{}: {}", actionName(d.action), d.reason));
  if (n.decisions.size() > 50)
    n.decisions.pop_front();
  for (const auto& phrase : opt_.count_phrases)
    if (d.reason.find(phrase) != std::string::npos)
      ++phrases_[phrase];
}

// What each peer's REST API would answer; a peer whose agent is down or that is partitioned away
// does not answer.
std::vector<PeerStatus> SimCluster::peersOf(const Node& self) {
  std::vector<PeerStatus> out;
  for (const auto& o : nodes_) {
    if (o->name == self.name)
      continue;
    PeerStatus p;
    p.name = o->name;
    p.reachable = o->agent_alive && canReach(self, *o);
    p.running = o->pg.running;
    p.in_recovery = o->pg.in_recovery;
    p.wal_position = o->pg.running ? endOf(o->pg.wal) : 0;
    p.timeline = o->pg.timeline();
    p.nofailover = o->identity.tags.nofailover;
    out.push_back(p);
  }
  return out;
}

// What the agent learns by comparing its timeline and position with the leader's timeline
// history: only possible while the leader's server answers.
bool SimCluster::divergedFromLeader(const Node& n, const HaInput& in) {
  if (!in.cluster || !in.cluster->leader || in.cluster->leader->name == n.name)
    return false;
  const Node* leader = find(in.cluster->leader->name);
  if (!leader || !leader->pg.running || !canReach(n, *leader) || !n.pg.has_data)
    return false;
  return !isPrefix(n.pg.wal, leader->pg.wal);
}

bool SimCluster::renewOrAcquire(Node& n, bool acquire) {
  const MonoTime sent = clock_.now();
  auto r = acquire ? n.dcs->acquireLeader() : n.dcs->renewLeader();
  if (!r.ok())
    return false;
  if (!*r) {
    n.run_again = true;
    return false;
  }
  n.memory.lease_deadline = sent + Millis(n.min_ttl * 1000LL) - timing_.safety_margin;
  return true;
}

// Copies `from`'s data as pg_basebackup or pg_rewind would; false when it cannot be reached.
bool SimCluster::copyFrom(Node& n, const std::string& from) {
  Node* src = find(from);
  if (!src || !src->pg.running || !canReach(n, *src))
    return false;
  n.pg.has_data = true;
  n.pg.wal = src->pg.wal;
  n.pg.sysid = src->pg.sysid;
  n.pg.control = ControlState::kInArchiveRecovery;
  return true;
}

void SimCluster::execute(Node& n, const Decision& d, const HaInput& in) {
  switch (d.action) {
    case Action::kNone:
    case Action::kReclone:
      return;
    case Action::kBootstrap: {
      auto won = n.dcs->attemptInitialize("");
      if (!won.ok())
        return;
      if (!*won) {
        n.run_again = true;
        return;
      }
      n.pg.has_data = true;
      n.pg.sysid = fmt::format("{}", 7000000000000000000ULL + rng_() % 1000000000000ULL);
      n.pg.wal = {WalSegment{next_branch_++, 1, kFirstLsn}};
      n.pg.running = true;
      n.pg.in_recovery = false;
      n.pg.control = ControlState::kInProduction;
      if (!renewOrAcquire(n, true)) {
        n.pg.stopImmediate();
        return;
      }
      ignoreError(n.dcs->setInitialize(n.pg.sysid), "best effort, as in the agent");
      n.memory.new_node = false;
      return;
    }
    case Action::kClone:
      if (!copyFrom(n, d.source)) {
        n.memory.failed_clones++;
        return;
      }
      n.pg.startStandby(d.source);
      n.memory.new_node = false;
      n.memory.failed_clones = 0;
      n.memory.following = d.source;
      return;
    case Action::kStartReplica:
      n.pg.startStandby(d.source);
      n.memory.following = d.source;
      n.run_again = true;
      return;
    case Action::kFollow:
      n.pg.upstream = d.source;
      n.memory.following = d.source;
      return;
    case Action::kRenewLease:
      renewOrAcquire(n, false);
      return;
    case Action::kAcquireLease:
      renewOrAcquire(n, true);
      return;
    case Action::kAcquireAndPromote:
      promote(n, in);
      return;
    case Action::kDemote: {
      n.pg.stopImmediate();
      bool held = n.memory.lease_deadline.has_value() ||
                  (in.cluster && in.cluster->leader && in.cluster->leader->name == n.name);
      n.memory.lease_deadline.reset();
      n.memory.following.clear();
      if (held)
        ignoreError(n.dcs->deleteLeader(), "only deletes a key that holds our name");
      n.run_again = true;
      return;
    }
    case Action::kRewind:
      // An unreachable source is not a failed rewind: pg_rewind never ran, so the next loop may
      // try again (only a rewind that ran and failed sets rewind_failed).
      if (!copyFrom(n, d.source))
        return;
      n.pg.startStandby(d.source);
      n.memory.rewind_failed = false;
      n.memory.following = d.source;
      return;
    case Action::kStartPrimary:
      if (!renewOrAcquire(n, false))
        return;
      n.pg.startWritable(next_branch_++, n.pg.timeline());
      return;
    case Action::kSwitchover:
      handOver(n, d);
      return;
    case Action::kReleaseLeader:
      n.memory.lease_deadline.reset();
      n.memory.following.clear();
      ignoreError(n.dcs->deleteLeader(), "only deletes a key that holds our name");
      n.run_again = true;
      return;
  }
}

// A clean stop: every standby streaming from `n` that it can reach receives all of its WAL
// before the server exits; then the lease is released and `n` rejoins as a standby.
void SimCluster::handOver(Node& n, const Decision& d) {
  for (auto& s : nodes_) {
    if (s.get() == &n || !s->pg.running || !s->pg.in_recovery || s->pg.upstream != n.name ||
        !canReach(*s, n) || clock_.now() < s->stalled_until || s->pg.sysid != n.pg.sysid ||
        !isPrefix(s->pg.wal, n.pg.wal))
      continue;
    s->pg.wal = n.pg.wal;
  }
  n.pg.stopImmediate();
  n.pg.control = ControlState::kShutDown;
  n.memory.lease_deadline.reset();
  n.memory.following.clear();
  ignoreError(n.dcs->deleteLeader(), "only deletes a key that holds our name");
  n.pg.startStandby(d.source);
  n.memory.following = d.source;
  event(fmt::format("{}: handed the lease over to {}", n.name, d.source));
  n.run_again = true;
}

void SimCluster::promote(Node& n, const HaInput& in) {
  bool ours = in.cluster && in.cluster->leader && in.cluster->leader->name == n.name;
  if (!renewOrAcquire(n, !ours))
    return;
  // Invariant 3: the new primary is within maximum_lag_on_failover of the last position the old
  // one published (read from the store itself, not from what decide() was given).
  if (auto status = store_->get(kStatusKey)) {
    auto j = nlohmann::json::parse(status->value, nullptr, false);
    int64_t optime = j.is_object() ? j.value("optime", int64_t{0}) : 0;
    if (optime - endOf(n.pg.wal) > settings_.maximum_lag_on_failover)
      violations_.push_back(fmt::format("t={:.1f} {} promoted at {}, {} bytes behind optime {}",
                                        elapsed(), n.name, formatLsn(endOf(n.pg.wal)),
                                        optime - endOf(n.pg.wal), formatLsn(optime)));
  }
  n.pg.startWritable(next_branch_++, n.pg.timeline() + 1);
  n.memory.following.clear();
  ++promotions_;
  event(fmt::format("{}: promoted to timeline {}", n.name, n.pg.timeline()));
}

// ---- checks and reports

// Invariant 1, after every step.
void SimCluster::checkInvariants() {
  std::vector<std::string> primaries;
  for (auto& n : nodes_) {
    if (!n->pg.primary())
      continue;
    primaries.push_back(n->name);
    auto key = store_->get(kLeaderKey);
    // While paused a primary may outlive its key (no demotion while paused), not share it.
    if (!key && settings_.paused)
      continue;
    if (!key || key->value != n->name)
      violations_.push_back(fmt::format("t={:.1f} {} runs as primary but the leader key is {}",
                                        elapsed(), n->name,
                                        key ? "held by " + key->value : std::string("gone")));
  }
  if (primaries.size() > 1)
    violations_.push_back(fmt::format("t={:.1f} {} primaries: {}", elapsed(), primaries.size(),
                                      fmt::join(primaries, ", ")));
}

bool SimCluster::converged() const {
  std::string p = primary();
  if (p.empty())
    return false;
  auto key = store_->get(kLeaderKey);
  if (!key || key->value != p)
    return false;
  const Node& leader = node(p);
  for (const auto& n : nodes_) {
    if (n->name == p)
      continue;
    if (!n->agent_alive || !n->pg.running || !n->pg.in_recovery || n->memory.following != p ||
        n->pg.upstream != p || !isPrefix(n->pg.wal, leader.pg.wal))
      return false;
  }
  return true;
}

std::string SimCluster::primary() const {
  std::string found;
  for (const auto& n : nodes_) {
    if (!n->pg.primary())
      continue;
    if (!found.empty())
      return "";
    found = n->name;
  }
  return found;
}

const SimPostgres& SimCluster::postgres(const std::string& name) const {
  return node(name).pg;
}

const AgentMemory& SimCluster::memory(const std::string& name) const {
  return node(name).memory;
}

bool SimCluster::decided(const std::string& name, const std::string& phrase) const {
  for (const auto& d : node(name).decisions)
    if (d.find(phrase) != std::string::npos)
      return true;
  return false;
}

std::string SimCluster::history() const {
  std::string out;
  for (const auto& e : events_)
    out += e + "\n";
  return out;
}

std::string SimCluster::state() const {
  std::string out;
  for (const auto& n : nodes_)
    out += fmt::format(
        "{}: agent {}, pg {} {} tl {} at {} upstream '{}', following '{}': {}\n", n->name,
        n->agent_alive ? "up" : "down", n->pg.running ? "running" : "stopped",
        n->pg.in_recovery ? "standby" : "primary", n->pg.timeline(), formatLsn(endOf(n->pg.wal)),
        n->pg.upstream, n->memory.following, n->last_reason);
  return out;
}

// ---- helpers

double SimCluster::elapsed() const {
  return std::chrono::duration<double>(clock_.now() - t0_).count();
}

void SimCluster::event(const std::string& what) {
  events_.push_back(fmt::format("t={:.1f} {}", elapsed(), what));
  if (events_.size() > 400)
    events_.pop_front();
}

SimCluster::Node* SimCluster::find(const std::string& name) {
  for (auto& n : nodes_)
    if (n->name == name)
      return n.get();
  return nullptr;
}

SimCluster::Node& SimCluster::node(const std::string& name) {
  return *find(name);
}

const SimCluster::Node& SimCluster::node(const std::string& name) const {
  for (const auto& n : nodes_)
    if (n->name == name)
      return *n;
  return *nodes_.front();  // tests only name the three members
}

bool SimCluster::canReach(const Node& a, const Node& b) {
  return !a.net_partitioned && !b.net_partitioned;
}

void SimCluster::applyReachability(Node& n) {
  if (n.dcs)
    n.dcs->setReachable(!n.net_partitioned && !n.dcs_partitioned);
}

int64_t SimCluster::uniform(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
}

bool SimCluster::chance(double p) {
  return std::uniform_real_distribution<double>(0, 1)(rng_) < p;
}

}  // namespace pgf
