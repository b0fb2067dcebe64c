// pgfleet-broker with the local backend and its embedded etcd, through the OSB API only: the
// whole life of a single-server instance (provision, poll, bind, connect and write with the
// credentials, a second binding seeing the first one's table, unbind, deprovision, nothing left),
// the errors a platform can cause, a cluster whose bound URI survives a failover while another
// tenant's credentials cannot reach it, and a broker killed with SIGKILL in the middle of a
// provision and of a deprovision.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "postgres/pg_connection.h"
#include "support/broker_process.h"
#include "support/etcd_process.h"
#include "support/local_cluster.h"

namespace pgf::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

using Answer = BrokerAnswer;
using BrokerLifecycleTest = BrokerTest;

TEST_F(BrokerLifecycleTest, ASingleServerFromProvisionToDeprovisionLeavesNothingBehind) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  const std::string inst = "/v2/service_instances/inst-1";

  // Errors change nothing.
  EXPECT_EQ(call("PUT", inst, provisionBody(kSingleSmall)).status, 422);  // no accepts_incomplete
  EXPECT_EQ(call("PUT", inst, provisionBody(kSingleSmall)).body.value("error", ""),
            "AsyncRequired");
  EXPECT_EQ(call("PUT", inst + "?accepts_incomplete=true", provisionBody("no-such-plan")).status,
            400);
  EXPECT_EQ(raw("PUT", inst + "?accepts_incomplete=true", "{not json").status, 400);
  Answer hostile =
      call("PUT", inst + "?accepts_incomplete=true",
           provisionBody(kSingleSmall, {{"database", "x'; DROP DATABASE postgres; --"}}));
  EXPECT_EQ(hostile.status, 400);
  EXPECT_NE(hostile.body.value("description", "").find("parameters.database"), std::string::npos)
      << hostile.text;
  EXPECT_EQ(
      call("PUT", inst + "?accepts_incomplete=true", provisionBody(kSingleSmall, {{"unknown", 1}}))
          .status,
      400);
  json wrong_maintenance = provisionBody(kSingleSmall);
  wrong_maintenance["maintenance_info"] = {{"version", "9.9.9"}};
  EXPECT_EQ(
      call("PUT", inst + "?accepts_incomplete=true", wrong_maintenance).body.value("error", ""),
      "MaintenanceInfoConflict");
  EXPECT_EQ(call("GET", inst).status, 404);
  EXPECT_EQ(call("GET", inst + "/last_operation").status, 404);
  EXPECT_EQ(call("DELETE", inst + "?service_id=s&plan_id=p&accepts_incomplete=true").status, 410);
  EXPECT_EQ(instanceDirectories(), 0u);

  // Provision: 202, the same 202 for the same request, 409 for another.
  json body = provisionBody(kSingleSmall, {{"database", "shop"}, {"extensions", {"citext"}}});
  Answer accepted = call("PUT", inst + "?accepts_incomplete=true", body);
  ASSERT_EQ(accepted.status, 202) << accepted.text;
  const std::string op = accepted.body.value("operation", "");
  EXPECT_FALSE(op.empty());
  Answer again = call("PUT", inst + "?accepts_incomplete=true", body);
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.body.value("operation", ""), op);
  EXPECT_EQ(call("PUT", inst + "?accepts_incomplete=true", provisionBody(kClusterSmall)).status,
            409);

  Answer done = waitOperation("inst-1", Millis(seconds(180)));
  ASSERT_EQ(done.status, 200) << done.text << brokerLog();
  ASSERT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();
  EXPECT_EQ(call("PUT", inst + "?accepts_incomplete=true", body).status, 200);
  Answer fetched = call("GET", inst);
  ASSERT_EQ(fetched.status, 200);
  EXPECT_EQ(fetched.body.value("plan_id", ""), kSingleSmall);
  EXPECT_EQ(fetched.body["parameters"]["database"], "shop");

  // Bind: credentials that write, never a superuser; a second binding uses the first one's table.
  json bind_body = {{"service_id", kService}, {"plan_id", kSingleSmall}};
  Answer b1 = call("PUT", inst + "/service_bindings/b1", bind_body);
  ASSERT_EQ(b1.status, 201) << b1.text << brokerLog();
  const json c1 = b1.body["credentials"];
  for (const char* key : {"uri", "jdbcUrl", "hostname", "host", "port", "name", "database",
                          "username", "password", "endpoints"})
    EXPECT_TRUE(c1.contains(key)) << key;
  EXPECT_EQ(c1.value("name", ""), "shop");
  EXPECT_EQ(c1.value("password", "").size(), 32u);
  EXPECT_EQ(call("PUT", inst + "/service_bindings/b1", bind_body).body["credentials"], c1);
  {
    auto conn = connectWith(c1);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE(conn->exec("CREATE TABLE orders (id int, note citext)").ok());
    ASSERT_TRUE(conn->exec("INSERT INTO orders VALUES (1, 'first')").ok());
    auto su = conn->query("SELECT rolsuper FROM pg_roles WHERE rolname = session_user");
    ASSERT_TRUE(su.ok());
    EXPECT_EQ(su->get(0, "rolsuper").value_or(""), "f");
    EXPECT_FALSE(conn->exec("CREATE ROLE intruder").ok());
    EXPECT_FALSE(conn->exec("ALTER SYSTEM SET work_mem = '1GB'").ok());
  }
  Answer b2 = call("PUT", inst + "/service_bindings/b2", bind_body);
  ASSERT_EQ(b2.status, 201) << b2.text;
  const json c2 = b2.body["credentials"];
  EXPECT_NE(c2.value("username", ""), c1.value("username", ""));
  auto conn2 = connectWith(c2);
  ASSERT_TRUE(conn2.ok()) << conn2.error().message;
  auto rows = conn2->query("SELECT count(*) AS n FROM orders");
  ASSERT_TRUE(rows.ok()) << rows.error().message;
  EXPECT_EQ(rows->get(0, "n").value_or(""), "1");
  Answer fb = call("GET", inst + "/service_bindings/b2");
  EXPECT_EQ(fb.status, 200);
  EXPECT_EQ(fb.body["credentials"], c2);

  // Unbind: the role is gone, its table stays with the owner; a repeated unbind is 410.
  Answer u = call("DELETE", inst + "/service_bindings/b1?service_id=" + std::string(kService) +
                                "&plan_id=" + kSingleSmall);
  EXPECT_EQ(u.status, 200) << u.text;
  auto gone = conn2->query("SELECT count(*) AS n FROM pg_roles WHERE rolname = $1",
                           {c1.value("username", "")});
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->get(0, "n").value_or(""), "0");
  EXPECT_FALSE(connectWith(c1).ok());
  rows = conn2->query("SELECT count(*) AS n FROM orders");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->get(0, "n").value_or(""), "1");
  EXPECT_EQ(call("DELETE", inst + "/service_bindings/b1?service_id=" + std::string(kService) +
                               "&plan_id=" + kSingleSmall)
                .status,
            410);
  EXPECT_EQ(call("GET", inst + "/service_bindings/b1").status, 404);

  // Deprovision: 202, then 410 from last_operation, and nothing on disk or listening.
  Answer del = call("DELETE", inst + "?service_id=" + std::string(kService) +
                                  "&plan_id=" + kSingleSmall + "&accepts_incomplete=true");
  ASSERT_EQ(del.status, 202) << del.text;
  Answer end = waitOperation("inst-1", Millis(seconds(120)));
  EXPECT_EQ(end.status, 410) << end.text << brokerLog();
  EXPECT_EQ(call("GET", inst).status, 404);
  EXPECT_EQ(instanceDirectories(), 0u);
  EXPECT_FALSE(connectWith(c2).ok());
}

