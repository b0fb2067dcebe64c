// The Dcs contract suite against MemoryDcs, plus what only the fake has: a clock that drives
// lease expiry exactly, revisions per atomic step, and reachability injection.
#include "dcs/memory/memory_dcs.h"

#include <chrono>
#include <future>
#include <memory>

#include <gtest/gtest.h>

#include "dcs/cluster_view_builder.h"
#include "fakes/dcs_contract.h"
#include "fakes/fake_clock.h"

namespace pgf {
namespace {

using std::chrono::seconds;

struct MemoryEnv {
  static void setUpSuite() {}
  static void tearDownSuite() {}

  DcsPtr member(const std::string& name, int ttl_seconds) {
    return std::make_unique<MemoryDcs>(store, "batman", name, ttl_seconds);
  }
  DcsPtr unreachable(const std::string& name, Millis request_timeout) {
    auto d = std::make_unique<MemoryDcs>(store, "batman", name, 30);
    d->setRequestTimeout(request_timeout);
    d->setReachable(false);
    return d;
  }
  int shortTtl() { return 10; }
  void letLeasesExpire(int ttl_seconds) {
    clock.advance(seconds(ttl_seconds) + Millis(1));
    store->expireLeases();
  }
  // The fake clock already moved past every expiry: the effect is immediate.
  Millis expiryDeadline(int /*ttl_seconds*/) { return Millis(0); }
  void putRaw(const std::string& relative_key, const std::string& value) {
    store->put("/service/batman/" + relative_key, value);
  }

