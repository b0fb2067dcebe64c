#include "agent/agent.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/peer_status.h"
#include "common/dir_watcher.h"
#include "common/log.h"
#include "common/process.h"
#include "ha/divergence.h"
#include "ha/failsafe.h"
#include "ha/switchover.h"
#include "ha/sync.h"
#include "ha/upstream.h"
#include "postgres/lsn.h"
#include "postgres/timeline.h"

#ifndef PGFLEET_VERSION
#define PGFLEET_VERSION "0.0.0"
#endif

namespace pgf {
namespace {

// Whether following `member` means streaming from a replica rather than from the leader.
bool cascading(const ClusterView* cluster, const std::string& member) {
  return !member.empty() && cluster != nullptr && cluster->leader &&
         cluster->leader->name != member;
}

constexpr Millis kStartTimeout{60000};
constexpr Millis kStopTimeout{60000};
constexpr Millis kPromoteTimeout{30000};
constexpr Millis kFenceStopTimeout{10000};
// A switchover waits at most this long for a load balancer's next health check before it stops
// the old primary, if one checked within kCheckerActiveWithin.
constexpr Millis kDrainWait{1000};
constexpr Millis kCheckerActiveWithin{5000};
// The fence and lease-keeper threads wait for notifications; this only bounds one wait.
constexpr Millis kIdleWaitCap{60000};

// Splits postgres://[user[:password]@]host[:port][/db] into host and port.
bool splitConnUrl(const std::string& url, std::string* host, int* port) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return false;
  std::string rest = url.substr(scheme_end + 3);
  auto at = rest.rfind('@', rest.find('/'));
  if (at != std::string::npos)
    rest = rest.substr(at + 1);
  auto slash = rest.find_first_of("/?");
  std::string hostport = rest.substr(0, slash);
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos || hostport.back() == ']') {
    *host = hostport;
    *port = 5432;
  } else {
    *host = hostport.substr(0, colon);
    *port = std::atoi(hostport.c_str() + colon + 1);
  }
  return !host->empty() && *port > 0 && *port < 65536;
}

std::string restConnectAddress(const RestApiSettings& r) {
  return r.connect_address.empty() ? r.listen : r.connect_address;
}

// The config key's postgresql.parameters as postgresql.conf values (true is "on", as in Patroni).
std::map<std::string, std::string> clusterParameters(const nlohmann::json& config) {
  std::map<std::string, std::string> out;
  auto pg = config.find("postgresql");
  if (pg == config.end() || !pg->is_object())
    return out;
  auto params = pg->find("parameters");
  if (params == pg->end() || !params->is_object())
    return out;
  for (const auto& [name, value] : params->items()) {
    if (value.is_string())
      out[name] = value.get<std::string>();
    else if (value.is_boolean())
      out[name] = value.get<bool>() ? "on" : "off";
    else if (value.is_number())
      out[name] = value.dump();
  }
  return out;
}

std::vector<WalSender> parseWalSenders(const nlohmann::json& rows) {
  std::vector<WalSender> out;
  if (!rows.is_array())
    return out;
  auto str = [](const nlohmann::json& row, const char* key) {
    return row.contains(key) && row[key].is_string() ? row[key].get<std::string>() : std::string();
  };
  for (const auto& row : rows) {
    if (!row.is_object())
      continue;
    WalSender w;
    w.usename = str(row, "usename");
    w.application_name = str(row, "application_name");
    w.client_addr = str(row, "client_addr");
    w.state = str(row, "state");
    w.sync_state = str(row, "sync_state");
    if (row.contains("sync_priority") && row["sync_priority"].is_number_integer())
      w.sync_priority = row["sync_priority"].get<int>();
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace

Agent::Agent(AgentConfig config, DcsPtr dcs, PostgresControllerPtr postgres, const Clock& clock,
             Watchdog* watchdog)
    : config_(std::move(config)),
      callbacks_(config_.callbacks, config_.scope),
      dcs_(std::move(dcs)),
      pg_(std::move(postgres)),
      clock_(clock),
      watchdog_(watchdog) {
  identity_.conn_url = fmt::format("postgres://{}:{}/postgres", config_.postgresql.connectHost(),
                                   config_.postgresql.connectPort());
  identity_.api_url = fmt::format("http://{}/patroni", restConnectAddress(config_.restapi));
  identity_.version = PGFLEET_VERSION;
  identity_.tags = config_.tags;
  settings_ = config_.bootstrap_dcs;
  timing_ = deriveTiming(settings_);
  min_ttl_ = settings_.ttl;
  ssn_applied_ = kUnknownSsn;
  status_.scope = config_.scope;
  status_.name = config_.name;
  status_.version = PGFLEET_VERSION;
  status_.api_url = identity_.api_url;
  status_.conn_url = identity_.conn_url;
  status_.tags = config_.tags;
  status_.settings = settings_;
  status_.role = "uninitialized";
  status_.state = "starting";
}

Agent::~Agent() {
  stop_ = true;
  {
    std::lock_guard<std::mutex> lk(mu_);
    fence_stop_ = true;
  }
  fence_cv_.notify_all();
  if (fence_thread_.joinable())
    fence_thread_.join();
  if (keeper_thread_.joinable())
    keeper_thread_.join();
}

void Agent::requestStop() {
  stop_ = true;
  fence_cv_.notify_all();
  dcs_->wake();
}

AgentStatus Agent::status() const {
  std::lock_guard<std::mutex> lk(mu_);
  return status_;
}

AgentStatus Agent::freshStatus() const {
  LocalPostgres pg = pg_->probe();
  AgentStatus s = status();
  s.pg = pg;
  return s;
}

int Agent::run() {
  dcs_->setTtl(settings_.ttl);
  dcs_->setRequestTimeout(timing_.request_timeout);
  {
    auto first = pg_->probe();
    std::lock_guard<std::mutex> lk(mu_);
    memory_.new_node = first.data_dir_empty;
  }
  spdlog::info("starting member {} of cluster {} (ttl {} s, loop_wait {} s)", config_.name,
               config_.scope, settings_.ttl, settings_.loop_wait);
  fence_thread_ = std::thread([this] { fenceLoop(); });
  keeper_thread_ = std::thread([this] { keeperLoop(); });
  ExitWatcher postmaster_watch([this] { dcs_->wake(); });
  // A data directory removed under the server wakes the loop at once (see probe()).
  std::atomic<bool> data_dir_gone{false};
  DirWatcher data_dir_watch([this, &data_dir_gone] {
    spdlog::warn("the data directory was removed or renamed");
    data_dir_gone = true;
    dcs_->wake();
  });

  bool first_cycle = true;
  while (!stop_) {
    last_cycle_start_ = clock_.now();
    run_again_ = false;
    cycle();
    // This agent is in charge now: it leads with its own deadline (and watchdog), or does not
    // lead. A previous agent's watchdog must not act on that agent's last deadline.
    if (first_cycle && watchdog_ != nullptr)
      watchdog_->retirePrevious();
    first_cycle = false;
    if (run_again_)
      continue;
    int64_t rev = 0;
    pid_t postmaster = 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      // The last revision read, also while the DCS cannot be read: waiting for changes after 0
      // would return at once, and the loop would spin instead of waiting for its next cycle.
      rev = last_revision_;
      postmaster = status_.pg.running ? status_.pg.postmaster_pid : 0;
    }
    // Sleep until the next cycle is due, a key the loop reacts to changes, or our postmaster dies
    // (the exit watcher wakes the wait: a crashed server is restarted without waiting for the next
    // loop), or a stop is requested.
    postmaster_watch.watch(postmaster);
    data_dir_watch.watch(config_.postgresql.data_dir);
    while (!stop_) {
      auto now = clock_.now();
      auto next = nextCycleAt();
      if (now >= next)
        break;
      if (dcs_->waitForChange(rev, std::chrono::duration_cast<Millis>(next - now) + Millis(1)))
        break;
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (!node_requests_.empty())
          break;  // an operator's restart or reload waits for us
      }
      if (postmaster > 0 && !processAlive(postmaster)) {
        spdlog::warn("postgresql (pid {}) exited", postmaster);
        break;
      }
      if (data_dir_gone.exchange(false))
        break;
    }
  }
  shutdown();
  return 0;
}

