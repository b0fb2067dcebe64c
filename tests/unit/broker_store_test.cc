#include "broker/store.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace pgf {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("broker_store_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "broker.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> open() {
    auto s = Store::open(path_);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static InstanceRecord instance(const std::string& id) {
    InstanceRecord r;
    r.id = id;
    r.service_id = "svc";
    r.plan_id = "plan-a";
    r.parameters = {{"database", "app"}};
    r.organization_guid = "org";
    r.space_guid = "space";
    r.maintenance_version = "1.0.0";
    return r;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(StoreTest, TheDatabaseIsPrivateAndInWalMode) {
  auto store = open();
  ASSERT_TRUE(store);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(store->putInstance(instance("i1")).ok());
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(StoreTest, InstancesAreWrittenReadUpdatedAndDeletedWithEverythingOfTheirs) {
  auto store = open();
  ASSERT_TRUE(store);
  auto none = store->instance("i1");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  InstanceRecord r = instance("i1");
  ASSERT_TRUE(store->putInstance(r).ok());
  auto got = store->instance("i1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->plan_id, "plan-a");
  EXPECT_EQ((*got)->parameters, (nlohmann::json{{"database", "app"}}));
  EXPECT_FALSE((*got)->ready);
  EXPECT_FALSE((*got)->created_at.empty());

  r.plan_id = "plan-b";
  r.ready = true;
  r.deployment = {{"nodes", 3}};
  ASSERT_TRUE(store->putInstance(r).ok());
  got = store->instance("i1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->plan_id, "plan-b");
  EXPECT_TRUE((*got)->ready);
  EXPECT_EQ((*got)->deployment["nodes"], 3);

  ASSERT_TRUE(store->putInstance(instance("i2")).ok());
  auto all = store->instances();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);

  BindingRecord b;
  b.id = "b1";
  b.instance_id = "i1";
  b.credentials = {{"username", "u"}};
  ASSERT_TRUE(store->putBinding(b).ok());
  OperationRecord op;
  op.kind = OpKind::kProvision;
  op.instance_id = "i1";
  auto op_id = store->beginOperation(op);
  ASSERT_TRUE(op_id.ok());
  ASSERT_TRUE(store->journal(*op_id, "ports reserved").ok());
  ASSERT_TRUE(store->reservePorts("i1", {"pg0"}, 20000, 20010, nullptr).ok());

  ASSERT_TRUE(store->deleteInstance("i1").ok());
  got = store->instance("i1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  auto bindings = store->bindings("i1");
  ASSERT_TRUE(bindings.ok());
  EXPECT_TRUE(bindings->empty());
  auto last = store->lastOperation("i1");
  ASSERT_TRUE(last.ok());
  EXPECT_FALSE(last->has_value());
  auto ports = store->ports("i1");
  ASSERT_TRUE(ports.ok());
  EXPECT_TRUE(ports->empty());
  got = store->instance("i2");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->has_value());
}

TEST_F(StoreTest, IdsAreDataNeverSql) {
  auto store = open();
  ASSERT_TRUE(store);
  const std::string hostile = "x'); DROP TABLE instances; --";
  ASSERT_TRUE(store->putInstance(instance(hostile)).ok());
  ASSERT_TRUE(store->putInstance(instance("other")).ok());
  auto got = store->instance(hostile);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->id, hostile);
  auto all = store->instances();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
}

TEST_F(StoreTest, BindingsBelongToTheirInstance) {
  auto store = open();
  ASSERT_TRUE(store);
  BindingRecord b;
  b.id = "b1";
  b.instance_id = "i1";
  b.credentials = {{"password", "secret"}};
  ASSERT_TRUE(store->putBinding(b).ok());
  b.instance_id = "i2";
  b.credentials = {{"password", "other"}};
  ASSERT_TRUE(store->putBinding(b).ok());

  auto got = store->binding("i1", "b1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->credentials["password"], "secret");
  auto missing = store->binding("i3", "b1");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(store->deleteBinding("i1", "b1").ok());
  got = store->binding("i1", "b1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  got = store->binding("i2", "b1");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->has_value());
}

TEST_F(StoreTest, OperationsAreJournaledStepByStepAndFinished) {
  auto store = open();
  ASSERT_TRUE(store);
  OperationRecord op;
  op.kind = OpKind::kBind;
  op.instance_id = "i1";
  op.binding_id = "b1";
  op.request = {{"plan_id", "p"}};
  auto id = store->beginOperation(op);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(store->journal(*id, "role created").ok());
  ASSERT_TRUE(store->journal(*id, "grants given").ok());

  auto unfinished = store->unfinishedOperations();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().steps, (std::vector<std::string>{"role created", "grants given"}));
  EXPECT_EQ(unfinished->front().state, OpState::kInProgress);
  EXPECT_EQ(unfinished->front().request["plan_id"], "p");
  EXPECT_EQ(unfinished->front().token(), "bind-" + std::to_string(*id));

  auto last_of_instance = store->lastOperation("i1");
  ASSERT_TRUE(last_of_instance.ok());
  EXPECT_FALSE(last_of_instance->has_value()) << "a binding's operation is not the instance's";
  auto last = store->lastOperation("i1", "b1");
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->id, *id);

  ASSERT_TRUE(store->finishOperation(*id, OpState::kSucceeded, "bound").ok());
  unfinished = store->unfinishedOperations();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
  auto done = store->operation(*id);
  ASSERT_TRUE(done.ok() && done->has_value());
  EXPECT_EQ((*done)->state, OpState::kSucceeded);
  EXPECT_EQ((*done)->description, "bound");
  EXPECT_FALSE((*done)->finished_at.empty());
  EXPECT_EQ(opStateName((*done)->state), "succeeded");

  EXPECT_FALSE(store->finishOperation(*id + 100, OpState::kFailed, "x").ok());
}

TEST_F(StoreTest, PortsAreReservedOnceLowestFirstAndKeptPerPurpose) {
  auto store = open();
  ASSERT_TRUE(store);
  auto busy = [](int port) { return port == 20001; };
  auto a = store->reservePorts("i1", {"pg0", "api0"}, 20000, 20004, busy);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ((*a)["pg0"], 20000);
  EXPECT_EQ((*a)["api0"], 20002);
  auto again = store->reservePorts("i1", {"pg0", "rw"}, 20000, 20004, busy);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["pg0"], 20000);
  EXPECT_EQ((*again)["rw"], 20003);
  auto b = store->reservePorts("i2", {"pg0"}, 20000, 20004, busy);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)["pg0"], 20004);
  // None left: nothing of the failed request is kept.
  auto c = store->reservePorts("i3", {"pg0", "api0"}, 20000, 20004, busy);
  EXPECT_FALSE(c.ok());
  auto held = store->ports("i3");
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(held->empty());
  EXPECT_FALSE(store->reservePorts("i3", {"pg0"}, 20005, 20004, busy).ok());

  ASSERT_TRUE(store->releasePorts("i1").ok());
  auto d = store->reservePorts("i3", {"pg0"}, 20000, 20004, busy);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["pg0"], 20000);
}

