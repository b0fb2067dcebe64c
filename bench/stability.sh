#!/usr/bin/env bash
# Stability with a short lease: a 3-node cluster at ttl 2 left idle for --minutes, then driven by
# pgbench through HAProxy for --minutes. A stable agent keeps its lease through both: every
# failover (a new entry in the history key), every loss of the leader key and every change of
# leader is counted, with the total time the cluster had no leader.
#
# usage: bench/stability.sh [--agent pgfleet|patroni|both] [--runs 1] [--minutes 5]
#                           [--timing 2/1/2] [--clients 4] [--scale 5] [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMINGS="2/1/2"
MINUTES=5
CLIENTS=4
SCALE=5
BENCH_RUNS=1
bench_parse_common "$@"
set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
while [ $# -gt 0 ]; do
  case "$1" in
    --timing) TIMINGS=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    -h | --help) bench_usage; exit 0 ;;
    *) bench_die "unknown option $1" ;;
  esac
done
PHASE_SECONDS=$(awk -v m="$MINUTES" 'BEGIN { s = int(m * 60 + 0.5); if (s < 1) exit 1; print s }') ||
  bench_die "--minutes must be positive"

bench_setup stability
command -v pgbench >/dev/null || bench_die "pgbench not found in PATH"

# pgbench_rw <timeout seconds> <pgbench options...>: pgbench through HAProxy's read-write port.
pgbench_rw() {
  PGPASSWORD=$SUPERUSER_PASSWORD PGCONNECT_TIMEOUT=2 timeout "$1" pgbench -h 127.0.0.1 \
    -p "$RW_PORT" -U postgres "${@:2}" postgres
}

# pgbench until the phase's deadline; a run that ends early (its connections were cut by a
# failover) is restarted. Prints "<transactions> <restarts>".
load_phase() {
  local deadline=$1 total=0 restarts=0 left out n
  while true; do
    left=$((deadline - EPOCHSECONDS))
    [ "$left" -ge 1 ] || break
    out=$(pgbench_rw $((left + 30)) -n -c "$CLIENTS" -j 2 -T "$left" 2>&1) || true
    n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    total=$((total + ${n:-0}))
    if [ $((deadline - EPOCHSECONDS)) -ge 1 ]; then
      restarts=$((restarts + 1))
      sleep 0.5
    fi
  done
  echo "$total $restarts"
}

run_one() {
  local agent=$1 timing=$2 run=$3 phase hist0 hist1 lease t0 load tx restarts alive line i
  bench_log "stability $agent $timing run $run: ${PHASE_SECONDS}s idle + ${PHASE_SECONDS}s pgbench"
  bench_cluster_prepare "$timing"
  bench_start_agents "$agent"
  if ! bench_wait_healthy 180 >/dev/null; then
    bench_fail_run stability "$agent" "$timing" "$run" "cluster did not become healthy"
    return 0
  fi
  if ! pgbench_rw 300 -i -q -s "$SCALE" >"$RUN_DIR/pgbench-init.log" 2>&1; then
    bench_fail_run stability "$agent" "$timing" "$run" "pgbench -i failed"
    return 0
  fi
  for phase in idle load; do
    hist0=$(bench_history_length)
    bench_lease_watch_start "$RUN_DIR/lease-$phase.log" 0.1
    t0=$EPOCHSECONDS
    tx=0 restarts=0
    if [ "$phase" = idle ]; then
      sleep "$PHASE_SECONDS"
    else
      load=$(load_phase $((t0 + PHASE_SECONDS)))
      read -r tx restarts <<<"$load"
    fi
    bench_lease_watch_stop "$RUN_DIR/lease-$phase.log"
    hist1=$(bench_history_length)
    lease=$(bench_lease_summary "$RUN_DIR/lease-$phase.log")
    alive=0
    for i in $(seq 1 $BENCH_NODES); do
      if bench_pid_alive "${AGENT_PID[i]}"; then alive=$((alive + 1)); fi
    done
    line=$(jq -nc --arg a "$agent" --arg t "$timing" --argjson r "$run" --arg ph "$phase" \
      --argjson secs "$PHASE_SECONDS" --argjson f "$((hist1 - hist0))" --argjson l "$lease" \
      --argjson tx "$tx" --argjson rs "$restarts" --argjson alive "$alive" --argjson n "$BENCH_NODES" '
      {type: "run", bench: "stability", agent: $a, timing: $t, run: $r, phase: $ph,
       ok: ($alive == $n and $l.polls > 0), seconds: $secs, failovers: $f} + $l
      + (if $ph == "load" then {transactions: $tx, tps: ($tx / $secs * 10 | round / 10),
                                pgbench_restarts: $rs} else {} end)
      + {agents_alive: $alive}' | bench_round_ms)
    bench_emit "$line"
  done
  bench_cluster_destroy
}

bench_for_each_run run_one

for phase in idle load; do
  phase_file=$(mktemp /tmp/pgfleet-bench-stability-phase.XXXXXX)
  jq -c --arg ph "$phase" 'select(.type == "run" and .phase == $ph)' "$BENCH_RESULTS" >"$phase_file"
  if [ "$phase" = idle ]; then
    bench_summarise "$phase_file" "stability/idle" "${timing_list[*]}" "leaderless_ms" \
      "failovers lease_losses leader_changes"
  else
    bench_summarise "$phase_file" "stability/load" "${timing_list[*]}" "leaderless_ms tps" \
      "failovers lease_losses leader_changes pgbench_restarts"
  fi
  rm -f "$phase_file"
done
