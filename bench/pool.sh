#!/usr/bin/env bash
# Pool: the time from an OSB provision request to a successful write with bound credentials when
# the instance comes from the plan's pool, beside the same plan built on demand, in the same run.
#
# One pgfleet-broker (local backend, embedded etcd) with two plans added to the example's:
# single-small-pooled and cluster-small-pooled, copies of single-small and cluster-small (same
# resources and template) with `provisioning: {strategy: hybrid, pool_size: 1}`. Each run, for
# each size: wait until the pool holds a ready instance and nothing else is being built or
# removed, provision from the pool and measure; wait again (the pool refills), then provision the
# on-demand plan and measure. A measurement: PUT the instance, poll last_operation at once and
# then every 100 ms until it says "succeeded", bind, write through `credentials.uri` with psql
# (for a cluster also until the leader lists both replicas streaming); ready_ms is the latest of
# these. The first poll's state is recorded. Then the instance is deleted and its deletion waited
# for, so that no measurement shares the machine with another build.
#
# usage: bench/pool.sh [--runs 5] [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/broker_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/broker_lib.sh"

TIMEOUT=180
bench_parse_common "$@"
set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) bench_usage; exit 0 ;;
    *) bench_die "unknown option $1" ;;
  esac
done

broker_config_hook() {
  cat >>"$1" <<'EOF'

  - id: 0d6c2a51-7f3e-4b8d-a9c4-5e2f1b7d3a01
    name: single-small-pooled
    description: single-small, taken from a pool of one
    nodes: 1
    resources: {shared_buffers: 128MB, max_connections: 100, work_mem: 4MB, disk_quota_mb: 1024}
    maintenance_info: {version: 1.0.0}
    provisioning: {strategy: hybrid, pool_size: 1}

  - id: 0d6c2a51-7f3e-4b8d-a9c4-5e2f1b7d3a03
    name: cluster-small-pooled
    description: cluster-small, taken from a pool of one
    nodes: 3
    resources: {shared_buffers: 128MB, max_connections: 100, work_mem: 4MB, disk_quota_mb: 1024}
    maintenance_info: {version: 1.0.0}
    provisioning: {strategy: hybrid, pool_size: 1}
EOF
}

broker_require
bench_results_init pool
trap 'set +e; broker_teardown; rm -f "$BENCH_RESULTS"' EXIT
broker_start

# Every pool full, nothing being built, provisioned or removed.
quiet() {
  local pools
  pools=$(osb GET /pgfleet/v1/pools | sed '$d')
  [ "$(jq '[.pools[] | select(.ready < .size or .building > 0)] | length' <<<"$pools")" = 0 ] &&
    [ "$(osb GET /pgfleet/v1/instances | sed '$d' | jq '.instances | length')" = 0 ]
}

