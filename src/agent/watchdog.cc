#include "agent/watchdog.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "postgres/data_dir.h"

namespace pgf {
namespace {

constexpr long long kDisarmed = -1;  // the line "disarm"

long long steadyNs(MonoTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The pgfleet-watchdog program beside this executable, or "" when there is none.
std::string watchdogProgram() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return "";
  self[n] = '\0';
  std::string path(self);
  auto slash = path.rfind('/');
  if (slash == std::string::npos)
    return "";
  path = path.substr(0, slash + 1) + "pgfleet-watchdog";
  return access(path.c_str(), X_OK) == 0 ? path : "";
}

// The watchdog recorded in `pid_file` when it still runs for `data_dir` (its command line is
// "pgfleet-watchdog <data_dir>"); 0 otherwise.
pid_t recordedWatchdog(const std::string& pid_file, const std::string& data_dir) {
  if (pid_file.empty())
    return 0;
  auto text = readFile(pid_file);
  if (!text.ok())
    return 0;
  const long pid = std::strtol(text->c_str(), nullptr, 10);
  if (pid <= 1 || kill(static_cast<pid_t>(pid), 0) != 0)
    return 0;
  auto cmdline = readFile(fmt::format("/proc/{}/cmdline", pid));
  const std::string expected = std::string("pgfleet-watchdog") + '\0' + data_dir + '\0';
  if (!cmdline.ok() || *cmdline != expected)
    return 0;
  return static_cast<pid_t>(pid);
}

}  // namespace

Result<std::unique_ptr<Watchdog>> Watchdog::start(const std::string& data_dir,
                                                  const std::string& pid_file) {
  const pid_t previous = recordedWatchdog(pid_file, data_dir);
  const std::string program = watchdogProgram();
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
    // Own process group, so signals meant for the agent's group do not reach it.
    setpgid(0, 0);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    // The small static program keeps the watchdog's memory to a few hundred KiB; without it, the
    // same loop runs here, in the fork of the agent.
    if (!program.empty() && dup2(fds[0], STDIN_FILENO) == STDIN_FILENO) {
      execl(program.c_str(), "pgfleet-watchdog", data_dir.c_str(), static_cast<char*>(nullptr));
      static constexpr char kNoExec[] =
          "pgfleet-agent: could not run pgfleet-watchdog; the watchdog runs in a fork of the "
          "agent\n";
      [[maybe_unused]] auto w = write(STDERR_FILENO, kNoExec, sizeof kNoExec - 1);
    }
    prctl(PR_SET_NAME, "pgfleet-watchdog");
    runWatchdog(fds[0], data_dir);
    _exit(0);
  }
  close(fds[0]);
  if (!pid_file.empty()) {
    Status st = writeFileAtomically(pid_file, fmt::format("{}\n", pid), 0600);
    if (!st.ok())
      spdlog::warn("recording the watchdog's pid: {}", st.error().message);
  }
  return std::unique_ptr<Watchdog>(new Watchdog(fds[1], pid, previous));
}

void Watchdog::retirePrevious() {
  std::lock_guard<std::mutex> lk(mu_);
  if (previous_ != 0 && kill(previous_, SIGUSR1) == 0)
    spdlog::warn(
        "stood down the watchdog of a previous agent (pid {}): this agent is in charge "
        "of the lease now",
        previous_);
  previous_ = 0;
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