// The node directory of the instance whose PostgreSQL listens on `pg_port` (from its agent.yml).
std::string nodeListeningOn(const std::string& instances_dir, int pg_port) {
  std::error_code ec;
  for (const auto& inst : fs::directory_iterator(instances_dir, ec))
    for (const auto& node : fs::directory_iterator(inst.path(), ec)) {
      std::ifstream in(node.path() / "agent.yml");
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find(fmt::format("postgresql:\n  listen: 127.0.0.1:{}\n", pg_port)) !=
          std::string::npos)
        return node.path().string();
    }
  return "";
}

TEST_F(BrokerLifecycleTest, AClusterKeepsItsBoundUriThroughAFailoverAndTenantsStayApart) {
  // Without self-healing: the killed agent would be started again within seconds, and would start
  // its PostgreSQL again as the primary before its lease expires, with no failover to watch.
  broker_.editConfig([](std::string& config) {
    config.replace(config.find("broker:\n"), std::string("broker:\n").size(),
                   "broker:\n  heal_interval: 0\n");
  });
  ASSERT_NO_FATAL_FAILURE(startBroker());
  const std::string a = "/v2/service_instances/tenant-a";
  const std::string b = "/v2/service_instances/tenant-b";
  ASSERT_EQ(call("PUT", a + "?accepts_incomplete=true", provisionBody(kClusterSmall)).status, 202);
  ASSERT_EQ(call("PUT", b + "?accepts_incomplete=true", provisionBody(kSingleSmall)).status, 202);
  Answer done_a = waitOperation("tenant-a", Millis(seconds(180)));
  ASSERT_EQ(done_a.body.value("state", ""), "succeeded") << done_a.text << brokerLog();
  Answer done_b = waitOperation("tenant-b", Millis(seconds(180)));
  ASSERT_EQ(done_b.body.value("state", ""), "succeeded") << done_b.text << brokerLog();

  Answer bind_a = call("PUT", a + "/service_bindings/app",
                       {{"service_id", kService}, {"plan_id", kClusterSmall}});
  ASSERT_EQ(bind_a.status, 201) << bind_a.text;
  Answer bind_b = call("PUT", b + "/service_bindings/app",
                       {{"service_id", kService}, {"plan_id", kSingleSmall}});
  ASSERT_EQ(bind_b.status, 201) << bind_b.text;
  const json ca = bind_a.body["credentials"];
  const json cb = bind_b.body["credentials"];
  EXPECT_TRUE(ca.contains("read_only_uri"));
  EXPECT_FALSE(cb.contains("read_only_uri"));

  // Each tenant's role exists only in its own instance.
  json a_at_b = ca;
  a_at_b["port"] = cb["port"];
  a_at_b["name"] = cb["name"];
  EXPECT_FALSE(connectWith(a_at_b).ok());
  json b_at_a = cb;
  b_at_a["port"] = ca["port"];
  b_at_a["name"] = ca["name"];
  EXPECT_FALSE(connectWith(b_at_a).ok());

  auto conn = connectWith(ca);
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  ASSERT_TRUE(conn->exec("CREATE TABLE t (id int)").ok());
  ASSERT_TRUE(conn->exec("INSERT INTO t SELECT generate_series(1, 100)").ok());
  auto port = conn->query("SELECT inet_server_port() AS p");
  ASSERT_TRUE(port.ok());
  const int old_pg = std::stoi(port->get(0, "p").value_or("0"));
  auto ro = connectWith(ca, true);
  ASSERT_TRUE(ro.ok()) << ro.error().message;
  auto in_recovery = ro->query("SELECT pg_is_in_recovery() AS r");
  ASSERT_TRUE(in_recovery.ok());
  EXPECT_EQ(in_recovery->get(0, "r").value_or(""), "t");

  // Both replicas hold the 100 rows (HAProxy sends each new read-only connection to the next
  // replica), so that whichever is promoted must have them: asynchronous replication promises
  // no more.
  EXPECT_TRUE(waitUntil(
      [&] {
        for (int i = 0; i < 4; ++i) {
          auto r = connectWith(ca, true);
          if (!r.ok())
            return false;
          auto n = r->query("SELECT count(*) AS n FROM t");
          if (!n.ok() || n->get(0, "n").value_or("") != "100")
            return false;
        }
        return true;
      },
      Millis(seconds(30))));

  // The primary's agent and PostgreSQL die; the same URI reaches the new primary.
  const std::string node = nodeListeningOn(state() + "/instances", old_pg);
  ASSERT_FALSE(node.empty());
  for (const char* file : {"agent.pid", "data/postmaster.pid"}) {
    std::ifstream in(node + "/" + file);
    pid_t pid = 0;
    ASSERT_TRUE(in >> pid);
    signalProcess(pid, SIGKILL);
  }
  int new_pg = 0;
  long long rows = 0;
  EXPECT_TRUE(waitUntil(
      [&] {
        auto c = connectWith(ca);
        if (!c.ok() || !c->exec("INSERT INTO t VALUES (101)").ok())
          return false;
        auto p = c->query("SELECT inet_server_port() AS p, (SELECT count(*) FROM t) AS n");
        if (!p.ok())
          return false;
        new_pg = std::stoi(p->get(0, "p").value_or("0"));
        rows = std::stoll(p->get(0, "n").value_or("0"));
        return true;
      },
      Millis(seconds(60))))
      << brokerLog();
  EXPECT_NE(new_pg, old_pg);
  EXPECT_EQ(rows, 101) << "a row acknowledged before the failover was lost or one was duplicated";

  for (const std::string& inst : {a, b}) {
    const std::string plan = inst == a ? kClusterSmall : kSingleSmall;
    ASSERT_EQ(call("DELETE", inst + "?service_id=" + std::string(kService) + "&plan_id=" + plan +
                                 "&accepts_incomplete=true")
                  .status,
              202);
  }
  EXPECT_EQ(waitOperation("tenant-a", Millis(seconds(120))).status, 410) << brokerLog();
  EXPECT_EQ(waitOperation("tenant-b", Millis(seconds(120))).status, 410) << brokerLog();
  EXPECT_EQ(instanceDirectories(), 0u);
}

