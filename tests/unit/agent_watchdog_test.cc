#include "agent/watchdog.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/process.h"

namespace pgf {
namespace {

// A stand-in postmaster: a child process named in a postmaster.pid of a scratch directory.
class FakePostmaster {
 public:
  FakePostmaster() {
    char tmpl[] = "/tmp/pgfleet-watchdog-XXXXXX";
    dir_ = mkdtemp(tmpl);
    CommandSpec spec;
    spec.argv = {"sleep", "60"};
    pid_ = *spawnProcess(spec);
    std::ofstream(dir_ + "/postmaster.pid") << pid_ << "\n" << dir_ << "\n";
  }
  ~FakePostmaster() {
    signalProcess(pid_, SIGKILL);
    waitProcess(pid_, Millis(5000));
    std::filesystem::remove_all(dir_);
  }
  bool exited() { return waitProcess(pid_, Millis(0)); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  pid_t pid_ = 0;
};

void writeLine(int fd, const std::string& line) {
  ASSERT_EQ(write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
}

long long nsFromNow(Millis d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             (std::chrono::steady_clock::now() + d).time_since_epoch())
      .count();
}

TEST(Watchdog, FencesAtTheArmedDeadlineAfterTheAgentIsGone) {
  FakePostmaster pm;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread dog([&] { runWatchdog(fds[0], pm.dir()); });
  writeLine(fds[1], fmt::format("arm {}\n", nsFromNow(Millis(300))));
  close(fds[1]);  // the agent dies with the lease deadline armed
  EXPECT_FALSE(pm.exited());
  dog.join();  // returns once it has fenced
  bool stopped = false;
  for (int i = 0; i < 50 && !stopped; ++i) {
    stopped = pm.exited();
    std::this_thread::sleep_for(Millis(20));
  }
  EXPECT_TRUE(stopped) << "the postmaster was not stopped at the deadline";
  close(fds[0]);
}

TEST(Watchdog, LaterDeadlinesAndDisarmKeepThePostmasterRunning) {
  FakePostmaster pm;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread dog([&] { runWatchdog(fds[0], pm.dir()); });
  writeLine(fds[1], fmt::format("arm {}\n", nsFromNow(Millis(200))));
  writeLine(fds[1], fmt::format("arm {}\n", nsFromNow(Millis(5000))));  // a renewal moved it
  std::this_thread::sleep_for(Millis(400));
  EXPECT_FALSE(pm.exited()) << "fenced at a deadline that had been moved";
  writeLine(fds[1], "disarm\n");
  close(fds[1]);  // a clean exit: nothing armed, the watchdog leaves
  dog.join();
  EXPECT_FALSE(pm.exited());
  close(fds[0]);
}

TEST(Watchdog, StandsDownOnSigusr1WithoutFencing) {
  FakePostmaster pm;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread dog([&] { runWatchdog(fds[0], pm.dir()); });
  writeLine(fds[1], fmt::format("arm {}\n", nsFromNow(Millis(1500))));
  close(fds[1]);  // the agent dies with the lease deadline armed
  std::this_thread::sleep_for(Millis(200));
  // A new agent took over the data directory before the deadline.
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  dog.join();  // returns without waiting for the deadline
  std::this_thread::sleep_for(Millis(1800));
  EXPECT_FALSE(pm.exited()) << "the watchdog fenced after it was stood down";
  close(fds[0]);
}

}  // namespace
}  // namespace pgf
