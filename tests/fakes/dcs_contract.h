// The Dcs contract suite: the behaviour every Dcs implementation must show (dcs.h's atomicity,
// lease and timeout rules), written once and run against MemoryDcs and a real etcd so the fake
// stays faithful to production.
//
// To run it against an implementation, write an environment type `Env` with:
//   static void setUpSuite();  static void tearDownSuite();   // e.g. start/stop a server
//   Env();                      // a fresh, empty cluster (its own scope) per test
//   DcsPtr member(const std::string& name, int ttl_seconds);  // a member of that cluster
//   DcsPtr unreachable(const std::string& name, Millis request_timeout);  // nothing answers
//   int shortTtl();             // a lease ttl (seconds) the expiry tests use
//   void letLeasesExpire(int ttl_seconds);  // make leases not refreshed for ttl expire
//   Millis expiryDeadline(int ttl_seconds);  // how long expiry may take to show in load()
//   void putRaw(const std::string& relative_key, const std::string& value);  // no lease
// then:
//   INSTANTIATE_TYPED_TEST_SUITE_P(Memory, DcsContract, ::testing::Types<MemoryEnv>);
#pragma once

#include <algorithm>
#include <chrono>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dcs/dcs.h"

namespace pgf::contract {

// Polls `pred` until it holds or `deadline` passes; returns its last answer.
template <typename Pred>
bool eventually(Pred pred, Millis deadline, Millis step = Millis(50)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= end)
      return pred();
    std::this_thread::sleep_for(step);
  }
}

inline ClusterView mustLoad(Dcs& dcs) {
  auto r = dcs.load();
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().toString());
  return r.ok() ? std::move(r).value() : ClusterView{};
}

inline bool mustBool(Result<bool> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().toString());
  return r.ok() && r.value();
}

inline std::string leaderName(const ClusterView& v) {
  return v.leader ? v.leader->name : std::string();
}

inline long long elapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace pgf::contract

#define PGF_EXPECT_OK(expr)                                                       \
  do {                                                                            \
    auto pgf_ok_r_ = (expr);                                                      \
    EXPECT_TRUE(pgf_ok_r_.ok()) << #expr << ": " << pgf_ok_r_.error().toString(); \
  } while (0)

namespace pgf {

template <typename Env>
class DcsContract : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Env::setUpSuite(); }
  static void TearDownTestSuite() { Env::tearDownSuite(); }
  int ttl() { return 30; }
  Env env_;
};

TYPED_TEST_SUITE_P(DcsContract);

TYPED_TEST_P(DcsContract, BootstrapRaceHasExactlyOneWinner) {
  using namespace contract;
  constexpr int kMembers = 4;
  std::vector<DcsPtr> dcs;
  for (int i = 0; i < kMembers; ++i)
    dcs.push_back(this->env_.member("node" + std::to_string(i), this->ttl()));
  std::vector<std::future<Result<bool>>> results;
  std::latch start(kMembers);
  for (int i = 0; i < kMembers; ++i)
    results.push_back(std::async(std::launch::async, [&, i] {
      start.arrive_and_wait();
      return dcs[i]->attemptInitialize("");
    }));
  int winners = 0;
  for (auto& f : results)
    winners += mustBool(f.get()) ? 1 : 0;
  EXPECT_EQ(winners, 1);
  auto view = mustLoad(*dcs[0]);
  ASSERT_TRUE(view.initialize.has_value());
  EXPECT_EQ(*view.initialize, "");
  EXPECT_FALSE(mustBool(dcs[1]->attemptInitialize("x")));
}

TYPED_TEST_P(DcsContract, InitializeCanBeSetAndCancelled) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  auto b = this->env_.member("b", this->ttl());
  EXPECT_FALSE(mustLoad(*a).initialize.has_value());
  EXPECT_TRUE(mustBool(a->attemptInitialize("")));
  PGF_EXPECT_OK(a->setInitialize("7301234567890123456"));
  EXPECT_EQ(mustLoad(*b).initialize.value_or("?"), "7301234567890123456");
  PGF_EXPECT_OK(a->cancelInitialize());
  EXPECT_FALSE(mustLoad(*b).initialize.has_value());
  EXPECT_TRUE(mustBool(b->attemptInitialize("")));
}

