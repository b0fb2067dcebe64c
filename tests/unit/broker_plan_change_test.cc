// Which plan changes the broker makes and how: the refusals (with their reasons), when a restart
// is needed, and the configuration patch the agents receive.
#include "broker/plan_change.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace pgf {
namespace {

Plan plan(const std::string& name, int nodes, const std::string& shared_buffers,
          int max_connections, int64_t disk_mb) {
  Plan p;
  p.id = name + "-id";
  p.name = name;
  p.nodes = nodes;
  p.resources.shared_buffers = shared_buffers;
  p.resources.max_connections = max_connections;
  p.resources.disk_quota_mb = disk_mb;
  return p;
}

TEST(PlanChange, MovesThatLoseCapacityOrDataAreRefusedWithTheReason) {
  const Plan single = plan("single-small", 1, "128MB", 100, 1024);
  const Plan cluster = plan("cluster-small", 3, "128MB", 100, 1024);
  EXPECT_NE(planChange(cluster, single).refusal.find("replicas"), std::string::npos);
  EXPECT_EQ(planChange(single, cluster).refusal, "") << "a single server may grow";
  EXPECT_NE(planChange(single, plan("tiny", 1, "128MB", 100, 512)).refusal.find("disk quota"),
            std::string::npos);
  EXPECT_NE(planChange(plan("unlimited", 1, "128MB", 100, 0), single).refusal.find("no quota"),
            std::string::npos);
  EXPECT_NE(planChange(single, plan("few", 1, "128MB", 50, 1024)).refusal.find("fewer"),
            std::string::npos);
  Plan other_template = single;
  other_template.name = "other";
  other_template.template_file = "other.yaml.mustache";
  EXPECT_NE(planChange(single, other_template).refusal.find("template"), std::string::npos);
  // A quota lifted is no loss.
  EXPECT_EQ(planChange(single, plan("unlimited", 1, "128MB", 100, 0)).refusal, "");
}

TEST(PlanChange, BiggerResourcesRestartAndOnlyWhatChangesIsPatched) {
  const Plan small = plan("cluster-small", 3, "128MB", 100, 1024);
  Plan medium = plan("cluster-medium", 3, "512MB", 200, 4096);
  medium.resources.work_mem = "8MB";
  PlanChange c = planChange(small, medium);
  EXPECT_EQ(c.refusal, "");
  EXPECT_TRUE(c.restart);
  EXPECT_FALSE(c.synchronous_mode_changes);
  EXPECT_EQ(
      c.config_patch,
      (nlohmann::json{
          {"postgresql",
           {{"parameters",
             {{"shared_buffers", "512MB"}, {"max_connections", "200"}, {"work_mem", "8MB"}}}}}}));
  // work_mem alone is taken by a reload.
  Plan more_work_mem = small;
  more_work_mem.resources.work_mem = "16MB";
  EXPECT_FALSE(planChange(small, more_work_mem).restart);
}

TEST(PlanChange, TenantSettingsAreCheckedAndGoOverThePlans) {
  using nlohmann::json;
  EXPECT_EQ(settingsViolation(nullptr), "");
  EXPECT_EQ(settingsViolation(json::object()), "");
  EXPECT_EQ(
      settingsViolation(
          {{"work_mem", "64MB"}, {"statement_timeout", 5000}, {"max_locks_per_transaction", 128}}),
      "");
  EXPECT_NE(settingsViolation("work_mem=1GB").find("object"), std::string::npos);
  EXPECT_NE(settingsViolation({{"shared_preload_libraries", "x"}}).find("not a setting"),
            std::string::npos);
  EXPECT_NE(settingsViolation({{"work_mem", "64MB'; DROP"}}).find("size"), std::string::npos);
  EXPECT_NE(settingsViolation({{"work_mem", "1TB"}}).find("size"), std::string::npos);
  EXPECT_NE(settingsViolation({{"work_mem", "10GB"}}).find("between"), std::string::npos);
  EXPECT_NE(settingsViolation({{"statement_timeout", "5s"}}).find("integer"), std::string::npos);
  EXPECT_NE(settingsViolation({{"statement_timeout", -1}}).find("between"), std::string::npos);
  EXPECT_EQ(settingsViolation({{"log_min_duration_statement", -1}}), "");

  Plan single = plan("single-small", 1, "128MB", 100, 1024);
  single.resources.work_mem = "4MB";
  auto value = [](const std::vector<std::pair<std::string, std::string>>& ps,
                  const std::string& name) {
    for (const auto& [k, v] : ps)
      if (k == name)
        return v;
    return std::string();
  };
  const auto with = planParameters(single, {{"work_mem", "32MB"}, {"lock_timeout", 1000}});
  EXPECT_EQ(value(with, "work_mem"), "32MB");
  EXPECT_EQ(value(with, "lock_timeout"), "1000");
  EXPECT_EQ(value(with, "shared_buffers"), "128MB");
  // Settings that fail the check never reach the configuration.
  EXPECT_EQ(value(planParameters(single, {{"work_mem", "1MB\nfsync: off"}}), "work_mem"), "4MB");
}

TEST(PlanChange, NewSettingsRestartOnlyWhenPostgresReadsThemAtStartAndNeverGoDown) {
  using nlohmann::json;
  const Plan cluster = plan("cluster-small", 3, "128MB", 100, 1024);
  // A reloadable setting: patched, no restart; dropping it goes back to the plan's value.
  PlanChange live = planChange(cluster, cluster, json::object(), {{"statement_timeout", 5000}});
  EXPECT_EQ(live.refusal, "");
  EXPECT_FALSE(live.restart);
  EXPECT_EQ(live.config_patch,
            (json{{"postgresql", {{"parameters", {{"statement_timeout", "5000"}}}}}}));
  PlanChange dropped = planChange(cluster, cluster, {{"statement_timeout", 5000}}, json::object());
  EXPECT_EQ(dropped.config_patch,
            (json{{"postgresql", {{"parameters", {{"statement_timeout", nullptr}}}}}}));
  // One PostgreSQL reads at start: a rolling restart, and the value to check it by.
  PlanChange locks =
      planChange(cluster, cluster, json::object(), {{"max_locks_per_transaction", 256}});
  EXPECT_EQ(locks.refusal, "");
  EXPECT_TRUE(locks.restart);
  ASSERT_EQ(locks.restart_parameters.size(), 1u);
  EXPECT_EQ(locks.restart_parameters[0],
            (std::pair<std::string, std::string>{"max_locks_per_transaction", "256"}));
  // Going down would leave a standby below its primary: refused.
  EXPECT_NE(planChange(cluster, cluster, {{"max_locks_per_transaction", 256}},
                       {{"max_locks_per_transaction", 128}})
                .refusal.find("cannot go down"),
            std::string::npos);
  EXPECT_NE(planChange(cluster, cluster, {{"max_locks_per_transaction", 256}}, json::object())
                .refusal.find("256 to 64"),
            std::string::npos);
  EXPECT_NE(planChange(cluster, cluster, {{"max_prepared_transactions", 10}}, json::object())
                .refusal.find("cannot go down"),
            std::string::npos);
  // A plan change keeps the tenant's settings over the new plan's resources.
  Plan medium = plan("cluster-medium", 3, "512MB", 200, 4096);
  medium.resources.work_mem = "8MB";
  PlanChange keep = planChange(cluster, medium, {{"work_mem", "64MB"}}, {{"work_mem", "64MB"}});
  EXPECT_FALSE(keep.config_patch["postgresql"]["parameters"].contains("work_mem"));
}

TEST(PlanChange, SynchronousModeChangesLiveAndParametersThePlanDropsAreRemoved) {
  Plan async = plan("cluster-small", 3, "128MB", 100, 1024);
  async.parameters["log_min_duration_statement"] = "500";
  Plan sync = plan("cluster-small-sync", 3, "128MB", 100, 1024);
  sync.synchronous_mode = true;
  PlanChange c = planChange(async, sync);
  EXPECT_EQ(c.refusal, "");
  EXPECT_FALSE(c.restart);
  EXPECT_TRUE(c.synchronous_mode_changes);
  EXPECT_EQ(c.config_patch["synchronous_mode"], true);
  EXPECT_TRUE(c.config_patch["postgresql"]["parameters"]["log_min_duration_statement"].is_null());
  EXPECT_FALSE(c.config_patch["postgresql"]["parameters"].contains("shared_buffers"));
}

TEST(PlanChange, ASingleServerGrowsIntoAClusterWithTheClustersTimingAndWal) {
  Plan single = plan("single-small", 1, "128MB", 100, 1024);
  Plan cluster = plan("cluster-small", 3, "128MB", 100, 1024);
  cluster.ttl = 15;
  cluster.loop_wait = 2;
  cluster.retry_timeout = 5;
  PlanChange c = planChange(single, cluster);
  EXPECT_TRUE(c.grow);
  EXPECT_FALSE(c.restart);
  EXPECT_EQ(c.config_patch["ttl"], 15);
  EXPECT_EQ(c.config_patch["loop_wait"], 2);
  EXPECT_EQ(c.config_patch["retry_timeout"], 5);
  EXPECT_EQ(c.config_patch["postgresql"]["parameters"]["wal_keep_size"], "128MB");
  EXPECT_FALSE(planChange(cluster, cluster).grow);
}

TEST(PlanChange, AClusterKeepsWalForItsReplicasUnlessThePlanSetsIt) {
  const auto params = planParameters(plan("cluster-small", 3, "128MB", 100, 0));
  EXPECT_NE(std::find(params.begin(), params.end(),
                      std::pair<std::string, std::string>{"wal_keep_size", "128MB"}),
            params.end());
  Plan own = plan("cluster-own", 3, "128MB", 100, 0);
  own.parameters["wal_keep_size"] = "1GB";
  int found = 0;
  for (const auto& [k, v] : planParameters(own))
    found += k == "wal_keep_size" ? 1 : 0;
  EXPECT_EQ(found, 1);
  for (const auto& [k, v] : planParameters(plan("single", 1, "128MB", 100, 0)))
    EXPECT_NE(k, "wal_keep_size");
}

}  // namespace
}  // namespace pgf