MonoTime Agent::nextCycleAt() const {
  std::lock_guard<std::mutex> lk(mu_);
  Millis interval = memory_.lease_deadline ? timing_.renew_interval : timing_.loop_interval;
  MonoTime next = last_cycle_start_ + interval;
  if (switchover_at_)
    next = std::min(next, *switchover_at_);
  if (sync_recheck_at_)
    next = std::min(next, *sync_recheck_at_);
  if (scheduled_restart_due_)
    next = std::min(next, *scheduled_restart_due_);
  return next;
}

void Agent::cycle() {
  reapZombieChildren();
  {
    std::lock_guard<std::mutex> lk(mu_);
    sync_recheck_at_.reset();
  }
  LocalPostgres pg = pg_->probe();
  auto loaded = dcs_->load();
  std::optional<ClusterView> cluster;
  if (loaded.ok()) {
    cluster = std::move(loaded).value();
  } else {
    spdlog::warn("reading the cluster from the dcs: {}", loaded.error().message);
  }

  HaInput in;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (cluster) {
      last_revision_ = cluster->revision;
      last_dcs_config_ = cluster->config;
      failsafe_members_ = cluster->failsafe ? parseFailsafeMembers(*cluster->failsafe)
                                            : decltype(failsafe_members_){};
    }
    const nlohmann::json* dcs_config = last_dcs_config_ ? &*last_dcs_config_ : nullptr;
    settings_ = effectiveSettings(config_, dcs_config);
    min_ttl_ = std::min(min_ttl_, settings_.ttl);
    timing_ = deriveTiming(settings_);
    rememberLeader(memory_, cluster, settings_.paused);
    if (settings_.paused != fence_paused_) {
      // While paused nothing demotes the primary: neither the fence nor the watchdog.
      fence_paused_ = settings_.paused;
      if (watchdog_ != nullptr) {
        if (fence_paused_)
          watchdog_->disarm();
        else if (memory_.lease_deadline)
          watchdog_->arm(*memory_.lease_deadline);
      }
      fence_cv_.notify_all();
    }
    in.memory = memory_;
    in.settings = settings_;
    // The replica we cascaded from (without a slot) became the leader: follow it again, now
    // through the slot it keeps for us, or that slot would hold its WAL forever.
    if (following_without_slot_ && settings_.use_slots && cluster && cluster->leader &&
        cluster->leader->name == in.memory.following)
      in.memory.following.clear();
    if (!failsafe_leader_.empty() && clock_.now() < failsafe_until_)
      in.failsafe_leader = failsafe_leader_;
  }
  dcs_->setTtl(settings_.ttl);
  dcs_->setRequestTimeout(timing_.request_timeout);
  if (cluster && cluster->config && cluster->config->is_object() && !pg.data_dir_empty)
    applyClusterParameters(clusterParameters(*cluster->config));
  bool requests = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    requests = !node_requests_.empty();
  }
  if (requests) {
    serveNodeRequests(cluster ? &*cluster : nullptr, pg);
    pg = pg_->probe();
  }
  std::optional<ScheduledRestart> due;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (scheduled_restart_ && clock_.wallNow() >= scheduled_restart_->at) {
      due = std::move(scheduled_restart_);
      scheduled_restart_.reset();
      scheduled_restart_due_.reset();
    }
  }
  if (due) {
    runScheduledRestart(*due, cluster ? &*cluster : nullptr, pg);
    pg = pg_->probe();
  }

  in.now = clock_.now();
  in.wall_now = clock_.wallNow();
  in.self = config_.name;
  in.tags = config_.tags;
  in.cluster = cluster;
  in.pg = pg;
  // Divergence is measured on a running server; once seen, it is remembered for that leader until
  // a rewind, because the stopped server can no longer report its position. A member that was just
  // cloned or rewound from the current leader holds only the leader's history by construction: no
  // check until the leader changes (a rewound standby reports its old timeline until it streams).
  const std::string current_leader = cluster && cluster->leader ? cluster->leader->name : "";
  if (current_leader != synced_with_)
    synced_with_.clear();
  if (!current_leader.empty() && synced_with_.empty() && divergedFromLeader(*cluster, pg))
    diverged_from_ = current_leader;
  in.diverged_from_leader = !diverged_from_.empty() && diverged_from_ == current_leader;
  if (cluster && !cluster->leader) {
    if (!leader_missing_since_)
      leader_missing_since_ = in.now;
  } else {
    leader_missing_since_.reset();
  }
  if (needsPeerStatus(in))
    in.peers = fetchPeerStatuses(*cluster, config_.name, timing_.request_timeout);

  Decision d = decide(in);
  {
    std::lock_guard<std::mutex> lk(mu_);
    bool changed =
        d.action != status_.last_decision.action || d.reason != status_.last_decision.reason;
    // Steady states (following, renewing) are logged once when they begin, every other step
    // every time.
    bool steady = d.action == Action::kNone || d.action == Action::kRenewLease;
    if (changed || !steady)
      spdlog::info("{} ({})", d.reason, actionName(d.action));
    else
      spdlog::debug("{}", d.reason);
    status_.last_decision = d;
  }

  execute(d, in);
  if (d.clear_failover && d.action != Action::kAcquireAndPromote)
    clearSwitchoverRequest();
  {
    // A scheduled switchover runs at its time, not at the next loop after it.
    std::lock_guard<std::mutex> lk(mu_);
    switchover_at_.reset();
    auto request =
        cluster && cluster->failover ? parseSwitchoverRequest(*cluster->failover) : std::nullopt;
    if (request && request->scheduled_at && *request->scheduled_at > in.wall_now)
      switchover_at_ =
          in.now + std::chrono::duration_cast<Millis>(*request->scheduled_at - in.wall_now);
  }

  LocalPostgres after = d.action == Action::kNone ? pg : pg_->probe();
  if (cluster) {
    auto touched = dcs_->touchMember(memberData(after));
    if (!touched.ok())
      spdlog::warn("writing member key: {}", touched.error().message);
    bool leading = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      leading = memory_.lease_deadline.has_value();
    }
    if (leading && after.running && !after.in_recovery)
      leaderHousekeeping(*cluster, after);
  }
  std::vector<WalSender> replication;
  if (after.running && after.accepting && !after.in_recovery) {
    auto info = pg_->replicationInfo();
    if (info.ok())
      replication = parseWalSenders(*info);
  }
  HaInput published = in;
  published.pg = after;
  publish(published, d, activity_);
  std::lock_guard<std::mutex> lk(mu_);
  status_.replication = std::move(replication);
  if (cluster)
    status_.dcs_last_seen = clock_.wallNow();
}

