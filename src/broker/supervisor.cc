#include "broker/supervisor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker/osb_api.h"

namespace pgf {
namespace {

using nlohmann::json;

double seconds(Millis d) {
  return static_cast<double>(d.count()) / 1000.0;
}

json nodesJson(const InstanceHealth& h) {
  json nodes = json::array();
  for (const auto& n : h.nodes)
    nodes.push_back({{"name", n.name},
                     {"agent", n.agent_running},
                     {"role", n.role},
                     {"streaming", n.streaming}});
  return nodes;
}

// Provisions, updates and deprovisions own their instance while they run.
bool changing(Store& store, const std::string& instance_id) {
  auto last = store.lastOperation(instance_id);
  if (!last.ok() || !last->has_value())
    return !last.ok();
  const OperationRecord& op = **last;
  return op.state == OpState::kInProgress && op.binding_id.empty() &&
         (op.kind == OpKind::kProvision || op.kind == OpKind::kUpdate ||
          op.kind == OpKind::kDeprovision);
}

}  // namespace

std::string_view healthStateName(HealthState state) {
  switch (state) {
    case HealthState::kHealthy:
      return "healthy";
    case HealthState::kRecovering:
      return "recovering";
    case HealthState::kDegraded:
      return "degraded";
  }
  return "degraded";
}

std::string missingParts(const InstanceHealth& h) {
  if (h.healthy())
    return "";
  std::string out;
  auto add = [&](const std::string& clause) { out += (out.empty() ? "" : "; ") + clause; };
  for (const auto& n : h.nodes) {
    if (!n.agent_running)
      add(n.name + ": agent not running");
    else if (n.role.empty())
      add(n.name + ": PostgreSQL not running");
    else if (n.role == "replica" && !n.streaming)
      add(n.name + ": replica not streaming");
  }
  if (h.primaries == 0)
    add("no primary");
  else if (h.primaries > 1)
    add(fmt::format("{} primaries", h.primaries));
  if (!h.haproxy_running)
    add("HAProxy not running");
  if (out.empty())
    add("not every node is up");
  return out;
}

HealthState judgeHealth(bool healthy, bool crash_loop, Millis unhealthy_for, Millis grace) {
  if (healthy)
    return HealthState::kHealthy;
  if (crash_loop || unhealthy_for >= grace)
    return HealthState::kDegraded;
  return HealthState::kRecovering;
}

Supervisor::Supervisor(SupervisorOptions options, Store& store, LocalBackend& backend,
                       ManifestOf manifest_of)
    : options_(options), store_(store), backend_(backend), manifest_of_(std::move(manifest_of)) {}

Supervisor::~Supervisor() {
  stop();
}

void Supervisor::start() {
  std::lock_guard<std::mutex> guard(mu_);
  if (thread_.joinable())
    return;
  stop_ = false;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      lk.unlock();
      checkAll();
      lk.lock();
      cv_.wait_for(lk, options_.interval, [this] { return stop_; });
    }
  });
}

void Supervisor::stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable())
    t.join();
}

void Supervisor::hold(const std::string& instance_id) {
  std::unique_lock<std::mutex> lk(mu_);
  held_.insert(instance_id);
  cv_.wait(lk, [&] { return checking_ != instance_id; });
}

void Supervisor::release(const std::string& instance_id) {
  std::lock_guard<std::mutex> lk(mu_);
  held_.erase(instance_id);
}

Supervisor::Counters Supervisor::counters() const {
  std::lock_guard<std::mutex> lk(counters_mu_);
  return counters_;
}

void Supervisor::event(const std::string& instance_id, const std::string& kind,
                       const std::string& message) {
  spdlog::warn("instance {}: {}", jsonQuoted(instance_id), message);
  if (Status st = store_.addEvent(instance_id, kind, message); !st.ok())
    spdlog::error("recording an event of instance {}: {}", jsonQuoted(instance_id),
                  st.error().message);
}

void Supervisor::checkAll() {
  auto instances = store_.instances();
  if (!instances.ok()) {
    spdlog::error("supervisor: {}", instances.error().message);
    return;
  }
  std::set<std::string> present;
  for (const auto& r : *instances) {
    present.insert(r.id);
    if (!r.ready)
      continue;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_)
        return;
      if (held_.count(r.id) != 0)
        continue;
      checking_ = r.id;
    }
    if (!changing(store_, r.id))
      check(r, std::chrono::steady_clock::now());
    {
      std::lock_guard<std::mutex> lk(mu_);
      checking_.clear();
    }
    cv_.notify_all();
  }
  // What is remembered of instances that are gone is forgotten.
  for (auto it = tracked_.begin(); it != tracked_.end();)
    it = present.count(it->first) == 0 ? tracked_.erase(it) : std::next(it);
  for (auto it = backoffs_.begin(); it != backoffs_.end();) {
    const std::string id = it->first.substr(0, it->first.rfind('/'));
    it = present.count(id) == 0 ? backoffs_.erase(it) : std::next(it);
  }
  std::lock_guard<std::mutex> lk(counters_mu_);
  counters_.passes++;
}

