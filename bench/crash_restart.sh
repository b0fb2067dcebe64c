#!/usr/bin/env bash
# Crash restart: SIGKILL the primary's postmaster only (its agent keeps running) while
# failover_probe writes through HAProxy, and measure how long until writes succeed again, whether
# the leader lease changed hands, and whether acknowledged rows were lost.
#
# usage: bench/crash_restart.sh [--agent pgfleet|patroni|both] [--runs 5]
#                               [--timing 30/10/10,5/1/2,2/1/2] [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_parse_args "30/10/10,5/1/2,2/1/2" "$@"

bench_setup crash_restart

bench_for_each_run bench_kill_run crash_restart

bench_summarise "$BENCH_RESULTS" crash_restart "${timing_list[*]}" \
  "window_ms kill_to_recovery_ms" "acked missing lease_lost"
