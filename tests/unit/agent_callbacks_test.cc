// Callback scripts: the command line they get, that they run in order off the caller's thread,
// that a hanging one is killed, and that a flood of them is bounded.
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/callbacks.h"
#include "agent/config.h"

namespace pgf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Callbacks, GetActionRoleAndScopeAfterTheCommandsWords) {
  EXPECT_THAT(callbackArgv("  /usr/bin/notify   --quiet\tx ", "on_start", "master", "demo"),
              ElementsAre("/usr/bin/notify", "--quiet", "x", "on_start", "master", "demo"));
}

TEST(Callbacks, RunInOrderWithoutBlockingTheCaller) {
  const std::string dir = ::testing::TempDir();
  const std::string log = dir + "callbacks_test.log";
  std::remove(log.c_str());
  const std::string script = dir + "callbacks_test.sh";
  std::ofstream(script) << "sleep 0.2; echo \"$@\" >> " << log << "\n";
  CallbackRunner runner(
      {{"on_start", "/bin/sh " + script}, {"on_role_change", "/bin/sh " + script}}, "demo");
  auto start = std::chrono::steady_clock::now();
  runner.fire("on_start", "replica");
  runner.fire("on_stop", "replica");  // no command configured: nothing runs
  runner.fire("on_role_change", "master");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  ASSERT_TRUE(runner.drain(Millis(10000)));
  EXPECT_EQ(readAll(log), "on_start replica demo\non_role_change master demo\n");
}

TEST(Callbacks, AHangingCallbackIsKilledAndAFloodIsBounded) {
  CallbackRunner runner({{"on_reload", "/bin/sleep 30"}}, "demo", Millis(200));
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kMaxPendingCallbacks + 5; ++i)
    runner.fire("on_reload", "master");
  // At most kMaxPendingCallbacks (plus the one already running) run, each killed after 200 ms.
  ASSERT_TRUE(runner.drain(Millis(10000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            Millis(200) * static_cast<int>(kMaxPendingCallbacks + 2) + Millis(3000));
}

TEST(Callbacks, ComeFromPostgresqlCallbacksInTheConfig) {
  const std::string base =
      "scope: demo\nname: n1\netcd3:\n  host: 127.0.0.1:2379\npostgresql:\n  data_dir: /d\n"
      "  callbacks:\n";
  auto r = parseAgentConfig(base + "    on_role_change: /usr/bin/notify role\n    on_other: x\n");
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->config.callbacks.at("on_role_change"), "/usr/bin/notify role");
  EXPECT_EQ(r->config.callbacks.size(), 1u);
  EXPECT_THAT(r->warnings, ::testing::Contains(HasSubstr("postgresql.callbacks.on_other")));
  auto empty = parseAgentConfig(base + "    on_start: ' '\n");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.error().message, HasSubstr("postgresql.callbacks.on_start"));
}

}  // namespace
}  // namespace pgf