measure() {
  local plan=$1 nodes=$2 source=$3 run=$4 id pid t0 t_ok t_write t_stream state first answer uri
  id="bench-$plan-$run"
  pid=$(plan_id "$plan")
  [ -n "$pid" ] || bench_die "plan $plan not in the catalog"
  bench_wait_for "$TIMEOUT" quiet || bench_die "the pools did not fill up: $(osb GET /pgfleet/v1/pools | sed '$d')"
  bench_log "provision $plan ($source) run $run"
  t0=$(bench_now)
  answer=$(provision "$id" "$pid")
  [ "$(tail -1 <<<"$answer" | cut -d' ' -f1)" = 202 ] || bench_die "provision answered: $answer"
  first=$(osb GET "/v2/service_instances/$id/last_operation" | sed '$d' | jq -r '.state // empty')
  state=$first
  [ "$state" = succeeded ] || state=$(wait_operation "$id" "$TIMEOUT")
  t_ok=$(bench_now)
  if [ "$state" != succeeded ]; then
    bench_emit "$(jq -nc --arg p "$plan" --arg src "$source" --argjson r "$run" --arg s "$state" \
      '{type: "run", bench: "pool", plan: $p, source: $src, run: $r, ok: false, error: $s}')"
  else
    answer=$(bind "$id" b1 "$pid")
    uri=$(sed '$d' <<<"$answer" | jq -r '.credentials.uri // empty')
    [ -n "$uri" ] || bench_die "bind answered: $(tail -1 <<<"$answer")"
    write_with "$uri" || bench_die "a write with the bound credentials failed"
    t_write=$(bench_now)
    t_stream=$t_write
    if [ "$nodes" -gt 1 ]; then
      bench_wait_for "$TIMEOUT" instance_streaming "$id" "$nodes" || bench_die "$id: replicas not streaming"
      t_stream=$(bench_now)
    fi
    bench_emit "$(jq -nc --arg p "$plan" --arg src "$source" --argjson r "$run" --argjson t0 "$t0" \
      --argjson ok "$t_ok" --argjson w "$t_write" --argjson s "$t_stream" --arg f "$first" '
      {type: "run", bench: "pool", plan: $p, source: $src, run: $r, ok: true, first_poll: $f,
       succeeded_ms: (($ok - $t0) * 1000), first_write_ms: (($w - $t0) * 1000),
       ready_ms: ((([$w, $s] | max) - $t0) * 1000)}')"
    bench_log "$plan ($source) run $run: first poll \"$first\", ready in $(tail -1 "$BENCH_RESULTS" | jq -r .ready_ms) ms"
    osb DELETE "/v2/service_instances/$id/service_bindings/b1?service_id=$SERVICE_ID&plan_id=$pid" >/dev/null
  fi
  deprovision "$id" "$pid" >/dev/null
  wait_operation "$id" "$TIMEOUT" >/dev/null
}

for run in $(seq 1 "$BENCH_RUNS"); do
  measure single-small-pooled 1 pool "$run"
  measure single-small 1 on_demand "$run"
  measure cluster-small-pooled 3 pool "$run"
  measure cluster-small 3 on_demand "$run"
done

count() { jq -s "[ .[] | select(.type == \"run\") | select($1) ] | length" "$BENCH_RESULTS"; }
table=$(printf '\nprovision to usable credentials (a write with them) and to ready (a cluster: replicas streaming), medians of successful runs\n')
for size in single cluster; do
  pooled=$(bench_median ".plan == \"$size-small-pooled\"" first_write_ms)
  demand=$(bench_median ".plan == \"$size-small\"" first_write_ms)
  pooled_ready=$(bench_median ".plan == \"$size-small-pooled\"" ready_ms)
  demand_ready=$(bench_median ".plan == \"$size-small\"" ready_ms)
  firsts=$(count ".plan == \"$size-small-pooled\" and .first_poll == \"succeeded\"")
  runs=$(count ".plan == \"$size-small-pooled\"")
  bench_emit "$(jq -nc --arg s "$size" --argjson p "$pooled" --argjson d "$demand" \
    --argjson pr "$pooled_ready" --argjson dr "$demand_ready" --argjson f "$firsts" --argjson n "$runs" '
    {type: "summary", bench: "pool", stat: "median", size: $s, pool_first_write_ms: $p,
     on_demand_first_write_ms: $d, pool_ready_ms: $pr, on_demand_ready_ms: $dr,
     pool_succeeded_on_first_poll: $f, pool_runs: $n,
     pool_over_on_demand: (if $p != null and $d != null then ($p / $d * 100 | round / 100) else null end)}')"
  table+=$(printf '\n  %-32s %10s %10s  (succeeded on the first poll: %s of %s)' \
    "$size-small from the pool" "$(bench_fmt "$pooled") ms" "$(bench_fmt "$pooled_ready") ms" "$firsts" "$runs")
  table+=$(printf '\n  %-32s %10s %10s' "$size-small on demand" "$(bench_fmt "$demand") ms" "$(bench_fmt "$demand_ready") ms")
  table+=$(printf '\n  %-32s %10s' "pool / on demand (credentials)" "$(bench_ratio "$pooled" "$demand")")
done
printf '%s\n' "$table" >&2