TYPED_TEST_P(DcsContract, LeaderIsCompareAndCreateAndCompareAndDelete) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  auto b = this->env_.member("b", this->ttl());
  EXPECT_FALSE(mustLoad(*a).leader.has_value());
  EXPECT_TRUE(mustBool(a->acquireLeader()));
  auto view = mustLoad(*b);
  ASSERT_TRUE(view.leader.has_value());
  EXPECT_EQ(view.leader->name, "a");
  EXPECT_NE(view.leader->lease_id, 0);
  EXPECT_GT(view.leader->mod_revision, 0);
  EXPECT_LE(view.leader->mod_revision, view.revision);

  // The second member cannot take it, renew it or delete it while the first holds it.
  EXPECT_FALSE(mustBool(b->acquireLeader()));
  EXPECT_FALSE(mustBool(b->renewLeader()));
  auto del = b->deleteLeader();
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.error().code, ErrorCode::kCompareFailed);
  EXPECT_EQ(leaderName(mustLoad(*b)), "a");

  // The holder renews, and acquiring again while it holds the key is not a second win.
  EXPECT_TRUE(mustBool(a->renewLeader()));
  EXPECT_FALSE(mustBool(a->acquireLeader()));
  EXPECT_EQ(leaderName(mustLoad(*a)), "a");

  PGF_EXPECT_OK(a->deleteLeader());
  EXPECT_FALSE(mustLoad(*a).leader.has_value());
  EXPECT_TRUE(mustBool(b->acquireLeader()));
  EXPECT_EQ(leaderName(mustLoad(*a)), "b");
  EXPECT_FALSE(mustBool(a->renewLeader()));
}

TYPED_TEST_P(DcsContract, ConcurrentAcquireHasExactlyOneWinner) {
  using namespace contract;
  constexpr int kMembers = 4;
  std::vector<DcsPtr> dcs;
  for (int i = 0; i < kMembers; ++i)
    dcs.push_back(this->env_.member("node" + std::to_string(i), this->ttl()));
  std::latch start(kMembers);
  std::vector<std::future<Result<bool>>> results;
  for (int i = 0; i < kMembers; ++i)
    results.push_back(std::async(std::launch::async, [&, i] {
      start.arrive_and_wait();
      return dcs[i]->acquireLeader();
    }));
  std::string winner;
  int winners = 0;
  for (int i = 0; i < kMembers; ++i)
    if (mustBool(results[i].get())) {
      ++winners;
      winner = "node" + std::to_string(i);
    }
  ASSERT_EQ(winners, 1);
  EXPECT_EQ(leaderName(mustLoad(*dcs[0])), winner);
}

TYPED_TEST_P(DcsContract, RenewLeaderDoesNotRecreateAMissingKey) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  EXPECT_TRUE(mustBool(a->acquireLeader()));
  PGF_EXPECT_OK(a->deleteLeader());
  EXPECT_FALSE(mustBool(a->renewLeader()));
  EXPECT_FALSE(mustLoad(*a).leader.has_value());
}

TYPED_TEST_P(DcsContract, LeaseExpiryFreesTheLeaderForAnotherMember) {
  using namespace contract;
  const int ttl = this->env_.shortTtl();
  auto a = this->env_.member("a", ttl);
  auto b = this->env_.member("b", ttl);
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  EXPECT_FALSE(mustBool(b->acquireLeader()));
  // `a` stops renewing; `b` keeps trying and must win once a's lease is gone.
  this->env_.letLeasesExpire(ttl);
  EXPECT_TRUE(eventually([&] { return mustBool(b->acquireLeader()); },
                         this->env_.expiryDeadline(ttl), Millis(100)));
  EXPECT_EQ(leaderName(mustLoad(*a)), "b");
  // The old holder comes back: its renewal must fail and must not steal the key.
  EXPECT_FALSE(mustBool(a->renewLeader()));
  EXPECT_FALSE(mustBool(a->acquireLeader()));
  EXPECT_EQ(leaderName(mustLoad(*a)), "b");
  EXPECT_TRUE(mustBool(b->renewLeader()));
}