void Agent::notePrimaryCheck() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++primary_checks_;
    last_primary_check_ = clock_.now();
  }
  primary_check_cv_.notify_all();
}

Status Agent::restartPostgres(Millis timeout) {
  auto r = submit(NodeRequestKind::kRestart, timeout);
  return r.ok() ? okStatus() : Status(r.error());
}

Status Agent::reloadPostgres(Millis timeout) {
  auto r = submit(NodeRequestKind::kReload, timeout);
  return r.ok() ? okStatus() : Status(r.error());
}

Result<std::string> Agent::reinitialize(Millis timeout) {
  return submit(NodeRequestKind::kReinitialize, timeout);
}

Result<std::string> Agent::submit(NodeRequestKind kind, Millis timeout) {
  auto done = std::make_shared<std::promise<Result<std::string>>>();
  auto result = done->get_future();
  {
    std::lock_guard<std::mutex> lk(mu_);
    node_requests_.push_back(NodeRequest{kind, done});
  }
  dcs_->wake();
  if (result.wait_for(timeout) != std::future_status::ready)
    return makeError(
        ErrorCode::kTimeout,
        fmt::format("not done within {} s (it may still complete)",
                    std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
  return result.get();
}

void Agent::serveNodeRequests(const ClusterView* cluster, const LocalPostgres& pg) {
  std::vector<NodeRequest> requests;
  {
    std::lock_guard<std::mutex> lk(mu_);
    requests.swap(node_requests_);
  }
  bool restarted = false;
  Status restart_status;
  for (auto& r : requests) {
    if (r.kind == NodeRequestKind::kReload) {
      spdlog::info("reload requested through the rest api");
      auto st = pg_->reload();
      if (st.ok())
        callbacks_.fire("on_reload", pg.running && !pg.in_recovery ? "master" : "replica");
      r.done->set_value(st.ok() ? Result<std::string>(std::string())
                                : Result<std::string>(st.error().wrap("reload")));
      continue;
    }
    if (r.kind == NodeRequestKind::kReinitialize) {
      spdlog::info("reinitialize requested through the rest api");
      r.done->set_value(reinitializeServer(cluster, pg_->probe()));
      continue;
    }
    // Several restart requests waiting together are served by one restart.
    if (!restarted) {
      spdlog::info("restart requested through the rest api");
      restart_status = restartServer(cluster, pg);
      restarted = true;
    }
    r.done->set_value(restart_status.ok() ? Result<std::string>(std::string())
                                          : Result<std::string>(restart_status.error()));
  }
}

Result<std::string> Agent::reinitializeServer(const ClusterView* cluster, const LocalPostgres& pg) {
  bool leading = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    leading = memory_.lease_deadline.has_value();
  }
  if (leading || (pg.running && !pg.in_recovery))
    return makeError(ErrorCode::kInvalidArgument,
                     "reinitialize refused: this member is the primary");
  const std::string leader = cluster && cluster->leader ? cluster->leader->name : "";
  if (leader.empty() || leader == config_.name)
    return makeError(ErrorCode::kInvalidArgument, "reinitialize refused: no leader to clone from");
  auto up = upstreamFor(cluster, leader);
  if (!up)
    return makeError(
        ErrorCode::kInvalidArgument,
        fmt::format("reinitialize refused: the leader {} has no usable conn_url", leader));
  // Invariant 5: this explicit request is one of the two cases where a data directory is removed.
  setActivity("reinitializing from " + leader);
  auto fail = [&](const Error& e) -> Result<std::string> {
    setActivity("");
    spdlog::error("reinitialize: {}", e.message);
    return e.wrap("reinitialize failed");
  };
  if (auto st = pg_->stop(StopMode::kFast, kStopTimeout); !st.ok()) {
    if (auto again = pg_->stop(StopMode::kImmediate, kFenceStopTimeout); !again.ok())
      return fail(again.error());
  }
  spdlog::warn("reinitialize: removing the data directory to clone it again from {}", leader);
  if (auto st = pg_->removeDataDirectory(); !st.ok())
    return fail(st.error());
  if (auto st = pg_->cloneFrom(*up); !st.ok()) {
    std::lock_guard<std::mutex> lk(mu_);
    memory_.new_node = true;  // the next loop clones again, and may clear what this one left
    return fail(st.error());
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    memory_.rewind_failed = false;
    memory_.reclone_refused = false;
    memory_.failed_clones = 0;
  }
  diverged_from_.clear();
  synced_with_ = leader;
  setActivity("");
  if (!startStandby(*up, leader, "the reinitialized replica"))
    return makeError(ErrorCode::kCommandFailed,
                     "reinitialize failed: cloned, but PostgreSQL did not start (see the log)");
  spdlog::info("reinitialize: cloned from {} and streaming", leader);
  return leader;
}

bool Agent::scheduleRestart(ScheduledRestart restart) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (scheduled_restart_)
      return false;
    restart.postmaster_pid = status_.pg.running ? status_.pg.postmaster_pid : 0;
    auto wait =
        std::max(Millis(0), std::chrono::duration_cast<Millis>(restart.at - clock_.wallNow()));
    spdlog::info("restart scheduled at {}", restart.schedule);
    scheduled_restart_ = std::move(restart);
    scheduled_restart_due_ = clock_.now() + wait;
    status_.scheduled_restart = scheduled_restart_;
  }
  dcs_->wake();  // the loop's next sleep must end at the scheduled time
  return true;
}

bool Agent::cancelScheduledRestart() {
  std::lock_guard<std::mutex> lk(mu_);
  if (!scheduled_restart_)
    return false;
  spdlog::info("scheduled restart at {} cancelled", scheduled_restart_->schedule);
  scheduled_restart_.reset();
  scheduled_restart_due_.reset();
  status_.scheduled_restart.reset();
  return true;
}

void Agent::runScheduledRestart(const ScheduledRestart& r, const ClusterView* cluster,
                                const LocalPostgres& pg) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    status_.scheduled_restart.reset();
  }
  const bool primary = pg.running && !pg.in_recovery;
  std::string skip;
  if (r.postmaster_pid != 0 && pg.postmaster_pid != r.postmaster_pid)
    skip = "PostgreSQL restarted since it was scheduled";
  else if (r.role == "primary" && !primary)
    skip = "this member no longer runs as the primary";
  else if (r.role == "replica" && primary)
    skip = "this member now runs as the primary";
  else if (r.restart_pending && !pg.pending_restart)
    skip = "no restart is pending";
  if (!skip.empty()) {
    spdlog::info("scheduled restart at {} skipped: {}", r.schedule, skip);
    return;
  }
  spdlog::info("scheduled restart at {}: restarting PostgreSQL", r.schedule);
  if (auto st = restartServer(cluster, pg); !st.ok())
    spdlog::error("scheduled restart at {} failed: {}", r.schedule, st.error().message);
}

