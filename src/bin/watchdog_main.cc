// pgfleet-watchdog <data_dir>: started by pgfleet-agent with a pipe on standard input; see
// src/agent/watchdog_loop.h for what it does. Not meant to be run by hand.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>

#include "agent/watchdog_loop.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: pgfleet-watchdog DATA_DIR (started by pgfleet-agent)\n");
    return 2;
  }
  if (isatty(STDIN_FILENO)) {
    std::fprintf(stderr, "pgfleet-watchdog: standard input must be the agent's pipe\n");
    return 2;
  }
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  pgf::runWatchdog(STDIN_FILENO, argv[1]);
  return 0;
}
