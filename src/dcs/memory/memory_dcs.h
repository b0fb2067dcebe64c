// MemoryDcs: the Dcs of one simulated agent over a MemoryStore shared by the whole simulated
// cluster. It follows dcs.h's atomicity rules exactly (each method is one atomic step of the
// store), so unit tests and multi-agent simulations exercise the same races as etcd.
//
// Fault injection for tests: setReachable(false) makes every call fail with kDcsUnavailable (the
// agent is cut off from the DCS; the store and the other agents go on); faults on the data itself
// (a deleted or rewritten key) go through the MemoryStore directly.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "dcs/dcs.h"
#include "dcs/memory/memory_store.h"

namespace pgf {

class MemoryDcs final : public Dcs {
 public:
  // `ns` and `scope` give the key prefix /<ns>/<scope>/ as in etcd; `name` is the member name.
  MemoryDcs(std::shared_ptr<MemoryStore> store, std::string scope, std::string name,
            int ttl_seconds, std::string ns = "/service");

  Result<ClusterView> load() override;
  Result<bool> attemptInitialize(const std::string& value) override;
  Status setInitialize(const std::string& sysid) override;
  Status cancelInitialize() override;
  Result<bool> acquireLeader() override;
  Result<bool> renewLeader() override;
  // kCompareFailed when "leader" does not hold our name (or is gone).
  Status deleteLeader() override;
  Status touchMember(const nlohmann::json& data) override;
  Status deleteMember() override;
  Status setConfig(const nlohmann::json& config,
                   std::optional<int64_t> expected_revision = std::nullopt) override;
  Status setHistory(const nlohmann::json& history) override;
  Status setStatus(const nlohmann::json& status) override;
  Status setFailover(const nlohmann::json& failover) override;
  Status deleteFailover() override;
  Status setSync(const nlohmann::json& sync) override;
  Status setFailsafe(const nlohmann::json& failsafe) override;
  Status deleteFailsafe() override;
  // While unreachable, waits out `timeout` (as a cut-off etcd client would) and returns false.
  bool waitForChange(int64_t after_revision, Millis timeout) override;
  void wake() override;
  void setTtl(int ttl_seconds) override;
  void setRequestTimeout(Millis timeout) override;
  Status releaseLease() override;

  void setReachable(bool reachable);
  bool reachable() const { return reachable_.load(); }
  // Our current lease id (0 when we hold none).
  int64_t leaseId() const;
  const std::string& name() const { return name_; }
  // "/<ns>/<scope>/"
  const std::string& prefix() const { return prefix_; }
  MemoryStore& store() { return *store_; }

 private:
  Status unavailable(const char* op) const;
  // Keeps our lease alive in `t`, granting a new one when it expired. Caller holds mu_.
  int64_t refreshLeaseLocked(MemoryStore::Txn& t);
  Status putKey(const char* op, std::string_view key, const std::string& value);
  Status eraseKey(const char* op, std::string_view key);
  std::string key(std::string_view relative) const { return prefix_ + std::string(relative); }

  std::shared_ptr<MemoryStore> store_;
  const std::string name_;
  const std::string prefix_;
  std::vector<std::string> watched_keys_;  // full keys that wake waitForChange
  std::atomic<bool> woken_{false};
  std::atomic<bool> reachable_{true};
  mutable std::mutex mu_;  // guards ttl_ and lease_; taken before the store's lock
  int ttl_;
  int64_t lease_ = 0;
};

}  // namespace pgf