nlohmann::json Agent::memberData(const LocalPostgres& pg) const {
  nlohmann::json data = buildMemberData(identity_, pg, activity_);
  std::lock_guard<std::mutex> lk(mu_);
  if (scheduled_restart_)
    data["scheduled_restart"] = {{"schedule", scheduled_restart_->schedule}};
  return data;
}

Status Agent::restartServer(const ClusterView* cluster, const LocalPostgres& pg) {
  if (!pg.running)
    return makeError(ErrorCode::kInvalidArgument, "restart: postgresql is not running");
  bool leading = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    leading = memory_.lease_deadline.has_value();
  }
  if (!pg.in_recovery && !leading)
    return makeError(ErrorCode::kInvalidArgument,
                     "restart: running as a primary without the lease (the loop demotes it)");
  setActivity("restarting");
  Status st;
  if (!pg.in_recovery) {
    LeaseKeeper keep(*this);  // we keep leading through the restart
    ignoreError(pg_->checkpoint(kStopTimeout), "only shortens the stop");
    st = pg_->stop(StopMode::kFast, kStopTimeout);
    if (st.ok())
      st = pg_->start(nullptr, kStartTimeout);
  } else {
    std::string following;
    {
      std::lock_guard<std::mutex> lk(mu_);
      following = memory_.following;
    }
    auto up = upstreamFor(cluster, following, cascading(cluster, following));
    if (!up)
      up = upstreamFor(cluster, "");
    st = pg_->stop(StopMode::kFast, kStopTimeout);
    if (st.ok())
      st = pg_->start(&*up, kStartTimeout);
  }
  setActivity("");
  if (!st.ok()) {
    spdlog::error("restart: {}", st.error().message);
    return st.error().wrap("restart");
  }
  spdlog::info("restart: PostgreSQL restarted as {}", pg.in_recovery ? "a standby" : "primary");
  callbacks_.fire("on_restart", pg.in_recovery ? "replica" : "master");
  return okStatus();
}

void Agent::applyClusterParameters(const std::map<std::string, std::string>& params) {
  auto changed = pg_->setClusterParameters(params);
  if (!changed.ok()) {
    if (params != rejected_parameters_)
      spdlog::error("{}; keeping the parameters in effect", changed.error().message);
    rejected_parameters_ = params;
    return;
  }
  rejected_parameters_.clear();
  if (*changed)
    spdlog::info(
        "the cluster's postgresql.parameters changed: configuration rewritten and "
        "PostgreSQL reloaded");
}

void Agent::setActivity(const std::string& activity) {
  activity_ = activity;
  if (activity.empty())
    return;
  LocalPostgres pg = pg_->probe();
  auto touched = dcs_->touchMember(memberData(pg));
  if (!touched.ok())
    spdlog::warn("writing member key: {}", touched.error().message);
}

bool Agent::renewOrAcquire(bool acquire) {
  if (acquire) {
    // A failsafe promise and a lease acquisition exclude each other: acceptFailsafeHeartbeat
    // refuses while one is in flight, and none starts while a promise holds.
    std::lock_guard<std::mutex> lk(mu_);
    if (!failsafe_leader_.empty() && failsafe_leader_ != config_.name &&
        clock_.now() < failsafe_until_) {
      spdlog::info("not taking the lease: {} still runs as primary in failsafe mode",
                   failsafe_leader_);
      return false;
    }
    acquiring_ = true;
  }
  MonoTime sent = clock_.now();
  auto r = acquire ? dcs_->acquireLeader() : dcs_->renewLeader();
  std::lock_guard<std::mutex> lk(mu_);
  acquiring_ = false;
  last_renewal_unreachable_ = !r.ok() && r.error().code == ErrorCode::kDcsUnavailable;
  if (!r.ok()) {
    status_.counters.lease_renewal_failures++;
    spdlog::warn("{} the leader lease: {}", acquire ? "acquiring" : "renewing", r.error().message);
    return false;
  }
  if (!*r) {
    if (!acquire) {
      status_.counters.lease_renewal_failures++;
      spdlog::warn("the leader key no longer holds our name");
    } else {
      spdlog::info("another member took the leader key first");
    }
    run_again_ = true;
    return false;
  }
  // The lease in etcd lives at least until `sent` + its granted ttl; the smallest ttl this agent
  // ever used bounds the granted one from below.
  memory_.lease_deadline = sent + Millis(min_ttl_ * 1000LL) - timing_.safety_margin;
  if (watchdog_ != nullptr && !fence_paused_)
    watchdog_->arm(*memory_.lease_deadline);
  status_.counters.lease_renewals++;
  fence_cv_.notify_all();
  return true;
}

std::optional<UpstreamConn> Agent::upstreamFor(const ClusterView* cluster,
                                               const std::string& member, bool cascade) const {
  UpstreamConn up;
  up.application_name = config_.name;
  if (settings_.use_slots && !cascade)
    up.slot_name = slotNameForMember(config_.name);
  if (member.empty())
    return up;
  const MemberInfo* m = cluster ? cluster->member(member) : nullptr;
  if (m == nullptr || !splitConnUrl(m->conn_url, &up.host, &up.port)) {
    spdlog::warn("member {} has no usable conn_url", member);
    return std::nullopt;
  }
  return up;
}

