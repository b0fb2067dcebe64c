#!/usr/bin/env bash
# Provision: the time from an OSB provision request to a successful write with bound credentials,
# for single-small and cluster-small, beside Patroni bootstrapping the same 3-node cluster
# (bench/bootstrap.sh --agent patroni: three agents on empty data directories until both
# replicas stream and a write through HAProxy succeeds), in the same run, alternating.
#
# One pgfleet-broker (local backend, embedded etcd) serves every pgfleet run. Each run: PUT the
# instance, poll last_operation every 100 ms until it says "succeeded", bind, write through
# `credentials.uri` with psql; for cluster-small also until the leader lists both replicas
# streaming. ready_ms is the latest of these; then the instance is deleted (deprovision_ms: until
# last_operation answers 410).
#
# usage: bench/provision.sh [--runs 5] [--patroni-timing 15/2/5,30/10/10] [--out results.jsonl]
#                           [--keep]
#   --patroni-timing: Patroni's ttl/loop_wait/retry_timeout, one bootstrap per timing and run;
#   15/2/5 is what the broker's instances run with, 30/10/10 Patroni's defaults.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/broker_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/broker_lib.sh"

PATRONI_TIMING=15/2/5,30/10/10
TIMEOUT=180
bench_parse_common "$@"
set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
while [ $# -gt 0 ]; do
  case "$1" in
    --patroni-timing) PATRONI_TIMING=$2; shift 2 ;;
    -h | --help) bench_usage; exit 0 ;;
    *) bench_die "unknown option $1" ;;
  esac
done

broker_require
bench_check_agent patroni
bench_results_init provision
trap 'set +e; broker_teardown; rm -f "$BENCH_RESULTS"' EXIT
broker_start

run_pgfleet() {
  local plan=$1 nodes=$2 run=$3 id pid t0 t_ok t_bound t_write t_stream t_gone state answer uri
  id="bench-$plan-$run"
  pid=$(plan_id "$plan")
  [ -n "$pid" ] || bench_die "plan $plan not in the catalog"
  bench_log "provision $plan run $run"
  t0=$(bench_now)
  answer=$(provision "$id" "$pid")
  [ "$(tail -1 <<<"$answer" | cut -d' ' -f1)" = 202 ] || bench_die "provision answered: $answer"
  state=$(wait_operation "$id" "$TIMEOUT")
  t_ok=$(bench_now)
  if [ "$state" != succeeded ]; then
    bench_emit "$(jq -nc --arg p "$plan" --argjson r "$run" --arg s "$state" \
      '{type: "run", bench: "provision", agent: "pgfleet", plan: $p, run: $r, ok: false, error: $s}')"
    deprovision "$id" "$pid" >/dev/null
    wait_operation "$id" "$TIMEOUT" >/dev/null
    return 0
  fi
  answer=$(bind "$id" b1 "$pid")
  t_bound=$(bench_now)
  uri=$(sed '$d' <<<"$answer" | jq -r '.credentials.uri // empty')
  [ -n "$uri" ] || bench_die "bind answered: $(tail -1 <<<"$answer")"
  write_with "$uri" || bench_die "a write with the bound credentials failed"
  t_write=$(bench_now)
  t_stream=$t_write
  if [ "$nodes" -gt 1 ]; then
    bench_wait_for "$TIMEOUT" instance_streaming "$id" "$nodes" || bench_die "$id: replicas not streaming"
    t_stream=$(bench_now)
  fi
  osb DELETE "/v2/service_instances/$id/service_bindings/b1?service_id=$SERVICE_ID&plan_id=$pid" >/dev/null
  local t_del
  t_del=$(bench_now)
  deprovision "$id" "$pid" >/dev/null
  state=$(wait_operation "$id" "$TIMEOUT")
  t_gone=$(bench_now)
  bench_emit "$(jq -nc --arg p "$plan" --argjson r "$run" --argjson t0 "$t0" --argjson ok "$t_ok" \
    --argjson b "$t_bound" --argjson w "$t_write" --argjson s "$t_stream" --argjson d "$t_del" \
    --argjson g "$t_gone" --arg gs "$state" '
    {type: "run", bench: "provision", agent: "pgfleet", plan: $p, run: $r, ok: true,
     succeeded_ms: (($ok - $t0) * 1000), bound_ms: (($b - $t0) * 1000),
     first_write_ms: (($w - $t0) * 1000), streaming_ms: (($s - $t0) * 1000),
     ready_ms: ((([$w, $s] | max) - $t0) * 1000),
     deprovision_ms: (($g - $d) * 1000), deprovision_ok: ($gs == "gone")}')"
  bench_log "$plan run $run: ready in $(tail -1 "$BENCH_RESULTS" | jq -r .ready_ms) ms"
}

