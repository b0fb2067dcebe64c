// EtcdDcs against a real etcd on loopback: the Dcs contract suite, then what only a real server
// and network can show: endpoint failover, hung endpoints, restarts, authentication and the exact
// Patroni key layout.
#include "dcs/etcd/etcd_dcs.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <iostream>
#include <memory>

#include <gtest/gtest.h>
#include <httplib.h>

#include "common/base64.h"
#include "fakes/dcs_contract.h"
#include "support/etcd_process.h"
#include "support/ports.h"

namespace pgf {
namespace {

using contract::elapsedMs;
using contract::mustBool;
using contract::mustLoad;
using nlohmann::json;
using std::chrono::steady_clock;

// A loopback port that accepts TCP connections (the kernel completes the handshake into the
// backlog) but never answers: what a hung or partitioned etcd looks like to a client.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd_, 64) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      ADD_FAILURE() << "cannot create a silent listener";
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() {
    if (fd_ >= 0)
      close(fd_);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A port nothing listens on: connections are refused at once.
std::string refusedEndpoint() {
  return "127.0.0.1:" + std::to_string(testing::pickFreePort());
}

json etcdPost(const std::string& endpoint, const std::string& path, const json& body,
              const std::string& token = "") {
  auto colon = endpoint.rfind(':');
  httplib::Client http(endpoint.substr(0, colon), std::stoi(endpoint.substr(colon + 1)));
  http.set_read_timeout(std::chrono::seconds(5));
  httplib::Headers headers;
  if (!token.empty())
    headers.emplace("Authorization", token);
  auto res = http.Post(path.c_str(), headers, body.dump(), "application/json");
  if (!res)
    return json{{"transport_error", httplib::to_string(res.error())}};
  return json::parse(res->body, nullptr, false);
}

EtcdDcsOptions options(std::vector<std::string> endpoints, const std::string& scope,
                       const std::string& name, int ttl = 30) {
  EtcdDcsOptions o;
  o.endpoints = std::move(endpoints);
  o.scope = scope;
  o.name = name;
  o.ttl_seconds = ttl;
  o.request_timeout = Millis(5000);
  return o;
}

std::unique_ptr<EtcdDcs> mustCreate(EtcdDcsOptions o) {
  auto d = EtcdDcs::create(std::move(o));
  EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().toString());
  return d.ok() ? std::move(d).value() : nullptr;
}

// One etcd for the whole contract suite; every test gets its own scope.
struct EtcdEnv {
  static inline testing::TempDir* dir = nullptr;
  static inline testing::EtcdProcess* etcd = nullptr;
  static inline int counter = 0;

  static void setUpSuite() {
    dir = new testing::TempDir("pgfleet-etcd-contract");
    etcd = new testing::EtcdProcess(dir->path() + "/etcd");
    auto s = etcd->start();
    ASSERT_TRUE(s.ok()) << s.error().toString();
  }
  static void tearDownSuite() {
    delete etcd;  // stops it by PID
    etcd = nullptr;
    delete dir;
    dir = nullptr;
  }

  EtcdEnv() : scope("contract" + std::to_string(++counter)) {}

  DcsPtr member(const std::string& name, int ttl_seconds) {
    return mustCreate(options({etcd->endpoint()}, scope, name, ttl_seconds));
  }
  DcsPtr unreachable(const std::string& name, Millis request_timeout) {
    auto o = options({refusedEndpoint(), silent.endpoint()}, scope, name);
    o.request_timeout = request_timeout;
    return mustCreate(o);
  }
  // etcd's minimum lease ttl with its default election timeout is 2 s.
  int shortTtl() { return 2; }
  // Real time does the work: the expiry tests poll until etcd has revoked the lease.
  void letLeasesExpire(int /*ttl_seconds*/) {}
  Millis expiryDeadline(int ttl_seconds) { return Millis(ttl_seconds * 1000 + 5000); }
  void putRaw(const std::string& relative_key, const std::string& value) {
    auto r = etcdPost(etcd->endpoint(), "/v3/kv/put",
                      {{"key", base64Encode("/service/" + scope + "/" + relative_key)},
                       {"value", base64Encode(value)}});
    ASSERT_TRUE(r.contains("header")) << r.dump();
  }