void Agent::execute(const Decision& d, const HaInput& in) {
  const ClusterView* cluster = in.cluster ? &*in.cluster : nullptr;
  switch (d.action) {
    case Action::kNone:
      return;

    case Action::kBootstrap: {
      auto won = dcs_->attemptInitialize("");
      if (!won.ok()) {
        spdlog::warn("racing for initialize: {}", won.error().message);
        return;
      }
      if (!*won) {
        spdlog::info("another member won the bootstrap race");
        run_again_ = true;
        return;
      }
      setActivity("initializing new cluster");
      auto st = pg_->bootstrap();
      if (!st.ok()) {
        spdlog::error("bootstrap failed: {}", st.error().message);
        ignoreError(dcs_->cancelInitialize(), "the race is given back; the next loop retries");
        setActivity("");
        return;
      }
      setActivity("");
      LocalPostgres pg = pg_->probe();
      if (!renewOrAcquire(true)) {
        spdlog::error("bootstrapped but could not take the leader lease; stopping PostgreSQL");
        ignoreError(pg_->stop(StopMode::kFast, kStopTimeout), "logged by the controller");
        return;
      }
      auto init = dcs_->setInitialize(pg.sysid);
      if (!init.ok())
        spdlog::warn("writing initialize: {}", init.error().message);
      auto cfg = dcs_->setConfig(config_.bootstrap_dcs_raw, 0);
      if (!cfg.ok() && cfg.error().code != ErrorCode::kCompareFailed)
        spdlog::warn("writing config: {}", cfg.error().message);
      std::lock_guard<std::mutex> lk(mu_);
      memory_.new_node = false;
      spdlog::info("initialized a new cluster with system identifier {}", pg.sysid);
      callbacks_.fire("on_start", "master");
      return;
    }

    case Action::kClone: {
      auto up = upstreamFor(cluster, d.source);
      if (!up)
        return;
      setActivity("creating replica");
      auto st = pg_->cloneFrom(*up);
      if (!st.ok()) {
        spdlog::error("cloning from {}: {}", d.source, st.error().message);
        bool remove = false;
        {
          std::lock_guard<std::mutex> lk(mu_);
          memory_.failed_clones++;
          remove = memory_.new_node;
        }
        if (remove) {
          spdlog::warn("removing the partial data directory left by this new node's failed clone");
          ignoreError(pg_->removeDataDirectory(), "the next clone reports it if it matters");
        }
        setActivity("");
        return;
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        memory_.new_node = false;
        memory_.failed_clones = 0;
      }
      synced_with_ = d.source;
      startStandby(*up, d.source, "the new replica");
      return;
    }

    case Action::kStartReplica: {
      auto up = upstreamFor(cluster, d.source, cascading(cluster, d.source));
      if (!up)
        return;
      bool crashed = in.pg.control_state == ControlState::kInProduction ||
                     in.pg.control_state == ControlState::kInArchiveRecovery;
      if (!startStandby(*up, d.source, "PostgreSQL as a replica"))
        return;
      std::lock_guard<std::mutex> lk(mu_);
      if (crashed)
        status_.counters.postgres_restarts++;
      run_again_ = true;
      return;
    }

    case Action::kFollow: {
      auto up = upstreamFor(cluster, d.source, cascading(cluster, d.source));
      if (!up)
        return;
      auto st = pg_->follow(*up);
      if (!st.ok()) {
        spdlog::error("following {}: {}", d.source, st.error().message);
        return;
      }
      std::lock_guard<std::mutex> lk(mu_);
      memory_.following = d.source;
      following_without_slot_ = up->slot_name.empty();
      return;
    }

    case Action::kRenewLease: {
      bool renewed = renewOrAcquire(false);
      bool failsafe = false;
      {
        std::lock_guard<std::mutex> lk(mu_);
        failsafe = !renewed && last_renewal_unreachable_ && settings_.failsafe_mode;
        if (renewed)
          status_.failsafe_active = false;
      }
      if (failsafe && in.pg.running && !in.pg.in_recovery)
        failsafeRound();
      if (renewed && cluster)
        completeHistory(*cluster, in.pg);
      return;
    }

    case Action::kAcquireLease:
      renewOrAcquire(true);
      return;

    case Action::kAcquireAndPromote: {
      bool ours = cluster && cluster->leader && cluster->leader->name == config_.name;
      MonoTime detected = leader_missing_since_.value_or(in.now);
      if (!renewOrAcquire(!ours))
        return;
      if (settings_.synchronous_mode && !prepareSynchronousPrimary(true)) {
        ignoreError(dcs_->deleteLeader(), "the lease expires anyway");
        std::lock_guard<std::mutex> lk(mu_);
        clearDeadline();
        return;
      }
      MonoTime acquired = clock_.now();
      Status st;
      {
        LeaseKeeper keep(*this);
        st = pg_->promote(kPromoteTimeout);
      }
      MonoTime promoted = clock_.now();
      if (st.ok()) {
        publishPromotion();
        callbacks_.fire("on_role_change", "master");
      }
      if (st.ok() && d.clear_failover)
        clearSwitchoverRequest();
      if (!st.ok()) {
        spdlog::error("promote failed: {}; releasing the leader key", st.error().message);
        ignoreError(dcs_->deleteLeader(), "the lease expires anyway");
        std::lock_guard<std::mutex> lk(mu_);
        clearDeadline();
        return;
      }
      auto ms = [](MonoTime a, MonoTime b) {
        return std::chrono::duration_cast<Millis>(b - a).count();
      };
      std::string reason =
          fmt::format("{} (detected +0 ms, lease acquired +{} ms, promoted +{} ms)", d.reason,
                      ms(detected, acquired), ms(detected, promoted));
      if (cluster) {
        // The exact fork point is in the new timeline's history file; the position probed before
        // the promotion is only a lower bound of it.
        recordPromotion(*cluster, in.pg.timeline, in.pg.wal_position, reason);
      }
      std::lock_guard<std::mutex> lk(mu_);
      status_.counters.promotions++;
      memory_.following.clear();
      run_again_ = true;
      return;
    }

    case Action::kDemote: {
      // A primary stops at once (no write may be acknowledged any more); a standby that must be
      // rewound stops cleanly, so that pg_rewind needs no crash recovery on it.
      StopMode mode = in.pg.in_recovery ? StopMode::kFast : StopMode::kImmediate;
      auto st = pg_->stop(mode, kFenceStopTimeout);
      if (!st.ok())
        spdlog::error("demoting: {}", st.error().message);
      bool held = false;
      {
        std::lock_guard<std::mutex> lk(mu_);
        held = memory_.lease_deadline.has_value() ||
               (cluster && cluster->leader && cluster->leader->name == config_.name);
        clearDeadline();
        memory_.following.clear();
        status_.is_leader = false;
        status_.counters.demotions++;
      }
      if (held)
        ignoreError(dcs_->deleteLeader(), "only deletes a key that holds our name");
      if (!in.pg.in_recovery)
        callbacks_.fire("on_role_change", "replica");
      run_again_ = true;
      return;
    }

    case Action::kRewind: {
      auto up = upstreamFor(cluster, d.source);
      if (!up)
        return;
      setActivity("rewinding from " + d.source);
      auto st = pg_->rewind(*up);
      if (!st.ok()) {
        spdlog::error("pg_rewind from {}: {}", d.source, st.error().message);
        setActivity("");
        // An unreachable source, or one not yet ready (still promoting, not yet checkpointed),
        // is tried again next loop; only a rewind that ran and failed needs an operator.
        bool transient = st.error().retryable ||
                         st.error().code == ErrorCode::kPostgresUnavailable ||
                         st.error().code == ErrorCode::kTimeout;
        std::lock_guard<std::mutex> lk(mu_);
        memory_.rewind_failed = !transient;
        return;
      }
      diverged_from_.clear();
      synced_with_ = d.source;
      {
        std::lock_guard<std::mutex> lk(mu_);
        memory_.rewind_failed = false;
      }
      startStandby(*up, d.source, "the rewound replica");
      return;
    }

    case Action::kStartPrimary: {
      if (!renewOrAcquire(false))
        return;
      if (settings_.synchronous_mode && ssn_applied_ == kUnknownSsn &&
          !prepareSynchronousPrimary(false))
        return;
      Status st;
      {
        LeaseKeeper keep(*this);  // crash recovery may take longer than the lease
        st = pg_->start(nullptr, kStartTimeout);
      }
      std::lock_guard<std::mutex> lk(mu_);
      if (!st.ok()) {
        spdlog::error("restarting PostgreSQL as primary: {}", st.error().message);
        return;
      }
      status_.counters.postgres_restarts++;
      callbacks_.fire("on_start", "master");
      return;
    }

    case Action::kReclone: {
      // Invariant 5: the directory is renamed beside itself, whole; the next loop finds the data
      // directory empty and clones it from the leader like a new node's.
      setActivity("setting the data directory aside");
      Status stopped = okStatus();
      if (in.pg.running) {
        stopped = pg_->stop(StopMode::kFast, kStopTimeout);
        if (!stopped.ok())
          stopped = pg_->stop(StopMode::kImmediate, kFenceStopTimeout);
      }
      auto aside =
          stopped.ok() ? pg_->setAsideDataDirectory() : Result<std::string>(stopped.error());
      setActivity("");
      std::lock_guard<std::mutex> lk(mu_);
      if (!aside.ok()) {
        spdlog::error("not re-cloning: {}; waiting for an operator (pgfleetctl reinit)",
                      aside.error().message);
        memory_.reclone_refused = true;
        return;
      }
      spdlog::warn("{}: the data directory is kept as {}; cloning it again from {}", d.reason,
                   *aside, d.source);
      memory_.new_node = true;  // a failed clone into the fresh directory may be cleared again
      memory_.rewind_failed = false;
      memory_.failed_clones = 0;
      memory_.following.clear();
      diverged_from_.clear();
      run_again_ = true;
      return;
    }

    case Action::kSwitchover:
      handOver(d, in);
      return;

    case Action::kReleaseLeader: {
      // The probe has already stopped a postmaster whose data directory vanished under it (an
      // unusable one has none running): no server of ours takes writes any more.
      {
        std::lock_guard<std::mutex> lk(mu_);
        clearDeadline();
        memory_.following.clear();
        status_.is_leader = false;
        status_.counters.demotions++;
      }
      publishProbe();
      auto released = dcs_->deleteLeader();
      if (released.ok())
        spdlog::warn(
            "released the leader key ({}); a replica takes over and this node clones "
            "from it",
            d.reason);
      else
        spdlog::warn("releasing the leader key: {}", released.error().message);
      callbacks_.fire("on_role_change", "replica");
      run_again_ = true;
      return;
    }
  }
}

