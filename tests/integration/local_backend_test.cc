// The local backend with real processes: an embedded etcd, three pgfleet-agents and PostgreSQL
// from the shipped deployment template, and the instance's own HAProxy; adoption by a second
// backend (a restarted broker), an agent restarted after it died, and a destroy that leaves no
// process, directory or etcd key behind.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/base64.h"
#include "common/process.h"
#include "dcs/etcd/etcd_client.h"
#include "deploy/embedded_etcd.h"
#include "deploy/local_backend.h"
#include "deploy/manifest.h"
#include "deploy/template.h"
#include "postgres/pg_connection.h"
#include "support/local_cluster.h"
#include "support/ports.h"
#include "support/test_files.h"

namespace pgf::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class LocalBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgfleet-backend-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0711);
    state_ = dir_ + "/state";
    ports_ = pickFreePorts(10);
    auto user = lookupUser("postgres");
    ASSERT_TRUE(user.ok());
    EmbeddedEtcdOptions eo;
    eo.state_dir = state_;
    eo.client_port = ports_[0];
    eo.peer_port = ports_[1];
    eo.uid = user->first;
    eo.gid = user->second;
    fs::create_directories(state_);
    etcd_ = std::make_unique<EmbeddedEtcd>(eo);
    auto st = etcd_->start(Millis(seconds(30)));
    ASSERT_TRUE(st.ok()) << st.error().message;
    superuser_password_ = randomPassword();
  }
  void TearDown() override {
    if (backend_)
      ignoreError(backend_->destroy(kInstance), "best effort after a failed test");
    if (etcd_)
      etcd_->stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<LocalBackend> makeBackend() {
    LocalBackendOptions o;
    o.state_dir = state_;
    o.agent_bin = PGFLEET_AGENT_BIN;
    o.etcd = {etcd_->endpoint()};
    auto b = LocalBackend::create(o);
    EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
    return b.ok() ? std::move(b).value() : nullptr;
  }

  DeploymentManifest manifest(int nodes) {
    std::ifstream in(std::string(PGFLEET_SOURCE_DIR) +
                     "/examples/templates/postgresql.yaml.mustache");
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json ctx = {{"scope", kInstance},
                          {"etcd_hosts", etcd_->endpoint()},
                          {"bin_dir", "/usr/lib/postgresql/15/bin"},
                          {"ttl", 10},
                          {"loop_wait", 1},
                          {"retry_timeout", 3},
                          {"synchronous_mode", "false"},
                          {"superuser_password", superuser_password_},
                          {"replication_password", randomPassword()},
                          {"rewind_password", randomPassword()},
                          {"parameters",
                           {{{"name", "shared_buffers"}, {"value", "32MB"}},
                            {{"name", "max_connections"}, {"value", "50"}}}},
                          {"read_write_port", ports_[2]},
                          {"read_only_port", ports_[3]}};
    nlohmann::json list = nlohmann::json::array();
    for (int i = 0; i < nodes; ++i) {
      std::string name = fmt::format("node{}", i);
      list.push_back({{"name", name},
                      {"pg_port", ports_[4 + 2 * i]},
                      {"api_port", ports_[5 + 2 * i]},
                      {"dir", backend_->nodeDir(kInstance, name)}});
    }
    ctx["nodes"] = list;
    auto rendered = renderTemplate(text.str(), ctx);
    EXPECT_TRUE(rendered.ok());
    auto m = parseManifest(rendered.ok() ? *rendered : "");
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
    last_manifest_ = m.ok() ? *m : DeploymentManifest{};
    return last_manifest_;
  }

  Result<PgResult> query(int port, const std::string& sql) {
    ConnParams p = {{"host", "127.0.0.1"},
                    {"port", std::to_string(port)},
                    {"user", "postgres"},
                    {"password", superuser_password_},
                    {"dbname", "postgres"}};
    auto conn = PgConnection::connect(p, Millis(3000));
    if (!conn.ok())
      return conn.error();
    return conn->query(sql, {}, Millis(5000));
  }

  bool waitHealthy(const DeploymentManifest& m, Millis timeout) {
    return waitUntil([&] { return backend_->health(kInstance, m).healthy(); }, timeout);
  }

  size_t etcdKeys() {
    EtcdClientOptions o;
    o.endpoints = {etcd_->endpoint()};
    auto client = EtcdClient::create(o);
    if (!client.ok())
      return 999;
    const std::string prefix = std::string("/service/") + kInstance + "/";
    auto r = (*client)->call(
        "/v3/kv/range", {{"key", base64Encode(prefix)},
                         {"range_end", base64Encode(std::string("/service/") + kInstance + "0")},
                         {"count_only", true}});
    if (!r.ok())
      return 999;
    return std::stoul(r->value("count", std::string("0")));
  }

  std::string logs() {
    std::string out;
    if (backend_) {
      auto h = backend_->health(kInstance, last_manifest_);
      out += fmt::format("haproxy running: {}, primaries {}, streaming replicas {}\n",
                         h.haproxy_running, h.primaries, h.streaming_replicas);
      for (const auto& n : h.nodes)
        out += fmt::format("  {}: agent {}, role \"{}\", streaming {}\n", n.name, n.agent_running,
                           n.role, n.streaming);
      out += fileTail(backend_->instanceDir(kInstance) + "/haproxy.log", 10);
    }
    for (int i = 0; i < 3; ++i)
      out += fileTail(backend_->nodeDir(kInstance, fmt::format("node{}", i)) + "/agent.log", 20);
    return out;
  }

  static constexpr const char* kInstance = "pgf-test1";
  std::string dir_, state_, superuser_password_;
  std::vector<int> ports_;
  std::unique_ptr<EmbeddedEtcd> etcd_;
  std::unique_ptr<LocalBackend> backend_;
  DeploymentManifest last_manifest_;
};