  std::string scope;
  SilentListener silent;
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Etcd, DcsContract, ::testing::Types<EtcdEnv>);

namespace {

class EtcdDcsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<testing::EtcdProcess>(dir_.path() + "/etcd");
    auto s = etcd_->start();
    ASSERT_TRUE(s.ok()) << s.error().toString();
  }
  void TearDown() override { etcd_->stop(); }

  std::unique_ptr<EtcdDcs> member(const std::string& name, int ttl = 30) {
    return mustCreate(options({etcd_->endpoint()}, "batman", name, ttl));
  }

  testing::TempDir dir_{"pgfleet-etcd-dcs"};
  std::unique_ptr<testing::EtcdProcess> etcd_;
};

TEST_F(EtcdDcsTest, KeysFollowPatronisLayout) {
  auto a = member("node1");
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  ASSERT_TRUE(a->touchMember({{"role", "master"}}).ok());
  ASSERT_TRUE(a->setConfig({{"ttl", 30}}).ok());
  ASSERT_TRUE(mustBool(a->attemptInitialize("")));
  auto r = etcdPost(etcd_->endpoint(), "/v3/kv/range",
                    {{"key", base64Encode("/")}, {"range_end", base64Encode("0")}});
  std::map<std::string, std::string> kv;
  for (const auto& item : r.value("kvs", json::array()))
    kv[*base64Decode(item["key"].get<std::string>())] =
        *base64Decode(item.value("value", std::string()));
  EXPECT_EQ(kv["/service/batman/leader"], "node1");
  EXPECT_EQ(json::parse(kv["/service/batman/members/node1"]), json({{"role", "master"}}));
  EXPECT_EQ(json::parse(kv["/service/batman/config"]), json({{"ttl", 30}}));
  EXPECT_TRUE(kv.count("/service/batman/initialize"));
  EXPECT_EQ(kv.size(), 4u);
}

TEST_F(EtcdDcsTest, LeaderLeaseHasTheTtlAndFollowsTtlChanges) {
  auto a = member("a", 20);
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  auto ttlOf = [&](int64_t lease) {
    auto r = etcdPost(etcd_->endpoint(), "/v3/lease/timetolive", {{"ID", std::to_string(lease)}});
    return std::make_pair(std::stoll(r.value("grantedTTL", "0")), std::stoll(r.value("TTL", "-1")));
  };
  auto view = mustLoad(*a);
  ASSERT_TRUE(view.leader);
  EXPECT_EQ(view.leader->lease_id, a->leaseId());
  EXPECT_EQ(ttlOf(view.leader->lease_id).first, 20);

  a->setTtl(7);
  ASSERT_TRUE(mustBool(a->renewLeader()));
  view = mustLoad(*a);
  ASSERT_TRUE(view.leader) << "the ttl change must not drop the leader key";
  EXPECT_EQ(view.leader->lease_id, a->leaseId());
  EXPECT_EQ(ttlOf(view.leader->lease_id).first, 7);
}

TEST_F(EtcdDcsTest, FirstEndpointRefusedCallsGoThroughTheSecond) {
  auto o = options({refusedEndpoint(), etcd_->endpoint()}, "batman", "a");
  o.request_timeout = Millis(3000);
  auto a = mustCreate(o);
  auto start = steady_clock::now();
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  EXPECT_TRUE(mustBool(a->renewLeader()));
  EXPECT_EQ(mustLoad(*a).leader->name, "a");
  EXPECT_LT(elapsedMs(start), 3000);
  // The watch finds the working endpoint too.
  auto b = member("b");
  const int64_t rev = mustLoad(*a).revision;
  auto woke = std::async(std::launch::async, [&] { return a->waitForChange(rev, Millis(10000)); });
  ASSERT_TRUE(b->setFailover({{"leader", "a"}, {"member", "b"}}).ok());
  EXPECT_TRUE(woke.get());
}

TEST_F(EtcdDcsTest, FirstEndpointHungCallsStillSucceedWithinTheTimeout) {
  SilentListener silent;
  auto o = options({silent.endpoint(), etcd_->endpoint()}, "batman", "a");
  o.request_timeout = Millis(3000);
  auto a = mustCreate(o);
  auto start = steady_clock::now();
  auto acquired = a->acquireLeader();  // keepalive/grant, then txn: each may meet the hung one
  EXPECT_LT(elapsedMs(start), 3 * 3000);
  ASSERT_TRUE(acquired.ok()) << acquired.error().toString();
  EXPECT_TRUE(*acquired);
  // Once an endpoint answered it is tried first: no more waiting on the hung one.
  start = steady_clock::now();
  EXPECT_TRUE(mustBool(a->renewLeader()));
  EXPECT_LT(elapsedMs(start), 1000);
}

TEST_F(EtcdDcsTest, PausedEtcdGivesDcsUnavailableWithinTheTimeout) {
  auto o = options({etcd_->endpoint()}, "batman", "a");
  o.request_timeout = Millis(800);
  auto a = mustCreate(o);
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  etcd_->pause();
  auto start = steady_clock::now();
  auto r = a->renewLeader();
  const auto took = elapsedMs(start);
  etcd_->resume();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDcsUnavailable) << r.error().toString();
  EXPECT_LT(took, 800 + 500);
  EXPECT_TRUE(contract::eventually([&] { return a->renewLeader().ok(); }, Millis(5000)));
}

