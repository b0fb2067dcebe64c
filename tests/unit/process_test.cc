// runCommand and spawnProcess: what a child starts with.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/process.h"

namespace pgf {
namespace {

// The nice value in the 19th field of /proc/self/stat, as the child itself reads it.
std::string childNice(std::optional<int> nice) {
  CommandSpec spec;
  spec.argv = {"sh", "-c", "cut -d' ' -f19 /proc/self/stat"};
  spec.nice = nice;
  auto r = runCommand(spec, Millis(10000));
  EXPECT_TRUE(r.ok());
  if (!r.ok() || r->exit_code != 0)
    return "failed";
  std::string out = r->output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

TEST(Process, AChildRunsAtTheNiceValueItIsGivenOrInheritsOurs) {
  const int ours = getpriority(PRIO_PROCESS, 0);
  EXPECT_EQ(childNice(std::nullopt), std::to_string(ours));
  // Raising one's nice value needs no privilege.
  EXPECT_EQ(childNice(ours + 3), std::to_string(ours + 3));
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class SpawnPidFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("process_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

// The child records itself before it runs the program: the program finds its own pid in the file
// when it starts, so that a parent killed right after the fork still leaves the child recorded.
TEST_F(SpawnPidFile, TheChildRecordsItsOwnPidBeforeTheProgramStarts) {
  const std::string pid_file = (dir_ / "child.pid").string();
  const std::string out = (dir_ / "out").string();
  CommandSpec spec;
  spec.argv = {"sh", "-c", "echo \"$$ $(cat \"$0\")\"; exec sleep 30", pid_file};
  spec.output_file = out;
  spec.pid_file = pid_file;
  auto pid = spawnProcess(spec);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  // Written when spawnProcess returns, not later.
  EXPECT_EQ(readAll(pid_file), std::to_string(*pid) + "\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (readAll(out).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(readAll(out), std::to_string(*pid) + " " + std::to_string(*pid) + "\n");
  EXPECT_FALSE(std::filesystem::exists(pid_file + ".new"));
  EXPECT_TRUE(signalProcess(*pid, SIGKILL, true));
  EXPECT_TRUE(waitProcess(*pid, Millis(5000)));
}

TEST_F(SpawnPidFile, APidFileThatCannotBeWrittenIsAnErrorAndNothingRuns) {
  const std::string out = (dir_ / "out").string();
  CommandSpec spec;
  spec.argv = {"sh", "-c", "echo started"};
  spec.output_file = out;
  spec.pid_file = (dir_ / "missing" / "child.pid").string();
  auto pid = spawnProcess(spec);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().message.find("could not record its pid"), std::string::npos)
      << pid.error().message;
  EXPECT_EQ(readAll(out), "");
}

}  // namespace
}  // namespace pgf