void Agent::handOver(const Decision& d, const HaInput& in) {
  const ClusterView* cluster = in.cluster ? &*in.cluster : nullptr;
  Status st;
  {
    // We still lead while we checkpoint and stop: keep the lease fresh meanwhile (the fence still
    // applies if a renewal fails).
    LeaseKeeper keep(*this);
    setActivity("switching over to " + d.source);
    auto checkpoint = pg_->checkpoint(kStopTimeout);
    if (!checkpoint.ok())
      spdlog::warn("switchover: {} (stopping anyway)", checkpoint.error().message);
    // From here on this node takes no writes: health checks say so at once, so that a load
    // balancer stops sending clients here while the server is still shutting down (HAProxy
    // otherwise waits a second before it retries a refused connection to a server it still
    // believes up).
    {
      // When a load balancer polls our health checks, let it see the change before the server
      // goes away (bounded: one check interval is well under a second).
      std::unique_lock<std::mutex> lk(mu_);
      status_.is_leader = false;
      status_.state = "stopping";
      const int64_t seen = primary_checks_;
      if (last_primary_check_ && clock_.now() - *last_primary_check_ < kCheckerActiveWithin)
        primary_check_cv_.wait_for(lk, kDrainWait, [&] { return primary_checks_ > seen; });
    }
    // A clean stop: PostgreSQL sends every WAL record, up to its shutdown checkpoint, to the
    // connected standbys before it exits, so the candidate holds all of it and our history stays
    // a prefix of the one it continues: we rejoin without a rewind.
    st = pg_->stop(StopMode::kFast, kStopTimeout);
  }
  if (!st.ok()) {
    spdlog::error("switchover: stopping PostgreSQL: {}; staying the leader", st.error().message);
    setActivity("");
    return;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    clearDeadline();
    memory_.following.clear();
    status_.counters.demotions++;
  }
  // Peers must not see a primary in our REST API any more when they decide whether to take over.
  publishProbe();
  auto released = dcs_->deleteLeader();
  if (!released.ok())
    spdlog::warn("switchover: releasing the leader key: {} (it expires with the lease)",
                 released.error().message);
  spdlog::info("switchover: stopped cleanly and released the leader key for {}", d.source);
  callbacks_.fire("on_role_change", "replica");
  auto up = upstreamFor(cluster, d.source);
  if (!up)
    up = upstreamFor(cluster, "");
  setActivity("");
  // Whether our history really is a prefix of the new leader's is checked as for any standby (the
  // divergence check against the "history" key): a candidate that missed our last records makes
  // us rewind.
  startStandby(*up, d.source, "the former primary as a replica");
  run_again_ = true;
}

void Agent::clearSwitchoverRequest() {
  auto st = dcs_->deleteFailover();
  if (!st.ok())
    spdlog::warn("removing the switchover request: {}", st.error().message);
}

bool Agent::startStandby(const UpstreamConn& up, const std::string& source, const char* what) {
  setActivity("starting");
  auto st = pg_->start(&up, kStartTimeout);
  setActivity("");
  if (!st.ok()) {
    spdlog::error("starting {}: {}", what, st.error().message);
    return false;
  }
  callbacks_.fire("on_start", "replica");
  std::lock_guard<std::mutex> lk(mu_);
  memory_.following = source;
  following_without_slot_ = up.slot_name.empty();
  return true;
}

void Agent::recordPromotion(const ClusterView& cluster, int old_timeline, int64_t lower_bound,
                            const std::string& reason) {
  // The new timeline is the one our WAL is written on now; the probe before the promotion may
  // have named an older one than our parent (a standby that had not streamed since a restart).
  LocalPostgres now = pg_->probe();
  int timeline = now.running && !now.in_recovery && now.timeline > old_timeline ? now.timeline
                                                                                : old_timeline + 1;
  HistoryAuthor author{reason, formatIsoTime(clock_.wallNow()), config_.name};
  std::vector<TimelineSwitch> lineage;
  if (now.timeline == timeline)
    lineage = now.lineage;
  if (lineage.empty() || lineage.back().parent != timeline - 1)
    lineage = {{timeline - 1, lower_bound}};
  // Only the switch into our new timeline is this promotion's; earlier ones are filled in as
  // found in the file.
  HistoryAuthor inherited{"found in " + config_.name + "'s timeline history", author.time,
                          config_.name};
  std::vector<TimelineSwitch> earlier(lineage.begin(), lineage.end() - 1);
  nlohmann::json history = cluster.history;
  if (auto filled = completedHistory(history, earlier, inherited))
    history = std::move(*filled);
  if (auto filled = completedHistory(history, {lineage.back()}, author))
    history = std::move(*filled);
  auto st = dcs_->setHistory(history);
  if (!st.ok())
    spdlog::warn("writing history: {}", st.error().message);
}

void Agent::completeHistory(const ClusterView& cluster, const LocalPostgres& pg) {
  if (!pg.running || pg.in_recovery || pg.lineage.empty())
    return;
  HistoryAuthor author{"found in " + config_.name + "'s timeline history",
                       formatIsoTime(clock_.wallNow()), config_.name};
  auto filled = completedHistory(cluster.history, pg.lineage, author);
  if (!filled)
    return;
  spdlog::info("completing the cluster's history from timeline {}'s history file", pg.timeline);
  auto st = dcs_->setHistory(*filled);
  if (!st.ok())
    spdlog::warn("writing history: {}", st.error().message);
}