TEST_F(BrokerLifecycleTest, ABrokerKilledDuringAProvisionFinishesItWhenItStartsAgain) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  const std::string inst = "/v2/service_instances/inst-2";
  Answer accepted = call("PUT", inst + "?accepts_incomplete=true", provisionBody(kSingleSmall));
  ASSERT_EQ(accepted.status, 202) << accepted.text;
  // Killed once the nodes are being started.
  ASSERT_TRUE(waitUntil([&] { return instanceDirectories() == 1; }, Millis(seconds(30))));
  stopBroker(SIGKILL);
  ASSERT_NO_FATAL_FAILURE(startBroker());
  Answer done = waitOperation("inst-2", Millis(seconds(180)));
  ASSERT_EQ(done.status, 200) << done.text << brokerLog();
  EXPECT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();
  Answer b = call("PUT", inst + "/service_bindings/b1",
                  {{"service_id", kService}, {"plan_id", kSingleSmall}});
  ASSERT_EQ(b.status, 201) << b.text;
  auto conn = connectWith(b.body["credentials"]);
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  EXPECT_TRUE(conn->exec("CREATE TABLE t (x int)").ok());

  // Deprovision, killed right after it was accepted, finished by the next broker.
  Answer del = call("DELETE", inst + "?service_id=" + std::string(kService) +
                                  "&plan_id=" + kSingleSmall + "&accepts_incomplete=true");
  ASSERT_EQ(del.status, 202) << del.text;
  stopBroker(SIGKILL);
  ASSERT_NO_FATAL_FAILURE(startBroker());
  Answer end = waitOperation("inst-2", Millis(seconds(120)));
  EXPECT_EQ(end.status, 410) << end.text << brokerLog();
  EXPECT_EQ(instanceDirectories(), 0u);
}