run_patroni() {
  local timing=$1 run=$2 out
  out=$(mktemp /tmp/pgfleet-bench-patroni.XXXXXX)
  bench_log "Patroni bootstrap ($timing) run $run"
  "$BENCH_DIR/bootstrap.sh" --agent patroni --runs 1 --timing "$timing" --out "$out" \
    >/dev/null 2>"$out.log" || true
  local line
  line=$(jq -c --argjson r "$run" 'select(.type == "run") | .run = $r' "$out" | head -1)
  [ -n "$line" ] || line=$(jq -nc --arg t "$timing" --argjson r "$run" \
    '{type: "run", bench: "bootstrap", agent: "patroni", timing: $t, run: $r, ok: false}')
  bench_emit "$line"
  rm -f "$out" "$out.log"
}

IFS=, read -r -a patroni_timings <<<"$PATRONI_TIMING"
for run in $(seq 1 "$BENCH_RUNS"); do
  run_pgfleet single-small 1 "$run"
  run_pgfleet cluster-small 3 "$run"
  for timing in "${patroni_timings[@]}"; do run_patroni "$timing" "$run"; done
done

single=$(bench_median '.plan == "single-small"' ready_ms)
cluster=$(bench_median '.plan == "cluster-small"' ready_ms)
cluster_ok=$(bench_median '.plan == "cluster-small"' succeeded_ms)
ok_count() { jq -s "[ .[] | select(.type == \"run\" and .ok == true) | select($1) ] | length" "$BENCH_RESULTS"; }
table=$(printf '\nprovision to a write with bound credentials (median of successful runs)\n')
row() { printf '\n  %-52s %10s %s' "$1" "$(bench_fmt "$2") ms" "($3 ok)"; }
table+=$(row "pgfleet single-small" "$single" "$(ok_count '.plan == "single-small"')")
table+=$(row "pgfleet cluster-small (both replicas streaming)" "$cluster" "$(ok_count '.plan == "cluster-small"')")
for timing in "${patroni_timings[@]}"; do
  patroni=$(bench_median ".agent == \"patroni\" and .timing == \"$timing\"" bootstrap_ms)
  bench_emit "$(jq -nc --argjson s "$single" --argjson c "$cluster" --argjson co "$cluster_ok" \
    --argjson p "$patroni" --arg t "$timing" '
    {type: "summary", bench: "provision", stat: "median", single_small_ready_ms: $s,
     cluster_small_ready_ms: $c, cluster_small_succeeded_ms: $co, patroni_timing: $t,
     patroni_bootstrap_ms: $p,
     cluster_over_patroni: (if $c != null and $p != null then ($c / $p * 100 | round / 100) else null end)}')"
  table+=$(row "Patroni 3-node bootstrap ($timing)" "$patroni" \
    "$(ok_count ".agent == \"patroni\" and .timing == \"$timing\"")")
  table+=$(printf '\n  %-52s %10s' "cluster-small / Patroni ($timing)" "$(bench_ratio "$cluster" "$patroni")")
done
printf '%s\n' "$table" >&2