TEST_F(EtcdDcsTest, SurvivesAnEtcdRestartAndTheWatchResumes) {
  auto a = member("a");
  auto b = member("b");
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  const int64_t rev = mustLoad(*b).revision;
  EXPECT_FALSE(b->waitForChange(rev, Millis(200)));  // starts b's watch
  etcd_->stop();
  auto down = b->load();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, ErrorCode::kDcsUnavailable);
  auto started = etcd_->start();
  ASSERT_TRUE(started.ok()) << started.error().toString();
  // Same data: a still leads; its lease survived the short restart.
  EXPECT_TRUE(contract::eventually([&] { return a->renewLeader().valueOr(false); }, Millis(5000)));
  auto woke = std::async(std::launch::async, [&] { return b->waitForChange(rev, Millis(15000)); });
  ASSERT_TRUE(a->deleteLeader().ok());
  EXPECT_TRUE(woke.get());
}

TEST_F(EtcdDcsTest, DestructorStopsTheWatchPromptly) {
  auto a = member("a");
  const int64_t rev = mustLoad(*a).revision;
  EXPECT_FALSE(a->waitForChange(rev, Millis(100)));
  const auto start = steady_clock::now();
  a.reset();
  EXPECT_LT(elapsedMs(start), 1500);
}

TEST_F(EtcdDcsTest, ReleaseLeaseRevokesItInEtcd) {
  auto a = member("a");
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  const int64_t lease = a->leaseId();
  ASSERT_TRUE(a->releaseLease().ok());
  EXPECT_EQ(a->leaseId(), 0);
  auto r = etcdPost(etcd_->endpoint(), "/v3/lease/timetolive", {{"ID", std::to_string(lease)}});
  EXPECT_EQ(r.value("TTL", "0"), "-1") << r.dump();  // etcd: -1 = the lease does not exist
  EXPECT_TRUE(a->releaseLease().ok());               // nothing left to release
}

TEST_F(EtcdDcsTest, LeaseRevokedBehindOurBackIsReplaced) {
  auto a = member("a");
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  ASSERT_TRUE(a->touchMember({{"role", "master"}}).ok());
  const int64_t old_lease = a->leaseId();
  auto revoked =
      etcdPost(etcd_->endpoint(), "/v3/lease/revoke", {{"ID", std::to_string(old_lease)}});
  ASSERT_TRUE(revoked.contains("header")) << revoked.dump();
  // The leader key went with the lease: renewing must report the loss, not re-create it.
  EXPECT_FALSE(mustBool(a->renewLeader()));
  EXPECT_NE(a->leaseId(), old_lease);
  ASSERT_TRUE(a->touchMember({{"role", "replica"}}).ok());
  auto view = mustLoad(*a);
  EXPECT_FALSE(view.leader.has_value());
  ASSERT_NE(view.member("a"), nullptr);
  EXPECT_EQ(view.member("a")->role, "replica");
}

