#include "broker/pool.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "broker/osb_api.h"

namespace pgf {
namespace {

// After a pooled instance could not be built, the plan's next build waits 5 s, doubling with
// each failure in a row up to 5 minutes: a broken template or a full disk is not retried in a
// tight loop.
Millis backoffAfter(int failures) {
  int64_t ms = 5000;
  for (int i = 1; i < failures && ms < 300000; ++i)
    ms *= 2;
  return Millis(std::min<int64_t>(ms, 300000));
}

}  // namespace

PoolKeeper::PoolKeeper(const Catalog& catalog, Store& store, PoolHooks hooks, Millis interval)
    : catalog_(catalog), store_(store), hooks_(std::move(hooks)), interval_(interval) {}

PoolKeeper::~PoolKeeper() {
  stop();
}

void PoolKeeper::start() {
  if (thread_.joinable())
    return;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void PoolKeeper::stop() {
  stopping_ = true;
  wake();
  if (thread_.joinable())
    thread_.join();
  std::map<std::string, Build> builds;
  {
    std::lock_guard<std::mutex> lk(mu_);
    builds.swap(builds_);
  }
  for (auto& [id, b] : builds) {
    *b.cancel = true;
    if (b.thread.joinable())
      b.thread.join();
  }
}

void PoolKeeper::wake() {
  {
    std::lock_guard<std::mutex> lk(wake_mu_);
    woken_ = true;
  }
  wake_cv_.notify_all();
}

void PoolKeeper::noteClaim(const std::string& plan_id) {
  std::lock_guard<std::mutex> lk(mu_);
  counters_[plan_id].claims++;
}

void PoolKeeper::noteMiss(const std::string& plan_id) {
  std::lock_guard<std::mutex> lk(mu_);
  counters_[plan_id].misses++;
}

void PoolKeeper::loop() {
  while (!stopping_) {
    pass();
    std::unique_lock<std::mutex> lk(wake_mu_);
    wake_cv_.wait_for(lk, interval_, [this] { return woken_ || stopping_.load(); });
    woken_ = false;
  }
}

void PoolKeeper::reapBuilds() {
  std::vector<std::thread> finished;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = builds_.begin(); it != builds_.end();) {
      if (*it->second.done) {
        finished.push_back(std::move(it->second.thread));
        it = builds_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& t : finished)
    if (t.joinable())
      t.join();
}

void PoolKeeper::startBuild(const std::string& id, const std::string& plan_id) {
  Build b;
  b.plan_id = plan_id;
  b.cancel = std::make_shared<std::atomic<bool>>(false);
  b.done = std::make_shared<std::atomic<bool>>(false);
  auto cancel = b.cancel;
  auto done = b.done;
  b.thread = std::thread([this, id, plan_id, cancel, done] {
    Status st = hooks_.build(id, *cancel);
    if (st.ok()) {
      spdlog::info("pooled instance {} is ready", jsonQuoted(id));
      std::lock_guard<std::mutex> lk(mu_);
      counters_[plan_id].consecutive_failures = 0;
    } else if (!*cancel) {
      Millis wait{0};
      {
        std::lock_guard<std::mutex> lk(mu_);
        Counters& c = counters_[plan_id];
        c.build_failures++;
        wait = backoffAfter(++c.consecutive_failures);
        c.next_attempt = std::chrono::steady_clock::now() + wait;
      }
      spdlog::error("building pooled instance {} failed: {}; it is removed, the next build in {} s",
                    jsonQuoted(id), st.error().message, wait.count() / 1000);
      if (Status gone = hooks_.destroy(id); !gone.ok())
        spdlog::error("removing pooled instance {}: {}", jsonQuoted(id), gone.error().message);
    }
    *done = true;
    wake();
  });
  std::lock_guard<std::mutex> lk(mu_);
  builds_[id] = std::move(b);
}

void PoolKeeper::retire(const std::string& id) {
  spdlog::info("giving back pooled instance {}: its plan's pool does not want it", jsonQuoted(id));
  if (Status st = hooks_.destroy(id); !st.ok())
    spdlog::error("giving back pooled instance {}: {}", jsonQuoted(id), st.error().message);
}

void PoolKeeper::pass() {
  reapBuilds();
  auto all = store_.instances();
  if (!all.ok()) {
    spdlog::error("pools: {}", all.error().message);
    return;
  }
  std::map<std::string, std::vector<std::string>> ready;  // plan id -> ids, oldest first
  std::map<std::string, int> building;  // plan id -> builds running or waiting for their turn
  std::map<std::string, int> running;   // plan id -> builds running
  std::map<std::string, std::string> building_ids;  // not counted yet: id -> plan
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [id, b] : builds_) {
      building[b.plan_id]++;
      running[b.plan_id]++;
    }
    for (const auto& r : *all) {
      if (r.pool.empty() || builds_.count(r.id))
        continue;
      if (r.ready)
        ready[r.pool].push_back(r.id);
      else
        building_ids[r.id] = r.pool;
    }
  }
  auto wanted = [&](const std::string& plan_id) {
    const Plan* plan = catalog_.planById(plan_id);
    return plan != nullptr && plan->provisioning.pooled() ? plan->provisioning.pool_size : 0;
  };
  auto concurrency = [&](const std::string& plan_id) {
    const Plan* plan = catalog_.planById(plan_id);
    return plan != nullptr ? plan->provisioning.refill_concurrency : 1;
  };
  // Half-built (a broker stopped during a build, or a build given up): finished, or given back
  // when the plan no longer wants it.
  for (const auto& [id, plan_id] : building_ids) {
    if (stopping_)
      return;
    const bool retiring = [&] {
      auto r = std::find_if(all->begin(), all->end(), [&](const auto& x) { return x.id == id; });
      return r != all->end() && r->deployment.value("retiring", false);
    }();
    if (retiring || wanted(plan_id) == 0 ||
        static_cast<int>(ready[plan_id].size()) + building[plan_id] >= wanted(plan_id)) {
      retire(id);
    } else {
      building[plan_id]++;
      if (running[plan_id] < concurrency(plan_id)) {
        spdlog::info("finishing the build of pooled instance {}", jsonQuoted(id));
        running[plan_id]++;
        startBuild(id, plan_id);
      }
    }
  }
  // Surplus: the newest go first.
  for (auto& [plan_id, ids] : ready) {
    const int surplus = static_cast<int>(ids.size()) - wanted(plan_id);
    for (int i = 0; i < surplus && !stopping_; ++i) {
      retire(ids.back());
      ids.pop_back();
    }
  }
  if (hooks_.busy && hooks_.busy())
    return;  // woken again once the claims are done
  const auto now = std::chrono::steady_clock::now();
  for (const auto& plan : catalog_.plans) {
    if (!plan.provisioning.pooled())
      continue;
    int missing =
        plan.provisioning.pool_size - static_cast<int>(ready[plan.id].size()) - building[plan.id];
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (now < counters_[plan.id].next_attempt)
        continue;
    }
    while (missing > 0 && running[plan.id] < plan.provisioning.refill_concurrency && !stopping_) {
      auto id = hooks_.create(plan);
      if (!id.ok()) {
        spdlog::error("pool of plan {}: {}", plan.name, id.error().message);
        break;
      }
      spdlog::info("building pooled instance {} for plan {}", jsonQuoted(*id), plan.name);
      startBuild(*id, plan.id);
      running[plan.id]++;
      --missing;
    }
  }
}

