// The supervisor's judgement of an instance, as pure functions: what keeps it from full strength,
// and whether it is healthy, recovering or degraded.
#include "broker/supervisor.h"

#include <gtest/gtest.h>

namespace pgf {
namespace {

NodeHealth node(const std::string& name, const std::string& role, bool streaming = true,
                bool agent = true) {
  NodeHealth n;
  n.name = name;
  n.agent_running = agent;
  n.role = role;
  n.streaming = streaming;
  return n;
}

InstanceHealth cluster(std::vector<NodeHealth> nodes, bool haproxy = true) {
  InstanceHealth h;
  h.haproxy_running = haproxy;
  for (const auto& n : nodes) {
    if (n.role == "primary")
      h.primaries++;
    if (n.role == "replica" && n.streaming)
      h.streaming_replicas++;
  }
  h.nodes = std::move(nodes);
  return h;
}

TEST(SupervisorHealth, MissingPartsNameEachNodeAndProcess) {
  EXPECT_EQ(missingParts(cluster(
                {node("node0", "primary"), node("node1", "replica"), node("node2", "replica")})),
            "");
  EXPECT_EQ(missingParts(cluster({node("node0", "primary"), node("node1", "", false, false),
                                  node("node2", "replica", false)},
                                 false)),
            "node1: agent not running; node2: replica not streaming; HAProxy not running");
  EXPECT_EQ(missingParts(cluster({node("node0", ""), node("node1", "replica", false)})),
            "node0: PostgreSQL not running; node1: replica not streaming; no primary");
  EXPECT_EQ(missingParts(cluster({node("node0", "primary"), node("node1", "primary")})),
            "2 primaries");
  EXPECT_EQ(missingParts(cluster({node("node0", "primary")})), "");  // a single server
}

TEST(SupervisorHealth, RecoveringUntilTheGraceRunsOutOrACrashLoop) {
  const Millis grace{300000};
  EXPECT_EQ(judgeHealth(true, false, Millis(0), grace), HealthState::kHealthy);
  EXPECT_EQ(judgeHealth(true, true, Millis(0), grace), HealthState::kHealthy);
  EXPECT_EQ(judgeHealth(false, false, Millis(0), grace), HealthState::kRecovering);
  EXPECT_EQ(judgeHealth(false, false, Millis(299999), grace), HealthState::kRecovering);
  EXPECT_EQ(judgeHealth(false, false, Millis(300000), grace), HealthState::kDegraded);
  EXPECT_EQ(judgeHealth(false, true, Millis(1000), grace), HealthState::kDegraded);
  EXPECT_EQ(healthStateName(HealthState::kRecovering), "recovering");
}

}  // namespace
}  // namespace pgf
