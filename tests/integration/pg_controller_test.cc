// LocalPostgresController against real PostgreSQL 15 servers on loopback: bootstrap, clone,
// streaming, slots, promotion, a diverged former primary rewound and following again.
//
// PostgreSQL refuses to run as root and the controller runs its programs as the current user, so
// when started as root this executable creates its base directory, hands it to `postgres` and
// becomes that user before the first test.
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include "common/process.h"
#include "postgres/data_dir.h"
#include "postgres/pg_connection.h"
#include "postgres/pg_controller.h"
#include "support/ports.h"

namespace pgf {
namespace {

std::string g_base;  // every data directory, log and socket of this run lives under it

class PostgresUserEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/pgf-pgctl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    g_base = tmpl;
    if (geteuid() != 0)
      return;
    auto user = lookupUser("postgres");
    ASSERT_TRUE(user.ok()) << user.error().message;
    auto [uid, gid] = *user;
    ASSERT_EQ(chown(g_base.c_str(), uid, gid), 0);
    // Order matters: supplementary groups and gid can only be dropped while still root.
    ASSERT_EQ(setgroups(0, nullptr), 0);
    ASSERT_EQ(setgid(gid), 0);
    ASSERT_EQ(setuid(uid), 0);
    ASSERT_NE(geteuid(), 0u);
  }
  void TearDown() override {
    if (!g_base.empty() && std::getenv("PGFLEET_KEEP_TEST_DIRS") == nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(g_base, ec);
    }
  }
};

[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new PostgresUserEnvironment);

constexpr Millis kStartTimeout{60000};
constexpr Millis kStopTimeout{30000};
constexpr Millis kWaitTimeout{60000};
const char* const kSuperuserPassword = "su-secret-1";
const char* const kReplicationPassword = "repl-secret-2";
const char* const kRewindPassword = "rew-secret-3";

struct Node {
  std::string name;
  int port = 0;
  PostgresConfig config;
  std::unique_ptr<LocalPostgresController> ctl;

  UpstreamConn asUpstream(const std::string& slot) const {
    return UpstreamConn{"127.0.0.1", port, slot, ""};
  }
};

template <typename Pred>
bool waitFor(Pred pred, Millis timeout = kWaitTimeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(Millis(100));
  }
}

class PgControllerTest : public ::testing::Test {
 protected:
  Node makeNode(const std::string& name) {
    Node n;
    n.name = name;
    n.port = testing::pickFreePort();
    n.config.listen = "127.0.0.1:" + std::to_string(n.port);
    n.config.data_dir = g_base + "/" + name + "/data";
    n.config.superuser = {"postgres", kSuperuserPassword};
    n.config.replication = {"replicator", kReplicationPassword};
    n.config.rewind = {"rewinder", kRewindPassword};
    n.config.use_pg_rewind = true;
    n.config.initdb_options = {"--no-sync", "--encoding=UTF8"};
    // Small servers: several run at once on a shared test machine.
    n.config.dcs_parameters = {{"shared_buffers", "16MB"}, {"max_connections", "30"}};
    n.config.parameters = {{"unix_socket_directories", g_base}};
    n.ctl = std::make_unique<LocalPostgresController>(n.config, n.name, "itest");
    data_dirs_.push_back(n.ctl->dataDir());
    return n;
  }

  // Stops every server this test may have started, by the PID in its postmaster.pid, even when
  // the test failed half-way.
  void TearDown() override {
    for (const auto& dir : data_dirs_) {
      auto pm = readPostmasterPid(dir);
      if (!pm || !postmasterAlive(pm->pid))
        continue;
      signalProcess(pm->pid, SIGQUIT);  // PostgreSQL's immediate shutdown
      bool gone = waitFor([&] { return !processAlive(pm->pid); }, Millis(20000));
      if (!gone) {
        signalProcess(pm->pid, SIGKILL);
        waitFor([&] { return !processAlive(pm->pid); }, Millis(5000));
      }
    }
  }

  static ConnParams params(const Node& n) {
    return ConnParams{{"host", "127.0.0.1"},
                      {"port", std::to_string(n.port)},
                      {"user", "postgres"},
                      {"password", kSuperuserPassword},
                      {"dbname", "postgres"}};
  }

  // The first column of the first row, "NULL", or "error: ..." (so EXPECT_EQ shows why).
  static std::string scalar(const Node& n, const std::string& sql) {
    auto conn = PgConnection::connect(params(n), Millis(5000));
    if (!conn.ok())
      return "error: " + conn.error().message;
    auto r = conn->query(sql);
    if (!r.ok())
      return "error: " + r.error().message;
    if (r->rows.empty() || r->rows[0].empty())
      return "";
    return r->rows[0][0].value_or("NULL");
  }