TYPED_TEST_P(DcsContract, MemberKeysCarryTheirJsonAndFollowTheirLease) {
  using namespace contract;
  const int ttl = this->env_.shortTtl();
  auto a = this->env_.member("a", ttl);
  auto b = this->env_.member("b", ttl);
  nlohmann::json data = {{"conn_url", "postgres://127.0.0.1:5432/postgres"},
                         {"api_url", "http://127.0.0.1:8008/patroni"},
                         {"state", "running"},
                         {"role", "replica"},
                         {"xlog_location", 67108864},
                         {"timeline", 3},
                         {"tags", {{"nofailover", true}}},
                         {"extra", "kept"}};
  PGF_EXPECT_OK(a->touchMember(data));
  PGF_EXPECT_OK(b->touchMember({{"role", "master"}, {"state", "running"}}));
  auto view = mustLoad(*b);
  ASSERT_EQ(view.members.size(), 2u);
  const MemberInfo* m = view.member("a");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->conn_url, "postgres://127.0.0.1:5432/postgres");
  EXPECT_EQ(m->api_url, "http://127.0.0.1:8008/patroni");
  EXPECT_EQ(m->role, "replica");
  EXPECT_EQ(m->xlog_location, 67108864);
  EXPECT_EQ(m->timeline, 3);
  EXPECT_TRUE(m->tags.nofailover);
  EXPECT_EQ(m->raw.value("extra", ""), "kept");
  EXPECT_GT(m->mod_revision, 0);
  ASSERT_NE(view.member("b"), nullptr);
  EXPECT_TRUE(view.member("b")->isPrimaryRole());

  // Touching again updates in place.
  data["state"] = "stopped";
  PGF_EXPECT_OK(a->touchMember(data));
  EXPECT_EQ(mustLoad(*b).member("a")->state, "stopped");

  PGF_EXPECT_OK(a->deleteMember());
  view = mustLoad(*b);
  EXPECT_EQ(view.member("a"), nullptr);
  EXPECT_NE(view.member("b"), nullptr);

  // b stops refreshing: its member key goes with its lease.
  this->env_.letLeasesExpire(ttl);
  EXPECT_TRUE(eventually([&] { return mustLoad(*a).members.empty(); },
                         this->env_.expiryDeadline(ttl), Millis(100)));
}

TYPED_TEST_P(DcsContract, ReleaseLeaseDropsLeaderAndMemberAtOnce) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  auto b = this->env_.member("b", this->ttl());
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  PGF_EXPECT_OK(a->touchMember({{"role", "master"}}));
  PGF_EXPECT_OK(b->touchMember({{"role", "replica"}}));
  PGF_EXPECT_OK(a->releaseLease());
  auto view = mustLoad(*b);
  EXPECT_FALSE(view.leader.has_value());
  EXPECT_EQ(view.member("a"), nullptr);
  EXPECT_NE(view.member("b"), nullptr);
  EXPECT_TRUE(mustBool(b->acquireLeader()));
  // a lease released once can be granted again by the next call.
  PGF_EXPECT_OK(a->touchMember({{"role", "replica"}}));
  EXPECT_NE(mustLoad(*b).member("a"), nullptr);
}

TYPED_TEST_P(DcsContract, SetConfigIsCompareAndSetByRevision) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  auto b = this->env_.member("b", this->ttl());
  PGF_EXPECT_OK(a->setConfig({{"ttl", 30}}, 0));
  auto again = b->setConfig({{"ttl", 99}}, 0);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kCompareFailed);
  auto view = mustLoad(*a);
  ASSERT_TRUE(view.config.has_value());
  EXPECT_EQ((*view.config)["ttl"], 30);
  const int64_t rev = view.config_revision;
  EXPECT_GT(rev, 0);

  PGF_EXPECT_OK(b->setConfig({{"ttl", 20}}, rev));
  auto stale = a->setConfig({{"ttl", 10}}, rev);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, ErrorCode::kCompareFailed);
  view = mustLoad(*a);
  EXPECT_EQ((*view.config)["ttl"], 20);
  EXPECT_GT(view.config_revision, rev);

  // Without a revision the write is unconditional.
  PGF_EXPECT_OK(a->setConfig({{"ttl", 15}}));
  EXPECT_EQ((*mustLoad(*b).config)["ttl"], 15);
}