bool Agent::prepareSynchronousPrimary(bool write_key) {
  if (write_key) {
    auto st = dcs_->setSync(syncStateJson(SyncState{config_.name, {}}));
    if (!st.ok()) {
      spdlog::error("synchronous mode: writing the sync key before promoting: {}",
                    st.error().message);
      return false;
    }
  }
  auto st = pg_->setSynchronousStandbyNames(std::string("*"));
  if (!st.ok()) {
    spdlog::error("synchronous mode: {}", st.error().message);
    return false;
  }
  ssn_applied_ = "*";
  ssn_managed_ = true;
  return true;
}

void Agent::manageSync(const ClusterView& cluster, const LocalPostgres& pg) {
  auto current = cluster.sync ? parseSyncState(*cluster.sync) : std::nullopt;
  if (!settings_.synchronous_mode) {
    if (ssn_managed_) {
      auto st = pg_->setSynchronousStandbyNames(std::nullopt);
      if (st.ok()) {
        ssn_managed_ = false;
        ssn_applied_ = kUnknownSsn;
        spdlog::info("synchronous mode off: synchronous_standby_names is no longer managed");
      }
    }
    if (current && current->leader == config_.name)
      ignoreError(dcs_->setSync(nlohmann::json::object()), "rewritten next loop if it failed");
    seen_sync_at_.clear();
    return;
  }
  SyncInput in;
  in.self = config_.name;
  in.node_count = settings_.synchronous_node_count;
  in.strict = settings_.synchronous_mode_strict;
  in.cluster = &cluster;
  in.applied_ssn = ssn_applied_;
  in.primary_lsn = pg.wal_position;
  in.seen_sync_at = seen_sync_at_;
  auto rows = pg_->replicationInfo();
  if (rows.ok() && rows->is_array()) {
    for (const auto& row : *rows) {
      ReplicaConnection r;
      r.name = row.value("application_name", "");
      r.state = row.value("state", "");
      r.sync_state = row.value("sync_state", "");
      if (row.contains("flush_lsn") && row["flush_lsn"].is_string()) {
        auto lsn = parseLsn(row["flush_lsn"].get<std::string>());
        if (lsn.ok())
          r.flush_lsn = *lsn;
      }
      in.replication.push_back(std::move(r));
    }
  }
  SyncPlan plan = planSync(in);
  if (plan.write_before) {
    auto st = dcs_->setSync(syncStateJson(*plan.write_before));
    if (!st.ok()) {
      spdlog::warn("synchronous mode: writing the sync key: {}", st.error().message);
      return;  // a standby must leave the key before it leaves synchronous_standby_names
    }
  }
  if (plan.ssn) {
    auto st = pg_->setSynchronousStandbyNames(*plan.ssn);
    if (!st.ok()) {
      spdlog::warn("synchronous mode: {}", st.error().message);
      return;
    }
    ssn_applied_ = *plan.ssn;
    ssn_managed_ = true;
    spdlog::info("synchronous mode: synchronous_standby_names = '{}'", *plan.ssn);
  }
  if (plan.write_after) {
    auto st = dcs_->setSync(syncStateJson(*plan.write_after));
    if (!st.ok()) {
      spdlog::warn("synchronous mode: writing the sync key: {}", st.error().message);
      return;
    }
    spdlog::info("synchronous mode: synchronous standbys now {}",
                 syncStateJson(*plan.write_after).dump());
  }
  seen_sync_at_ = plan.seen_sync_at;
  // A standby about to count is checked again soon rather than a whole loop later.
  bool pending = plan.ssn.has_value();
  for (const auto& [name, lsn] : plan.seen_sync_at)
    if (!plan.write_after || !plan.write_after->matches(name))
      pending = true;
  if (pending) {
    std::lock_guard<std::mutex> lk(mu_);
    sync_recheck_at_ = clock_.now() + Millis(200);
  }
}

void Agent::leaderHousekeeping(const ClusterView& cluster, const LocalPostgres& pg) {
  manageSync(cluster, pg);
  if (settings_.failsafe_mode) {
    auto members = failsafeMembersJson(cluster, config_.name, identity_.api_url);
    if (!cluster.failsafe || *cluster.failsafe != members)
      if (auto st = dcs_->setFailsafe(members); !st.ok())
        spdlog::warn("writing the failsafe key: {}", st.error().message);
  } else if (cluster.failsafe) {
    ignoreError(dcs_->deleteFailsafe(), "the next loop tries again");
  }
  if (pg.wal_position != last_optime_) {
    auto st = dcs_->setStatus({{"optime", pg.wal_position}});
    if (st.ok())
      last_optime_ = pg.wal_position;
  }
  if (!settings_.use_slots)
    return;
  std::set<std::string> slots;
  for (const auto& name : membersStreamingFrom(cluster, config_.name))
    slots.insert(slotNameForMember(name));
  if (slots == last_slots_)
    return;
  // Until it succeeds (a slot still in use by a standby that moved on is dropped once it is
  // not), every loop tries again.
  auto st = pg_->syncReplicationSlots(slots);
  if (st.ok())
    last_slots_ = slots;
  else if (st.error().code == ErrorCode::kAlreadyExists)
    spdlog::debug("replication slots: {}", st.error().message);
  else
    spdlog::warn("replication slots: {}", st.error().message);
}

void Agent::clearDeadline() {
  memory_.lease_deadline.reset();
  if (watchdog_ != nullptr)
    watchdog_->disarm();
}

void Agent::publishPromotion() {
  publishProbe();
}

void Agent::publishProbe() {
  // Health checks (HAProxy's /primary) and peers must see a change of role now, not at the end of
  // the cycle.
  LocalPostgres pg = pg_->probe();
  std::lock_guard<std::mutex> lk(mu_);
  status_.pg = pg;
  status_.role = memberRole(pg);
  status_.state = memberState(pg, "");
  status_.is_leader = memory_.lease_deadline.has_value() && pg.running && !pg.in_recovery;
}

void Agent::publish(const HaInput& in, const Decision& d, const std::string& activity) {
  std::lock_guard<std::mutex> lk(mu_);
  status_.settings = in.settings;
  status_.pg = in.pg;
  status_.role = memberRole(in.pg);
  status_.state = memberState(in.pg, activity);
  status_.cluster = in.cluster;
  status_.dcs_reachable = in.cluster.has_value();
  // We lead while we hold an unexpired lease (the fence clears it the moment it expires) and our
  // server runs as a primary.
  status_.is_leader = memory_.lease_deadline.has_value() && in.pg.running && !in.pg.in_recovery;
  if (!status_.is_leader)
    status_.failsafe_active = false;
  status_.failsafe_members = failsafe_members_;
  status_.last_decision = d;
  status_.updated_at = clock_.wallNow();
  status_.last_loop = clock_.now();
  status_.counters.loops++;
  if (!in.pg.sysid.empty())
    status_.database_system_identifier = in.pg.sysid;
}

