// pgfleet-broker's failure paths with real instances: a broker killed with SIGKILL right after
// each journaled step of a provision, a bind, an unbind and a deprovision (the
// PGFLEET_BROKER_KILL_AT testing aid) finishes the provision, unbind and deprovision and rolls
// the bind back when it starts again; a deprovision during a provision halts it; and a delete of
// an instance whose provision failed (its PostgreSQL never came up) removes it. Each leaves no
// process, directory, DCS key or role behind.
#include <signal.h>

#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "support/broker_process.h"
#include "support/local_cluster.h"

namespace pgf::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using Answer = BrokerAnswer;

class BrokerRecoveryTest : public BrokerTest {
 protected:
  // Starts a broker that kills itself after committing `step`, runs `request` on it, and checks
  // that it died; then starts a broker without the kill point.
  template <typename Request>
  void killedAt(const std::string& step, Request request) {
    SCOPED_TRACE("killed at \"" + step + "\"");
    ASSERT_NO_FATAL_FAILURE(startBroker({{"PGFLEET_BROKER_KILL_AT", step}}));
    request();
    ASSERT_TRUE(broker_.waitExit(Millis(seconds(180))))
        << "the broker did not reach \"" << step << "\"\n"
        << brokerLog();
    ASSERT_NO_FATAL_FAILURE(startBroker());
  }
  // How many binding roles (b_...) the instance behind `credentials` has.
  static int bindingRoles(const json& credentials) {
    auto conn = connectWith(credentials);
    if (!conn.ok())
      return -1;
    auto n = conn->query("SELECT count(*) AS n FROM pg_roles WHERE rolname LIKE 'b\\_%'");
    return n.ok() ? std::stoi(n->get(0, "n").value_or("-1")) : -1;
  }
  // Nothing of any instance is left: no recorded process alive (among those seen before), no
  // directory, no DCS key.
  void expectNothingLeft(const std::vector<pid_t>& seen) {
    for (pid_t pid : seen)
      EXPECT_FALSE(processAlive(pid)) << "pid " << pid << " still runs";
    EXPECT_EQ(instanceDirectories(), 0u);
    EXPECT_EQ(broker_.dcsKeys(), 0);
  }
};

TEST_F(BrokerRecoveryTest, ABrokerKilledAtEveryStepFinishesOrRollsBackItsOperation) {
  const std::vector<std::string> provision_steps = {
      "provision begun", "ports reserved",   "nodes started",
      "nodes healthy",   "database created", "write through the endpoint succeeded"};
  std::vector<std::string> instances;
  std::vector<pid_t> seen;
  for (size_t i = 0; i < provision_steps.size(); ++i) {
    const std::string id = fmt::format("kill-{}", i);
    instances.push_back(id);
    ASSERT_NO_FATAL_FAILURE(killedAt(provision_steps[i], [&] {
      // Killed before it answers when the step is the first one: the platform sees no answer.
      call("PUT", "/v2/service_instances/" + id + "?accepts_incomplete=true",
           provisionBody(kSingleSmall));
    }));
    Answer done = waitOperation(id, Millis(seconds(180)));
    ASSERT_EQ(done.status, 200) << done.text << brokerLog();
    EXPECT_EQ(done.body.value("state", ""), "succeeded") << provision_steps[i] << ": " << done.text;
    EXPECT_EQ(instanceDirectories(), i + 1) << "one directory per instance, none twice";
    stopBroker(SIGTERM);
  }
  for (pid_t pid : broker_.recordedPids())
    seen.push_back(pid);
  // One agent, one PostgreSQL and one HAProxy per instance: nothing was started twice.
  EXPECT_EQ(seen.size(), 3 * provision_steps.size());

  // A bind killed once its role exists is rolled back: the role is dropped, the binding forgotten.
  ASSERT_NO_FATAL_FAILURE(startBroker());
  const std::string inst = "/v2/service_instances/kill-0";
  const json bind_body = {{"service_id", kService}, {"plan_id", kSingleSmall}};
  Answer kept = call("PUT", inst + "/service_bindings/kept", bind_body);
  ASSERT_EQ(kept.status, 201) << kept.text;
  const json credentials = kept.body["credentials"];
  ASSERT_EQ(bindingRoles(credentials), 1);
  stopBroker(SIGTERM);
  ASSERT_NO_FATAL_FAILURE(
      killedAt("role created", [&] { call("PUT", inst + "/service_bindings/lost", bind_body); }));
  EXPECT_EQ(call("GET", inst + "/service_bindings/lost").status, 404);
  EXPECT_EQ(bindingRoles(credentials), 1) << "the rolled-back bind's role is still there";
  EXPECT_EQ(call("PUT", inst + "/service_bindings/lost", bind_body).status, 201)
      << "the platform's retry starts clean";
  EXPECT_EQ(bindingRoles(credentials), 2);
  stopBroker(SIGTERM);

  // An unbind killed once the role is dropped is finished.
  const std::string unbind =
      fmt::format("/service_bindings/lost?service_id={}&plan_id={}", kService, kSingleSmall);
  ASSERT_NO_FATAL_FAILURE(killedAt("role dropped", [&] { call("DELETE", inst + unbind); }));
  EXPECT_EQ(call("GET", inst + "/service_bindings/lost").status, 404);
  EXPECT_EQ(call("DELETE", inst + unbind).status, 410);
  EXPECT_EQ(bindingRoles(credentials), 1);
  stopBroker(SIGTERM);

  // A deprovision killed at each of its steps is finished.
  const std::vector<std::string> deprovision_steps = {"deprovision begun", "nodes removed"};
  for (size_t i = 0; i < deprovision_steps.size(); ++i) {
    const std::string id = instances[i];
    ASSERT_NO_FATAL_FAILURE(killedAt(deprovision_steps[i], [&] {
      call("DELETE", "/v2/service_instances/" + id + deleteQuery(kSingleSmall));
    }));
    Answer end = waitOperation(id, Millis(seconds(120)));
    EXPECT_EQ(end.status, 410) << deprovision_steps[i] << ": " << end.text << brokerLog();
    stopBroker(SIGTERM);
  }
  ASSERT_NO_FATAL_FAILURE(startBroker());
  for (size_t i = deprovision_steps.size(); i < instances.size(); ++i)
    ASSERT_EQ(
        call("DELETE", "/v2/service_instances/" + instances[i] + deleteQuery(kSingleSmall)).status,
        202);
  for (const auto& id : instances)
    EXPECT_EQ(waitOperation(id, Millis(seconds(120))).status, 410) << id << brokerLog();
  expectNothingLeft(seen);
  EXPECT_FALSE(connectWith(credentials).ok());
}

