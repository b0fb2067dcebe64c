// MemoryStore: one in-memory key space shared by several MemoryDcs instances (one per simulated
// agent), modelled on etcd v3 so the fake stays faithful:
//   - a global revision, bumped once per atomic step that writes (like one etcd txn);
//   - keys carry create/mod revisions and an optional lease;
//   - leases have a ttl; when the injected clock passes a lease's expiry, the lease and every key
//     attached to it are deleted (each expired lease costs one revision, as in etcd).
// Expiry is checked lazily at the start of every call, and by expireLeases(), so a test driving a
// FakeClock sees keys vanish as soon as it touches the store after advancing the clock.
//
// Thread-safe: every method takes the store lock. The callback given to atomically() runs under
// that lock and must not call back into the store.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "common/clock.h"

namespace pgf {

class MemoryStore {
 public:
  struct KeyValue {
    std::string key;
    std::string value;
    int64_t create_revision = 0;
    int64_t mod_revision = 0;
    int64_t lease = 0;
  };

  // One atomic step over the store, handed to the callback of atomically(). All writes in one step
  // share one new revision.
  class Txn {
   public:
    std::optional<KeyValue> get(const std::string& key) const;
    // Every key starting with `prefix`, in key order.
    std::vector<KeyValue> range(const std::string& prefix) const;
    // false when `lease` is non-zero and not alive (etcd: "requested lease not found").
    bool put(const std::string& key, const std::string& value, int64_t lease = 0);
    // false when the key did not exist.
    bool erase(const std::string& key);

    int64_t grantLease(int ttl_seconds);
    // Restarts the lease's countdown with `ttl_seconds`. false: unknown or expired.
    bool keepAlive(int64_t lease, int ttl_seconds);
    // Deletes the lease and its keys. false: unknown or expired.
    bool revoke(int64_t lease);
    bool leaseAlive(int64_t lease) const;

    // The store revision as of now (including this step's writes).
    int64_t revision() const;

   private:
    friend class MemoryStore;
    explicit Txn(MemoryStore& store) : s_(store) {}
    int64_t writeRevision();
    MemoryStore& s_;
    bool wrote_ = false;
  };

  explicit MemoryStore(const Clock& clock);
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Runs `f(Txn&)` atomically after expiring due leases; wakes waiters if it wrote.
  template <typename F>
  auto atomically(F&& f) {
    std::lock_guard lock(mu_);
    expireLocked();
    Txn txn(*this);
    if constexpr (std::is_void_v<decltype(f(txn))>) {
      f(txn);
      finish(txn);
    } else {
      auto r = f(txn);
      finish(txn);
      return r;
    }
  }

  // Convenience single-step operations (tests use them to inject faults such as a deleted key).
  std::optional<KeyValue> get(const std::string& key);
  void put(const std::string& key, const std::string& value);
  bool erase(const std::string& key);
  int64_t revision();
  size_t leaseCount();

  // Deletes every lease whose expiry the clock has passed, with its keys.
  void expireLeases();

  // Waits until one of `keys` was created, changed or deleted at a revision above
  // `after_revision` (true), or until `timeout` of real time passed (false). Returns at once when
  // such a change already happened. Wakes periodically to expire leases, so advancing a FakeClock
  // from another thread is noticed without any other store call.
  // `woken`, when given, ends the wait early once it is set (and is cleared by the wait).
  bool waitForChange(const std::vector<std::string>& keys, int64_t after_revision, Millis timeout,
                     std::atomic<bool>* woken = nullptr);

 private:
  struct Lease {
    int ttl_seconds = 0;
    MonoTime expiry;
    std::set<std::string> keys;
  };

  void expireLocked();
  void eraseLocked(const std::string& key, int64_t revision);
  void finish(const Txn& txn);
  int64_t lastChangeLocked(const std::vector<std::string>& keys) const;

  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t revision_ = 1;  // etcd starts at 1 too: a fresh store has never been written
  int64_t next_lease_ = 1000;
  std::map<std::string, KeyValue> kv_;
  std::map<int64_t, Lease> leases_;
  // Revision of the last create, change or delete of each key ever written (deleted keys too), so
  // waitForChange can be scoped to some keys like a filtered etcd watch.
  std::map<std::string, int64_t> last_change_;
};

}  // namespace pgf
