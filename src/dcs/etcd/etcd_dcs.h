// EtcdDcs: the Dcs over etcd v3's HTTP/JSON gateway, with Patroni's key layout under
// /<namespace>/<scope>/ so that pgfleet and Patroni read the same cluster state.
//
// Each dcs.h operation maps onto one etcd request (two for renewLeader when the key must be
// re-attached to our lease), so the atomicity rules hold on the server:
//   attemptInitialize, acquireLeader   txn: create_revision(key) == 0 -> put
//   renewLeader                        lease keepalive, then txn: value(leader) == name
//   deleteLeader                       txn: value(leader) == name -> delete
//   setConfig(revision)                txn: mod_revision(config) == revision -> put
// The lease is granted lazily, refreshed by acquireLeader/renewLeader/touchMember, and granted
// again when etcd says it expired or when the ttl changed. waitForChange uses a background watch
// (see etcd_watch.h). Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dcs/dcs.h"
#include "dcs/etcd/etcd_client.h"
#include "dcs/etcd/etcd_watch.h"

namespace pgf {

struct EtcdDcsOptions {
  std::vector<std::string> endpoints;  // "host:port" (Patroni's etcd3.hosts)
  std::string protocol = "http";
  std::string username;  // empty: etcd without authentication
  std::string password;
  std::string ns = "/service";  // Patroni's "namespace"
  std::string scope;
  std::string name;  // this member
  int ttl_seconds = 30;
  Millis request_timeout{10000};
};

class EtcdDcs final : public Dcs {
 public:
  // Validates the options (kInvalidArgument, kUnsupported for https); does not contact etcd.
  static Result<std::unique_ptr<EtcdDcs>> create(EtcdDcsOptions options);
  ~EtcdDcs() override;

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
  bool waitForChange(int64_t after_revision, Millis timeout) override;
  void wake() override;
  void setTtl(int ttl_seconds) override;
  void setRequestTimeout(Millis timeout) override;
  Status releaseLease() override;

  const std::string& prefix() const { return prefix_; }
  // Our current lease id (0 when we hold none).
  int64_t leaseId() const;

 private:
  EtcdDcs(EtcdDcsOptions options, std::unique_ptr<EtcdClient> client);

  std::string key(std::string_view relative) const { return prefix_ + std::string(relative); }
  // Keeps our lease alive, granting a new one when there is none, it expired or the ttl changed.
  // Caller holds lease_mu_.
  Result<int64_t> refreshLeaseLocked();
  // Runs `op(lease)` with a fresh lease; if etcd no longer knows the lease (it expired between
  // the refresh and the write), grants a new one and runs `op` once more.
  template <typename T, typename Op>
  Result<T> withLease(Op op);
  Result<nlohmann::json> txn(const nlohmann::json& compare, const nlohmann::json& success,
                             const nlohmann::json& failure = nlohmann::json::array());
  Status put(const char* op, std::string_view relative, const std::string& value);
  Status erase(const char* op, std::string_view relative);

  const EtcdDcsOptions options_;
  const std::string prefix_;
  std::unique_ptr<EtcdClient> client_;
  std::unique_ptr<EtcdWatch> watch_;
  mutable std::mutex lease_mu_;  // guards the three below; serialises lease refreshes
  int ttl_;
  int64_t lease_ = 0;
  int lease_ttl_ = 0;  // the ttl `lease_` was granted with
};

// The factory the agent uses.
Result<DcsPtr> makeEtcdDcs(EtcdDcsOptions options);

}  // namespace pgf
