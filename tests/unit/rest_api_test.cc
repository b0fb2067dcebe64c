#include "agent/rest_api.h"

#include <httplib.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/cluster_actions.h"
#include "agent/metrics.h"
#include "common/base64.h"
#include "common/basic_auth.h"
#include "dcs/memory/memory_dcs.h"
#include "dcs/memory/memory_store.h"
#include "fakes/fake_clock.h"

namespace pgf {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// Fixture builders: a three-member cluster led by n1 whose last published optime is 50000.
constexpr int64_t kOptime = 50000;

MemberInfo member(const std::string& name, const std::string& role, int port,
                  std::optional<int64_t> xlog) {
  json raw = {{"conn_url", "postgres://127.0.0.1:" + std::to_string(port) + "/postgres"},
              {"api_url", "http://127.0.0.1:" + std::to_string(port + 3000) + "/patroni"},
              {"state", "running"},
              {"role", role},
              {"timeline", 2}};
  if (xlog)
    raw["xlog_location"] = *xlog;
  return parseMember(name, raw.dump(), 1);
}

ClusterView cluster() {
  ClusterView c;
  c.initialize = "7312345678901234567";
  c.config = json{{"ttl", 30}, {"loop_wait", 10}};
  c.leader = LeaderInfo{"n1", 5, 7};
  c.members = {member("n3", "replica", 5434, std::nullopt), member("n1", "master", 5432, kOptime),
               member("n2", "replica", 5433, 49000)};
  c.status = json{{"optime", kOptime}};
  c.history = json::array(
      {json::array({1, 25000, "no recovery target specified", "2024-01-01T00:00:00+00:00", "n1"})});
  return c;
}

class RestApiTest : public ::testing::Test {
 protected:
  FakeClock clock;

  AgentStatus base() {
    AgentStatus s;
    s.scope = "demo";
    s.version = "0.1.0";
    s.settings.ttl = 30;
    s.settings.loop_wait = 10;
    s.cluster = cluster();
    s.dcs_reachable = true;
    s.dcs_last_seen = clock.wallNow();
    s.last_loop = clock.now();
    s.state = "running";
    s.pg.data_dir_empty = false;
    s.pg.running = true;
    s.pg.accepting = true;
    s.pg.timeline = 2;
    s.server_version = "150004";
    s.database_system_identifier = "7312345678901234567";
    s.postmaster_start_time = clock.wallNow() - std::chrono::hours(1);
    return s;
  }
  AgentStatus primary() {
    AgentStatus s = base();
    s.name = "n1";
    s.role = "master";
    s.is_leader = true;
    s.pg.wal_position = kOptime;
    s.replication = {WalSender{"replicator", "n2", "127.0.0.1", "streaming", "async", 0}};
    s.last_decision =
        Decision{Action::kRenewLease, "no action: i am the leader with the lease", ""};
    s.counters.lease_renewals = 12;
    s.counters.lease_renewal_failures = 1;
    s.counters.loops = 13;
    s.counters.promotions = 1;
    return s;
  }
  AgentStatus replica() {
    AgentStatus s = base();
    s.name = "n2";
    s.role = "replica";
    s.pg.in_recovery = true;
    s.pg.receive_lsn = 49500;
    s.pg.replay_lsn = 49000;
    s.pg.wal_position = 49500;
    s.pg.streaming = true;
    return s;
  }
  AgentStatus stopped() {
    AgentStatus s = replica();
    s.state = "stopped";
    s.pg.running = false;
    s.pg.accepting = false;
    return s;
  }

