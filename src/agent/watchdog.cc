#include "agent/watchdog.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <fmt/format.h>

namespace pgf {
namespace {

constexpr long long kDisarmed = -1;

long long steadyNs(MonoTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// SIGQUIT to the postmaster in postmaster.pid: PostgreSQL's immediate shutdown.
void fence(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0)
    return;
  if (kill(static_cast<pid_t>(pid), SIGQUIT) == 0) {
    std::string msg = fmt::format(
        "pgfleet-agent watchdog: lease deadline passed without the agent renewing it; stopped "
        "postgresql (pid {}, immediate)\n",
        pid);
    ssize_t ignored = write(STDERR_FILENO, msg.data(), msg.size());
    (void)ignored;
  }
}

}  // namespace

void runWatchdog(int fd, const std::string& data_dir) {
  long long deadline = kDisarmed;
  bool writer_alive = true;
  std::string pending;
  for (;;) {
    if (!writer_alive && deadline == kDisarmed)
      return;
    int timeout_ms = -1;
    if (deadline != kDisarmed) {
      long long left = deadline - steadyNs(std::chrono::steady_clock::now());
      if (left <= 0) {
        fence(data_dir);
        deadline = kDisarmed;
        continue;
      }
      timeout_ms = static_cast<int>(std::min<long long>(left / 1000000 + 1, 1000));
    } else if (!writer_alive) {
      return;
    }
    if (!writer_alive) {
      usleep(static_cast<useconds_t>(timeout_ms) * 1000);
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
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

Result<std::unique_ptr<Watchdog>> Watchdog::start(const std::string& data_dir) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return makeError(ErrorCode::kIo, fmt::format("watchdog pipe: {}", strerror(errno)));
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return makeError(ErrorCode::kIo, fmt::format("forking the watchdog: {}", strerror(errno)));
  }
  if (pid == 0) {
    close(fds[1]);
    // Own process group, so signals meant for the agent's group do not reach it, and a name that
    // says what it is.
    setpgid(0, 0);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    prctl(PR_SET_NAME, "pgfleet-watchdog");
    runWatchdog(fds[0], data_dir);
    _exit(0);
  }
  close(fds[0]);
  return std::unique_ptr<Watchdog>(new Watchdog(fds[1], pid));
}

Watchdog::~Watchdog() {
  if (fd_ >= 0)
    close(fd_);
}

void Watchdog::send(long long deadline_ns) {
  std::lock_guard<std::mutex> lk(mu_);
  if (fd_ < 0)
    return;
  std::string line = deadline_ns == kDisarmed ? "disarm\n" : fmt::format("arm {}\n", deadline_ns);
  ssize_t n = write(fd_, line.data(), line.size());
  (void)n;  // a dead watchdog cannot be helped; the in-process fence still applies
}

void Watchdog::arm(MonoTime deadline) {
  send(steadyNs(deadline));
}

void Watchdog::disarm() {
  send(kDisarmed);
}

}  // namespace pgf