TEST_F(BrokerRecoveryTest, ADeprovisionDuringAProvisionHaltsItAndRemovesWhatItMade) {
  ASSERT_NO_FATAL_FAILURE(startBroker());
  const std::string inst = "/v2/service_instances/halted";
  Answer put = call("PUT", inst + "?accepts_incomplete=true", provisionBody(kClusterSmall));
  ASSERT_EQ(put.status, 202) << put.text;
  const std::string provision = put.body.value("operation", "");
  // Halted while its nodes start: the agents run, PostgreSQL is being initialised.
  std::vector<pid_t> seen;
  ASSERT_TRUE(waitUntil(
      [&] {
        seen = broker_.recordedPids();
        return seen.size() >= 2;
      },
      Millis(seconds(60))))
      << brokerLog();
  Answer del = call("DELETE", inst + deleteQuery(kClusterSmall));
  ASSERT_EQ(del.status, 202) << del.text;
  EXPECT_NE(del.body.value("operation", ""), provision);
  // §11: the provision says it was halted (it is remembered while the delete runs).
  Answer halted = call("GET", inst + "/last_operation?operation=" + provision);
  if (halted.status == 200)
    EXPECT_EQ(halted.body.value("state", ""), "failed") << halted.text;
  else
    EXPECT_EQ(halted.status, 400) << "only once the delete has forgotten the instance";
  EXPECT_EQ(waitOperation("halted", Millis(seconds(120))).status, 410) << brokerLog();
  for (pid_t pid : broker_.recordedPids())
    seen.push_back(pid);
  expectNothingLeft(seen);
  EXPECT_EQ(call("GET", inst).status, 404);
}

TEST_F(BrokerRecoveryTest, AFailedProvisionIsRemovedByItsOrphanMitigation) {
  // A plan whose PostgreSQL refuses its configuration: the agent runs, the server never starts,
  // and the provision fails after broker.provision_timeout.
  broker_.editConfig([](std::string& config) {
    config.replace(config.find("broker:\n"), std::string("broker:\n").size(),
                   "broker:\n  provision_timeout: 10\n");
    config.replace(config.find("plans:\n"), std::string("plans:\n").size(),
                   "plans:\n"
                   "  - id: 6c1b1c2e-0f4e-4c55-9d0e-000000b40c3e\n"
                   "    name: broken\n"
                   "    description: PostgreSQL cannot start with this plan\n"
                   "    parameters: {shared_preload_libraries: pgfleet_no_such_library}\n");
  });
  ASSERT_NO_FATAL_FAILURE(startBroker());
  const std::string plan = "6c1b1c2e-0f4e-4c55-9d0e-000000b40c3e";
  const std::string inst = "/v2/service_instances/never-up";
  ASSERT_EQ(call("PUT", inst + "?accepts_incomplete=true", provisionBody(plan)).status, 202);
  Answer failed = waitOperation("never-up", Millis(seconds(60)));
  ASSERT_EQ(failed.status, 200) << failed.text;
  EXPECT_EQ(failed.body.value("state", ""), "failed") << failed.text;
  EXPECT_NE(failed.body.value("description", "").find("not healthy within 10 s"), std::string::npos)
      << failed.text;
  const std::vector<pid_t> seen = broker_.recordedPids();
  EXPECT_GE(seen.size(), 2u) << "its agent and HAProxy run";
  EXPECT_EQ(call("GET", inst).status, 404) << "§5: a failed provision is not an instance";
  // The platform deletes what it asked for (OSB §12).
  Answer del = call("DELETE", inst + deleteQuery(plan));
  ASSERT_EQ(del.status, 202) << del.text;
  EXPECT_EQ(waitOperation("never-up", Millis(seconds(120))).status, 410) << brokerLog();
  expectNothingLeft(seen);
}

}  // namespace
}  // namespace pgf::testing
