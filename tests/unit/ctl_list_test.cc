#include "ctl/list.h"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/ctl_context.h"
#include "dcs/memory/memory_dcs.h"
#include "fakes/fake_clock.h"

namespace pgf::ctl {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

MemberInfo member(const std::string& name, const std::string& state, int port,
                  std::optional<int64_t> xlog, json extra = json::object()) {
  json raw = {{"conn_url", "postgres://127.0.0.1:" + std::to_string(port) + "/postgres"},
              {"api_url", "http://127.0.0.1:8008/patroni"},
              {"state", state},
              {"role", "replica"},
              {"timeline", 3}};
  if (xlog)
    raw["xlog_location"] = *xlog;
  raw.update(extra);
  return parseMember(name, raw.dump(), 1);
}

// n1 leads at optime 100 MiB; n2 is 2.5 MiB behind, n3 has not published a position.
ClusterView threeNodes() {
  ClusterView c;
  c.initialize = "7312345678901234567";
  c.config = json{{"ttl", 30}};
  c.leader = LeaderInfo{"n1", 1, 1};
  c.status = json{{"optime", 100 * 1048576}};
  c.members = {member("n2", "streaming", 5433, 100 * 1048576 - 2621440),
               member("n1", "running", 5432, 100 * 1048576), member("n3", "starting", 5434, {})};
  return c;
}

TEST(CtlList, PrettyTableLikePatronictl) {
  const std::string want =
      "+ Cluster: demo (7312345678901234567) ----------+----+-----------+\n"
      "| Member | Host           | Role    | State     | TL | Lag in MB |\n"
      "+--------+----------------+---------+-----------+----+-----------+\n"
      "| n1     | 127.0.0.1:5432 | Leader  | running   |  3 |           |\n"
      "| n2     | 127.0.0.1:5433 | Replica | streaming |  3 |         2 |\n"
      "| n3     | 127.0.0.1:5434 | Replica | starting  |  3 |   unknown |\n"
      "+--------+----------------+---------+-----------+----+-----------+\n";
  EXPECT_EQ(formatMembersTable("demo", threeNodes()), want);
}

TEST(CtlList, SyncStandbyPendingRestartTagsAndServiceInfo) {
  ClusterView c = threeNodes();
  c.sync = json{{"leader", "n1"}, {"sync_standby", "n2"}};
  c.config = json{{"pause", true}};
  c.members[2] = member("n3", "running", 5434, 100 * 1048576 - 3 * 1048576,
                        json{{"pending_restart", true}, {"tags", {{"nofailover", true}}}});
  std::string table = formatMembersTable("demo", c);
  EXPECT_THAT(table, HasSubstr("| Member | Host           | Role         | State     | TL | Lag in "
                               "MB | Pending restart | Tags             |"));
  EXPECT_THAT(table, HasSubstr("| n2     | 127.0.0.1:5433 | Sync Standby | streaming |  3 |"));
  EXPECT_THAT(table, HasSubstr("|         3 | *               | nofailover: true |"));
  EXPECT_THAT(table, ::testing::EndsWith("+\n Maintenance mode: on\n"));
}

TEST(CtlList, ScheduledRestartColumnShowsTheTime) {
  ClusterView c = threeNodes();
  c.members[1] = member("n2", "streaming", 5433, 100 * 1048576 - 2 * 1048576,
                        json{{"scheduled_restart", {{"schedule", "2030-01-01T02:00:00+00:00"}}}});
  std::string table = formatMembersTable("demo", c);
  EXPECT_THAT(table, HasSubstr("| Lag in MB | Scheduled restart         |"));
  EXPECT_THAT(table, HasSubstr("|         2 | 2030-01-01T02:00:00+00:00 |"));
}

TEST(CtlList, JsonLikePatronictl) {
  auto ordered = membersAsJson("demo", threeNodes());
  // Keys keep the column order, as patronictl prints them.
  EXPECT_EQ(ordered[1].dump(),
            R"({"Cluster":"demo","Member":"n2","Host":"127.0.0.1:5433","Role":"Replica",)"
            R"("State":"streaming","TL":3,"Lag in MB":2})");
  json got = json::parse(ordered.dump());
  json want = json::parse(R"([
    {"Cluster": "demo", "Member": "n1", "Host": "127.0.0.1:5432", "Role": "Leader",
     "State": "running", "TL": 3},
    {"Cluster": "demo", "Member": "n2", "Host": "127.0.0.1:5433", "Role": "Replica",
     "State": "streaming", "TL": 3, "Lag in MB": 2},
    {"Cluster": "demo", "Member": "n3", "Host": "127.0.0.1:5434", "Role": "Replica",
     "State": "starting", "TL": 3, "Lag in MB": "unknown"}])");
  EXPECT_EQ(got, want);
  EXPECT_EQ(json::parse(formatMembers("demo", threeNodes(), ListFormat::kJson)), want);
}

TEST(CtlList, LagRoundsHalfToEvenAsPythonDoes) {
  ClusterView c = threeNodes();
  c.members[0] = member("n2", "streaming", 5433, 100 * 1048576 - 1048576 / 2);      // 0.5 MB
  c.members[2] = member("n3", "streaming", 5434, 100 * 1048576 - 3 * 1048576 / 2);  // 1.5 MB
  json got = json::parse(membersAsJson("demo", c).dump());
  EXPECT_EQ(got[1]["Lag in MB"], 0);
  EXPECT_EQ(got[2]["Lag in MB"], 2);
}