TEST(EtcdDcsOptionsTest, RejectsBadOptionsWithClearErrors) {
  auto bad = [](EtcdDcsOptions o) {
    auto d = EtcdDcs::create(std::move(o));
    return d.ok() ? Error{} : d.error();
  };
  auto o = options({"127.0.0.1:2379"}, "batman", "a");
  o.protocol = "https";
  EXPECT_EQ(bad(o).code, ErrorCode::kUnsupported);
  EXPECT_NE(bad(o).message.find("https"), std::string::npos);
  EXPECT_EQ(bad(options({}, "batman", "a")).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad(options({"nohost"}, "batman", "a")).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad(options({"h:99999"}, "batman", "a")).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad(options({"h:1"}, "", "a")).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad(options({"h:1"}, "b", "")).code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(EtcdDcs::create(options({"http://127.0.0.1:2379"}, "b", "a")).ok());
}

// etcd with authentication enabled (root user, set up through the gateway).
class EtcdAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<testing::EtcdProcess>(dir_.path() + "/etcd");
    auto s = etcd_->start();
    ASSERT_TRUE(s.ok()) << s.error().toString();
    const auto ep = etcd_->endpoint();
    ASSERT_TRUE(etcdPost(ep, "/v3/auth/user/add", {{"name", "root"}, {"password", "s3cret"}})
                    .contains("header"));
    ASSERT_TRUE(etcdPost(ep, "/v3/auth/role/add", {{"name", "root"}}).contains("header"));
    ASSERT_TRUE(etcdPost(ep, "/v3/auth/user/grant", {{"user", "root"}, {"role", "root"}})
                    .contains("header"));
    ASSERT_TRUE(etcdPost(ep, "/v3/auth/enable", json::object()).contains("header"));
  }
  void TearDown() override { etcd_->stop(); }

  std::unique_ptr<EtcdDcs> client(const std::string& user, const std::string& password) {
    auto o = options({etcd_->endpoint()}, "batman", "a");
    o.username = user;
    o.password = password;
    return mustCreate(o);
  }

  testing::TempDir dir_{"pgfleet-etcd-auth"};
  std::unique_ptr<testing::EtcdProcess> etcd_;
};

TEST_F(EtcdAuthTest, RightPasswordWorksEverywhere) {
  auto a = client("root", "s3cret");
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  ASSERT_TRUE(a->touchMember({{"role", "master"}}).ok());
  auto view = mustLoad(*a);
  EXPECT_EQ(view.leader->name, "a");
  EXPECT_NE(view.member("a"), nullptr);
  // The watch authenticates too.
  auto b = client("root", "s3cret");
  auto woke = std::async(std::launch::async,
                         [&] { return b->waitForChange(view.revision, Millis(10000)); });
  ASSERT_TRUE(a->setSync({{"leader", "a"}}).ok());
  EXPECT_TRUE(woke.get());
}

TEST_F(EtcdAuthTest, WrongPasswordOrNoCredentialsGiveAClearError) {
  auto wrong = client("root", "nope");
  auto r = wrong->load();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kConfig) << r.error().toString();
  EXPECT_NE(r.error().message.find("authentication as user 'root' failed"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().message.find("nope"), std::string::npos) << "the password leaked";
  std::cout << "wrong password: " << r.error().toString() << "\n";

  auto anonymous = client("", "");
  auto a = anonymous->acquireLeader();
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, ErrorCode::kConfig) << a.error().toString();
  EXPECT_NE(a.error().message.find("authentication"), std::string::npos) << a.error().message;
  std::cout << "no credentials: " << a.error().toString() << "\n";
}

TEST_F(EtcdAuthTest, ReauthenticatesWhenEtcdForgetsTheToken) {
  auto a = client("root", "s3cret");
  ASSERT_TRUE(mustBool(a->acquireLeader()));
  // Simple tokens live in etcd's memory: a restart invalidates every one of them.
  etcd_->stop();
  auto s = etcd_->start();
  ASSERT_TRUE(s.ok()) << s.error().toString();
  auto renewed = a->renewLeader();
  ASSERT_TRUE(renewed.ok()) << renewed.error().toString();
  EXPECT_TRUE(*renewed);
}

}  // namespace
}  // namespace pgf