  HttpReply call(const AgentStatus& s, const std::string& method, const std::string& path,
                 const QueryParams& q = {}) {
    return handleRequest(s, method, path, q, clock.now(), clock.wallNow());
  }
  int get(const AgentStatus& s, const std::string& path, const QueryParams& q = {}) {
    return call(s, "GET", path, q).status;
  }
  json body(const HttpReply& r) {
    EXPECT_EQ(r.content_type, "application/json");
    return json::parse(r.body);
  }
};

TEST_F(RestApiTest, PrimaryHealthCodes) {
  AgentStatus s = primary();
  std::map<std::string, int> want = {
      {"/", 200},          {"/primary", 200},    {"/master", 200},
      {"/leader", 200},    {"/read-write", 200}, {"/replica", 503},
      {"/read-only", 200}, {"/health", 200},     {"/standby-leader", 503},
      {"/sync", 503},      {"/async", 503},      {"/primary/", 200},
  };
  for (const auto& [path, code] : want) {
    auto r = call(s, "GET", path);
    EXPECT_EQ(r.status, code) << path;
    EXPECT_EQ(body(r)["role"], "master") << path;
    EXPECT_EQ(call(s, "HEAD", path).status, code) << path;
    EXPECT_EQ(call(s, "OPTIONS", path).status, code) << path;
  }
  auto head = call(s, "HEAD", "/primary");
  EXPECT_TRUE(head.body.empty());
  auto options = call(s, "OPTIONS", "/replica");
  EXPECT_TRUE(options.body.empty());
}

TEST_F(RestApiTest, ReplicaHealthCodes) {
  AgentStatus s = replica();
  std::map<std::string, int> want = {
      {"/", 503},           {"/primary", 503}, {"/master", 503},    {"/leader", 503},
      {"/read-write", 503}, {"/replica", 200}, {"/read-only", 200}, {"/health", 200},
      {"/async", 200},      {"/sync", 503},
  };
  for (const auto& [path, code] : want)
    EXPECT_EQ(get(s, path), code) << path;
}

TEST_F(RestApiTest, StoppedNodeFailsEveryCheck) {
  AgentStatus s = stopped();
  for (const char* path : {"/", "/primary", "/replica", "/read-only", "/health", "/leader"})
    EXPECT_EQ(get(s, path), 503) << path;
  auto doc = body(call(s, "GET", "/patroni"));
  EXPECT_EQ(doc["state"], "stopped");
  EXPECT_EQ(doc["role"], "replica");
  EXPECT_FALSE(doc.contains("xlog"));
  // A leader whose PostgreSQL is down still answers /primary with 200, as Patroni does: the lease,
  // not the process, decides who is primary.
  AgentStatus leader = primary();
  leader.state = "starting";
  leader.pg.accepting = false;
  EXPECT_EQ(get(leader, "/primary"), 200);
  EXPECT_EQ(get(leader, "/health"), 503);
}

TEST_F(RestApiTest, RunningButUnresponsiveIsUnknown) {
  AgentStatus s = replica();
  s.pg.accepting = false;
  auto doc = body(call(s, "GET", "/patroni"));
  EXPECT_EQ(doc["state"], "unknown");
  EXPECT_EQ(get(s, "/health"), 503);
  EXPECT_EQ(get(s, "/replica"), 503);
}

TEST_F(RestApiTest, LaggingReplicaFailsOnlyWithALagLimit) {
  AgentStatus s = replica();
  s.pg.replay_lsn = 1000;  // 49000 bytes behind the optime
  EXPECT_EQ(get(s, "/replica"), 200);
  EXPECT_EQ(get(s, "/replica", {{"lag", "1kB"}}), 503);
  EXPECT_EQ(get(s, "/read-only", {{"lag", "1024"}}), 503);
  EXPECT_EQ(get(s, "/replica", {{"lag", "49000"}}), 200);
  EXPECT_EQ(get(s, "/replica", {{"lag", "48999"}}), 503);
  EXPECT_EQ(get(s, "/replica", {{"lag", "16MB"}}), 200);
  EXPECT_EQ(call(s, "HEAD", "/replica", {{"lag", "1kB"}}).status, 503);
  // The primary is never "lagging".
  EXPECT_EQ(get(primary(), "/read-only", {{"lag", "0"}}), 200);
}

TEST_F(RestApiTest, NoLoadBalanceTakesAReplicaOutOfReadPools) {
  AgentStatus s = replica();
  s.tags.noloadbalance = true;
  EXPECT_EQ(get(s, "/replica"), 503);
  EXPECT_EQ(get(s, "/read-only"), 503);
  EXPECT_EQ(get(s, "/health"), 200);
  EXPECT_EQ(body(call(s, "GET", "/replica"))["tags"], json({{"noloadbalance", true}}));
}

TEST_F(RestApiTest, BadQueryValuesAre400) {
  AgentStatus s = replica();
  for (const char* lag : {"abc", "", "-5", "1.2.3", "12XB", "1e400"}) {
    auto r = call(s, "GET", "/replica", {{"lag", lag}});
    EXPECT_EQ(r.status, 400) << lag;
    EXPECT_THAT(body(r)["error"].get<std::string>(), HasSubstr("invalid lag")) << lag;
    EXPECT_EQ(call(s, "HEAD", "/replica", {{"lag", lag}}).status, 400) << lag;
  }
}

TEST_F(RestApiTest, TagFiltersMustAllMatch) {
  AgentStatus s = replica();
  s.tags.nofailover = true;
  EXPECT_EQ(get(s, "/replica", {{"tag_nofailover", "true"}}), 200);
  EXPECT_EQ(get(s, "/replica", {{"tag_nofailover", "false"}}), 503);
  EXPECT_EQ(get(s, "/replica", {{"tag_nosync", "true"}}), 503);
  EXPECT_EQ(get(s, "/replica", {{"tag_zone", "a"}}), 503);
  // Leader checks ignore tags.
  EXPECT_EQ(get(primary(), "/primary", {{"tag_zone", "a"}}), 200);
}

TEST_F(RestApiTest, ParsesLagValues) {
  std::map<std::string, int64_t> ok = {{"0", 0},
                                       {"1000", 1000},
                                       {"1kB", 1024},
                                       {"16MB", 16777216},
                                       {" 2 GB ", 2147483648},
                                       {"1TB", 1099511627776},
                                       {"1.5kB", 1536},
                                       {"7B", 7}};
  for (const auto& [text, bytes] : ok) {
    auto r = parseLagBytes(text);
    ASSERT_TRUE(r.ok()) << text;
    EXPECT_EQ(r.value(), bytes) << text;
  }
}

TEST_F(RestApiTest, PrimaryStatusDocumentShape) {
  auto r = call(primary(), "GET", "/patroni");
  ASSERT_EQ(r.status, 200);
  json doc = body(r);
  EXPECT_EQ(doc["state"], "running");
  EXPECT_EQ(doc["role"], "master");
  EXPECT_EQ(doc["server_version"], 150004);
  EXPECT_EQ(doc["xlog"], json({{"location", kOptime}}));
  EXPECT_EQ(doc["timeline"], 2);
  EXPECT_EQ(doc["postmaster_start_time"], "2023-12-31 23:00:00+00:00");
  EXPECT_EQ(doc["dcs_last_seen"], 1704067200);
  EXPECT_EQ(doc["database_system_identifier"], "7312345678901234567");
  EXPECT_EQ(doc["patroni"], json({{"version", "0.1.0"}, {"scope", "demo"}}));
  ASSERT_EQ(doc["replication"].size(), 1u);
  EXPECT_EQ(doc["replication"][0]["application_name"], "n2");
  EXPECT_EQ(doc["replication"][0]["sync_state"], "async");
  EXPECT_FALSE(doc.contains("cluster_unlocked"));
  EXPECT_FALSE(doc.contains("tags"));
  EXPECT_FALSE(doc.contains("pending_restart"));
  EXPECT_FALSE(doc.contains("pause"));
  EXPECT_EQ(doc["pgfleet"]["last_decision"]["action"], "renew_lease");
  EXPECT_EQ(doc["pgfleet"]["last_decision"]["reason"], "no action: i am the leader with the lease");
  EXPECT_EQ(doc["pgfleet"]["counters"]["lease_renewals"], 12);
  EXPECT_EQ(doc["pgfleet"]["counters"]["lease_renewal_failures"], 1);
  EXPECT_EQ(doc["pgfleet"]["is_leader"], true);
}

TEST_F(RestApiTest, ReplicaStatusDocumentShape) {
  AgentStatus s = replica();
  s.pg.pending_restart = true;
  s.settings.paused = true;
  s.cluster->config = json{{"synchronous_mode", true}};
  s.cluster->sync = json{{"leader", "n1"}, {"sync_standby", "n2"}};
  json doc = body(call(s, "GET", "/patroni"));
  EXPECT_EQ(doc["role"], "replica");
  EXPECT_EQ(doc["xlog"], json({{"received_location", 49500},
                               {"replayed_location", 49000},
                               {"replayed_timestamp", nullptr},
                               {"paused", false}}));
  EXPECT_EQ(doc["sync_standby"], true);
  EXPECT_EQ(doc["pending_restart"], true);
  EXPECT_EQ(doc["pause"], true);
  EXPECT_FALSE(doc.contains("replication"));
  EXPECT_EQ(get(s, "/sync"), 200);
  EXPECT_EQ(get(s, "/async"), 503);
}

TEST_F(RestApiTest, ClusterUnlockedWhenTheViewIsStaleOrLeaderless) {
  AgentStatus s = replica();
  s.cluster->leader.reset();
  EXPECT_EQ(body(call(s, "GET", "/patroni"))["cluster_unlocked"], true);

  s = replica();
  s.dcs_reachable = false;  // last read 10 s ago: still within ttl
  s.dcs_last_seen = clock.wallNow() - std::chrono::seconds(10);
  EXPECT_FALSE(body(call(s, "GET", "/patroni")).contains("cluster_unlocked"));
  EXPECT_EQ(get(s, "/readiness"), 200);
  s.dcs_last_seen = clock.wallNow() - std::chrono::seconds(31);
  EXPECT_EQ(body(call(s, "GET", "/patroni"))["cluster_unlocked"], true);
  EXPECT_EQ(get(s, "/readiness"), 503);
  EXPECT_EQ(get(s, "/cluster"), 503);
}

TEST_F(RestApiTest, ClusterDocument) {
  AgentStatus s = replica();
  s.cluster->sync = json{{"leader", "n1"}, {"sync_standby", "n3"}};
  s.cluster->config = json{{"pause", true}};
  s.cluster->failover =
      json{{"leader", "n1"}, {"member", "n2"}, {"scheduled_at", "2024-01-01T01:00:00+00:00"}};
  json doc = body(call(s, "GET", "/cluster"));
  ASSERT_EQ(doc["members"].size(), 3u);
  const json& n1 = doc["members"][0];
  const json& n2 = doc["members"][1];
  const json& n3 = doc["members"][2];
  EXPECT_EQ(n1["name"], "n1");
  EXPECT_EQ(n1["role"], "leader");
  EXPECT_FALSE(n1.contains("lag"));
  EXPECT_EQ(n1["host"], "127.0.0.1");
  EXPECT_EQ(n1["port"], 5432);
  EXPECT_EQ(n1["api_url"], "http://127.0.0.1:8432/patroni");
  EXPECT_EQ(n1["state"], "running");
  EXPECT_EQ(n1["timeline"], 2);
  EXPECT_EQ(n2["role"], "replica");
  EXPECT_EQ(n2["lag"], kOptime - 49000);
  EXPECT_EQ(n3["role"], "sync_standby");
  EXPECT_EQ(n3["lag"], "unknown");
  EXPECT_EQ(doc["pause"], true);
  EXPECT_EQ(doc["scheduled_switchover"],
            json({{"at", "2024-01-01T01:00:00+00:00"}, {"from", "n1"}, {"to", "n2"}}));
}

TEST_F(RestApiTest, HistoryAndConfig) {
  AgentStatus s = primary();
  json history = body(call(s, "GET", "/history"));
  ASSERT_TRUE(history.is_array());
  EXPECT_EQ(history[0][0], 1);
  EXPECT_EQ(history[0][4], "n1");
  EXPECT_EQ(body(call(s, "GET", "/config")), json({{"ttl", 30}, {"loop_wait", 10}}));
  s.cluster->config.reset();
  EXPECT_EQ(get(s, "/config"), 502);
  s.cluster.reset();
  EXPECT_EQ(get(s, "/history"), 503);
  EXPECT_EQ(get(s, "/config"), 503);
  EXPECT_EQ(get(s, "/cluster"), 503);
}

TEST_F(RestApiTest, LivenessFollowsTheLoop) {
  AgentStatus s = replica();
  EXPECT_EQ(get(s, "/liveness"), 200);
  clock.advance(std::chrono::seconds(39));
  EXPECT_EQ(get(s, "/liveness"), 200);
  clock.advance(std::chrono::seconds(2));  // 41 s > ttl + loop_wait
  EXPECT_EQ(get(s, "/liveness"), 503);
  s.settings.paused = true;
  EXPECT_EQ(get(s, "/liveness"), 200);
  AgentStatus fresh = replica();
  fresh.last_loop = MonoTime{};
  EXPECT_EQ(get(fresh, "/liveness"), 503);
  EXPECT_TRUE(call(s, "GET", "/liveness").body.empty());
}

TEST_F(RestApiTest, Readiness) {
  EXPECT_EQ(get(primary(), "/readiness"), 200);
  EXPECT_EQ(get(replica(), "/readiness"), 200);
  EXPECT_EQ(get(stopped(), "/readiness"), 503);
  AgentStatus cut_off = replica();
  cut_off.cluster.reset();
  EXPECT_EQ(get(cut_off, "/readiness"), 503);
  AgentStatus leader_down = primary();
  leader_down.state = "stopped";
  EXPECT_EQ(get(leader_down, "/readiness"), 200);
}

TEST_F(RestApiTest, UnknownPathsMethodsAndActions) {
  AgentStatus s = primary();
  auto nf = call(s, "GET", "/nope");
  EXPECT_EQ(nf.status, 404);
  EXPECT_THAT(body(nf)["error"].get<std::string>(), HasSubstr("/nope"));
  EXPECT_EQ(call(s, "POST", "/nope").status, 404);

  auto na = call(s, "POST", "/primary");
  EXPECT_EQ(na.status, 405);
  EXPECT_EQ(na.headers["Allow"], "GET, HEAD, OPTIONS");
  EXPECT_EQ(call(s, "PUT", "/patroni").status, 405);
  EXPECT_EQ(call(s, "DELETE", "/cluster").status, 405);
  EXPECT_EQ(call(s, "OPTIONS", "/metrics").status, 405);

  for (const char* path : {"/switchover", "/failover", "/restart", "/reload", "/reinitialize"}) {
    auto r = call(s, "POST", path);
    EXPECT_EQ(r.status, 501) << path;
    EXPECT_THAT(body(r)["error"].get<std::string>(), HasSubstr("not implemented")) << path;
    EXPECT_EQ(call(s, "GET", path).status, 405) << path;
  }
  EXPECT_EQ(call(s, "DELETE", "/switchover").status, 501);
  EXPECT_EQ(call(s, "DELETE", "/restart").status, 501);
  EXPECT_EQ(call(s, "DELETE", "/reload").status, 405);
  EXPECT_EQ(call(s, "PATCH", "/config").status, 501);
  EXPECT_EQ(call(s, "PUT", "/config").status, 501);
}

// Every line is a comment or a sample "name{labels} value"; every sample's family has a TYPE.
std::map<std::string, double> parseExposition(const std::string& text) {
  static const std::regex sample_re(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.eE+-]+)$)");
  static const std::regex meta_re(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
  std::map<std::string, double> samples;
  std::set<std::string> typed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, meta_re)) {
      if (m[1] == "TYPE") {
        EXPECT_TRUE(typed.insert(m[2]).second) << "duplicate TYPE: " << line;
        EXPECT_THAT((std::vector<std::string>{"gauge", "counter"}), ::testing::Contains(m[3].str()))
            << line;
      }
      continue;
    }
    if (!std::regex_match(line, m, sample_re)) {
      ADD_FAILURE() << "not a valid exposition line: [" << line << "]";
      continue;
    }
    EXPECT_TRUE(typed.count(m[1])) << "sample before its TYPE: " << line;
    std::string key = line.substr(0, line.rfind(' '));
    EXPECT_FALSE(samples.count(key)) << "duplicate series: " << line;
    samples[key] = std::stod(m[5]);
  }
  return samples;
}