  static bool exec(const Node& n, const std::string& sql) {
    auto conn = PgConnection::connect(params(n), Millis(5000));
    return conn.ok() && conn->exec(sql).ok();
  }

  std::vector<std::string> data_dirs_;
};

TEST_F(PgControllerTest, BootstrapCloneFailoverAndRewind) {
  Node a = makeNode("node-a");
  Node b = makeNode("node-b");

  // An empty node.
  LocalPostgres st = a.ctl->probe();
  EXPECT_TRUE(st.data_dir_empty);
  EXPECT_FALSE(st.running);

  // Bootstrap: a running primary with its roles.
  ASSERT_TRUE(a.ctl->bootstrap().ok());
  st = a.ctl->probe();
  EXPECT_FALSE(st.data_dir_empty);
  EXPECT_TRUE(st.running);
  EXPECT_TRUE(st.accepting);
  EXPECT_FALSE(st.in_recovery);
  EXPECT_EQ(st.timeline, 1);
  EXPECT_GT(st.wal_position, 0);
  EXPECT_FALSE(st.sysid.empty());
  EXPECT_EQ(st.control_state, ControlState::kInProduction);
  EXPECT_GT(st.postmaster_pid, 0);
  EXPECT_TRUE(st.following_host.empty());
  EXPECT_FALSE(st.pending_restart);
  const std::string sysid = st.sysid;

  EXPECT_EQ(scalar(a,
                   "SELECT rolreplication AND rolcanlogin FROM pg_roles WHERE "
                   "rolname = 'replicator'"),
            "t");
  EXPECT_EQ(scalar(a, "SELECT pg_has_role('rewinder', 'pg_checkpoint', 'MEMBER')"), "t");
  EXPECT_EQ(scalar(a,
                   "SELECT has_function_privilege('rewinder', "
                   "'pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE')"),
            "t");
  EXPECT_EQ(scalar(a, "SHOW cluster_name"), "itest");
  EXPECT_EQ(scalar(a, "SHOW wal_log_hints"), "on");
  EXPECT_EQ(scalar(a, "SHOW shared_buffers"), "16MB");

  // Passwords live only in the 0600 password file, never in postgresql.conf.
  struct stat pgpass_stat {};
  ASSERT_EQ(::stat(a.ctl->pgpassPath().c_str(), &pgpass_stat), 0);
  EXPECT_EQ(pgpass_stat.st_mode & 0777, 0600u);
  auto conf = readFile(a.ctl->dataDir() + "/postgresql.conf");
  ASSERT_TRUE(conf.ok());
  EXPECT_EQ(conf->find("secret"), std::string::npos);
  EXPECT_TRUE(fileExists(a.ctl->dataDir() + "/postgresql.base.conf"));

  ASSERT_TRUE(exec(a,
                   "CREATE TABLE t (id int PRIMARY KEY, v text); "
                   "INSERT INTO t SELECT g, 'a' FROM generate_series(1, 100) g"));

  // Clone a replica through its slot.
  ASSERT_TRUE(a.ctl->syncReplicationSlots({"node_b"}).ok());
  EXPECT_EQ(scalar(a, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'node_b'"), "1");
  auto cloned = b.ctl->cloneFrom(a.asUpstream("node_b"));
  ASSERT_TRUE(cloned.ok()) << cloned.error().message;
  st = b.ctl->probe();
  EXPECT_FALSE(st.data_dir_empty);
  EXPECT_FALSE(st.running);
  EXPECT_TRUE(st.in_recovery);
  EXPECT_EQ(st.sysid, sysid);

  UpstreamConn from_a = a.asUpstream("node_b");
  auto started = b.ctl->start(&from_a, kStartTimeout);
  ASSERT_TRUE(started.ok()) << started.error().message;
  const std::string a_host = "127.0.0.1:" + std::to_string(a.port);
  ASSERT_TRUE(waitFor([&] {
    st = b.ctl->probe();
    return st.streaming && st.following_host == a_host;
  })) << "replica never streamed; following "
      << st.following_host;
  EXPECT_TRUE(st.in_recovery);
  EXPECT_TRUE(st.accepting);
  EXPECT_EQ(st.timeline, 1);
  EXPECT_GT(st.receive_lsn, 0);

  ASSERT_TRUE(exec(a, "INSERT INTO t SELECT g, 'a' FROM generate_series(101, 200) g"));
  EXPECT_TRUE(waitFor([&] { return scalar(b, "SELECT count(*) FROM t") == "200"; }));
  EXPECT_EQ(scalar(a, "SELECT active FROM pg_replication_slots WHERE slot_name = 'node_b'"), "t");
  auto info = a.ctl->replicationInfo();
  ASSERT_TRUE(info.ok()) << info.error().message;
  ASSERT_EQ(info->size(), 1u);
  EXPECT_EQ((*info)[0]["application_name"], "node-b");
  EXPECT_EQ((*info)[0]["usename"], "replicator");
  EXPECT_EQ((*info)[0]["state"], "streaming");
  EXPECT_TRUE((*info)[0]["replay_lsn"].is_string());

  // Slots: missing ones are created, inactive unwanted ones dropped, an active one kept.
  ASSERT_TRUE(a.ctl->syncReplicationSlots({"node_b", "spare"}).ok());
  EXPECT_EQ(scalar(a, "SELECT count(*) FROM pg_replication_slots"), "2");
  // node_b's standby still streams through it: kept, and said so, for the caller to try again.
  auto in_use = a.ctl->syncReplicationSlots({});
  ASSERT_FALSE(in_use.ok());
  EXPECT_EQ(in_use.error().code, ErrorCode::kAlreadyExists) << in_use.error().message;
  EXPECT_EQ(scalar(a, "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"), "node_b");
  // Slots are a primary's business.
  EXPECT_FALSE(b.ctl->syncReplicationSlots({"x"}).ok());

  // Failover: promote the replica.
  auto promoted = b.ctl->promote(kStartTimeout);
  ASSERT_TRUE(promoted.ok()) << promoted.error().message;
  st = b.ctl->probe();
  EXPECT_TRUE(st.accepting);
  EXPECT_FALSE(st.in_recovery);
  EXPECT_EQ(st.timeline, 2);
  EXPECT_TRUE(st.following_host.empty());
  EXPECT_FALSE(fileExists(b.ctl->dataDir() + "/standby.signal"));

  // The old primary, still up, takes a write the new one never sees, then crashes.
  ASSERT_TRUE(exec(a, "INSERT INTO t VALUES (1000, 'divergent')"));
  ASSERT_TRUE(a.ctl->stop(StopMode::kImmediate, kStopTimeout).ok());
  st = a.ctl->probe();
  EXPECT_FALSE(st.running);
  EXPECT_FALSE(st.accepting);
  EXPECT_EQ(st.control_state, ControlState::kInProduction);
  EXPECT_TRUE(st.wasPrimary());
  EXPECT_EQ(st.timeline, 1);
  EXPECT_TRUE(a.ctl->stop(StopMode::kFast, kStopTimeout).ok());  // stopping a stopped server

  ASSERT_TRUE(exec(b, "INSERT INTO t SELECT g, 'b' FROM generate_series(201, 300) g"));

  // Rewind the old primary (crash recovery first) and let it follow the new one.
  ASSERT_TRUE(b.ctl->syncReplicationSlots({"node_a"}).ok());
  UpstreamConn from_b = b.asUpstream("node_a");
  auto rewound = a.ctl->rewind(from_b);
  ASSERT_TRUE(rewound.ok()) << rewound.error().message;
  st = a.ctl->probe();
  EXPECT_FALSE(st.running);
  EXPECT_TRUE(st.in_recovery);
  EXPECT_FALSE(st.wasPrimary());
  started = a.ctl->start(&from_b, kStartTimeout);
  ASSERT_TRUE(started.ok()) << started.error().message;
  const std::string b_host = "127.0.0.1:" + std::to_string(b.port);
  ASSERT_TRUE(waitFor([&] {
    st = a.ctl->probe();
    return st.streaming && st.following_host == b_host;
  })) << "rewound node never streamed; following "
      << st.following_host;
  EXPECT_EQ(st.timeline, 2);
  EXPECT_TRUE(waitFor([&] { return scalar(a, "SELECT count(*) FROM t") == "300"; }));
  EXPECT_EQ(scalar(a, "SELECT count(*) FROM t WHERE id = 1000"), "0");
  EXPECT_EQ(scalar(b, "SELECT active FROM pg_replication_slots WHERE slot_name = 'node_a'"), "t");

  // follow(): a new slot, applied by reload without a restart.
  int pid_before = st.postmaster_pid;
  ASSERT_TRUE(b.ctl->syncReplicationSlots({"node_a", "node_a_2"}).ok());
  ASSERT_TRUE(a.ctl->follow(b.asUpstream("node_a_2")).ok());
  EXPECT_TRUE(waitFor([&] {
    return scalar(b,
                  "SELECT string_agg(slot_name, ',') FROM pg_replication_slots "
                  "WHERE active") == "node_a_2";
  }));
  EXPECT_EQ(a.ctl->probe().postmaster_pid, pid_before);
  // A following standby cannot be told to follow while a primary runs in its place.
  EXPECT_FALSE(b.ctl->follow(a.asUpstream("x")).ok());

  // A new controller (an agent restart) keeps the standby's upstream when it rewrites the files.
  LocalPostgresController restarted(a.config, a.name, "itest");
  ASSERT_TRUE(restarted.reload().ok());
  auto rewritten = readFile(a.ctl->dataDir() + "/postgresql.conf");
  ASSERT_TRUE(rewritten.ok());
  EXPECT_NE(rewritten->find("port=" + std::to_string(b.port)), std::string::npos);
  EXPECT_NE(rewritten->find("primary_slot_name = 'node_a_2'"), std::string::npos);

  ASSERT_TRUE(a.ctl->stop(StopMode::kFast, kStopTimeout).ok());
  ASSERT_TRUE(b.ctl->stop(StopMode::kFast, kStopTimeout).ok());
  EXPECT_EQ(a.ctl->probe().control_state, ControlState::kShutDownInRecovery);
  st = b.ctl->probe();
  EXPECT_FALSE(st.running);
  EXPECT_EQ(st.control_state, ControlState::kShutDown);
  EXPECT_EQ(st.timeline, 2);
}

// A switchover's former primary restarts as a standby on the old timeline and streams the new
// one; when its upstream goes away in turn (a second switchover), it must still report the new
// timeline with the WAL it received, or that WAL would look like a divergence from the history.
TEST_F(PgControllerTest, StandbyKeepsTheTimelineItStreamedWhenItsUpstreamStops) {
  Node a = makeNode("node-a");
  Node b = makeNode("node-b");
  ASSERT_TRUE(a.ctl->bootstrap().ok());
  ASSERT_TRUE(a.ctl->syncReplicationSlots({"node_b"}).ok());
  auto cloned = b.ctl->cloneFrom(a.asUpstream("node_b"));
  ASSERT_TRUE(cloned.ok()) << cloned.error().message;
  UpstreamConn from_a = a.asUpstream("node_b");
  auto started = b.ctl->start(&from_a, kStartTimeout);
  ASSERT_TRUE(started.ok()) << started.error().message;
  LocalPostgres st;
  ASSERT_TRUE(waitFor([&] { return (st = b.ctl->probe()).streaming; }));

  // A clean switchover from a to b: a stops, b promotes, a restarts as b's standby.
  ASSERT_TRUE(a.ctl->stop(StopMode::kFast, kStopTimeout).ok());
  ASSERT_TRUE(waitFor([&] { return !b.ctl->probe().streaming; }));
  auto promoted = b.ctl->promote(kStartTimeout);
  ASSERT_TRUE(promoted.ok()) << promoted.error().message;
  ASSERT_EQ(b.ctl->probe().timeline, 2);
  ASSERT_TRUE(b.ctl->syncReplicationSlots({"node_a"}).ok());
  UpstreamConn from_b = b.asUpstream("node_a");
  started = a.ctl->start(&from_b, kStartTimeout);
  ASSERT_TRUE(started.ok()) << started.error().message;
  ASSERT_TRUE(waitFor([&] {
    st = a.ctl->probe();
    return st.streaming && st.timeline == 2;
  })) << "the former primary never streamed timeline 2; timeline "
      << st.timeline;
  ASSERT_TRUE(exec(b, "CREATE TABLE after_switchover (id int)"));
  const int64_t b_lsn = b.ctl->probe().wal_position;
  ASSERT_TRUE(waitFor([&] { return a.ctl->probe().receive_lsn >= b_lsn; }));

  // The upstream stops: the standby no longer streams, and still names timeline 2.
  ASSERT_TRUE(b.ctl->stop(StopMode::kFast, kStopTimeout).ok());
  ASSERT_TRUE(waitFor([&] { return !(st = a.ctl->probe()).streaming; }));
  EXPECT_TRUE(st.running);
  EXPECT_TRUE(st.in_recovery);
  EXPECT_EQ(st.timeline, 2);
  EXPECT_GE(st.wal_position, b_lsn);

  // A restarted standby starts from its own files again.
  ASSERT_TRUE(a.ctl->stop(StopMode::kFast, kStopTimeout).ok());
  st = a.ctl->probe();
  EXPECT_FALSE(st.running);
  EXPECT_EQ(st.timeline, 2);  // the shutdown restartpoint is on timeline 2
}

// A statement past its timeout is cancelled, and the cancel request goes to the postmaster. A
// frozen postmaster (a stalled host) accepts the connection and never answers: the caller still
// gets its answer at its deadline, not when the server wakes up.
TEST_F(PgControllerTest, AStatementPastItsTimeoutReturnsWhileThePostmasterIsFrozen) {
  Node a = makeNode("node-a");
  ASSERT_TRUE(a.ctl->bootstrap().ok());
  auto conn = PgConnection::connect(params(a), Millis(5000));
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  auto pm = readPostmasterPid(a.ctl->dataDir());
  ASSERT_TRUE(pm);
  ASSERT_TRUE(signalProcess(pm->pid, SIGSTOP));
  // The server wakes up after 5 s whatever happens (so that a blocked cancel shows as a failure
  // rather than a hang).
  std::thread thaw([pid = pm->pid] {
    std::this_thread::sleep_for(Millis(5000));
    signalProcess(pid, SIGCONT);
  });
  const auto sent = std::chrono::steady_clock::now();
  auto r = conn->query("SELECT pg_sleep(10)", {}, Millis(300));
  const auto took = std::chrono::steady_clock::now() - sent;
  thaw.join();
  EXPECT_FALSE(r.ok());
  EXPECT_LT(std::chrono::duration_cast<Millis>(took).count(), 2000);
}

TEST_F(PgControllerTest, StartStopAndRemoveDataDirectory) {
  Node n = makeNode("solo");
  ASSERT_TRUE(n.ctl->bootstrap().ok());
  auto again = n.ctl->bootstrap();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  auto twice = n.ctl->start(nullptr, kStartTimeout);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, ErrorCode::kAlreadyExists);
  EXPECT_FALSE(n.ctl->removeDataDirectory().ok())
      << "removed the data directory of a running server";

  ASSERT_TRUE(n.ctl->stop(StopMode::kFast, kStopTimeout).ok());
  LocalPostgres st = n.ctl->probe();
  EXPECT_FALSE(st.running);
  EXPECT_FALSE(st.accepting);
  EXPECT_FALSE(st.in_recovery);
  EXPECT_EQ(st.control_state, ControlState::kShutDown);
  EXPECT_EQ(st.timeline, 1);
  EXPECT_GT(st.wal_position, 0);

  // A parameter that needs a restart shows as pending after a reload.
  ASSERT_TRUE(n.ctl->start(nullptr, kStartTimeout).ok());
  PostgresConfig changed = n.config;
  changed.parameters["max_connections"] = "31";
  n.ctl->updateConfig(changed);
  ASSERT_TRUE(n.ctl->reload().ok());
  EXPECT_TRUE(waitFor([&] { return n.ctl->probe().pending_restart; }, Millis(10000)));
  ASSERT_TRUE(n.ctl->stop(StopMode::kSmart, kStopTimeout).ok());

  ASSERT_TRUE(n.ctl->removeDataDirectory().ok());
  EXPECT_FALSE(std::filesystem::exists(n.ctl->dataDir()));
  EXPECT_TRUE(n.ctl->probe().data_dir_empty);

  PostgresConfig rootless = n.config;
  rootless.data_dir = "/";
  LocalPostgresController root_ctl(rootless, "root", "itest");
  EXPECT_FALSE(root_ctl.removeDataDirectory().ok());
  rootless.data_dir = "";
  LocalPostgresController empty_ctl(rootless, "empty", "itest");
  EXPECT_FALSE(empty_ctl.removeDataDirectory().ok());
}

TEST_F(PgControllerTest, FailedCloneReportsTheToolsErrorWithoutSecrets) {
  Node n = makeNode("orphan");
  int nobody = testing::pickFreePort();  // nothing listens there
  auto cloned = n.ctl->cloneFrom(UpstreamConn{"127.0.0.1", nobody, "", ""});
  ASSERT_FALSE(cloned.ok());
  EXPECT_EQ(cloned.error().code, ErrorCode::kCommandFailed);
  EXPECT_NE(cloned.error().message.find("pg_basebackup"), std::string::npos)
      << cloned.error().message;
  EXPECT_EQ(cloned.error().message.find("secret"), std::string::npos);
  EXPECT_FALSE(n.ctl->probe().running);
}

}  // namespace
}  // namespace pgf
