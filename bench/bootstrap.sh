#!/usr/bin/env bash
# Bootstrap: three agents started at once on empty data directories, timed until both replicas
# stream from the leader and a write through HAProxy has succeeded. failover_probe (until-write
# mode, started just before the agents) times the first write; the script polls the REST APIs for
# the streaming replicas.
#
# usage: bench/bootstrap.sh [--agent pgfleet|patroni|both] [--runs 5] [--timing 30/10/10]
#                           [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_parse_args "30/10/10" "$@"

bench_setup bootstrap

BOOT_TIMEOUT=180

run_one() {
  local agent=$1 timing=$2 run=$3 t0 t_stream probe line
  bench_log "bootstrap $agent $timing run $run"
  bench_cluster_prepare "$timing"
  "$PROBE_BIN" --conninfo "$(bench_conninfo_rw)" --mode until-write --duration "$BOOT_TIMEOUT" \
    >"$RUN_DIR/probe.json" 2>"$RUN_DIR/probe.log" &
  PROBE_PID=$!
  BENCH_EXTRA_PIDS+=("$PROBE_PID")
  t0=$(bench_now)
  bench_start_agents "$agent"
  if ! bench_wait_for "$BOOT_TIMEOUT" bench_replicas_streaming; then
    bench_fail_run bootstrap "$agent" "$timing" "$run" "replicas not streaming after ${BOOT_TIMEOUT}s"
    return 0
  fi
  t_stream=$(bench_now)
  probe=$(bench_probe_wait "$BOOT_TIMEOUT")
  line=$(jq -nc --arg a "$agent" --arg t "$timing" --argjson r "$run" --argjson t0 "$t0" \
    --argjson ts "$t_stream" --argjson p "$probe" '
    {type: "run", bench: "bootstrap", agent: $a, timing: $t, run: $r, ok: ($p.write_ok == true),
     first_write_ms: (if $p.write_wall != null then ($p.write_wall - $t0) * 1000 else null end),
     streaming_ms: (($ts - $t0) * 1000),
     bootstrap_ms: (if $p.write_wall != null then ([$p.write_wall, $ts] | max) - $t0 else null end
                    | if . != null then . * 1000 else null end),
     error: $p.error}
    | with_entries(select(.value != null))' | bench_round_ms)
  bench_emit "$line"
  bench_log "bootstrap $agent run $run: $(jq -r '.bootstrap_ms // "-"' <<<"$line") ms"
  bench_cluster_destroy
}

bench_for_each_run run_one

bench_summarise "$BENCH_RESULTS" bootstrap "${timing_list[*]}" \
  "bootstrap_ms first_write_ms streaming_ms" ""
