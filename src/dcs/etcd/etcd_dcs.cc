#include "dcs/etcd/etcd_dcs.h"

#include <fmt/format.h>

#include "common/base64.h"
#include "dcs/cluster_view_builder.h"

namespace pgf {
namespace {

using nlohmann::json;

json b64(std::string_view s) {
  return base64Encode(s);
}

json compareCreated(const std::string& key, int64_t create_revision) {
  return {{"key", b64(key)},
          {"target", "CREATE"},
          {"result", "EQUAL"},
          {"create_revision", std::to_string(create_revision)}};
}

json compareModified(const std::string& key, int64_t mod_revision) {
  return {{"key", b64(key)},
          {"target", "MOD"},
          {"result", "EQUAL"},
          {"mod_revision", std::to_string(mod_revision)}};
}

json compareValue(const std::string& key, const std::string& value) {
  return {{"key", b64(key)}, {"target", "VALUE"}, {"result", "EQUAL"}, {"value", b64(value)}};
}

json putOp(const std::string& key, const std::string& value, int64_t lease = 0) {
  json put = {{"key", b64(key)}, {"value", b64(value)}};
  if (lease != 0)
    put["lease"] = std::to_string(lease);
  return {{"request_put", std::move(put)}};
}

json rangeOp(const std::string& key) {
  return {{"request_range", {{"key", b64(key)}}}};
}

json deleteOp(const std::string& key) {
  return {{"request_delete_range", {{"key", b64(key)}}}};
}

std::string prefixEnd(std::string prefix) {
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

// The first key-value of a txn's first range response, or an empty object.
json firstRangeKv(const json& txn_answer) {
  auto responses = txn_answer.find("responses");
  if (responses == txn_answer.end() || !responses->is_array() || responses->empty())
    return json::object();
  const auto& first = (*responses)[0];
  auto range = first.find("response_range");
  if (range == first.end() || !range->is_object())
    return json::object();
  auto kvs = range->find("kvs");
  if (kvs == range->end() || !kvs->is_array() || kvs->empty() || !(*kvs)[0].is_object())
    return json::object();
  return (*kvs)[0];
}

}  // namespace

Result<std::unique_ptr<EtcdDcs>> EtcdDcs::create(EtcdDcsOptions options) {
  if (options.scope.empty())
    return makeError(ErrorCode::kInvalidArgument, "etcd dcs: scope is empty");
  if (options.name.empty())
    return makeError(ErrorCode::kInvalidArgument, "etcd dcs: member name is empty");
  if (options.ttl_seconds < 1)
    return makeError(
        ErrorCode::kInvalidArgument,
        fmt::format("etcd dcs: ttl {} is not a positive number of seconds", options.ttl_seconds));
  auto client =
      EtcdClient::create(EtcdClientOptions{options.endpoints, options.protocol, options.username,
                                           options.password, options.request_timeout});
  if (!client.ok())
    return client.error().wrap("etcd dcs");
  return std::unique_ptr<EtcdDcs>(new EtcdDcs(std::move(options), std::move(client).value()));
}

Result<DcsPtr> makeEtcdDcs(EtcdDcsOptions options) {
  auto dcs = EtcdDcs::create(std::move(options));
  if (!dcs.ok())
    return dcs.error();
  return DcsPtr(std::move(dcs).value());
}

EtcdDcs::EtcdDcs(EtcdDcsOptions options, std::unique_ptr<EtcdClient> client)
    : options_(std::move(options)),
      prefix_(clusterPrefix(options_.ns, options_.scope)),
      client_(std::move(client)),
      ttl_(options_.ttl_seconds) {
  std::vector<std::string> watched;
  for (auto k : watchedKeys())
    watched.push_back(key(k));
  watch_ = std::make_unique<EtcdWatch>(*client_, prefix_, std::move(watched));
}

EtcdDcs::~EtcdDcs() {
  watch_->stop();
}

int64_t EtcdDcs::leaseId() const {
  std::lock_guard lock(lease_mu_);
  return lease_;
}

Result<int64_t> EtcdDcs::refreshLeaseLocked() {
  if (lease_ != 0 && lease_ttl_ == ttl_) {
    auto r = client_->call("/v3/lease/keepalive", {{"ID", std::to_string(lease_)}});
    if (!r.ok())
      return r.error().wrap("refreshing lease");
    // An expired lease answers without a TTL (or 0): fall through and grant a new one.
    const json& result = r->contains("result") ? (*r)["result"] : *r;
    if (jsonInt64(result, "TTL") > 0)
      return lease_;
  }
  // A lease granted with an old ttl is left to expire: renewLeader and touchMember move our keys
  // to the new one, which revoking the old lease first would delete.
  auto r = client_->call("/v3/lease/grant", {{"TTL", ttl_}});
  if (!r.ok())
    return r.error().wrap("granting lease");
  const int64_t id = jsonInt64(*r, "ID");
  if (id == 0)
    return makeError(ErrorCode::kInternal, "granting lease: etcd answered without a lease id");
  lease_ = id;
  lease_ttl_ = ttl_;
  return id;
}

template <typename T, typename Op>
Result<T> EtcdDcs::withLease(Op op) {
  std::lock_guard lock(lease_mu_);
  for (int attempt = 0;; ++attempt) {
    auto lease = refreshLeaseLocked();
    if (!lease.ok())
      return lease.error();
    Result<T> r = op(*lease);
    if (r.ok() || r.error().code != ErrorCode::kNotFound || attempt > 0)
      return r;
    lease_ = 0;  // "requested lease not found": it expired just now
  }
}

Result<json> EtcdDcs::txn(const json& compare, const json& success, const json& failure) {
  return client_->call("/v3/kv/txn",
                       {{"compare", compare}, {"success", success}, {"failure", failure}});
}

Status EtcdDcs::put(const char* op, std::string_view relative, const std::string& value) {
  auto r = client_->call("/v3/kv/put", {{"key", b64(key(relative))}, {"value", b64(value)}});
  if (!r.ok())
    return r.error().wrap(op);
  return okStatus();
}

Status EtcdDcs::erase(const char* op, std::string_view relative) {
  auto r = client_->call("/v3/kv/deleterange", {{"key", b64(key(relative))}});
  if (!r.ok())
    return r.error().wrap(op);
  return okStatus();
}

Result<ClusterView> EtcdDcs::load() {
  auto r = client_->call("/v3/kv/range",
                         {{"key", b64(prefix_)}, {"range_end", b64(prefixEnd(prefix_))}});
  if (!r.ok())
    return r.error().wrap("loading cluster");
  std::vector<DcsKeyValue> kvs;
  auto list = r->find("kvs");
  if (list != r->end() && list->is_array()) {
    for (const auto& kv : *list) {
      auto k = base64Decode(jsonString(kv, "key"));
      auto v = base64Decode(jsonString(kv, "value"));
      if (!k || !v || !k->starts_with(prefix_))
        continue;  // not ours or undecodable: nothing a decision could use
      kvs.push_back(DcsKeyValue{k->substr(prefix_.size()), std::move(*v),
                                jsonInt64(kv, "create_revision"), jsonInt64(kv, "mod_revision"),
                                jsonInt64(kv, "lease")});
    }
  }
  const json& header = r->contains("header") ? (*r)["header"] : json::object();
  return buildClusterView(kvs, jsonInt64(header, "revision"));
}

Result<bool> EtcdDcs::attemptInitialize(const std::string& value) {
  const std::string k = key(dcs_keys::kInitialize);
  auto r = txn(json::array({compareCreated(k, 0)}), json::array({putOp(k, value)}));
  if (!r.ok())
    return r.error().wrap("attempting initialize");
  return jsonBool(*r, "succeeded");
}

Status EtcdDcs::setInitialize(const std::string& sysid) {
  return put("setting initialize", dcs_keys::kInitialize, sysid);
}

Status EtcdDcs::cancelInitialize() {
  return erase("cancelling initialize", dcs_keys::kInitialize);
}

Result<bool> EtcdDcs::acquireLeader() {
  const std::string k = key(dcs_keys::kLeader);
  auto r = withLease<bool>([&](int64_t lease) -> Result<bool> {
    auto a =
        txn(json::array({compareCreated(k, 0)}), json::array({putOp(k, options_.name, lease)}));
    if (!a.ok())
      return a.error();
    return jsonBool(*a, "succeeded");
  });
  if (!r.ok())
    return r.error().wrap("acquiring leader lease");
  return r;
}

Result<bool> EtcdDcs::renewLeader() {
  const std::string k = key(dcs_keys::kLeader);
  auto r = withLease<bool>([&](int64_t lease) -> Result<bool> {
    auto a = txn(json::array({compareValue(k, options_.name)}), json::array({rangeOp(k)}));
    if (!a.ok())
      return a.error();
    if (!jsonBool(*a, "succeeded"))
      return false;  // somebody else holds it, or it is gone: never re-create it here
    const json kv = firstRangeKv(*a);
    if (jsonInt64(kv, "lease") == lease)
      return true;
    // Still ours but attached to another lease (a new lease after a ttl change, or a previous
    // run of this member): move it to ours, unless it changed in between.
    auto b = txn(json::array({compareValue(k, options_.name),
                              compareModified(k, jsonInt64(kv, "mod_revision"))}),
                 json::array({putOp(k, options_.name, lease)}));
    if (!b.ok())
      return b.error();
    return jsonBool(*b, "succeeded");
  });
  if (!r.ok())
    return r.error().wrap("renewing leader lease");
  return r;
}

Status EtcdDcs::deleteLeader() {
  const std::string k = key(dcs_keys::kLeader);
  auto r = txn(json::array({compareValue(k, options_.name)}), json::array({deleteOp(k)}));
  if (!r.ok())
    return r.error().wrap("deleting leader");
  if (!jsonBool(*r, "succeeded"))
    return makeError(ErrorCode::kCompareFailed, "deleting leader: the leader key is not ours");
  return okStatus();
}

Status EtcdDcs::touchMember(const nlohmann::json& data) {
  const std::string k = key(std::string(dcs_keys::kMembers) + options_.name);
  const std::string value = data.dump();
  auto r = withLease<bool>([&](int64_t lease) -> Result<bool> {
    auto a = client_->call(
        "/v3/kv/put", {{"key", b64(k)}, {"value", b64(value)}, {"lease", std::to_string(lease)}});
    if (!a.ok())
      return a.error();
    return true;
  });
  if (!r.ok())
    return r.error().wrap("touching member");
  return okStatus();
}

Status EtcdDcs::deleteMember() {
  return erase("deleting member", std::string(dcs_keys::kMembers) + options_.name);
}

Status EtcdDcs::setConfig(const nlohmann::json& config, std::optional<int64_t> expected_revision) {
  if (!expected_revision)
    return put("setting config", dcs_keys::kConfig, config.dump());
  const std::string k = key(dcs_keys::kConfig);
  // mod_revision of an absent key compares as 0, so revision 0 means "only if it does not exist".
  auto r = txn(json::array({compareModified(k, *expected_revision)}),
               json::array({putOp(k, config.dump())}));
  if (!r.ok())
    return r.error().wrap("setting config");
  if (!jsonBool(*r, "succeeded"))
    return makeError(
        ErrorCode::kCompareFailed,
        fmt::format("setting config: revision {} is no longer current", *expected_revision));
  return okStatus();
}

Status EtcdDcs::setHistory(const nlohmann::json& history) {
  return put("setting history", dcs_keys::kHistory, history.dump());
}

Status EtcdDcs::setStatus(const nlohmann::json& status) {
  return put("setting status", dcs_keys::kStatus, status.dump());
}

Status EtcdDcs::setFailover(const nlohmann::json& failover) {
  return put("setting failover", dcs_keys::kFailover, failover.dump());
}

Status EtcdDcs::deleteFailover() {
  return erase("deleting failover", dcs_keys::kFailover);
}

Status EtcdDcs::setSync(const nlohmann::json& sync) {
  return put("setting sync", dcs_keys::kSync, sync.dump());
}

Status EtcdDcs::setFailsafe(const nlohmann::json& failsafe) {
  return put("setting failsafe", dcs_keys::kFailsafe, failsafe.dump());
}

Status EtcdDcs::deleteFailsafe() {
  return erase("deleting failsafe", dcs_keys::kFailsafe);
}

bool EtcdDcs::waitForChange(int64_t after_revision, Millis timeout) {
  return watch_->waitForChange(after_revision, timeout);
}

void EtcdDcs::wake() {
  watch_->wake();
}

void EtcdDcs::setTtl(int ttl_seconds) {
  if (ttl_seconds < 1)
    return;
  std::lock_guard lock(lease_mu_);
  ttl_ = ttl_seconds;
}

void EtcdDcs::setRequestTimeout(Millis timeout) {
  client_->setRequestTimeout(timeout);
}

Status EtcdDcs::releaseLease() {
  std::lock_guard lock(lease_mu_);
  if (lease_ == 0)
    return okStatus();
  auto r = client_->call("/v3/lease/revoke", {{"ID", std::to_string(lease_)}});
  if (!r.ok() && r.error().code != ErrorCode::kNotFound)
    return r.error().wrap("releasing lease");
  lease_ = 0;
  return okStatus();
}

}  // namespace pgf
