#include "dcs/memory/memory_dcs.h"

#include <thread>

#include <fmt/format.h>

#include "dcs/cluster_view_builder.h"

namespace pgf {

MemoryDcs::MemoryDcs(std::shared_ptr<MemoryStore> store, std::string scope, std::string name,
                     int ttl_seconds, std::string ns)
    : store_(std::move(store)),
      name_(std::move(name)),
      prefix_(clusterPrefix(ns, scope)),
      ttl_(ttl_seconds) {
  for (auto k : watchedKeys())
    watched_keys_.push_back(key(k));
}

Status MemoryDcs::unavailable(const char* op) const {
  return makeError(ErrorCode::kDcsUnavailable,
                   fmt::format("{}: memory dcs unreachable from {}", op, name_),
                   /*retryable=*/true);
}

int64_t MemoryDcs::refreshLeaseLocked(MemoryStore::Txn& t) {
  if (lease_ == 0 || !t.keepAlive(lease_, ttl_))
    lease_ = t.grantLease(ttl_);
  return lease_;
}

Result<ClusterView> MemoryDcs::load() {
  if (!reachable())
    return unavailable("loading cluster").error();
  std::vector<DcsKeyValue> kvs;
  int64_t revision = store_->atomically([&](MemoryStore::Txn& t) {
    for (auto& kv : t.range(prefix_))
      kvs.push_back(DcsKeyValue{kv.key.substr(prefix_.size()), std::move(kv.value),
                                kv.create_revision, kv.mod_revision, kv.lease});
    return t.revision();
  });
  return buildClusterView(kvs, revision);
}

Result<bool> MemoryDcs::attemptInitialize(const std::string& value) {
  if (!reachable())
    return unavailable("attempting initialize").error();
  const std::string k = key(dcs_keys::kInitialize);
  return store_->atomically([&](MemoryStore::Txn& t) {
    if (t.get(k))
      return false;
    return t.put(k, value);
  });
}

Status MemoryDcs::setInitialize(const std::string& sysid) {
  return putKey("setting initialize", dcs_keys::kInitialize, sysid);
}

Status MemoryDcs::cancelInitialize() {
  return eraseKey("cancelling initialize", dcs_keys::kInitialize);
}

Result<bool> MemoryDcs::acquireLeader() {
  if (!reachable())
    return unavailable("acquiring leader lease").error();
  const std::string k = key(dcs_keys::kLeader);
  std::lock_guard lock(mu_);
  return store_->atomically([&](MemoryStore::Txn& t) {
    int64_t lease = refreshLeaseLocked(t);
    if (t.get(k))
      return false;
    return t.put(k, name_, lease);
  });
}

Result<bool> MemoryDcs::renewLeader() {
  if (!reachable())
    return unavailable("renewing leader lease").error();
  const std::string k = key(dcs_keys::kLeader);
  std::lock_guard lock(mu_);
  return store_->atomically([&](MemoryStore::Txn& t) {
    int64_t lease = refreshLeaseLocked(t);
    auto cur = t.get(k);
    if (!cur || cur->value != name_)
      return false;
    if (cur->lease != lease)
      return t.put(k, name_, lease);
    return true;
  });
}

Status MemoryDcs::deleteLeader() {
  if (!reachable())
    return unavailable("deleting leader");
  const std::string k = key(dcs_keys::kLeader);
  bool deleted = store_->atomically([&](MemoryStore::Txn& t) {
    auto cur = t.get(k);
    return cur && cur->value == name_ && t.erase(k);
  });
  if (!deleted)
    return makeError(ErrorCode::kCompareFailed, "deleting leader: the leader key is not ours");
  return okStatus();
}

Status MemoryDcs::touchMember(const nlohmann::json& data) {
  if (!reachable())
    return unavailable("touching member");
  const std::string k = key(std::string(dcs_keys::kMembers) + name_);
  const std::string value = data.dump();
  std::lock_guard lock(mu_);
  store_->atomically([&](MemoryStore::Txn& t) { t.put(k, value, refreshLeaseLocked(t)); });
  return okStatus();
}

Status MemoryDcs::deleteMember() {
  return eraseKey("deleting member", std::string(dcs_keys::kMembers) + name_);
}

Status MemoryDcs::setConfig(const nlohmann::json& config,
                            std::optional<int64_t> expected_revision) {
  if (!reachable())
    return unavailable("setting config");
  const std::string k = key(dcs_keys::kConfig);
  const std::string value = config.dump();
  bool done = store_->atomically([&](MemoryStore::Txn& t) {
    if (expected_revision) {
      auto cur = t.get(k);
      int64_t mod = cur ? cur->mod_revision : 0;
      if (mod != *expected_revision)
        return false;
    }
    return t.put(k, value);
  });
  if (!done)
    return makeError(ErrorCode::kCompareFailed,
                     fmt::format("setting config: revision {} is no longer current",
                                 expected_revision.value_or(0)));
  return okStatus();
}

Status MemoryDcs::setHistory(const nlohmann::json& history) {
  return putKey("setting history", dcs_keys::kHistory, history.dump());
}

Status MemoryDcs::setStatus(const nlohmann::json& status) {
  return putKey("setting status", dcs_keys::kStatus, status.dump());
}

Status MemoryDcs::setFailover(const nlohmann::json& failover) {
  return putKey("setting failover", dcs_keys::kFailover, failover.dump());
}

Status MemoryDcs::deleteFailover() {
  return eraseKey("deleting failover", dcs_keys::kFailover);
}

Status MemoryDcs::setSync(const nlohmann::json& sync) {
  return putKey("setting sync", dcs_keys::kSync, sync.dump());
}

Status MemoryDcs::setFailsafe(const nlohmann::json& failsafe) {
  return putKey("setting failsafe", dcs_keys::kFailsafe, failsafe.dump());
}

Status MemoryDcs::deleteFailsafe() {
  return eraseKey("deleting failsafe", dcs_keys::kFailsafe);
}

bool MemoryDcs::waitForChange(int64_t after_revision, Millis timeout) {
  if (!reachable()) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && !woken_.exchange(false))
      std::this_thread::sleep_for(std::min(timeout, Millis(10)));
    return false;
  }
  return store_->waitForChange(watched_keys_, after_revision, timeout, &woken_);
}

