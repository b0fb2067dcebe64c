// The watchdog process's loop, shared by the pgfleet-watchdog program and by the fork of the agent
// that runs it when that program is missing. It uses only the C library, so that the program links
// statically and stays small.
//
// Protocol on `fd` (one line each): "arm <ns>" sets the deadline, a CLOCK_MONOTONIC time in
// nanoseconds; "disarm" clears it. When an armed deadline passes, the postmaster named in
// `data_dir`/postmaster.pid gets SIGQUIT (PostgreSQL's immediate shutdown), whether or not the
// writer is still there. The loop returns when the writer is gone and nothing is armed, or at
// once on SIGUSR1 (a new agent took over the data directory and stands this watchdog down).
#pragma once

#include <string>

namespace pgf {

void runWatchdog(int fd, const std::string& data_dir);

}  // namespace pgf