void Agent::failsafeRound() {
  std::map<std::string, std::string> members;
  FailsafeHeartbeat heartbeat{config_.name, identity_.conn_url, identity_.api_url, 0};
  Millis timeout{};
  {
    std::lock_guard<std::mutex> lk(mu_);
    members = failsafe_members_;
    heartbeat.ttl = min_ttl_;
    timeout = timing_.request_timeout;
  }
  MonoTime sent = clock_.now();
  auto acks = postFailsafeHeartbeats(members, config_.name, failsafeHeartbeatJson(heartbeat).dump(),
                                     config_.restapi.username, config_.restapi.password, timeout);
  auto refusal = failsafeRefusal(members, config_.name, acks);
  std::lock_guard<std::mutex> lk(mu_);
  if (refusal) {
    auto left = memory_.lease_deadline
                    ? std::chrono::duration_cast<Millis>(*memory_.lease_deadline - clock_.now())
                    : Millis(0);
    spdlog::warn("failsafe: {}; the lease deadline stands (in {} ms)", *refusal, left.count());
    status_.failsafe_active = false;
    return;
  }
  // Every member promised not to compete until at least `sent` + ttl on its own clock.
  MonoTime deadline = sent + Millis(heartbeat.ttl * 1000LL) - timing_.safety_margin;
  if (!memory_.lease_deadline || clock_.now() >= *memory_.lease_deadline)
    return;  // fenced meanwhile: a stopped primary is not revived by a late answer
  if (deadline > *memory_.lease_deadline) {
    memory_.lease_deadline = deadline;
    if (watchdog_ != nullptr && !fence_paused_)
      watchdog_->arm(deadline);
    fence_cv_.notify_all();
  }
  if (!status_.failsafe_active)
    spdlog::warn(
        "failsafe: the dcs is unreachable but all {} other members accepted us: staying primary",
        members.size() - 1);
  status_.failsafe_active = true;
}

HttpReply Agent::acceptFailsafeHeartbeat(const std::string& body) {
  auto text = [](int status, std::string message) {
    return HttpReply{status, "text/plain; charset=utf-8", std::move(message), {}};
  };
  auto heartbeat = parseFailsafeHeartbeat(body);
  std::lock_guard<std::mutex> lk(mu_);
  if (!settings_.failsafe_mode)
    return text(502, "failsafe_mode is not enabled");
  if (!heartbeat)
    return text(400, "expected a JSON object with the sender's \"name\"");
  if (heartbeat->name == config_.name)
    return text(400, "a failsafe heartbeat from ourselves");
  if ((status_.pg.running && !status_.pg.in_recovery) || memory_.lease_deadline || acquiring_)
    return text(500, "Running as a leader");
  Millis hold(std::max(settings_.ttl, heartbeat->ttl) * 1000LL);
  if (failsafe_leader_ != heartbeat->name || clock_.now() >= failsafe_until_)
    spdlog::info(
        "failsafe: {} runs as primary without the dcs; not competing for the lease for {} s",
        heartbeat->name, hold.count() / 1000);
  failsafe_leader_ = heartbeat->name;
  failsafe_until_ = clock_.now() + hold;
  HttpReply reply = text(200, "Accepted");
  int64_t lsn = status_.pg.wal_position;
  if (lsn > 0)
    reply.headers["lsn"] = std::to_string(lsn);
  return reply;
}

Agent::LeaseKeeper::LeaseKeeper(Agent& agent) : agent_(agent) {
  std::lock_guard<std::mutex> lk(agent_.mu_);
  agent_.long_action_ = true;
  agent_.fence_cv_.notify_all();
}

Agent::LeaseKeeper::~LeaseKeeper() {
  std::lock_guard<std::mutex> lk(agent_.mu_);
  agent_.long_action_ = false;
}

void Agent::keeperLoop() {
  // While the loop is busy with a long action on the leader (starting or promoting PostgreSQL),
  // this thread renews the lease at the usual interval, so that the action does not run into the
  // fence. A renewal that fails leaves the deadline where it was: the fence still applies.
  // Every change it waits for (long_action_, the deadline, fence_stop_) is made under mu_ and
  // notified, so the waits need no timeout of their own; the cap only bounds a clock's drift.
  std::unique_lock<std::mutex> lk(mu_);
  bool active = false;
  MonoTime last = clock_.now();
  while (!fence_stop_) {
    if (!long_action_ || !memory_.lease_deadline) {
      active = false;
      fence_cv_.wait_for(lk, kIdleWaitCap);
      continue;
    }
    if (!active) {
      active = true;
      last = clock_.now();
    }
    MonoTime next = last + timing_.renew_interval;
    if (clock_.now() < next) {
      fence_cv_.wait_until(lk, std::min(next, clock_.now() + kIdleWaitCap));
      continue;
    }
    last = clock_.now();
    lk.unlock();
    renewOrAcquire(false);
    lk.lock();
  }
}

void Agent::fenceLoop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!fence_stop_) {
    // Sleep until the deadline (a renewal that sets or moves it notifies us).
    MonoTime cap = clock_.now() + kIdleWaitCap;
    fence_cv_.wait_until(lk, memory_.lease_deadline ? std::min(*memory_.lease_deadline, cap) : cap);
    if (!memory_.lease_deadline || clock_.now() < *memory_.lease_deadline)
      continue;
    if (fence_paused_) {
      // Paused: the primary keeps running past its deadline (the loop renews or retakes the key
      // when it can). Resuming notifies us.
      fence_cv_.wait_for(lk, kIdleWaitCap);
      continue;
    }
    clearDeadline();
    status_.is_leader = false;
    status_.counters.demotions++;
    lk.unlock();
    spdlog::error(
        "lease deadline passed without a renewal: stopping PostgreSQL now (immediate) so "
        "that this node cannot accept writes once the lease may have expired");
    auto st = pg_->stop(StopMode::kImmediate, kFenceStopTimeout);
    if (!st.ok())
      spdlog::error("fence stop: {}", st.error().message);
    lk.lock();
  }
}

void Agent::shutdown() {
  {
    std::vector<NodeRequest> requests;
    {
      std::lock_guard<std::mutex> lk(mu_);
      requests.swap(node_requests_);
    }
    for (auto& r : requests)
      r.done->set_value(
          Result<std::string>(makeError(ErrorCode::kUnsupported, "the agent is shutting down")));
  }
  bool leader = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    leader = memory_.lease_deadline.has_value();
  }
  spdlog::info("shutting down: stopping PostgreSQL{}",
               leader ? " and releasing the leader key" : "");
  const bool was_running = pg_->probe().running;
  auto st = pg_->stop(StopMode::kFast, kStopTimeout);
  if (was_running)
    callbacks_.fire("on_stop", leader ? "master" : "replica");
  if (!st.ok()) {
    spdlog::error("stopping PostgreSQL: {}", st.error().message);
    ignoreError(pg_->stop(StopMode::kImmediate, kFenceStopTimeout), "last resort");
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    clearDeadline();
  }
  if (leader) {
    auto del = dcs_->deleteLeader();
    if (!del.ok())
      spdlog::warn("releasing the leader key: {}", del.error().message);
  }
  ignoreError(dcs_->deleteMember(), "the member key expires with the lease anyway");
  ignoreError(dcs_->releaseLease(), "the lease expires by itself");
  {
    std::lock_guard<std::mutex> lk(mu_);
    fence_stop_ = true;
  }
  fence_cv_.notify_all();
  if (fence_thread_.joinable())
    fence_thread_.join();
  if (keeper_thread_.joinable())
    keeper_thread_.join();
}

}  // namespace pgf
