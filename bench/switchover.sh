#!/usr/bin/env bash
# Switchover window: while failover_probe writes through HAProxy, ask the leader's REST API for a
# switchover to a replica (POST /switchover, the same request for pgfleet and Patroni) and measure
# how long writes stopped, whether acknowledged rows were lost, and whether the former primary
# streams again from the new one without being cloned anew (its data directory is the same one).
#
# usage: bench/switchover.sh [--agent pgfleet|patroni|both] [--runs 5]
#                            [--timing 30/10/10,5/1/2] [--out results.jsonl] [--keep] [--seed N]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_parse_args "30/10/10,5/1/2" "$@"

# True once node <want> is the only primary and both others stream from it.
switchover_settled() { bench_replicas_streaming && [ "$PRIMARY_INDEX" = "$1" ]; }

# switchover_run <agent> <timing> <run number>
switchover_run() {
  local agent=$1 timing=$2 run=$3 ttl loop_wait boot_ms primary candidate inode_before inode_after
  local delay_ms t0 t1 code probe rejoin_ms="" line answer
  IFS=/ read -r ttl loop_wait _ <<<"$timing"
  bench_log "switchover $agent $timing run $run: starting cluster"
  bench_cluster_prepare "$timing"
  bench_start_agents "$agent"
  if ! boot_ms=$(bench_wait_healthy 180); then
    bench_fail_run switchover "$agent" "$timing" "$run" "cluster did not become healthy"
    return 0
  fi
  bench_probe_start_failover $((ttl * 3 + 90)) 3
  if ! bench_wait_for 30 bench_probe_rows_at_least 50; then
    bench_fail_run switchover "$agent" "$timing" "$run" "probe did not write through haproxy"
    return 0
  fi
  # Like the failover benchmark's kill, the request lands anywhere in the agents' loop.
  delay_ms=$(bench_kill_delay_ms "$loop_wait")
  sleep "$(awk -v ms="$delay_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
  if ! bench_find_primary; then
    bench_fail_run switchover "$agent" "$timing" "$run" "no single primary before the switchover"
    return 0
  fi
  primary=$PRIMARY_INDEX
  candidate=$((primary % BENCH_NODES + 1))
  inode_before=$(stat -c %i "$(data_dir "$primary")")
  kill -USR1 "$PROBE_PID" 2>/dev/null || true
  bench_log "switchover $agent $timing run $run: POST /switchover node$primary -> node$candidate"
  t0=$(bench_now)
  code=$(curl -s -m 90 -o "$RUN_DIR/switchover.answer" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' \
    -d "{\"leader\": \"node$primary\", \"candidate\": \"node$candidate\"}" \
    "http://127.0.0.1:${API_PORT[primary]}/switchover" || true)
  t1=$(bench_now)
  answer=$(head -c 300 "$RUN_DIR/switchover.answer" 2>/dev/null || true)
  probe=$(bench_probe_wait $((ttl * 3 + 150)))
  if bench_wait_for 120 switchover_settled "$candidate"; then
    rejoin_ms=$(bench_ms_between "$t0" "$(bench_now)")
  fi
  inode_after=$(stat -c %i "$(data_dir "$primary")" 2>/dev/null || echo 0)
  line=$(jq -nc --arg a "$agent" --arg t "$timing" --argjson r "$run" --argjson boot "$boot_ms" \
    --argjson p "$probe" --arg code "$code" --arg answer "$answer" \
    --arg api_ms "$(bench_ms_between "$t0" "$t1")" --arg rejoin "$rejoin_ms" \
    --arg from "node$primary" --arg to "node$candidate" --argjson delay "$delay_ms" \
    --argjson recloned "$([ "$inode_before" = "$inode_after" ] && echo false || echo true)" '
    {type: "run", bench: "switchover", agent: $a, timing: $t, run: $r,
     ok: ($p.recovered == true and $p.verified == true and $code == "200" and $rejoin != ""
          and ($recloned | not)),
     window_ms: $p.window_ms, request_to_first_ack_ms: $p.kill_to_first_ack_ms,
     request_to_recovery_ms: $p.kill_to_recovery_ms, api_answer_ms: ($api_ms | tonumber),
     request_to_all_streaming_ms: (if $rejoin == "" then null else ($rejoin | tonumber) end),
     acked: $p.acked, missing: $p.missing, probe_errors: $p.errors, http_status: $code,
     answer: $answer, from: $from, to: $to, former_primary_recloned: $recloned,
     bootstrap_ms: $boot, request_delay_ms: $delay, error: ($p.error // $p.verify_error)}
    | with_entries(select(.value != null and .value != ""))' | bench_round_ms)
  bench_emit "$line"
  bench_log "switchover $agent $timing run $run: window $(jq -r '.window_ms // "-"' <<<"$line") ms," \
    "missing $(jq -r '.missing // "-"' <<<"$line"), http $code," \
    "all streaming after $(jq -r '.request_to_all_streaming_ms // "-"' <<<"$line") ms," \
    "recloned $(jq -r '.former_primary_recloned' <<<"$line")"
}

bench_setup switchover

bench_for_each_run switchover_run

bench_summarise "$BENCH_RESULTS" switchover "${timing_list[*]}" \
  "window_ms request_to_recovery_ms api_answer_ms request_to_all_streaming_ms" "acked missing"
