#!/usr/bin/env bash
# Footprint: on a healthy idle 3-node cluster, each agent process's resident memory (VmRSS and its
# peak VmHWM from /proc/PID/status) and the CPU it burns while idle (utime+stime from
# /proc/PID/stat over --idle seconds). PostgreSQL's own processes are not counted; any other
# child process an agent keeps (non-postgres) is added to its figures.
#
# usage: bench/footprint.sh [--agent pgfleet|patroni|both] [--runs 1] [--timing 30/10/10]
#                           [--idle 60] [--settle 5] [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMINGS="30/10/10"
IDLE_SECONDS=60
SETTLE_SECONDS=5
BENCH_RUNS=1
bench_parse_common "$@"
set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
while [ $# -gt 0 ]; do
  case "$1" in
    --timing) TIMINGS=$2; shift 2 ;;
    --idle) IDLE_SECONDS=$2; shift 2 ;;
    --settle) SETTLE_SECONDS=$2; shift 2 ;;
    -h | --help) bench_usage; exit 0 ;;
    *) bench_die "unknown option $1" ;;
  esac
done

bench_setup footprint
CLK_TCK=$(getconf CLK_TCK)

# The agent and its non-postgres descendants (a Python agent may fork helpers).
agent_pids() {
  local pids=("$1") i=0 p comm
  while [ $i -lt ${#pids[@]} ]; do
    # shellcheck disable=SC2013  # the children files hold space-separated PIDs
    for p in $(cat "/proc/${pids[i]}/task/"*/children 2>/dev/null); do
      comm=$(cat "/proc/$p/comm" 2>/dev/null || true)
      [ "$comm" = postgres ] || pids+=("$p")
    done
    i=$((i + 1))
  done
  echo "${pids[@]}"
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# utime+stime in clock ticks (fields 14 and 15; comm, field 2, may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0; }

# Sum of a /proc/PID/status field over PIDs: sum_status <field> <pid>...
sum_status() {
  local key=$1 total=0 p v
  shift
  for p in "$@"; do
    v=$(status_kb "$p" "$key")
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

sum_ticks() {
  local total=0 p v
  for p in "$@"; do
    v=$(cpu_ticks "$p")
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

run_one() {
  local agent=$1 timing=$2 run=$3 i role pids cpu0 cpu1 line threads
  bench_log "footprint $agent $timing run $run"
  bench_cluster_prepare "$timing"
  bench_start_agents "$agent"
  if ! bench_wait_healthy 180 >/dev/null; then
    bench_fail_run footprint "$agent" "$timing" "$run" "cluster did not become healthy"
    return 0
  fi
  bench_find_primary || true
  # Let the bootstrap's aftermath (first checkpoints, member key updates) pass before measuring.
  sleep "$SETTLE_SECONDS"
  declare -A before=() procs=()
  for i in $(seq 1 $BENCH_NODES); do
    procs[$i]=$(agent_pids "${AGENT_PID[i]}")
    # shellcheck disable=SC2086
    before[$i]=$(sum_ticks ${procs[$i]})
  done
  bench_log "footprint $agent: measuring idle CPU for ${IDLE_SECONDS}s"
  sleep "$IDLE_SECONDS"
  for i in $(seq 1 $BENCH_NODES); do
    pids=${procs[$i]}
    [ "$i" = "$PRIMARY_INDEX" ] && role=primary || role=replica
    # shellcheck disable=SC2086
    cpu1=$(sum_ticks $pids)
    cpu0=${before[$i]}
    threads=$(status_kb "${AGENT_PID[i]}" Threads)
    # shellcheck disable=SC2086
    line=$(jq -nc --arg a "$agent" --arg t "$timing" --argjson r "$run" --arg n "node$i" \
      --arg role "$role" --argjson rss "$(sum_status VmRSS $pids)" \
      --argjson hwm "$(sum_status VmHWM $pids)" --argjson procs "$(wc -w <<<"$pids")" \
      --argjson threads "${threads:-0}" --argjson ticks "$((cpu1 - cpu0))" --argjson hz "$CLK_TCK" \
      --argjson secs "$IDLE_SECONDS" --argjson alive "$(bench_pid_alive "${AGENT_PID[i]}" && echo true || echo false)" '
      {type: "run", bench: "footprint", agent: $a, timing: $t, run: $r, node: $n, role: $role,
       ok: $alive, rss_kb: $rss, hwm_kb: $hwm, processes: $procs, threads: $threads,
       idle_seconds: $secs, idle_cpu_ms: ($ticks * 1000 / $hz),
       idle_cpu_percent: (($ticks / $hz) * 100 / $secs * 1000 | round / 1000)}' | bench_round_ms)
    bench_emit "$line"
  done
  bench_cluster_destroy
}

bench_for_each_run run_one

bench_summarise "$BENCH_RESULTS" footprint "${timing_list[*]}" \
  "rss_kb hwm_kb threads idle_cpu_ms idle_cpu_percent" ""