TYPED_TEST_P(DcsContract, OtherKeysRoundTrip) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  nlohmann::json history = nlohmann::json::array({nlohmann::json::array(
      {1, 50331808, "no recovery target specified", "2024-01-01T00:00:00.000+00:00", "a"})});
  PGF_EXPECT_OK(a->setHistory(history));
  PGF_EXPECT_OK(a->setStatus({{"optime", 50331808}, {"slots", nlohmann::json::object()}}));
  PGF_EXPECT_OK(a->setFailover({{"leader", "a"}, {"member", "b"}}));
  PGF_EXPECT_OK(a->setSync({{"leader", "a"}, {"sync_standby", "b"}}));
  auto view = mustLoad(*a);
  EXPECT_EQ(view.history, history);
  EXPECT_EQ(view.leaderOptime(), 50331808);
  ASSERT_TRUE(view.failover.has_value());
  EXPECT_EQ((*view.failover)["member"], "b");
  ASSERT_TRUE(view.sync.has_value());
  EXPECT_EQ((*view.sync)["sync_standby"], "b");
  PGF_EXPECT_OK(a->deleteFailover());
  EXPECT_FALSE(mustLoad(*a).failover.has_value());
  PGF_EXPECT_OK(a->setFailsafe({{"a", "http://127.0.0.1:8008/patroni"}}));
  view = mustLoad(*a);
  ASSERT_TRUE(view.failsafe.has_value());
  EXPECT_EQ((*view.failsafe)["a"], "http://127.0.0.1:8008/patroni");
  PGF_EXPECT_OK(a->deleteFailsafe());
  EXPECT_FALSE(mustLoad(*a).failsafe.has_value());
}

TYPED_TEST_P(DcsContract, MalformedValuesAreSkippedNotFatal) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  this->env_.putRaw("config", "{not json");
  this->env_.putRaw("history", "[[1,");
  this->env_.putRaw("members/broken", "\xff\xfe garbage");
  this->env_.putRaw("status", "42");
  auto view = mustLoad(*a);
  EXPECT_FALSE(view.config.has_value());
  EXPECT_GT(view.config_revision, 0);
  EXPECT_TRUE(view.history.is_array());
  EXPECT_TRUE(view.history.empty());
  EXPECT_FALSE(view.status.has_value());
  ASSERT_NE(view.member("broken"), nullptr);
  EXPECT_EQ(view.member("broken")->role, "");
  // A malformed config can still be replaced by compare-and-set.
  PGF_EXPECT_OK(a->setConfig({{"ttl", 30}}, view.config_revision));
}

TYPED_TEST_P(DcsContract, WaitForChangeWakesOnAnotherMembersChange) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  auto b = this->env_.member("b", this->ttl());
  const int64_t rev = mustLoad(*a).revision;
  const auto start = std::chrono::steady_clock::now();
  auto woke = std::async(std::launch::async, [&] { return a->waitForChange(rev, Millis(10000)); });
  EXPECT_TRUE(mustBool(b->acquireLeader()));
  EXPECT_TRUE(woke.get());
  EXPECT_LT(elapsedMs(start), 5000);

  // A change that happened before the call is reported at once.
  const int64_t rev2 = mustLoad(*a).revision;
  PGF_EXPECT_OK(b->setFailover({{"leader", "b"}, {"member", "a"}}));
  const auto start2 = std::chrono::steady_clock::now();
  EXPECT_TRUE(a->waitForChange(rev2, Millis(5000)));
  EXPECT_LT(elapsedMs(start2), 2500);
}