TEST(CtlList, TsvAndUninitializedTitle) {
  ClusterView c = threeNodes();
  c.initialize.reset();
  EXPECT_THAT(formatMembersTable("demo", c), ::testing::StartsWith("+ Cluster: demo (uninit"));
  std::string tsv = formatMembers("demo", threeNodes(), ListFormat::kTsv);
  EXPECT_THAT(tsv, ::testing::StartsWith("Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB\n"));
  EXPECT_THAT(tsv, HasSubstr("demo\tn2\t127.0.0.1:5433\tReplica\tstreaming\t3\t2\n"));
}

TEST(CtlList, ParsesFormats) {
  EXPECT_EQ(parseListFormat("pretty").value(), ListFormat::kPretty);
  EXPECT_EQ(parseListFormat("json").value(), ListFormat::kJson);
  EXPECT_EQ(parseListFormat("tsv").value(), ListFormat::kTsv);
  EXPECT_FALSE(parseListFormat("yaml").ok());
}

TEST(CtlList, ResolvesTheTargetFromConfigAndFlags) {
  std::string path = ::testing::TempDir() + "ctl_list_test.yml";
  {
    std::ofstream out(path);
    out << "scope: batman\nnamespace: /pg/\nname: n1\netcd3:\n  hosts: a:1,b:2\n"
           "postgresql:\n  data_dir: /d\n";
  }
  auto t = resolveTarget(CtlOptions{path, "", "", ""});
  ASSERT_TRUE(t.ok()) << t.error().toString();
  EXPECT_EQ(t->scope, "batman");
  EXPECT_EQ(t->namespace_, "/pg");
  EXPECT_EQ(t->etcd.hosts, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(t->keyPrefix(), "/pg/batman/");

  auto overridden = resolveTarget(CtlOptions{path, "c:3, d", "svc", "robin"});
  std::remove(path.c_str());
  ASSERT_TRUE(overridden.ok()) << overridden.error().toString();
  EXPECT_EQ(overridden->scope, "robin");
  EXPECT_EQ(overridden->namespace_, "/svc");
  EXPECT_EQ(overridden->etcd.hosts, (std::vector<std::string>{"c:3", "d:2379"}));

  auto flags_only = resolveTarget(CtlOptions{"", "127.0.0.1:2379", "", "demo"});
  ASSERT_TRUE(flags_only.ok());
  EXPECT_EQ(flags_only->namespace_, "/service");

  auto no_etcd = resolveTarget(CtlOptions{"", "", "", "demo"});
  ASSERT_FALSE(no_etcd.ok());
  EXPECT_THAT(no_etcd.error().message, HasSubstr("--etcd"));
  auto no_scope = resolveTarget(CtlOptions{"", "127.0.0.1:2379", "", ""});
  ASSERT_FALSE(no_scope.ok());
  EXPECT_THAT(no_scope.error().message, HasSubstr("--scope"));
  auto bad_port = resolveTarget(CtlOptions{"", "127.0.0.1:99999", "", "demo"});
  ASSERT_FALSE(bad_port.ok());
  EXPECT_THAT(bad_port.error().message, HasSubstr("--etcd"));
}

TEST(CtlList, RunListReadsTheDcsAndReportsErrors) {
  FakeClock clock;
  auto store = std::make_shared<MemoryStore>(clock);
  store->put("/service/demo/initialize", "7312345678901234567");
  store->put("/service/demo/leader", "n1");
  store->put("/service/demo/members/n1",
             R"({"conn_url":"postgres://127.0.0.1:5432/postgres","state":"running",)"
             R"("role":"master","xlog_location":0,"timeline":1})");
  CtlTarget target;
  target.scope = "demo";
  target.etcd.hosts = {"127.0.0.1:2379"};

  MemoryDcs dcs(store, "demo", "pgfleetctl", 30);
  std::ostringstream out, err;
  EXPECT_EQ(runList(target, dcs, ListFormat::kTsv, out, err), 0);
  EXPECT_EQ(out.str(),
            "Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB\n"
            "demo\tn1\t127.0.0.1:5432\tLeader\trunning\t1\t\n");
  EXPECT_EQ(err.str(), "");

  dcs.setReachable(false);
  std::ostringstream out2, err2;
  EXPECT_EQ(runList(target, dcs, ListFormat::kPretty, out2, err2), 1);
  EXPECT_EQ(out2.str(), "");
  EXPECT_THAT(err2.str(), HasSubstr("reading cluster demo from etcd (127.0.0.1:2379)"));

  CtlTarget other = target;
  other.scope = "nosuch";
  MemoryDcs empty(store, "nosuch", "pgfleetctl", 30);
  std::ostringstream out3, err3;
  EXPECT_EQ(runList(other, empty, ListFormat::kPretty, out3, err3), 1);
  EXPECT_EQ(err3.str(), "pgfleetctl: no cluster nosuch in etcd (nothing under /service/nosuch/)\n");
}

}  // namespace
}  // namespace pgf::ctl
