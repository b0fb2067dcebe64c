// Running other programs: short commands whose output we read (initdb, pg_ctl, pg_controldata), and
// long-lived children (the tests' etcd, agents, HAProxy). Arguments are passed as a vector straight
// to execve: nothing ever goes through a shell, so nothing needs quoting.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace pgf {

struct CommandSpec {
  std::vector<std::string> argv;           // argv[0] is a path or a name looked up in PATH
  std::map<std::string, std::string> env;  // added to (or overriding) the current environment
  std::string cwd;                         // "" = inherit
  std::string stdin_data;                  // written to the child's stdin, then closed
  std::string output_file;                 // spawn(): append stdout+stderr here ("" = /dev/null)
  std::optional<uid_t> uid;                // run as this user (the caller must be root)
  std::optional<gid_t> gid;
  std::optional<int> nice;  // the child's nice value (set before dropping to uid); unset: inherit
  // spawnProcess(): the child writes its own pid here (atomically, as the caller's user) before
  // anything else, and spawnProcess() returns once it has; so that a caller killed right after
  // the fork still leaves its child recorded. "" = none.
  std::string pid_file;
};

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved
};

// Runs a command to completion (killing it after `timeout`) and returns its exit code and output.
// An error only when it could not be started.
Result<CommandResult> runCommand(const CommandSpec& spec, Millis timeout);

// Starts a command in its own process group and returns its pid without waiting.
Result<pid_t> spawnProcess(const CommandSpec& spec);

// Sends `sig` to a pid (or, with group=true, to its process group). true if delivered.
bool signalProcess(pid_t pid, int sig, bool group = false);
// Reaps our child `pid` if it has exited, waiting up to `timeout`. true: it is gone.
bool waitProcess(pid_t pid, Millis timeout);
// Whether a pid (any process, ours or not) exists and has not exited (a zombie counts as gone).
bool processAlive(pid_t pid);

// Reaps exited children that nobody started through runCommand/spawnProcess: with
// PR_SET_CHILD_SUBREAPER, the orphaned processes of a crashed PostgreSQL (its postmaster among
// them) become our children, and a zombie postmaster would keep PostgreSQL from starting again
// ("lock file postmaster.pid already exists"). Returns how many it reaped.
int reapZombieChildren();

// Calls `on_exit`, from a thread of its own, when the process it watches exits (becomes a zombie
// or is reaped), whoever its parent is. The thread sleeps in poll() on a pidfd, so watching costs
// nothing while the process lives. Where pidfds are unavailable it checks every 100 ms instead.
class ExitWatcher {
 public:
  explicit ExitWatcher(std::function<void()> on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  // Watches `pid` instead of the previous one (0: nothing). on_exit runs once per watched pid;
  // watching a pid that is already gone calls it at once.
  void watch(pid_t pid);

 private:
  void run();

  std::function<void()> on_exit_;
  std::mutex mu_;
  pid_t pid_ = 0;
  bool stop_ = false;
  int wake_fd_ = -1;
  std::thread thread_;
};

// Looks a user up by name: {uid, gid}.
Result<std::pair<uid_t, gid_t>> lookupUser(const std::string& name);

}  // namespace pgf