TEST_F(BrokerLifecycleTest, WithAnExternalEtcdItStartsNoneAndLeavesNoKeyThere) {
  TempDir dir("pgfleet-broker-etcd");
  EtcdProcess etcd(dir.path() + "/etcd");
  ASSERT_TRUE(etcd.start().ok()) << etcd.logTail();
  // The configuration names the external etcd instead of the embedded one's ports.
  broker_.editConfig([&](std::string& config) {
    config = config.substr(0, config.rfind("\netcd:\n")) +
             fmt::format("\netcd:\n  hosts: [{}]\n", etcd.endpoint());
  });

  ASSERT_NO_FATAL_FAILURE(startBroker());
  EXPECT_FALSE(fs::exists(state() + "/etcd.pid"));
  EXPECT_FALSE(fs::exists(state() + "/etcd"));
  const std::string inst = "/v2/service_instances/ext-1";
  ASSERT_EQ(call("PUT", inst + "?accepts_incomplete=true", provisionBody(kSingleSmall)).status,
            202);
  Answer done = waitOperation("ext-1", Millis(seconds(180)));
  ASSERT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();
  // The instance's agent keeps its cluster in the external etcd.
  EXPECT_GT(etcdKeyCount(etcd.clientPort(), "/service/"), 0);

  Answer del = call("DELETE", inst + "?service_id=" + std::string(kService) +
                                  "&plan_id=" + kSingleSmall + "&accepts_incomplete=true");
  ASSERT_EQ(del.status, 202) << del.text;
  EXPECT_EQ(waitOperation("ext-1", Millis(seconds(120))).status, 410) << brokerLog();
  EXPECT_EQ(instanceDirectories(), 0u);
  EXPECT_EQ(etcdKeyCount(etcd.clientPort(), "/service/"), 0);
  stopBroker(SIGTERM);
}

