// The pool keeper against a real store, with builds that only flip a record to ready: how many it
// builds at once, what it finishes, what it gives back, and how it backs off after a failure.
#include "broker/pool.h"

#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include <gtest/gtest.h>

namespace pgf {
namespace {

using std::chrono::milliseconds;

class PoolKeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("broker_pool_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = Store::open((dir_ / "broker.db").string());
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
    catalog_.service_id = "svc";
    Plan p;
    p.id = "p1";
    p.name = "single-small";
    p.provisioning.strategy = ProvisioningStrategy::kHybrid;
    p.provisioning.pool_size = 2;
    p.provisioning.refill_concurrency = 1;
    catalog_.plans = {p};
  }
  void TearDown() override {
    keeper_.reset();
    std::filesystem::remove_all(dir_);
  }

  void makeKeeper() {
    PoolHooks hooks;
    hooks.create = [this](const Plan& plan) -> Result<std::string> {
      std::string id = "pool-" + std::to_string(++created_);
      PGF_RETURN_IF_ERROR(store_->putInstance(pooled(id, plan.id, false)));
      return id;
    };
    hooks.build = [this](const std::string& id, const std::atomic<bool>&) -> Status {
      const int now = ++running_;
      int seen = max_running_.load();
      while (now > seen && !max_running_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(milliseconds(50));
      --running_;
      {
        std::lock_guard<std::mutex> lk(mu_);
        built_.insert(id);
      }
      if (fail_builds_)
        return makeError(ErrorCode::kInternal, "no space left on device");
      auto r = store_->instance(id);
      if (!r.ok() || !r->has_value())
        return makeError(ErrorCode::kNotFound, "gone");
      InstanceRecord ready = **r;
      ready.ready = true;
      return store_->putInstance(ready);
    };
    hooks.destroy = [this](const std::string& id) -> Status {
      {
        std::lock_guard<std::mutex> lk(mu_);
        destroyed_.push_back(id);
      }
      return store_->deleteInstance(id);
    };
    keeper_ = std::make_unique<PoolKeeper>(catalog_, *store_, hooks, Millis(100000));
  }

  static InstanceRecord pooled(const std::string& id, const std::string& plan, bool ready) {
    InstanceRecord r;
    r.id = id;
    r.service_id = "svc";
    r.plan_id = plan;
    r.pool = plan;
    r.ready = ready;
    return r;
  }

  PoolStatus status() {
    auto s = keeper_->status();
    EXPECT_TRUE(s.ok());
    for (const auto& p : *s)
      if (p.plan_id == "p1")
        return p;
    return PoolStatus{};
  }

  // Runs passes (each also collects the builds that have finished) until `ready` instances are
  // ready and none is being built.
  void settle(int ready) {
    for (int i = 0; i < 200; ++i) {
      keeper_->pass();
      PoolStatus s = status();
      if (s.ready == ready && s.building == 0)
        return;
      std::this_thread::sleep_for(milliseconds(20));
    }
    FAIL() << "the pool never settled at " << ready << " ready";
  }

  std::filesystem::path dir_;
  Catalog catalog_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<PoolKeeper> keeper_;
  std::atomic<int> created_{0}, running_{0}, max_running_{0};
  std::atomic<bool> fail_builds_{false};
  std::mutex mu_;
  std::set<std::string> built_;
  std::vector<std::string> destroyed_;
};

TEST_F(PoolKeeperTest, FillsThePoolBuildingNoMoreThanTheRefillConcurrencyAtOnce) {
  makeKeeper();
  keeper_->pass();
  EXPECT_EQ(created_, 1) << "refill_concurrency 1: one build at a time";
  ASSERT_NO_FATAL_FAILURE(settle(2));
  PoolStatus s = status();
  EXPECT_EQ(s.ready, 2);
  EXPECT_EQ(s.size, 2);
  EXPECT_EQ(s.plan_name, "single-small");
  EXPECT_EQ(s.strategy, ProvisioningStrategy::kHybrid);
  EXPECT_EQ(created_, 2);
  EXPECT_EQ(max_running_, 1);

  // Two at a time when the plan allows it.
  catalog_.plans[0].provisioning.pool_size = 5;
  catalog_.plans[0].provisioning.refill_concurrency = 2;
  keeper_->pass();
  EXPECT_EQ(created_, 4);
  ASSERT_NO_FATAL_FAILURE(settle(5));
  EXPECT_EQ(status().ready, 5);
  EXPECT_EQ(max_running_, 2);
  keeper_->pass();
  EXPECT_EQ(created_, 5) << "a full pool builds nothing";
}

TEST_F(PoolKeeperTest, AHalfBuiltInstanceIsFinishedRatherThanReplaced) {
  ASSERT_TRUE(store_->putInstance(pooled("pool-old-ready", "p1", true)).ok());
  ASSERT_TRUE(store_->putInstance(pooled("pool-half", "p1", false)).ok());
  makeKeeper();
  ASSERT_NO_FATAL_FAILURE(settle(2));
  EXPECT_EQ(created_, 0);
  EXPECT_EQ(built_, std::set<std::string>{"pool-half"});
  EXPECT_EQ(status().ready, 2);
  EXPECT_TRUE(destroyed_.empty());
}

TEST_F(PoolKeeperTest, ASurplusIsGivenBackNewestFirstAndAPlanWithoutAPoolGivesBackAll) {
  for (const char* id : {"pool-a", "pool-b", "pool-c"})
    ASSERT_TRUE(store_->putInstance(pooled(id, "p1", true)).ok());
  ASSERT_TRUE(store_->putInstance(pooled("pool-gone-plan", "p-removed", true)).ok());
  InstanceRecord tenant = pooled("shop", "p1", true);
  tenant.pool.clear();
  ASSERT_TRUE(store_->putInstance(tenant).ok());
  makeKeeper();
  keeper_->pass();
  EXPECT_EQ(std::set<std::string>(destroyed_.begin(), destroyed_.end()),
            (std::set<std::string>{"pool-c", "pool-gone-plan"}));
  EXPECT_EQ(status().ready, 2);
  EXPECT_EQ(created_, 0);

  catalog_.plans[0].provisioning.strategy = ProvisioningStrategy::kOnDemand;
  keeper_->pass();
  EXPECT_EQ(destroyed_.size(), 4u);
  auto shop = store_->instance("shop");
  ASSERT_TRUE(shop.ok() && shop->has_value()) << "a tenant's instance is never given back";
  auto s = keeper_->status();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->empty()) << "no pooled plan and no pooled instance left";
}

TEST_F(PoolKeeperTest, AFailedBuildIsRemovedCountedAndNotRetriedAtOnce) {
  fail_builds_ = true;
  makeKeeper();
  keeper_->pass();
  ASSERT_NO_FATAL_FAILURE(settle(0));
  PoolStatus s = status();
  EXPECT_EQ(s.build_failures, 1);
  EXPECT_EQ(s.ready, 0);
  EXPECT_EQ(destroyed_, std::vector<std::string>{"pool-1"});
  keeper_->pass();
  keeper_->pass();
  EXPECT_EQ(created_, 1) << "the next build waits for the backoff";
}

TEST_F(PoolKeeperTest, ClaimsAndMissesAreCountedPerPlan) {
  makeKeeper();
  keeper_->noteClaim("p1");
  keeper_->noteClaim("p1");
  keeper_->noteMiss("p1");
  PoolStatus s = status();
  EXPECT_EQ(s.claims, 2);
  EXPECT_EQ(s.misses, 1);
}

}  // namespace
}  // namespace pgf
