// The real pgfleetctl against a real pgfleet-broker (local backend, embedded etcd): the catalog,
// creating a single-small instance with the progress display, instances and show, a binding whose
// credentials reach PostgreSQL, unbind, delete until nothing is left, and the errors an operator
// meets (an unknown plan, a wrong password, no broker).
#include <signal.h>

#include <fstream>
#include <map>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "postgres/pg_connection.h"
#include "support/broker_process.h"
#include "support/local_cluster.h"
#include "support/ports.h"

namespace pgf::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class CtlBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override { broker_.setUp(); }
  void TearDown() override { broker_.cleanUp(); }

  // Runs pgfleetctl with the broker's URL and password in the environment; stdout and stderr
  // interleaved (stderr is not a terminal, so progress comes as plain lines).
  CommandResult ctl(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    env.emplace("PGFLEET_BROKER_URL", broker_.url());
    env.emplace("PGFLEET_BROKER_PASSWORD", broker_.password());
    args.insert(args.begin(), PGFLEET_CTL_BIN);
    auto r =
        runCommand(CommandSpec{args, env, "", "", "", std::nullopt, std::nullopt, std::nullopt, ""},
                   Millis(300000));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : CommandResult{};
  }

  BrokerProcess broker_;
};

TEST_F(CtlBrokerTest, AnInstanceFromCreateToDeleteThroughPgfleetctl) {
  ASSERT_NO_FATAL_FAILURE(broker_.start());

  auto catalog = ctl({"catalog"});
  ASSERT_EQ(catalog.exit_code, 0) << catalog.output;
  EXPECT_THAT(catalog.output, HasSubstr("+ Service: postgresql ("));
  EXPECT_THAT(catalog.output, HasSubstr("| cluster-small-sync |"));
  auto catalog_json = ctl({"catalog", "-f", "json"});
  ASSERT_EQ(catalog_json.exit_code, 0) << catalog_json.output;
  EXPECT_EQ(json::parse(catalog_json.output)["services"][0]["plans"].size(), 5u);

  auto unknown = ctl({"create", "it-1", "--plan", "huge"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("no plan \"huge\" in the catalog: the plans are "
                                        "single-small, single-medium, cluster-small"));

  // Create: progress lines on stderr while the broker works, then the result.
  auto create = ctl({"create", "it-1", "--plan", "single-small", "-p", "database=shop"});
  ASSERT_EQ(create.exit_code, 0) << create.output << broker_.log();
  EXPECT_THAT(create.output, HasSubstr("it-1: provisioning"));
  EXPECT_THAT(create.output, HasSubstr("instance it-1 created in "));
  EXPECT_THAT(create.output, HasSubstr(": the instance is ready\n"));
  auto again = ctl({"create", "it-1", "--plan", "single-small", "-p", "database=shop"});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("it already exists, with the same plan and parameters"));

  // The supervisor judges the instance within its interval (2 s).
  auto list = ctl({"instances"});
  EXPECT_TRUE(waitUntil(
      [&] {
        list = ctl({"instances"});
        return list.exit_code == 0 &&
               list.output.find(
                   "| it-1     | single-small |     1 | provision succeeded | "
                   "healthy | 127.0.0.1:") != std::string::npos;
      },
      Millis(10000)))
      << list.output;
  auto list_json = ctl({"instances", "-f", "json"});
  ASSERT_EQ(list_json.exit_code, 0) << list_json.output;
  auto instances = json::parse(list_json.output);
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0]["instance_id"], "it-1");
  EXPECT_EQ(instances[0]["parameters"], json({{"database", "shop"}}));

  // Bind: the credentials reach the instance's database.
  auto bind = ctl({"bind", "it-1", "app1", "-f", "json"});
  ASSERT_EQ(bind.exit_code, 0) << bind.output << broker_.log();
  const json credentials = json::parse(bind.output)["credentials"];
  auto conn = PgConnection::connect({{"host", credentials.value("hostname", "")},
                                     {"port", std::to_string(credentials.value("port", 0))},
                                     {"user", credentials.value("username", "")},
                                     {"password", credentials.value("password", "")},
                                     {"dbname", credentials.value("name", "")}},
                                    Millis(5000));
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  EXPECT_EQ(credentials.value("name", ""), "shop");
  EXPECT_TRUE(conn->exec("CREATE TABLE orders (id int)").ok());
  auto bind_pretty = ctl({"bind", "it-1", "app2"});
  ASSERT_EQ(bind_pretty.exit_code, 0) << bind_pretty.output;
  EXPECT_THAT(bind_pretty.output, HasSubstr("uri:"));
  EXPECT_THAT(bind_pretty.output, HasSubstr("password:"));

  auto show = ctl({"show", "it-1"});
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("Plan:            single-small ("));
  EXPECT_THAT(show.output,
              HasSubstr("Last operation:  provision succeeded: the instance is ready"));
  EXPECT_THAT(show.output, HasSubstr("Read-write:      127.0.0.1:"));
  EXPECT_THAT(show.output, HasSubstr("Bindings:        app1, app2\n"));
  EXPECT_THAT(show.output, HasSubstr("| node0 |"));
  EXPECT_THAT(show.output, Not(HasSubstr(credentials.value("password", "none"))));

  // Unbind, twice: the second time the binding is already gone.
  for (const char* binding : {"app1", "app2"}) {
    auto unbind = ctl({"unbind", "it-1", binding});
    ASSERT_EQ(unbind.exit_code, 0) << unbind.output;
    EXPECT_THAT(unbind.output, HasSubstr("removed: its role is dropped"));
  }
  auto unbind_again = ctl({"unbind", "it-1", "app1"});
  EXPECT_EQ(unbind_again.exit_code, 0) << unbind_again.output;
  EXPECT_THAT(unbind_again.output, HasSubstr("was already gone"));

  // Delete: waits until the broker answers 410, and nothing of the instance is left.
  auto remove = ctl({"delete", "it-1"});
  ASSERT_EQ(remove.exit_code, 0) << remove.output << broker_.log();
  EXPECT_THAT(remove.output, HasSubstr("instance it-1 deleted in "));
  EXPECT_EQ(broker_.instanceDirectories(), 0u);
  auto empty = ctl({"instances", "-f", "json"});
  EXPECT_EQ(json::parse(empty.output), json::array());
  auto remove_again = ctl({"delete", "it-1"});
  EXPECT_EQ(remove_again.exit_code, 0);
  EXPECT_THAT(remove_again.output, HasSubstr("it was already gone"));
  auto show_gone = ctl({"show", "it-1"});
  EXPECT_EQ(show_gone.exit_code, 1);
  EXPECT_THAT(show_gone.output, HasSubstr("the broker has no instance \"it-1\""));
}

TEST_F(CtlBrokerTest, CredentialsAndAddressProblemsAreNamed) {
  ASSERT_NO_FATAL_FAILURE(broker_.start());
  // The password from a file given on the command line wins over the environment's.
  const std::string file = broker_.dir() + "/password";
  std::ofstream(file) << broker_.password() << "\n";
  auto from_file = ctl({"--password-file", file, "catalog"}, {{"PGFLEET_BROKER_PASSWORD", "no"}});
  EXPECT_EQ(from_file.exit_code, 0) << from_file.output;

  auto wrong = ctl({"instances"}, {{"PGFLEET_BROKER_PASSWORD", "not-the-password"}});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.output,
              HasSubstr("refused the credentials of user broker (401): check the password from "
                        "PGFLEET_BROKER_PASSWORD"));
  EXPECT_THAT(wrong.output, Not(HasSubstr("not-the-password")));

  const int closed = pickFreePort();
  auto nobody = ctl({"--broker", "http://127.0.0.1:" + std::to_string(closed), "catalog"});
  EXPECT_EQ(nobody.exit_code, 1);
  EXPECT_THAT(nobody.output, HasSubstr("is unreachable"));
}

}  // namespace
}  // namespace pgf::testing
