#include "common/dir_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>

namespace pgf {

DirWatcher::DirWatcher(std::function<void()> on_gone) : on_gone_(std::move(on_gone)) {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_fd_ >= 0 && wake_fd_ >= 0)
    thread_ = std::thread([this] { run(); });
}

DirWatcher::~DirWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] auto w = write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_fd_ >= 0)
    close(inotify_fd_);
  if (wake_fd_ >= 0)
    close(wake_fd_);
}

void DirWatcher::watch(const std::string& path) {
  if (!thread_.joinable())
    return;  // no inotify: the loop's own period applies
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return;
  std::lock_guard<std::mutex> lk(mu_);
  if (watch_ >= 0 && st.st_dev == dev_ && st.st_ino == ino_)
    return;
  if (watch_ >= 0)
    inotify_rm_watch(inotify_fd_, watch_);
  watch_ = inotify_add_watch(inotify_fd_, path.c_str(), IN_DELETE_SELF | IN_MOVE_SELF);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
}

void DirWatcher::run() {
  alignas(inotify_event) char buf[4096];
  for (;;) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0)
      continue;  // EINTR
    if (fds[1].revents != 0)
      return;
    ssize_t n = read(inotify_fd_, buf, sizeof buf);
    bool gone = false;
    for (ssize_t off = 0; n > 0 && off < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
      std::lock_guard<std::mutex> lk(mu_);
      if (e->wd == watch_ && (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
        gone = true;
        inotify_rm_watch(inotify_fd_, watch_);
        watch_ = -1;
        dev_ = 0;
        ino_ = 0;
      }
      off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
    if (gone)
      on_gone_();
  }
}

}  // namespace pgf