TEST_F(RestApiTest, FailsafeServesTheMembersAndReportsAnActiveFailsafe) {
  AgentStatus s = primary();
  // Off: Patroni's 502.
  EXPECT_EQ(get(s, "/failsafe"), 502);
  s.settings.failsafe_mode = true;
  s.failsafe_members = {{"n1", "http://127.0.0.1:8008/patroni"},
                        {"n2", "http://127.0.0.1:8009/patroni"}};
  auto r = call(s, "GET", "/failsafe");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body(r), (json{{"n1", "http://127.0.0.1:8008/patroni"},
                           {"n2", "http://127.0.0.1:8009/patroni"}}));
  // The heartbeat is the agent's to answer; without it this server cannot.
  EXPECT_EQ(call(s, "POST", "/failsafe").status, 501);
  auto put = call(s, "PUT", "/failsafe");
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.headers["Allow"], "GET, HEAD, POST");

  EXPECT_FALSE(body(call(s, "GET", "/patroni")).contains("failsafe_mode_is_active"));
  EXPECT_EQ(
      parseExposition(
          call(s, "GET", "/metrics").body)[R"(patroni_failsafe_mode_is_active{scope="demo"})"],
      0);
  s.failsafe_active = true;
  EXPECT_EQ(body(call(s, "GET", "/patroni"))["failsafe_mode_is_active"], true);
  EXPECT_EQ(
      parseExposition(
          call(s, "GET", "/metrics").body)[R"(patroni_failsafe_mode_is_active{scope="demo"})"],
      1);
}