Result<std::vector<PoolStatus>> PoolKeeper::status() const {
  auto all = store_.instances();
  if (!all.ok())
    return all.error();
  std::map<std::string, PoolStatus> pools;
  for (const auto& plan : catalog_.plans) {
    if (!plan.provisioning.pooled())
      continue;
    PoolStatus& s = pools[plan.id];
    s.plan_id = plan.id;
  }
  for (const auto& r : *all) {
    if (r.pool.empty())
      continue;
    PoolStatus& s = pools[r.pool];
    s.plan_id = r.pool;
    (r.ready ? s.ready : s.building)++;
    s.members.push_back(r.id);
  }
  std::vector<PoolStatus> out;
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [plan_id, s] : pools) {
    if (const Plan* plan = catalog_.planById(plan_id); plan != nullptr) {
      s.plan_name = plan->name;
      s.strategy = plan->provisioning.strategy;
      s.size = plan->provisioning.pooled() ? plan->provisioning.pool_size : 0;
      s.refill_concurrency = plan->provisioning.refill_concurrency;
    }
    if (auto c = counters_.find(plan_id); c != counters_.end()) {
      s.claims = c->second.claims;
      s.misses = c->second.misses;
      s.build_failures = c->second.build_failures;
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const PoolStatus& a, const PoolStatus& b) {
    return std::tie(a.plan_name, a.plan_id) < std::tie(b.plan_name, b.plan_id);
  });
  return out;
}

}  // namespace pgf
