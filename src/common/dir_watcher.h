// Tells when a directory is removed or renamed (inotify's IN_DELETE_SELF and IN_MOVE_SELF), so
// that the agent's loop wakes at once when its data directory disappears instead of at its next
// loop_wait: the sooner the orphaned server is stopped and a leader releases its key, the shorter
// the time without a primary.
#pragma once

#include <sys/types.h>

#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace pgf {

class DirWatcher {
 public:
  explicit DirWatcher(std::function<void()> on_gone);
  ~DirWatcher();
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  // Watches `path` (again, when it is another directory than the one watched: a new inode);
  // nothing when it does not exist. on_gone runs once per directory watched, from the watcher's
  // thread.
  void watch(const std::string& path);

 private:
  void run();

  std::function<void()> on_gone_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;
  std::mutex mu_;  // watch_, dev_, ino_
  int watch_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::thread thread_;
};

}  // namespace pgf