TEST_F(RestApiTest, MetricsForAPrimary) {
  auto r = call(primary(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, kMetricsContentType);
  ASSERT_FALSE(r.body.empty());
  EXPECT_EQ(r.body.back(), '\n');
  auto m = parseExposition(r.body);
  const std::string l = R"({scope="demo",member="n1")";
  EXPECT_EQ(m[R"(patroni_primary{scope="demo"})"], 1);
  EXPECT_EQ(m[R"(patroni_replica{scope="demo"})"], 0);
  EXPECT_EQ(m[R"(patroni_postgres_running{scope="demo"})"], 1);
  EXPECT_EQ(m[R"(patroni_xlog_location{scope="demo"})"], kOptime);
  EXPECT_EQ(m[R"(patroni_postgres_timeline{scope="demo"})"], 2);
  EXPECT_EQ(m[R"(patroni_postgres_server_version{scope="demo"})"], 150004);
  EXPECT_EQ(m[R"(patroni_version{scope="demo"})"], 100);  // "000100"
  EXPECT_EQ(m[R"(pgfleet_role{scope="demo",member="n1",role="primary"})"], 1);
  EXPECT_EQ(m[R"(pgfleet_role{scope="demo",member="n1",role="replica"})"], 0);
  EXPECT_EQ(m["pgfleet_is_leader" + l + "}"], 1);
  EXPECT_EQ(m["pgfleet_timeline" + l + "}"], 2);
  EXPECT_EQ(m["pgfleet_wal_position_bytes" + l + "}"], kOptime);
  EXPECT_EQ(m["pgfleet_dcs_reachable" + l + "}"], 1);
  EXPECT_EQ(m["pgfleet_lease_renewals_total" + l + R"(,result="ok"})"], 12);
  EXPECT_EQ(m["pgfleet_lease_renewals_total" + l + R"(,result="failed"})"], 1);
  EXPECT_EQ(m["pgfleet_promotions_total" + l + "}"], 1);
  EXPECT_EQ(m["pgfleet_loops_total" + l + "}"], 13);
  EXPECT_EQ(m["pgfleet_last_loop_age_seconds" + l + "}"], 0);
  // Lag per other member, from the cluster view; n3 published no position and is left out.
  EXPECT_EQ(m[R"(pgfleet_replication_lag_bytes{scope="demo",member="n2"})"], kOptime - 49000);
  EXPECT_FALSE(m.count(R"(pgfleet_replication_lag_bytes{scope="demo",member="n3"})"));
  EXPECT_FALSE(m.count(R"(pgfleet_replication_lag_bytes{scope="demo",member="n1"})"));
}

TEST_F(RestApiTest, MetricsForAReplicaAndForAStoppedNode) {
  auto m = parseExposition(call(replica(), "GET", "/metrics").body);
  EXPECT_EQ(m[R"(patroni_replica{scope="demo"})"], 1);
  EXPECT_EQ(m[R"(patroni_xlog_received_location{scope="demo"})"], 49500);
  EXPECT_EQ(m[R"(patroni_xlog_replayed_location{scope="demo"})"], 49000);
  EXPECT_EQ(m[R"(pgfleet_role{scope="demo",member="n2",role="replica"})"], 1);
  EXPECT_EQ(m[R"(pgfleet_is_leader{scope="demo",member="n2"})"], 0);

  AgentStatus s = stopped();
  s.name = "odd \"name\"\\";
  s.cluster.reset();
  s.last_loop = MonoTime{};
  auto stopped_metrics = parseExposition(call(s, "GET", "/metrics").body);
  EXPECT_EQ(stopped_metrics[R"(patroni_postgres_running{scope="demo"})"], 0);
  EXPECT_EQ(stopped_metrics[R"(patroni_cluster_unlocked{scope="demo"})"], 1);
  EXPECT_EQ(stopped_metrics[R"(pgfleet_is_leader{scope="demo",member="odd \"name\"\\"})"], 0);
}

TEST(RestServer, ServesPatroniOverHttp) {
  AgentStatus s;
  s.scope = "demo";
  s.name = "n1";
  s.version = "0.1.0";
  s.state = "running";
  s.role = "replica";
  s.pg.running = true;
  s.pg.accepting = true;
  s.pg.in_recovery = true;
  s.pg.replay_lsn = 42;
  s.last_loop = std::chrono::steady_clock::now();
  std::atomic<int> snapshots{0};
  RestServer server("127.0.0.1:0", [&] {
    ++snapshots;
    return s;
  });
  ASSERT_TRUE(server.start().ok());
  ASSERT_GT(server.port(), 0);

  httplib::Client client("127.0.0.1", server.port());
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(5, 0);
  auto res = client.Get("/patroni");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  auto doc = json::parse(res->body);
  EXPECT_EQ(doc["role"], "replica");
  EXPECT_EQ(doc["xlog"]["replayed_location"], 42);
  EXPECT_EQ(doc["patroni"]["scope"], "demo");

  auto replica_check = client.Get("/replica?lag=abc");
  ASSERT_TRUE(replica_check);
  EXPECT_EQ(replica_check->status, 400);
  auto head = client.Head("/primary");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 503);
  auto options = client.Options("/replica");
  ASSERT_TRUE(options);
  EXPECT_EQ(options->status, 200);
  auto post = client.Post("/primary", "", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD, OPTIONS");
  EXPECT_GE(snapshots.load(), 5);

  // A second server cannot take the same port.
  RestServer clash("127.0.0.1:" + std::to_string(server.port()), [&] { return s; });
  auto clash_start = clash.start();
  ASSERT_FALSE(clash_start.ok());
  EXPECT_EQ(clash_start.error().code, ErrorCode::kIo);

  const int port = server.port();
  server.stop();
  server.stop();  // idempotent
  EXPECT_EQ(server.port(), 0);
  httplib::Client after("127.0.0.1", port);
  after.set_connection_timeout(2, 0);
  EXPECT_FALSE(after.Get("/patroni"));
}

TEST(RestServer, MutatingRequestsNeedTheCredentialsReadsDoNot) {
  FakeClock clock;
  auto store = std::make_shared<MemoryStore>(clock);
  MemoryDcs dcs(store, "demo", "n1", 30);
  ASSERT_TRUE(dcs.setConfig(nlohmann::json{{"ttl", 30}}, 0).ok());
  SystemClock system;
  ClusterActions actions(
      dcs, [](const ClusterView&) { return std::vector<PeerStatus>{}; },
      [] { return AgentStatus{}; }, system);
  AgentStatus s;
  s.state = "running";
  RestServer server("127.0.0.1:0", [&] { return s; });
  server.setActions(&actions);
  server.setCredentials("admin", "pa:ss w0rd");
  ASSERT_TRUE(server.start().ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(5, 0);

  auto open = client.Get("/patroni");
  ASSERT_TRUE(open);
  EXPECT_EQ(open->status, 200);
  auto none = client.Patch("/config", R"({"pause": true})", "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Basic realm=\"pgfleet\"");
  EXPECT_EQ(none->body, "no auth header received");
  httplib::Headers wrong = {{"Authorization", "Basic " + base64Encode("admin:pa:ss w0rD")}};
  auto bad = client.Patch("/config", wrong, R"({"pause": true})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 401);
  EXPECT_EQ(bad->body, "not authenticated");
  EXPECT_EQ(client.Post("/restart", wrong, "", "application/json")->status, 401);
  EXPECT_FALSE(dcs.load()->config->contains("pause")) << "nothing changed";

  httplib::Headers right = {{"Authorization", "Basic " + base64Encode("admin:pa:ss w0rd")}};
  auto ok = client.Patch("/config", right, R"({"pause": true})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(dcs.load()->config->value("pause", false), true);
  // The unimplemented actions still answer 501 once authenticated.
  EXPECT_EQ(client.Post("/reload", right, "", "application/json")->status, 501);
}

TEST(BasicAuth, MatchesOnlyTheExactCredentials) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode(std::string("\xff\xfe\x00\x3e", 4)), "//4APg==");
  EXPECT_EQ(base64Encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_TRUE(basicAuthMatches("Basic dXNlcjpwYXNz", "user", "pass"));
  EXPECT_TRUE(basicAuthMatches("basic  dXNlcjpwYXNz ", "user", "pass"));
  EXPECT_FALSE(basicAuthMatches("Basic dXNlcjpwYXN", "user", "pass"));
  EXPECT_FALSE(basicAuthMatches("Basic dXNlcjpwYXNzz", "user", "pass"));
  EXPECT_FALSE(basicAuthMatches("Bearer dXNlcjpwYXNz", "user", "pass"));
  EXPECT_FALSE(basicAuthMatches("", "user", "pass"));
  EXPECT_FALSE(basicAuthMatches("Basic", "user", "pass"));
}

TEST(RestServer, RejectsAMalformedListenAddress) {
  RestServer server("no-port", [] { return AgentStatus{}; });
  auto st = server.start();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message, HasSubstr("no-port"));
}

}  // namespace
}  // namespace pgf