TEST_F(StoreTest, AFailedTransactionLeavesNothingBehind) {
  auto store = open();
  ASSERT_TRUE(store);
  Status st = store->transaction([&]() -> Status {
    PGF_RETURN_IF_ERROR(store->putInstance(instance("i1")));
    return makeError(ErrorCode::kInternal, "the backend failed");
  });
  EXPECT_FALSE(st.ok());
  auto got = store->instance("i1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

// A read from another thread answers from what is committed while a transaction is open, instead
// of waiting for it; a read inside the transaction sees the transaction's own writes.
TEST_F(StoreTest, ReadsDoNotWaitForAnotherThreadsTransaction) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->putInstance(instance("i1")).ok());
  std::promise<void> written;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  bool seen_inside = false;
  std::thread writer([&] {
    Status st = store->transaction([&]() -> Status {
      PGF_RETURN_IF_ERROR(store->putInstance(instance("i2")));
      auto own = store->instance("i2");
      seen_inside = own.ok() && own->has_value();
      written.set_value();
      released.wait();
      return okStatus();
    });
    EXPECT_TRUE(st.ok());
  });
  written.get_future().wait();
  auto reading = std::async(std::launch::async, [&] {
    auto one = store->instance("i1");
    auto two = store->instance("i2");
    return std::make_pair(one.ok() && one->has_value(), two.ok() && two->has_value());
  });
  const bool answered = reading.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  release.set_value();
  writer.join();
  ASSERT_TRUE(answered) << "a read waited for another thread's transaction";
  auto [one, two] = reading.get();
  EXPECT_TRUE(one);
  EXPECT_FALSE(two) << "an uncommitted write was visible outside its transaction";
  EXPECT_TRUE(seen_inside);
  auto after = store->instance("i2");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->has_value());
}

// What is acknowledged is on disk: a process that dies right after a write (no clean close)
// leaves it for the next one.
TEST_F(StoreTest, AWriteSurvivesItsProcessDyingRightAfterIt) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto s = Store::open(path_);
    if (!s.ok())
      ::_exit(2);
    OperationRecord op;
    op.instance_id = "i1";
    auto id = (*s)->beginOperation(op);
    bool ok = (*s)->putInstance(instance("i1")).ok() && id.ok() &&
              (*s)->journal(*id, "nodes started").ok();
    ::_exit(ok ? 0 : 1);  // no destructor: the database is never closed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  auto store = open();
  ASSERT_TRUE(store);
  auto got = store->instance("i1");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->has_value());
  auto unfinished = store->unfinishedOperations();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().steps, std::vector<std::string>{"nodes started"});
}