TYPED_TEST_P(DcsContract, WaitForChangeTimesOutAndIgnoresMemberWrites) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  auto b = this->env_.member("b", this->ttl());
  const int64_t rev = mustLoad(*a).revision;
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(a->waitForChange(rev, Millis(300)));
  EXPECT_GE(elapsedMs(start), 250);
  EXPECT_LT(elapsedMs(start), 2000);

  // Member, status and history writes do not wake the loop (dcs.h).
  PGF_EXPECT_OK(b->touchMember({{"role", "replica"}}));
  PGF_EXPECT_OK(b->setStatus({{"optime", 1}}));
  PGF_EXPECT_OK(b->setHistory(nlohmann::json::array()));
  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(a->waitForChange(rev, Millis(300)));
  EXPECT_GE(elapsedMs(start), 250);
  EXPECT_LT(elapsedMs(start), 2000);
}

TYPED_TEST_P(DcsContract, WakeEndsAWaitAtOnceAndIsNotLostBeforeOne) {
  using namespace contract;
  auto a = this->env_.member("a", this->ttl());
  const int64_t rev = mustLoad(*a).revision;
  // Let the first wait set up whatever it watches with, so that the timing below is the wake's.
  EXPECT_FALSE(a->waitForChange(rev, Millis(200)));

  auto start = std::chrono::steady_clock::now();
  auto woke = std::async(std::launch::async, [&] { return a->waitForChange(rev, Millis(10000)); });
  std::this_thread::sleep_for(Millis(100));
  a->wake();
  EXPECT_FALSE(woke.get());  // woken, not changed
  EXPECT_LT(elapsedMs(start), 2000);

  // A wake that comes before the wait ends the next wait at once, and only that one.
  a->wake();
  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(a->waitForChange(rev, Millis(10000)));
  EXPECT_LT(elapsedMs(start), 1000);
  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(a->waitForChange(rev, Millis(300)));
  EXPECT_GE(elapsedMs(start), 250);
}

TYPED_TEST_P(DcsContract, UnreachableEndpointGivesDcsUnavailableWithinTheTimeout) {
  using namespace contract;
  const Millis timeout(700);
  auto d = this->env_.unreachable("a", timeout);
  auto check = [&](const char* what, auto&& call) {
    const auto start = std::chrono::steady_clock::now();
    auto r = call();
    EXPECT_LT(elapsedMs(start), timeout.count() + 1000) << what;
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.error().code, ErrorCode::kDcsUnavailable) << what << ": " << r.error().toString();
    EXPECT_FALSE(r.error().message.empty());
  };
  check("load", [&] { return d->load(); });
  check("acquireLeader", [&] { return d->acquireLeader(); });
  check("renewLeader", [&] { return d->renewLeader(); });
  check("touchMember", [&] { return d->touchMember({{"role", "replica"}}); });
  check("attemptInitialize", [&] { return d->attemptInitialize(""); });
  check("setConfig", [&] { return d->setConfig({{"ttl", 30}}, 0); });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(d->waitForChange(0, Millis(300)));
  EXPECT_LT(elapsedMs(start), 2000);
}

REGISTER_TYPED_TEST_SUITE_P(
    DcsContract, BootstrapRaceHasExactlyOneWinner, InitializeCanBeSetAndCancelled,
    LeaderIsCompareAndCreateAndCompareAndDelete, ConcurrentAcquireHasExactlyOneWinner,
    RenewLeaderDoesNotRecreateAMissingKey, LeaseExpiryFreesTheLeaderForAnotherMember,
    MemberKeysCarryTheirJsonAndFollowTheirLease, ReleaseLeaseDropsLeaderAndMemberAtOnce,
    SetConfigIsCompareAndSetByRevision, OtherKeysRoundTrip, MalformedValuesAreSkippedNotFatal,
    WaitForChangeWakesOnAnotherMembersChange, WaitForChangeTimesOutAndIgnoresMemberWrites,
    WakeEndsAWaitAtOnceAndIsNotLostBeforeOne,
    UnreachableEndpointGivesDcsUnavailableWithinTheTimeout);

}  // namespace pgf
