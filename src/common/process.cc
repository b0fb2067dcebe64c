#include "common/process.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace pgf {
namespace {

// Children that runCommand/spawnProcess started and someone will wait for: reapZombieChildren()
// leaves them alone, so it never steals an exit status.
std::mutex owned_mu;
std::set<pid_t> owned_children;

void own(pid_t pid) {
  std::lock_guard<std::mutex> lk(owned_mu);
  owned_children.insert(pid);
}

void disown(pid_t pid) {
  std::lock_guard<std::mutex> lk(owned_mu);
  owned_children.erase(pid);
}

bool owned(pid_t pid) {
  std::lock_guard<std::mutex> lk(owned_mu);
  return owned_children.count(pid) > 0;
}

std::vector<std::string> buildEnv(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos)
      merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra)
    merged[k] = v;
  std::vector<std::string> out;
  out.reserve(merged.size());
  for (const auto& [k, v] : merged)
    out.push_back(k + "=" + v);
  return out;
}

// Writes this process's pid to `path` through `tmp` (renamed over it). Async-signal-safe.
bool recordOwnPid(const char* tmp, const char* path) {
  char digits[24];
  char text[24];
  size_t n = 0;
  for (auto pid = static_cast<unsigned long>(getpid()); n == 0 || pid > 0; pid /= 10)
    digits[n++] = static_cast<char>('0' + pid % 10);
  for (size_t i = 0; i < n; ++i)
    text[i] = digits[n - 1 - i];
  text[n++] = '\n';
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return false;
  bool written = write(fd, text, n) == static_cast<ssize_t>(n);
  written = close(fd) == 0 && written;
  return written && rename(tmp, path) == 0;
}

// In the child after fork: only async-signal-safe calls until execvpe. `recorded_fd`: a pipe to
// the parent, told (by a byte) that the pid file could not be written, or (by its closing) that
// it was; -1 without a pid file.
[[noreturn]] void execChild(const CommandSpec& spec, char* const* argv, char* const* envp,
                            int stdin_fd, int out_fd, const char* pid_tmp, int recorded_fd) {
  setpgid(0, 0);
  if (recorded_fd >= 0 && !recordOwnPid(pid_tmp, spec.pid_file.c_str())) {
    const char failed = 1;
    ssize_t ignored = write(recorded_fd, &failed, 1);
    (void)ignored;
    _exit(126);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  if (stdin_fd >= 0)
    dup2(stdin_fd, STDIN_FILENO);
  if (out_fd >= 0) {
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
  }
  for (int fd = 3; fd < 1024; ++fd)
    close(fd);
  if (spec.nice && setpriority(PRIO_PROCESS, 0, *spec.nice) != 0)
    _exit(126);
  // Dropping to another user drops the caller's supplementary groups too.
  if (spec.gid && (setgroups(1, &*spec.gid) != 0 || setgid(*spec.gid) != 0))
    _exit(126);
  if (spec.uid && setuid(*spec.uid) != 0)
    _exit(126);
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0)
    _exit(126);
  execvpe(argv[0], argv, envp);
  _exit(127);
}

struct Argv {
  std::vector<std::string> env_strings;
  std::vector<char*> argv, envp;
  explicit Argv(const CommandSpec& spec) : env_strings(buildEnv(spec.env)) {
    for (const auto& a : spec.argv)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : env_strings)
      envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

}  // namespace

Result<CommandResult> runCommand(const CommandSpec& spec, Millis timeout) {
  if (spec.argv.empty())
    return makeError(ErrorCode::kInvalidArgument, "empty command");
  Argv a(spec);
  int out_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0)
    return makeError(ErrorCode::kIo, strerror(errno));
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return makeError(ErrorCode::kIo, strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], in_pipe[0], in_pipe[1]})
      close(fd);
    return makeError(ErrorCode::kIo, fmt::format("fork: {}", strerror(errno)));
  }
  if (pid == 0)
    execChild(spec, a.argv.data(), a.envp.data(), in_pipe[0], out_pipe[1], nullptr, -1);
  own(pid);
  close(out_pipe[1]);
  close(in_pipe[0]);
  if (!spec.stdin_data.empty()) {
    // Small inputs only (SQL scripts): a pipe buffer holds them without a reader thread.
    ssize_t ignored = write(in_pipe[1], spec.stdin_data.data(), spec.stdin_data.size());
    (void)ignored;
  }
  close(in_pipe[1]);

  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{out_pipe[0], POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 200)));
    if (r < 0 && errno == EINTR)
      continue;
    if (r > 0) {
      ssize_t n = read(out_pipe[0], buf, sizeof buf);
      if (n > 0) {
        result.output.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0)
        break;  // EOF: the child (and its children holding the pipe) closed it
      if (errno != EINTR && errno != EAGAIN)
        break;
    }
  }
  close(out_pipe[0]);
  int status = 0;
  // After EOF, the child normally exits at once; bound the wait anyway.
  for (;;) {
    pid_t w = waitpid(pid, &status, result.timed_out ? 0 : WNOHANG);
    if (w == pid)
      break;
    if (w < 0 && errno != EINTR)
      break;
    if (std::chrono::steady_clock::now() > deadline) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(Millis(5));
  }
  disown(pid);
  if (!result.timed_out && WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  return result;
}

