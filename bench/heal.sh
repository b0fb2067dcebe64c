#!/usr/bin/env bash
# Healing a lost data directory: on a fresh 3-node cluster, delete a replica's data directory
# (rm -rf while its PostgreSQL runs, as a lost disk would) and measure the time until the cluster
# is at full strength again: a new PostgreSQL runs in that node's re-created directory, both
# replicas stream from the primary, and a write through HAProxy succeeds. Then the same with the
# primary's data directory, measuring also the time until a write through HAProxy succeeds again
# (on a new primary). No process manager is involved: the agents heal on their own, pgfleet's
# and Patroni's alike, in the same run, alternating.
#
# usage: bench/heal.sh [--agent pgfleet|patroni|both] [--runs 5] [--timing 15/2/5]
#                      [--timeout 90] [--out results.jsonl] [--keep]
#   --timing: ttl/loop_wait/retry_timeout, 15/2/5 being what the broker's clusters run with.
#   --timeout: seconds each healing may take before the run records it as not healed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HEAL_TIMEOUT=90
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) HEAL_TIMEOUT=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ $HEAL_TIMEOUT =~ ^[1-9][0-9]*$ ]] || bench_die "--timeout must be a positive number of seconds"
bench_parse_args "15/2/5" "${args[@]+"${args[@]}"}"

# Full strength with node $1 running a PostgreSQL other than pid $2 in its data directory.
healed() {
  local pid
  pid=$(bench_live_postmaster "$1") || return 1
  [ "$pid" != "$2" ] && bench_cluster_healthy
}

# Waits for `healed <node> <old pid>`; prints the milliseconds since $3, or "null" on timeout.
wait_healed() {
  local node=$1 old=$2 t0=$3
  if bench_wait_for "$HEAL_TIMEOUT" healed "$node" "$old"; then
    bench_ms_between "$t0" "$(bench_now)"
  else
    echo null
  fi
}

heal_run() {
  local agent=$1 timing=$2 run=$3 primary replica i pm t0 replica_ms write_ms primary_ms
  bench_log "heal $agent $timing run $run: starting cluster"
  bench_cluster_prepare "$timing"
  bench_start_agents "$agent"
  if ! bench_wait_healthy 180 >/dev/null || ! bench_find_primary; then
    bench_fail_run heal "$agent" "$timing" "$run" "cluster did not become healthy"
    return 0
  fi
  primary=$PRIMARY_INDEX
  for i in $(seq 1 $BENCH_NODES); do [ "$i" != "$primary" ] && replica=$i && break; done

  pm=$(bench_live_postmaster "$replica") || pm=""
  bench_log "heal $agent $timing run $run: removing node$replica's data directory (replica)"
  t0=$(bench_now)
  rm -rf "$(data_dir "$replica")"
  replica_ms=$(wait_healed "$replica" "$pm" "$t0")
  bench_log "heal $agent $timing run $run: replica healed after ${replica_ms} ms"

  primary_ms=null
  write_ms=null
  if [ "$replica_ms" != null ] && bench_find_primary; then
    primary=$PRIMARY_INDEX
    pm=$(bench_live_postmaster "$primary") || pm=""
    bench_log "heal $agent $timing run $run: removing node$primary's data directory (primary)"
    t0=$(bench_now)
    rm -rf "$(data_dir "$primary")"
    if bench_wait_for "$HEAL_TIMEOUT" bench_write_works; then
      write_ms=$(bench_ms_between "$t0" "$(bench_now)")
    fi
    primary_ms=$(wait_healed "$primary" "$pm" "$t0")
    bench_log "heal $agent $timing run $run: writes after ${write_ms} ms, full strength after ${primary_ms} ms"
  fi
  bench_emit "$(jq -nc --arg a "$agent" --arg t "$timing" --argjson r "$run" \
    --argjson rep "$replica_ms" --argjson w "$write_ms" --argjson p "$primary_ms" '
    {type: "run", bench: "heal", agent: $a, timing: $t, run: $r,
     ok: ($rep != null and $w != null and $p != null),
     replica_lost_to_full_ms: $rep, primary_lost_to_write_ms: $w, primary_lost_to_full_ms: $p}')"
}

bench_setup heal
bench_for_each_run heal_run
# Runs that did not heal within --timeout are not in the medians: their count is in the summary.
bench_summarise "$BENCH_RESULTS" heal "${timing_list[*]}" \
  "replica_lost_to_full_ms primary_lost_to_write_ms primary_lost_to_full_ms" ""