TEST_F(StoreTest, EventsAreKeptNewestLastTrimmedAndRemovedWithTheirInstance) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->putInstance(instance("a")).ok());
  ASSERT_TRUE(store->putInstance(instance("b")).ok());
  for (int i = 0; i < Store::kEventsKept + 5; ++i)
    ASSERT_TRUE(store->addEvent("a", "health", "event " + std::to_string(i)).ok());
  ASSERT_TRUE(store->addEvent("b", "agent-restarted", "it's b's; 'quoted' \"text\"").ok());
  auto last = store->events("a", 3);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->size(), 3u);
  EXPECT_EQ((*last)[0].message, "event " + std::to_string(Store::kEventsKept + 2));
  EXPECT_EQ((*last)[2].message, "event " + std::to_string(Store::kEventsKept + 4));
  EXPECT_FALSE((*last)[2].at.empty());
  auto all = store->events("a", 1000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), static_cast<size_t>(Store::kEventsKept));
  EXPECT_EQ(all->front().message, "event 5");
  auto b = store->events("b", 10);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ(b->front().message, "it's b's; 'quoted' \"text\"");

  HealthRecord h{"a", "degraded", "node1: agent not running", {{{"name", "node1"}}}, ""};
  ASSERT_TRUE(store->putHealth(h).ok());
  auto health = store->health("a");
  ASSERT_TRUE(health.ok() && health->has_value());
  EXPECT_EQ((*health)->state, "degraded");
  EXPECT_EQ((*health)->nodes, h.nodes);
  EXPECT_FALSE((*health)->since.empty());

  ASSERT_TRUE(store->deleteInstance("a").ok());
  auto gone = store->events("a", 10);
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->empty());
  auto no_health = store->health("a");
  ASSERT_TRUE(no_health.ok());
  EXPECT_FALSE(no_health->has_value());
  auto kept = store->events("b", 10);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->size(), 1u);
}

TEST_F(StoreTest, AdoptingAPooledInstanceMovesItsPortsEventsAndHealthAndRemovesIt) {
  auto store = open();
  ASSERT_TRUE(store);
  InstanceRecord pooled = instance("pool-1");
  pooled.pool = "plan-a";
  pooled.ready = true;
  pooled.deployment = {{"name", "pgf-pooled"}};
  ASSERT_TRUE(store->putInstance(pooled).ok());
  auto ports =
      store->reservePorts("pool-1", {"rw", "pg0"}, 30000, 30010, [](int) { return false; });
  ASSERT_TRUE(ports.ok());
  ASSERT_TRUE(store->addEvent("pool-1", "pooled", "built").ok());
  HealthRecord h;
  h.instance_id = "pool-1";
  h.state = "healthy";
  ASSERT_TRUE(store->putHealth(h).ok());
  auto read = store->instance("pool-1");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->pool, "plan-a");

  InstanceRecord tenant = instance("shop");
  tenant.deployment = {{"name", "pgf-pooled"}, {"database", "shop"}};
  ASSERT_TRUE(store->adoptInstance("pool-1", tenant).ok());
  auto gone = store->instance("pool-1");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  auto shop = store->instance("shop");
  ASSERT_TRUE(shop.ok() && shop->has_value());
  EXPECT_EQ((*shop)->pool, "");
  EXPECT_EQ((*shop)->deployment["database"], "shop");
  auto moved = store->ports("shop");
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, *ports);
  auto events = store->events("shop", 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].kind, "pooled");
  auto health = store->health("shop");
  ASSERT_TRUE(health.ok() && health->has_value());
  EXPECT_EQ((*health)->state, "healthy");
  auto left = store->ports("pool-1");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
}

TEST_F(StoreTest, AStoreFromBeforePoolsGainsThePoolColumnAndKeepsItsInstances) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->putInstance(instance("old")).ok());
  }
  // What a version 2 broker left: the instances table without the pool column.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "ALTER TABLE instances DROP COLUMN pool; PRAGMA user_version=2;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto store = open();
  ASSERT_TRUE(store);
  auto old = store->instance("old");
  ASSERT_TRUE(old.ok() && old->has_value()) << (old.ok() ? "" : old.error().message);
  EXPECT_EQ((*old)->pool, "");
  InstanceRecord pooled = instance("pool-1");
  pooled.pool = "plan-a";
  ASSERT_TRUE(store->putInstance(pooled).ok());
  auto read = store->instance("pool-1");
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->pool, "plan-a");
}

TEST_F(StoreTest, ANewerSchemaIsRefused) {
  {
    auto store = open();
    ASSERT_TRUE(store);
  }
  // Raise the recorded version as a newer broker would have: user_version is the big-endian
  // 32-bit integer at offset 60 of the database header.
  FILE* f = std::fopen(path_.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fseek(f, 60, SEEK_SET), 0);
  const unsigned char version[4] = {0, 0, 0, 99};
  ASSERT_EQ(std::fwrite(version, 1, 4, f), 4u);
  std::fclose(f);
  auto s = Store::open(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("newer"), std::string::npos) << s.error().message;
}

TEST_F(StoreTest, AnUnwritablePathIsAClearError) {
  auto s = Store::open((dir_ / "missing" / "broker.db").string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("cannot open"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace pgf