void MemoryDcs::wake() {
  woken_ = true;
}

void MemoryDcs::setTtl(int ttl_seconds) {
  std::lock_guard lock(mu_);
  ttl_ = ttl_seconds;
}

void MemoryDcs::setRequestTimeout(Millis /*timeout*/) {
  // Every call is one in-process step; nothing can take longer than a timeout would allow.
}

Status MemoryDcs::releaseLease() {
  if (!reachable())
    return unavailable("releasing lease");
  std::lock_guard lock(mu_);
  if (lease_ != 0) {
    int64_t lease = lease_;
    store_->atomically([&](MemoryStore::Txn& t) { t.revoke(lease); });
    lease_ = 0;
  }
  return okStatus();
}

void MemoryDcs::setReachable(bool reachable) {
  reachable_.store(reachable);
}

int64_t MemoryDcs::leaseId() const {
  std::lock_guard lock(mu_);
  return lease_;
}

Status MemoryDcs::putKey(const char* op, std::string_view relative, const std::string& value) {
  if (!reachable())
    return unavailable(op);
  const std::string k = key(relative);
  store_->atomically([&](MemoryStore::Txn& t) { t.put(k, value); });
  return okStatus();
}

Status MemoryDcs::eraseKey(const char* op, std::string_view relative) {
  if (!reachable())
    return unavailable(op);
  const std::string k = key(relative);
  store_->atomically([&](MemoryStore::Txn& t) { t.erase(k); });
  return okStatus();
}

}  // namespace pgf