Result<pid_t> spawnProcess(const CommandSpec& spec) {
  if (spec.argv.empty())
    return makeError(ErrorCode::kInvalidArgument, "empty command");
  Argv a(spec);
  int out_fd = open(spec.output_file.empty() ? "/dev/null" : spec.output_file.c_str(),
                    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0)
    return makeError(ErrorCode::kIo,
                     fmt::format("opening {}: {}", spec.output_file, strerror(errno)));
  if (spec.uid && fchown(out_fd, *spec.uid, spec.gid.value_or(static_cast<gid_t>(-1))) != 0) {
    // Not fatal: the child writes through the inherited descriptor anyway.
  }
  int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const std::string pid_tmp = spec.pid_file.empty() ? "" : spec.pid_file + ".new";
  int recorded[2] = {-1, -1};
  if (!spec.pid_file.empty() && pipe2(recorded, O_CLOEXEC) != 0) {
    close(out_fd);
    if (null_in >= 0)
      close(null_in);
    return makeError(ErrorCode::kIo, fmt::format("pipe: {}", strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(out_fd);
    if (null_in >= 0)
      close(null_in);
    for (int fd : recorded)
      if (fd >= 0)
        close(fd);
    return makeError(ErrorCode::kIo, fmt::format("fork: {}", strerror(err)));
  }
  if (pid == 0)
    execChild(spec, a.argv.data(), a.envp.data(), null_in, out_fd, pid_tmp.c_str(), recorded[1]);
  close(out_fd);
  if (null_in >= 0)
    close(null_in);
  own(pid);
  setpgid(pid, pid);
  if (spec.pid_file.empty())
    return pid;
  // The child closes its end (the fd loop, or exec) once the pid file is written.
  close(recorded[1]);
  char failed = 0;
  ssize_t got;
  do {
    got = read(recorded[0], &failed, 1);
  } while (got < 0 && errno == EINTR);
  close(recorded[0]);
  if (got != 0) {
    waitProcess(pid, Millis(1000));
    return makeError(ErrorCode::kIo, fmt::format("{} could not record its pid in {}",
                                                 spec.argv.front(), spec.pid_file));
  }
  return pid;
}

bool signalProcess(pid_t pid, int sig, bool group) {
  if (pid <= 0)
    return false;
  return kill(group ? -pid : pid, sig) == 0;
}

bool waitProcess(pid_t pid, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      disown(pid);
      return true;
    }
    if (w < 0 && errno == ECHILD)
      return !processAlive(pid);
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(Millis(10));
  }
}

bool processAlive(pid_t pid) {
  if (pid <= 0)
    return false;
  if (kill(pid, 0) != 0 && errno != EPERM)
    return false;
  // A zombie has exited; it only waits for its parent (often init) to reap it.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line))
    return true;
  auto close_paren = line.rfind(')');
  return close_paren == std::string::npos || close_paren + 2 >= line.size() ||
         line[close_paren + 2] != 'Z';
}

int reapZombieChildren() {
  int reaped = 0;
  const std::string self = std::to_string(getpid());
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line))
      continue;
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'.
    auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos || close_paren + 4 >= line.size())
      continue;
    std::istringstream rest(line.substr(close_paren + 2));
    std::string state, ppid;
    rest >> state >> ppid;
    if (state != "Z" || ppid != self)
      continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    if (owned(pid))
      continue;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
      ++reaped;
  }
  return reaped;
}

Result<std::pair<uid_t, gid_t>> lookupUser(const std::string& name) {
  struct passwd pw {};
  struct passwd* out = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out) != 0 || out == nullptr)
    return makeError(ErrorCode::kNotFound, fmt::format("no user named \"{}\"", name));
  return std::make_pair(pw.pw_uid, pw.pw_gid);
}

ExitWatcher::ExitWatcher(std::function<void()> on_exit) : on_exit_(std::move(on_exit)) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { run(); });
}

ExitWatcher::~ExitWatcher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  uint64_t one = 1;
  if (wake_fd_ >= 0) [[maybe_unused]]
    auto n = write(wake_fd_, &one, sizeof one);
  if (thread_.joinable())
    thread_.join();
  if (wake_fd_ >= 0)
    close(wake_fd_);
}

void ExitWatcher::watch(pid_t pid) {
  {
    std::lock_guard lock(mu_);
    if (pid == pid_)
      return;
    pid_ = pid;
  }
  uint64_t one = 1;
  if (wake_fd_ >= 0) [[maybe_unused]]
    auto n = write(wake_fd_, &one, sizeof one);
}

void ExitWatcher::run() {
  pid_t watching = 0;
  int pidfd = -1;
  bool reported = false;
  for (;;) {
    pid_t wanted = 0;
    {
      std::lock_guard lock(mu_);
      if (stop_)
        break;
      wanted = pid_;
    }
    if (wanted != watching) {
      if (pidfd >= 0)
        close(pidfd);
      pidfd = -1;
      watching = wanted;
      reported = false;
      if (watching > 0) {
        pidfd = static_cast<int>(syscall(SYS_pidfd_open, watching, 0));
        if (pidfd < 0 && errno == ESRCH) {
          reported = true;
          on_exit_();
        }
      }
    }
    const bool polling_by_pid = watching > 0 && pidfd < 0 && !reported;
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {pidfd, POLLIN, 0}};
    const int nfds = pidfd >= 0 && !reported ? 2 : 1;
    int n = poll(fds, static_cast<nfds_t>(nfds), polling_by_pid ? 100 : -1);
    if (n < 0 && errno != EINTR)
      break;
    if (fds[0].revents & POLLIN) {
      uint64_t count = 0;
      [[maybe_unused]] auto r = read(wake_fd_, &count, sizeof count);
    }
    const bool exited = nfds == 2 ? (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0
                                  : polling_by_pid && !processAlive(watching);
    if (exited && !reported) {
      // watch() may have moved on while poll() was waking up: the exit of a process nobody
      // watches any more is not reported.
      bool current = false;
      {
        std::lock_guard lock(mu_);
        current = pid_ == watching;
      }
      if (current) {
        reported = true;
        on_exit_();
      }
    }
  }
  if (pidfd >= 0)
    close(pidfd);
}

}  // namespace pgf