  FakeClock clock;
  std::shared_ptr<MemoryStore> store = std::make_shared<MemoryStore>(clock);
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Memory, DcsContract, ::testing::Types<MemoryEnv>);

namespace {

class MemoryDcsTest : public ::testing::Test {
 protected:
  std::unique_ptr<MemoryDcs> member(const std::string& name, int ttl = 30) {
    return std::make_unique<MemoryDcs>(store_, "batman", name, ttl);
  }
  FakeClock clock_;
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>(clock_);
};

TEST_F(MemoryDcsTest, LeaseExpiresExactlyAtTtlAfterTheLastRefresh) {
  auto a = member("a", 30);
  ASSERT_TRUE(a->acquireLeader().value());
  clock_.advance(seconds(20));
  ASSERT_TRUE(a->renewLeader().value());  // restarts the countdown
  clock_.advance(seconds(30) - Millis(1));
  EXPECT_TRUE(store_->get("/service/batman/leader").has_value());
  clock_.advance(Millis(1));
  store_->expireLeases();
  EXPECT_FALSE(store_->get("/service/batman/leader").has_value());
  EXPECT_EQ(store_->leaseCount(), 0u);
}

TEST_F(MemoryDcsTest, ExpiryIsAlsoCheckedLazilyByEveryCall) {
  auto a = member("a", 10);
  auto b = member("b", 10);
  ASSERT_TRUE(a->acquireLeader().value());
  clock_.advance(seconds(11));
  // No expireLeases(): the load itself notices the expired lease.
  EXPECT_FALSE(b->load().value().leader.has_value());
}

TEST_F(MemoryDcsTest, SetTtlAppliesFromTheNextRefresh) {
  auto a = member("a", 30);
  ASSERT_TRUE(a->acquireLeader().value());
  a->setTtl(5);
  ASSERT_TRUE(a->renewLeader().value());
  clock_.advance(seconds(6));
  EXPECT_FALSE(a->load().value().leader.has_value());
}

TEST_F(MemoryDcsTest, RenewLeaderReattachesTheKeyToANewLease) {
  auto a = member("a", 10);
  ASSERT_TRUE(a->acquireLeader().value());
  const int64_t first = a->leaseId();
  // The key is moved to another lease behind our back (as after an agent restart).
  store_->atomically(
      [](MemoryStore::Txn& t) { t.put("/service/batman/leader", "a", t.grantLease(1000)); });
  ASSERT_TRUE(a->renewLeader().value());
  auto view = a->load().value();
  ASSERT_TRUE(view.leader.has_value());
  EXPECT_EQ(view.leader->lease_id, first);
}

TEST_F(MemoryDcsTest, RevisionBumpsOncePerWriteAndNotForReads) {
  auto a = member("a");
  const int64_t r0 = store_->revision();
  ASSERT_TRUE(a->load().ok());
  EXPECT_EQ(store_->revision(), r0);
  ASSERT_TRUE(a->touchMember({{"role", "replica"}}).ok());
  EXPECT_EQ(store_->revision(), r0 + 1);
  EXPECT_TRUE(member("b")->acquireLeader().value());
  EXPECT_EQ(store_->revision(), r0 + 2);  // b's leader key
  EXPECT_FALSE(a->acquireLeader().value());
  EXPECT_EQ(store_->revision(), r0 + 2);  // a lost the comparison: nothing written
}

TEST_F(MemoryDcsTest, UnreachableMemberIsCutOffUntilReachableAgain) {
  auto a = member("a");
  auto b = member("b");
  ASSERT_TRUE(a->acquireLeader().ok());
  a->setReachable(false);
  EXPECT_FALSE(a->reachable());
  auto r = a->renewLeader();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDcsUnavailable);
  EXPECT_EQ(a->deleteMember().error().code, ErrorCode::kDcsUnavailable);
  // The others are not affected.
  EXPECT_EQ(b->load().value().leader->name, "a");
  a->setReachable(true);
  EXPECT_TRUE(a->renewLeader().value());
}

TEST_F(MemoryDcsTest, WaitForChangeNoticesAClockAdvancedByAnotherThread) {
  auto a = member("a", 10);
  auto b = member("b", 10);
  ASSERT_TRUE(a->acquireLeader().value());
  const int64_t rev = b->load().value().revision;
  auto woke = std::async(std::launch::async, [&] { return b->waitForChange(rev, Millis(10000)); });
  clock_.advance(seconds(11));  // a's lease expires: the leader key is deleted
  EXPECT_TRUE(woke.get());
  EXPECT_FALSE(b->load().value().leader.has_value());
}

TEST_F(MemoryDcsTest, ScopesAreIsolated) {
  auto a = member("a");
  MemoryDcs other(store_, "robin", "a", 30);
  ASSERT_TRUE(a->acquireLeader().value());
  EXPECT_TRUE(other.acquireLeader().value());
  EXPECT_EQ(other.prefix(), "/service/robin/");
  const int64_t rev = other.load().value().revision;
  ASSERT_TRUE(a->setConfig({{"ttl", 30}}).ok());
  EXPECT_FALSE(other.waitForChange(rev, Millis(50)));
}

TEST(ClusterViewBuilderTest, PrefixCollapsesSlashesLikePatroni) {
  EXPECT_EQ(clusterPrefix("/service", "batman"), "/service/batman/");
  EXPECT_EQ(clusterPrefix("service/", "batman"), "/service/batman/");
  EXPECT_EQ(clusterPrefix("/service/", "batman"), "/service/batman/");
  EXPECT_EQ(clusterPrefix("/", "batman"), "/batman/");
}

TEST(ClusterViewBuilderTest, BuildsEveryKeyAndIgnoresUnknownOnes) {
  std::vector<DcsKeyValue> kvs = {
      {"members/b", R"({"role":"replica"})", 3, 9, 0},
      {"members/a", R"({"role":"master"})", 3, 8, 0},
      {"members/a/deeper", "{}", 1, 1, 0},
      {"leader", "a", 4, 7, 1234},
      {"initialize", "6900000000000000000", 1, 1, 0},
      {"optime/leader", "123", 1, 1, 0},
  };
  auto v = buildClusterView(kvs, 42);
  EXPECT_EQ(v.revision, 42);
  ASSERT_EQ(v.members.size(), 2u);
  EXPECT_EQ(v.members[0].name, "a");  // sorted
  EXPECT_EQ(v.members[1].mod_revision, 9);
  ASSERT_TRUE(v.leader.has_value());
  EXPECT_EQ(v.leader->lease_id, 1234);
  EXPECT_EQ(v.leader->mod_revision, 7);
  EXPECT_EQ(v.leaderMember()->role, "master");
  EXPECT_EQ(v.initialize.value_or(""), "6900000000000000000");
  EXPECT_FALSE(v.config.has_value());
}

}  // namespace
}  // namespace pgf