TEST_F(LocalBackendTest, DeploysAClusterBehindItsOwnHaproxyAdoptsItAndDestroysItWithoutATrace) {
  backend_ = makeBackend();
  ASSERT_TRUE(backend_);
  DeploymentManifest m = manifest(3);
  ASSERT_EQ(m.nodes.size(), 3u);
  auto st = backend_->deploy(kInstance, m);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_TRUE(waitHealthy(m, Millis(seconds(120)))) << logs();

  // Writes through the read-write port reach the primary; the read-only port reaches a replica.
  ASSERT_TRUE(query(m.read_write_port, "CREATE TABLE t (id int)").ok());
  ASSERT_TRUE(query(m.read_write_port, "INSERT INTO t VALUES (1)").ok());
  // HAProxy marks a replica up at its first check (every 500 ms) after the agent reports it
  // streaming, so the read-only port may have no server for that long after waitHealthy().
  auto ro = query(m.read_only_port, "SELECT pg_is_in_recovery() AS r");
  for (auto deadline = std::chrono::steady_clock::now() + seconds(5);
       !ro.ok() && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ro = query(m.read_only_port, "SELECT pg_is_in_recovery() AS r");
  }
  ASSERT_TRUE(ro.ok()) << ro.error().message;
  EXPECT_EQ(ro->get(0, "r").value_or(""), "t");
  // The node configurations hold the passwords: private to the agents' user.
  struct stat cfg {};
  ASSERT_EQ(::stat((backend_->nodeDir(kInstance, "node0") + "/agent.yml").c_str(), &cfg), 0);
  EXPECT_EQ(cfg.st_mode & 0777, 0600u);

  // A restarted broker adopts what runs: nothing is started twice.
  auto before = backend_->processes(kInstance);
  EXPECT_EQ(before.size(), 7u) << "3 agents, 3 postmasters, 1 haproxy";
  backend_ = makeBackend();
  ASSERT_TRUE(backend_);
  ASSERT_TRUE(backend_->deploy(kInstance, m).ok());
  auto after = backend_->processes(kInstance);
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(before, after);

  // An agent that died is started again.
  std::ifstream pid_file(backend_->nodeDir(kInstance, "node1") + "/agent.pid");
  pid_t agent = 0;
  pid_file >> agent;
  ASSERT_GT(agent, 0);
  signalProcess(agent, SIGKILL);
  ASSERT_TRUE(waitUntil([&] { return !processAlive(agent); }, Millis(seconds(10))));
  EXPECT_FALSE(backend_->health(kInstance, m).healthy());
  ASSERT_TRUE(backend_->restartStopped(kInstance, m).ok());
  EXPECT_TRUE(waitHealthy(m, Millis(seconds(60)))) << logs();
  EXPECT_TRUE(etcdKeys() > 0);

  // Destroyed: no process, no directory, no key.
  auto pids = backend_->processes(kInstance);
  st = backend_->destroy(kInstance);
  ASSERT_TRUE(st.ok()) << st.error().message;
  for (pid_t pid : pids)
    EXPECT_FALSE(processAlive(pid)) << pid;
  EXPECT_FALSE(fs::exists(backend_->instanceDir(kInstance)));
  EXPECT_EQ(etcdKeys(), 0u);
  EXPECT_FALSE(query(m.read_write_port, "SELECT 1").ok());
  // Destroying what is gone succeeds.
  EXPECT_TRUE(backend_->destroy(kInstance).ok());
}

TEST_F(LocalBackendTest, TheEmbeddedEtcdIsAdoptedNotStartedTwice) {
  EmbeddedEtcdOptions eo;
  eo.state_dir = state_;
  eo.client_port = ports_[0];
  eo.peer_port = ports_[1];
  EmbeddedEtcd again(eo);
  std::ifstream in(state_ + "/etcd.pid");
  pid_t pid = 0;
  in >> pid;
  ASSERT_TRUE(again.running());
  ASSERT_TRUE(again.start(Millis(seconds(10))).ok());
  std::ifstream in2(state_ + "/etcd.pid");
  pid_t pid2 = 0;
  in2 >> pid2;
  EXPECT_EQ(pid, pid2);
}

}  // namespace
}  // namespace pgf::testing