TEST_F(BrokerLifecycleTest, ABindThatFailedAndCouldNotRollBackIsTriedAfreshByTheNextRequest) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  const std::string inst = "/v2/service_instances/bind-retry";
  ASSERT_EQ(call("PUT", inst + "?accepts_incomplete=true", provisionBody(kSingleSmall)).status,
            202);
  Answer done = waitOperation("bind-retry", Millis(seconds(180)));
  ASSERT_EQ(done.body.value("state", ""), "succeeded") << done.text << brokerLog();

  // The instance's endpoint answers nothing: the role can be neither created nor dropped.
  pid_t haproxy = 0;
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator(state() + "/instances", ec))
    std::ifstream(dir.path() / "haproxy.pid") >> haproxy;
  ASSERT_GT(haproxy, 1);
  ASSERT_TRUE(signalProcess(haproxy, SIGSTOP));
  json bind_body = {{"service_id", kService}, {"plan_id", kSingleSmall}};
  Answer failed = call("PUT", inst + "/service_bindings/b1", bind_body);
  ASSERT_TRUE(signalProcess(haproxy, SIGCONT));
  EXPECT_EQ(failed.status, 500) << failed.text;
  EXPECT_EQ(call("GET", inst + "/service_bindings/b1").status, 404);

  // The platform's retry is a new attempt, not a conflict with the failed one.
  Answer retried = call("PUT", inst + "/service_bindings/b1", bind_body);
  ASSERT_EQ(retried.status, 201) << retried.text << brokerLog();
  auto conn = connectWith(retried.body["credentials"]);
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  auto roles = conn->query("SELECT count(*) AS n FROM pg_roles WHERE rolname LIKE 'b\\_%'");
  ASSERT_TRUE(roles.ok()) << roles.error().message;
  EXPECT_EQ(roles->get(0, "n").value_or(""), "1");
}

}  // namespace
}  // namespace pgf::testing
