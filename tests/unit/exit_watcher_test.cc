#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "common/process.h"

namespace pgf {
namespace {

using namespace std::chrono_literals;

pid_t startSleeper() {
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  return pid;
}

bool waitFor(const std::atomic<int>& calls, int want, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (calls.load() < want && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  return calls.load() >= want;
}

TEST(ExitWatcher, ReportsTheExitOfTheWatchedProcessOnce) {
  std::atomic<int> calls{0};
  ExitWatcher w([&] { calls++; });
  pid_t pid = startSleeper();
  ASSERT_GT(pid, 0);
  w.watch(pid);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), 0);  // alive: nothing to report
  auto start = std::chrono::steady_clock::now();
  kill(pid, SIGKILL);
  EXPECT_TRUE(waitFor(calls, 1, 2000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1000ms);
  // Reported while still a zombie, and only once.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), 1);
  waitpid(pid, nullptr, 0);
}

TEST(ExitWatcher, WatchingAProcessThatIsAlreadyGoneReportsAtOnce) {
  std::atomic<int> calls{0};
  ExitWatcher w([&] { calls++; });
  pid_t pid = startSleeper();
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  w.watch(pid);
  EXPECT_TRUE(waitFor(calls, 1, 1000ms));
}

TEST(ExitWatcher, OnlyTheCurrentPidCounts) {
  std::atomic<int> calls{0};
  ExitWatcher w([&] { calls++; });
  pid_t first = startSleeper();
  pid_t second = startSleeper();
  w.watch(first);
  w.watch(second);
  std::this_thread::sleep_for(50ms);
  kill(first, SIGKILL);
  waitpid(first, nullptr, 0);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(calls.load(), 0);
  w.watch(0);
  kill(second, SIGKILL);
  waitpid(second, nullptr, 0);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(calls.load(), 0);
}

}  // namespace
}  // namespace pgf
