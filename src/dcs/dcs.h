// The distributed configuration store (DCS) one cluster's agents share: etcd v3 in production, an
// in-memory store in unit tests. Keys are laid out as Patroni lays them out (see cluster_view.h).
//
// Each agent owns one lease with the cluster's ttl. Its member key and, while it leads, the leader
// key are attached to that lease, so both vanish by themselves ttl seconds after the agent stops
// renewing.
//
// Atomicity rules:
//   - attemptInitialize, acquireLeader: compare-and-create. Exactly one caller wins a race; the
//   others
//     get `false` (not an error).
//   - renewLeader, deleteLeader, setConfig with a revision: compare-and-set on the current value or
//     revision; losing the comparison returns `false` or kCompareFailed, never overwrites.
//   - touchMember, setHistory, setStatus, setFailover, setSync: best-effort puts.
// Timeouts: every call returns within the request timeout (setRequestTimeout), trying the
// configured endpoints in turn. When no endpoint answered in time the error code is
// kDcsUnavailable, which the HA loop treats as "I may be cut off" (a primary demotes before its
// lease can expire), never as a generic retry. Thread safety: every method may be called from any
// thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/result.h"
#include "dcs/cluster_view.h"

namespace pgf {

class Dcs {
 public:
  virtual ~Dcs() = default;

  // Reads every key of the cluster in one consistent read.
  virtual Result<ClusterView> load() = 0;

  // Creates "initialize" with `value` if it does not exist. true: we won the bootstrap race.
  virtual Result<bool> attemptInitialize(const std::string& value) = 0;
  // Overwrites "initialize" (after initdb, with the system identifier).
  virtual Status setInitialize(const std::string& sysid) = 0;
  // Deletes "initialize" (a failed bootstrap gives the race back).
  virtual Status cancelInitialize() = 0;

  // Refreshes this agent's lease (granting a new one if it expired), then creates "leader" with our
  // name attached to it if no leader key exists. true: we hold the lock. The lease's expiry in etcd
  // is at least (time this call started) + ttl.
  virtual Result<bool> acquireLeader() = 0;
  // Refreshes our lease and checks that "leader" still holds our name (re-attaching it to our lease
  // if needed). true: we still hold the lock; false: somebody else does or it is gone.
  virtual Result<bool> renewLeader() = 0;
  // Deletes "leader" if and only if it holds our name.
  virtual Status deleteLeader() = 0;

  // Writes members/<name> attached to our lease, refreshing the lease first.
  virtual Status touchMember(const nlohmann::json& data) = 0;
  // Deletes members/<name> (clean shutdown).
  virtual Status deleteMember() = 0;

  // Writes "config". With `expected_revision`, only if the key's mod revision still matches
  // (kCompareFailed otherwise); with 0, only if it does not exist yet.
  virtual Status setConfig(const nlohmann::json& config,
                           std::optional<int64_t> expected_revision = std::nullopt) = 0;
  virtual Status setHistory(const nlohmann::json& history) = 0;
  virtual Status setStatus(const nlohmann::json& status) = 0;
  virtual Status setFailover(const nlohmann::json& failover) = 0;
  virtual Status deleteFailover() = 0;
  virtual Status setSync(const nlohmann::json& sync) = 0;
  virtual Status setFailsafe(const nlohmann::json& failsafe) = 0;
  virtual Status deleteFailsafe() = 0;

  // Blocks until one of the keys the HA loop reacts to (initialize, config, leader, failover, sync)
  // changes at a revision above `after_revision`, or until `timeout` passes. true: one changed.
  // Changes to members/*, status and history do not wake it: every agent writes its member key each
  // loop, and waking on those would make the agents wake each other in an endless ping-pong.
  virtual bool waitForChange(int64_t after_revision, Millis timeout) = 0;
  // Makes the waitForChange in progress, or else the next one, return false at once. Thread-safe;
  // the HA loop is woken this way when its postmaster exits or the agent is asked to stop.
  virtual void wake() = 0;

  // The lease ttl in seconds for our lease (applies from the next lease grant or refresh).
  virtual void setTtl(int ttl_seconds) = 0;
  // The longest any single call may block, across all endpoint attempts.
  virtual void setRequestTimeout(Millis timeout) = 0;

  // Revokes our lease so our keys disappear at once (clean shutdown).
  virtual Status releaseLease() = 0;
};

using DcsPtr = std::unique_ptr<Dcs>;

}  // namespace pgf
