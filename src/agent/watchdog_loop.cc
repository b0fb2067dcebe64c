#include "agent/watchdog_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace pgf {
namespace {

constexpr long long kDisarmed = -1;

long long monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// SIGQUIT to the postmaster in postmaster.pid: PostgreSQL's immediate shutdown.
void fence(const std::string& data_dir) {
  const std::string path = data_dir + "/postmaster.pid";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char buf[32] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return;
  long pid = std::strtol(buf, nullptr, 10);
  if (pid <= 0 || kill(static_cast<pid_t>(pid), SIGQUIT) != 0)
    return;
  char msg[256];
  int len = std::snprintf(msg, sizeof msg,
                          "pgfleet-watchdog: lease deadline passed without the agent renewing "
                          "it; stopped postgresql (pid %ld, immediate)\n",
                          pid);
  if (len > 0) [[maybe_unused]]
    auto w = write(STDERR_FILENO, msg, std::min<size_t>(len, sizeof msg - 1));
}

volatile sig_atomic_t stand_down = 0;

void onStandDown(int) {
  stand_down = 1;
}

}  // namespace

void runWatchdog(int fd, const std::string& data_dir) {
  // SIGUSR1: a new agent is in charge of this data directory; exit without acting (no
  // SA_RESTART, so that a wait in poll or usleep ends at once).
  struct sigaction sa {};
  sa.sa_handler = onStandDown;
  sigemptyset(&sa.sa_mask);
  stand_down = 0;
  sigaction(SIGUSR1, &sa, nullptr);
  long long deadline = kDisarmed;
  bool writer_alive = true;
  std::string pending;
  for (;;) {
    if (stand_down != 0)
      return;
    if (!writer_alive && deadline == kDisarmed)
      return;
    int timeout_ms = -1;
    if (deadline != kDisarmed) {
      long long left = deadline - monotonicNs();
      if (left <= 0) {
        fence(data_dir);
        deadline = kDisarmed;
        continue;
      }
      timeout_ms = static_cast<int>(std::min<long long>(left / 1000000 + 1, 1000));
    }
    if (!writer_alive) {
      usleep(static_cast<useconds_t>(timeout_ms) * 1000);
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
      continue;  // timeout (the deadline is checked above) or EINTR
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      writer_alive = false;  // the agent is gone: only the last armed deadline remains
      continue;
    }
    pending.append(buf, static_cast<size_t>(n));
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line == "disarm")
        deadline = kDisarmed;
      else if (line.rfind("arm ", 0) == 0)
        deadline = std::atoll(line.c_str() + 4);
    }
  }
}

}  // namespace pgf
