#!/usr/bin/env bash
# Failover window: kill the primary's agent and its PostgreSQL together (SIGKILL, as a lost machine
# would) while failover_probe writes through HAProxy, and measure how long writes stopped, how much
# of that came after the leader lease expired in etcd, and whether acknowledged rows were lost.
#
# With --synchronous both agents run with synchronous_mode on (the same YAML), and each kill waits
# until the sync key names a synchronous standby.
#
# usage: bench/failover.sh [--agent pgfleet|patroni|both] [--runs 5] [--synchronous]
#                          [--timing 30/10/10,5/1/2,2/1/2] [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_parse_args "30/10/10,5/1/2,2/1/2" "$@"

bench_setup failover

bench_for_each_run bench_kill_run failover

bench_summarise "$BENCH_RESULTS" failover "${timing_list[*]}" \
  "window_ms kill_to_recovery_ms lease_expired_after_kill_ms after_lease_ms" "acked missing"
