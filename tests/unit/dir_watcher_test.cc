// DirWatcher: a watched directory that is removed, or renamed, is reported once; a new directory
// at the same path is watched again.
#include "common/dir_watcher.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

namespace pgf {
namespace {

namespace fs = std::filesystem;

bool waitFor(const std::atomic<int>& n, int value) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (n.load() < value && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return n.load() >= value;
}

TEST(DirWatcher, ARemovedOrRenamedDirectoryIsReportedOnceAndANewOneWatchedAgain) {
  const fs::path base =
      fs::path(::testing::TempDir()) / ("dir_watcher_" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "data" / "base");
  std::atomic<int> gone{0};
  DirWatcher watcher([&] { gone++; });
  watcher.watch((base / "data").string());
  watcher.watch((base / "data").string());  // the same directory: one watch

  fs::remove(base / "data" / "base");  // a change inside is not the directory going
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(gone.load(), 0);

  fs::remove_all(base / "data");  // rm -rf
  EXPECT_TRUE(waitFor(gone, 1));

  fs::create_directories(base / "data");
  watcher.watch((base / "data").string());
  fs::rename(base / "data", base / "data.aside");
  EXPECT_TRUE(waitFor(gone, 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(gone.load(), 2);

  watcher.watch((base / "missing").string());  // nothing to watch: no report, no error
  fs::remove_all(base);
}

}  // namespace
}  // namespace pgf
