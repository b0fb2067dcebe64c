// A watchdog process that keeps invariant 1 when the agent itself dies.
//
// The agent's fence thread stops PostgreSQL at the lease deadline, but a fence inside the agent
// dies with it: after a SIGKILL or a crash of the agent on the primary, PostgreSQL would go on
// accepting writes after the lease expired and a new primary was promoted. So at start the agent
// forks a small watchdog process and tells it, through a pipe, every new deadline ("arm") and when
// it no longer leads ("disarm"). The watchdog stops PostgreSQL (immediate shutdown: SIGQUIT to the
// postmaster named in postmaster.pid) when an armed deadline passes — whether or not the agent is
// still alive — and exits once the agent is gone and nothing is armed. Deadlines are
// CLOCK_MONOTONIC times, which both processes share.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>

#include "agent/watchdog_loop.h"
#include "common/clock.h"
#include "common/result.h"

namespace pgf {

class Watchdog {
 public:
  // Forks the watchdog and records its pid in `pid_file` (none when empty). A watchdog recorded
  // there by an agent that died is found first: retirePrevious() stands it down once this agent
  // is in charge, so that the dead agent's last deadline cannot stop a server this agent leads.
  // Call before the process starts any thread.
  static Result<std::unique_ptr<Watchdog>> start(const std::string& data_dir,
                                                 const std::string& pid_file = "");
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(MonoTime deadline);
  void disarm();
  pid_t pid() const { return pid_; }
  // SIGUSR1 to the previous agent's watchdog, which exits without acting; once.
  void retirePrevious();

 private:
  Watchdog(int fd, pid_t pid, pid_t previous) : fd_(fd), pid_(pid), previous_(previous) {}
  void send(long long deadline_ns);

  std::mutex mu_;
  int fd_ = -1;
  pid_t pid_ = 0;
  pid_t previous_ = 0;
};

}  // namespace pgf
