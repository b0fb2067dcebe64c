// `pgfleetctl list` against a real etcd holding a cluster written through EtcdDcs, and, when
// Debian's patronictl is installed, side by side with `patronictl list` on the same keys.
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "dcs/etcd/etcd_dcs.h"
#include "support/etcd_process.h"
#include "support/ports.h"

namespace pgf::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr const char* kPatronictl = "/usr/bin/patronictl";

CommandResult run(std::vector<std::string> argv) {
  auto r = runCommand(
      CommandSpec{std::move(argv), {}, "", "", "", std::nullopt, std::nullopt, std::nullopt, ""},
      Millis(30000));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : CommandResult{};
}

// The table's lines (borders and rows), without the title line, which differs on purpose.
std::vector<std::string> tableBody(const std::string& output) {
  std::vector<std::string> lines;
  std::istringstream in(output);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (line.empty() || (line[0] != '|' && line[0] != '+'))
      continue;
    if (!first)
      lines.push_back(line);
    first = false;
  }
  return lines;
}

class CtlListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<EtcdProcess>(dir_.path() + "/etcd");
    auto st = etcd_->start();
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
  void TearDown() override {
    if (etcd_)
      etcd_->stop();
  }

  DcsPtr memberDcs(const std::string& name) {
    EtcdDcsOptions o;
    o.endpoints = {etcd_->endpoint()};
    o.scope = "demo";
    o.name = name;
    auto dcs = makeEtcdDcs(o);
    EXPECT_TRUE(dcs.ok());
    return dcs.ok() ? std::move(dcs).value() : nullptr;
  }

  // A leader and two replicas, as three agents would have written them.
  void writeCluster() {
    n1_ = memberDcs("n1");
    n2_ = memberDcs("n2");
    n3_ = memberDcs("n3");
    ASSERT_TRUE(n1_ && n2_ && n3_);
    ASSERT_TRUE(n1_->attemptInitialize("7312345678901234567").value());
    ASSERT_TRUE(n1_->setConfig(json{{"ttl", 30}, {"loop_wait", 10}}).ok());
    auto member = [](int port, const char* state, const char* role, int64_t xlog) {
      return json{{"conn_url", "postgres://127.0.0.1:" + std::to_string(port) + "/postgres"},
                  {"api_url", "http://127.0.0.1:" + std::to_string(port + 3000) + "/patroni"},
                  {"state", state},
                  {"role", role},
                  {"version", "0.1.0"},
                  {"xlog_location", xlog},
                  {"timeline", 2}};
    };
    ASSERT_TRUE(n1_->touchMember(member(5432, "running", "master", 104857600)).ok());
    ASSERT_TRUE(n1_->acquireLeader().value());
    ASSERT_TRUE(n1_->setStatus(json{{"optime", 104857600}}).ok());
    ASSERT_TRUE(n2_->touchMember(member(5433, "streaming", "replica", 102760448)).ok());
    auto n3 = member(5434, "streaming", "replica", 104857600);
    n3["tags"] = json{{"nofailover", true}};
    ASSERT_TRUE(n3_->touchMember(n3).ok());
  }

  TempDir dir_{"pgfleet-ctl-list"};
  std::unique_ptr<EtcdProcess> etcd_;
  DcsPtr n1_, n2_, n3_;
};

TEST_F(CtlListTest, ListsMembersFromEtcd) {
  writeCluster();
  auto table = run({PGFLEET_CTL_BIN, "--etcd", etcd_->endpoint(), "list", "demo"});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("+ Cluster: demo (7312345678901234567) "));
  EXPECT_THAT(table.output,
              HasSubstr("| n1     | 127.0.0.1:5432 | Leader  | running   |  2 |           |"));
  EXPECT_THAT(table.output,
              HasSubstr("| n2     | 127.0.0.1:5433 | Replica | streaming |  2 |         2 |"));
  EXPECT_THAT(table.output, HasSubstr("| nofailover: true |"));

  auto js =
      run({PGFLEET_CTL_BIN, "--etcd", etcd_->endpoint(), "--scope", "demo", "list", "-f", "json"});
  ASSERT_EQ(js.exit_code, 0) << js.output;
  auto doc = json::parse(js.output);
  ASSERT_EQ(doc.size(), 3u);
  EXPECT_EQ(doc[0]["Role"], "Leader");
  EXPECT_EQ(doc[1]["Lag in MB"], 2);
  EXPECT_EQ(doc[2]["Lag in MB"], 0);
}

TEST_F(CtlListTest, ReadsTheTargetFromAnAgentConfig) {
  writeCluster();
  std::string config = dir_.path() + "/agent.yml";
  std::ofstream(config) << "scope: demo\nname: n9\netcd3:\n  hosts: " << etcd_->endpoint()
                        << "\npostgresql:\n  data_dir: " << dir_.path() << "/data\n";
  auto r = run({PGFLEET_CTL_BIN, "-c", config, "list"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("| n3     | 127.0.0.1:5434 | Replica | streaming |  2 |"));
}

TEST_F(CtlListTest, MatchesPatronictl) {
  if (access(kPatronictl, X_OK) != 0)
    GTEST_SKIP() << "patronictl is not installed";
  writeCluster();
  std::string config = dir_.path() + "/patroni.yml";
  std::ofstream(config) << "scope: demo\nname: n9\netcd3:\n  hosts: " << etcd_->endpoint() << "\n";
  auto theirs = run({kPatronictl, "-c", config, "list"});
  ASSERT_EQ(theirs.exit_code, 0) << theirs.output;
  auto ours = run({PGFLEET_CTL_BIN, "--etcd", etcd_->endpoint(), "list", "demo"});
  ASSERT_EQ(ours.exit_code, 0) << ours.output;
  auto their_body = tableBody(theirs.output);
  ASSERT_EQ(their_body.size(), 6u) << theirs.output;
  EXPECT_EQ(tableBody(ours.output), their_body) << "pgfleetctl:\n"
                                                << ours.output << "patronictl:\n"
                                                << theirs.output;
}

TEST_F(CtlListTest, FailsClearlyWithoutEtcdOrCluster) {
  auto missing = run({PGFLEET_CTL_BIN, "--etcd", etcd_->endpoint(), "list", "nosuch"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("no cluster nosuch in etcd"));

  const int closed_port = pickFreePort();
  auto down = run({PGFLEET_CTL_BIN, "--etcd", "127.0.0.1:" + std::to_string(closed_port),
                   "--timeout", "1", "list", "demo"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_THAT(down.output, HasSubstr("reading cluster demo from etcd"));

  auto no_target = run({PGFLEET_CTL_BIN, "list"});
  EXPECT_EQ(no_target.exit_code, 1);
  EXPECT_THAT(no_target.output, HasSubstr("no etcd endpoints"));
}

}  // namespace
}  // namespace pgf::testing
