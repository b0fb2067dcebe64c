#include "dcs/memory/memory_store.h"

#include <algorithm>

namespace pgf {

// ---- Txn ----

std::optional<MemoryStore::KeyValue> MemoryStore::Txn::get(const std::string& key) const {
  auto it = s_.kv_.find(key);
  if (it == s_.kv_.end())
    return std::nullopt;
  return it->second;
}

std::vector<MemoryStore::KeyValue> MemoryStore::Txn::range(const std::string& prefix) const {
  std::vector<KeyValue> out;
  for (auto it = s_.kv_.lower_bound(prefix); it != s_.kv_.end() && it->first.starts_with(prefix);
       ++it)
    out.push_back(it->second);
  return out;
}

int64_t MemoryStore::Txn::writeRevision() {
  if (!wrote_) {
    wrote_ = true;
    ++s_.revision_;
  }
  return s_.revision_;
}

bool MemoryStore::Txn::put(const std::string& key, const std::string& value, int64_t lease) {
  if (lease != 0 && !leaseAlive(lease))
    return false;
  int64_t rev = writeRevision();
  auto& kv = s_.kv_[key];
  if (kv.create_revision == 0) {
    kv.key = key;
    kv.create_revision = rev;
  }
  if (kv.lease != 0 && kv.lease != lease) {
    auto old = s_.leases_.find(kv.lease);
    if (old != s_.leases_.end())
      old->second.keys.erase(key);
  }
  kv.value = value;
  kv.mod_revision = rev;
  kv.lease = lease;
  if (lease != 0)
    s_.leases_[lease].keys.insert(key);
  s_.last_change_[key] = rev;
  return true;
}

bool MemoryStore::Txn::erase(const std::string& key) {
  if (!s_.kv_.count(key))
    return false;
  s_.eraseLocked(key, writeRevision());
  return true;
}

int64_t MemoryStore::Txn::grantLease(int ttl_seconds) {
  int64_t id = s_.next_lease_++;
  Lease l;
  l.ttl_seconds = ttl_seconds;
  l.expiry = s_.clock_.now() + std::chrono::seconds(ttl_seconds);
  s_.leases_[id] = std::move(l);
  return id;
}

bool MemoryStore::Txn::keepAlive(int64_t lease, int ttl_seconds) {
  auto it = s_.leases_.find(lease);
  if (it == s_.leases_.end())
    return false;
  it->second.ttl_seconds = ttl_seconds;
  it->second.expiry = s_.clock_.now() + std::chrono::seconds(ttl_seconds);
  return true;
}

bool MemoryStore::Txn::revoke(int64_t lease) {
  auto it = s_.leases_.find(lease);
  if (it == s_.leases_.end())
    return false;
  auto keys = std::move(it->second.keys);
  s_.leases_.erase(it);
  if (!keys.empty()) {
    int64_t rev = writeRevision();
    for (const auto& k : keys)
      s_.eraseLocked(k, rev);
  }
  return true;
}

bool MemoryStore::Txn::leaseAlive(int64_t lease) const {
  return s_.leases_.count(lease) > 0;
}

int64_t MemoryStore::Txn::revision() const {
  return s_.revision_;
}

// ---- MemoryStore ----

MemoryStore::MemoryStore(const Clock& clock) : clock_(clock) {}

void MemoryStore::eraseLocked(const std::string& key, int64_t revision) {
  auto it = kv_.find(key);
  if (it == kv_.end())
    return;
  if (it->second.lease != 0) {
    auto l = leases_.find(it->second.lease);
    if (l != leases_.end())
      l->second.keys.erase(key);
  }
  kv_.erase(it);
  last_change_[key] = revision;
}

void MemoryStore::expireLocked() {
  const MonoTime now = clock_.now();
  bool changed = false;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expiry > now) {
      ++it;
      continue;
    }
    // Each expired lease is revoked in its own revision, as etcd's lessor does.
    auto keys = std::move(it->second.keys);
    it = leases_.erase(it);
    if (keys.empty())
      continue;
    int64_t rev = ++revision_;
    for (const auto& k : keys)
      eraseLocked(k, rev);
    changed = true;
  }
  if (changed)
    cv_.notify_all();
}

void MemoryStore::finish(const Txn& txn) {
  if (txn.wrote_)
    cv_.notify_all();
}

int64_t MemoryStore::lastChangeLocked(const std::vector<std::string>& keys) const {
  int64_t last = 0;
  for (const auto& k : keys) {
    auto it = last_change_.find(k);
    if (it != last_change_.end())
      last = std::max(last, it->second);
  }
  return last;
}

std::optional<MemoryStore::KeyValue> MemoryStore::get(const std::string& key) {
  return atomically([&](Txn& t) { return t.get(key); });
}

void MemoryStore::put(const std::string& key, const std::string& value) {
  atomically([&](Txn& t) { t.put(key, value); });
}

bool MemoryStore::erase(const std::string& key) {
  return atomically([&](Txn& t) { return t.erase(key); });
}

int64_t MemoryStore::revision() {
  return atomically([](Txn& t) { return t.revision(); });
}

size_t MemoryStore::leaseCount() {
  std::lock_guard lock(mu_);
  expireLocked();
  return leases_.size();
}

void MemoryStore::expireLeases() {
  std::lock_guard lock(mu_);
  expireLocked();
}

bool MemoryStore::waitForChange(const std::vector<std::string>& keys, int64_t after_revision,
                                Millis timeout, std::atomic<bool>* woken) {
  // A short slice: how late a waiter notices a FakeClock advanced by another thread.
  constexpr Millis kSlice{10};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    expireLocked();
    if (lastChangeLocked(keys) > after_revision)
      return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || (woken != nullptr && woken->exchange(false)))
      return false;
    auto left = std::chrono::duration_cast<Millis>(deadline - now) + Millis(1);
    cv_.wait_for(lock, std::min(left, kSlice));
  }
}

}  // namespace pgf