bool Supervisor::restartDead(const std::string& instance_id, const std::string& key,
                             const std::string& what, bool agent, MonoTime now,
                             const std::function<Status()>& start) {
  RestartBackoff& b = backoffs_.try_emplace(key, options_.backoff).first->second;
  if (b.died(now)) {
    {
      std::lock_guard<std::mutex> lk(counters_mu_);
      counters_.crash_loops++;
    }
    event(instance_id, "crash-loop",
          fmt::format("{} died {} times in a row soon after starting; it is started again at most "
                      "every {:g} s",
                      what, b.streak(), seconds(options_.backoff.max_delay)));
  }
  if (b.due(now)) {
    Status st = start();
    b.started(now);
    {
      std::lock_guard<std::mutex> lk(counters_mu_);
      if (!st.ok())
        counters_.failed_restarts++;
      else if (agent)
        counters_.agent_restarts++;
      else
        counters_.haproxy_restarts++;
    }
    if (st.ok())
      event(instance_id, agent ? "agent-restarted" : "haproxy-restarted",
            fmt::format("{} was not running: started it again", what));
    else
      event(
          instance_id, "restart-failed",
          fmt::format("{} was not running and could not be started: {}", what, st.error().message));
  }
  return b.streak() >= options_.backoff.crash_loop;
}

void Supervisor::check(const InstanceRecord& r, MonoTime now) {
  auto manifest = manifest_of_(r);
  if (!manifest.ok()) {
    spdlog::error("supervisor: instance {}: {}", jsonQuoted(r.id), manifest.error().message);
    return;
  }
  const std::string name = r.deployment.value("name", "");
  InstanceHealth h = backend_.health(name, *manifest);

  bool crash_loop = false;
  for (size_t i = 0; i < manifest->nodes.size() && i < h.nodes.size(); ++i) {
    if (h.nodes[i].agent_running)
      continue;
    const NodeManifest& node = manifest->nodes[i];
    const std::string what = "the agent of " + node.name;
    crash_loop |= restartDead(r.id, r.id + "/" + node.name, what, true, now,
                              [&] { return backend_.startAgent(name, node); });
  }
  if (!h.haproxy_running)
    crash_loop |= restartDead(r.id, r.id + "/haproxy", "HAProxy", false, now,
                              [&] { return backend_.startHaproxy(name, *manifest); });

  Tracked& t = tracked_[r.id];
  for (const auto& n : h.nodes) {
    if (n.role == "primary" && h.primaries == 1) {
      if (!t.primary.empty() && t.primary != n.name)
        event(r.id, "primary-changed",
              fmt::format("{} is the primary now (it was {})", n.name, t.primary));
      t.primary = n.name;
    }
    if (n.started.empty())
      continue;
    std::string& seen = t.started[n.name];
    if (!seen.empty() && seen != n.started)
      event(r.id, "postgres-started",
            fmt::format("PostgreSQL on {} started again (at {}), as {}", n.name, n.started,
                        n.role.empty() ? "nothing yet" : "the " + n.role));
    seen = n.started;
  }
  const bool healthy = h.healthy();
  if (healthy)
    t.unhealthy_since.reset();
  else if (!t.unhealthy_since)
    t.unhealthy_since = now;
  const Millis unhealthy_for =
      t.unhealthy_since ? std::chrono::duration_cast<Millis>(now - *t.unhealthy_since) : Millis(0);
  const std::string state =
      std::string(healthStateName(judgeHealth(healthy, crash_loop, unhealthy_for, options_.grace)));
  const std::string reason = missingParts(h);
  json nodes = nodesJson(h);
  if (state == t.state && reason == t.reason && nodes == t.nodes)
    return;
  if (state != t.state) {
    if (state == "healthy" && !t.state.empty())
      event(r.id, "health", "healthy: back at full strength");
    else if (state != "healthy")
      event(r.id, "health", fmt::format("{}: {}", state, reason));
  }
  HealthRecord record{r.id, state, reason, nodes, ""};
  if (Status st = store_.putHealth(record); !st.ok()) {
    spdlog::error("supervisor: instance {}: {}", jsonQuoted(r.id), st.error().message);
    return;  // tried again at the next pass
  }
  t.state = state;
  t.reason = reason;
  t.nodes = std::move(nodes);
}

}  // namespace pgf
