#!/usr/bin/env bash
# Density: --instances single-small instances (default 40) provisioned through one pgfleet-broker
# with --in-flight requests (default 8) in flight, each then bound and written to with its
# credentials, by bench/broker_load (C++: no process per request); while that runs, it also times
# catalog and last_operation requests every 50 ms.
# Reports the broker's latency p50/p99 for catalog, last_operation and bind under that load, how
# many instances became healthy, and the memory each idle instance uses (proportional set size,
# PSS, of its agent, PostgreSQL processes and HAProxy, after --settle seconds idle). Beside it, the
# same figure for one PostgreSQL node run by Patroni (Patroni, PostgreSQL, HAProxy; etcd not
# counted on either side), measured in the same run.
#
# --driver-nice N runs the driver at nice N (default 0; the broker runs at its broker.nice, -5): on
# this one machine the driver competes for the same cores as the 40 instances, which a platform's
# client, on a machine of its own, does not; a driver at the broker's priority times the broker
# rather than its own wait for a core. Runs report driver_nice; compare runs of the same value.
#
# usage: bench/density.sh [--instances 40] [--in-flight 8] [--settle 30] [--driver-nice 0]
#                         [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/broker_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/broker_lib.sh"

INSTANCES=40
IN_FLIGHT=8
SETTLE=30
TIMEOUT=600
DRIVER_NICE=0
bench_parse_common "$@"
set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
while [ $# -gt 0 ]; do
  case "$1" in
    --instances) INSTANCES=$2; shift 2 ;;
    --in-flight) IN_FLIGHT=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --driver-nice) DRIVER_NICE=$2; shift 2 ;;
    -h | --help) bench_usage; exit 0 ;;
    *) bench_die "unknown option $1" ;;
  esac
done
[[ $INSTANCES =~ ^[1-9][0-9]*$ && $IN_FLIGHT =~ ^[1-9][0-9]*$ && $SETTLE =~ ^[0-9]+$ ]] ||
  bench_die "--instances and --in-flight must be positive integers, --settle a number of seconds"
[[ $DRIVER_NICE =~ ^-?[0-9]+$ ]] || bench_die "--driver-nice must be an integer"

LOAD_BIN=${LOAD_BIN:-$(dirname "$PROBE_BIN")/broker_load}
broker_require
bench_check_agent patroni
[ -x "$LOAD_BIN" ] || bench_die "broker_load not found at $LOAD_BIN (build target broker_load or set LOAD_BIN)"
bench_results_init density
trap 'set +e; broker_teardown; bench_cluster_destroy; rm -f "$BENCH_RESULTS"' EXIT
broker_start
PLAN=$(plan_id single-small)
[ -n "$PLAN" ] || bench_die "plan single-small not in the catalog"
WORK=$BROKER_DIR/density
mkdir -p "$WORK"

bench_log "provisioning $INSTANCES single-small instances, $IN_FLIGHT in flight (driver at nice $DRIVER_NICE)"
printf '%s\n' "$BROKER_PASSWORD" >"$WORK/password"
chmod 0600 "$WORK/password"
nice -n "$DRIVER_NICE" "$LOAD_BIN" --port "$BROKER_PORT" --password-file "$WORK/password" --service-id "$SERVICE_ID" \
  --plan-id "$PLAN" --instances "$INSTANCES" --in-flight "$IN_FLIGHT" --timeout "$TIMEOUT" \
  >"$WORK/load.json" 2>"$WORK/load.log" || true
[ -s "$WORK/load.json" ] || bench_die "broker_load reported nothing: $(tail -3 "$WORK/load.log")"
LOAD=$(cat "$WORK/load.json")
healthy=$(jq .healthy <<<"$LOAD")
bench_log "$healthy of $INSTANCES instances healthy (bound and written to) in $(jq .all_ready_ms <<<"$LOAD") ms"
jq -c '.results[] | select(.written | not)' <<<"$LOAD" >&2

# Every instance's processes still up after the load (none crashed while idle).
bench_log "idle for ${SETTLE}s before measuring memory"
sleep "$SETTLE"

# Sums of Pss (smaps_rollup) and VmRSS (status) over PIDs, in kB: "<pss> <rss>".
memory_kb() {
  local files_pss=() files_status=() p
  for p in "$@"; do
    files_pss+=("/proc/$p/smaps_rollup")
    files_status+=("/proc/$p/status")
  done
  # cat skips a process that is gone meanwhile (mawk would stop at a file it cannot open).
  echo "$(cat "${files_pss[@]}" 2>/dev/null | awk '/^Pss:/ { s += $2 } END { print s + 0 }')" \
    "$(cat "${files_status[@]}" 2>/dev/null | awk '$1 == "VmRSS:" { s += $2 } END { print s + 0 }')"
}

instances_measured=0
pss_total=0
rss_total=0
procs_total=0
for dir in "$(broker_state)"/instances/*/; do
  [ -d "$dir" ] || continue
  mapfile -t pids < <(instance_pids "$(basename "$dir")")
  [ ${#pids[@]} -gt 0 ] || continue
  instances_measured=$((instances_measured + 1))
  read -r pss rss < <(memory_kb "${pids[@]}")
  pss_total=$((pss_total + pss))
  rss_total=$((rss_total + rss))
  procs_total=$((procs_total + ${#pids[@]}))
done
read -r broker_pss _ < <(memory_kb "$BROKER_PID")

prov50=$(jq '[ .results[] | select(.written) | .provision_ms ] | sort
  | if length == 0 then null else .[(length - 1) / 2 | floor] end' <<<"$LOAD")

bench_emit "$(jq -c --argjson m "$instances_measured" --argjson pss "$pss_total" \
  --argjson rss "$rss_total" --argjson procs "$procs_total" --argjson bpss "$broker_pss" \
  --argjson p50 "$prov50" --argjson dn "$DRIVER_NICE" '
  {type: "run", bench: "density", agent: "pgfleet", ok: (.healthy == .instances),
   instances, in_flight, driver_nice: $dn, healthy, all_ready_ms, provision_p50_ms: $p50,
   catalog_p50_ms: .catalog.p50_ms, catalog_p99_ms: .catalog.p99_ms,
   catalog_samples: .catalog.samples,
   last_operation_p50_ms: .last_operation.p50_ms, last_operation_p99_ms: .last_operation.p99_ms,
   last_operation_samples: .last_operation.samples,
   bind_p50_ms: .bind.p50_ms, bind_p99_ms: .bind.p99_ms, bind_samples: .bind.samples,
   idle_instances_measured: $m,
   pss_per_instance_kb: (if $m > 0 then ($pss / $m | round) else null end),
   rss_per_instance_kb: (if $m > 0 then ($rss / $m | round) else null end),
   processes_per_instance: (if $m > 0 then ($procs / $m * 10 | round / 10) else null end),
   broker_pss_kb: $bpss}' <<<"$LOAD")"
pgfleet_line=$(tail -1 "$BENCH_RESULTS")

# The peer: one PostgreSQL node under Patroni, idle for as long, measured the same way.
BENCH_NODES=1
bench_log "Patroni: one node, idle ${SETTLE}s"
bench_cluster_prepare 15/2/5
bench_start_agents patroni
patroni_pss=null
patroni_rss=null
patroni_procs=null
if bench_wait_healthy 120 >/dev/null; then
  sleep "$SETTLE"
  mapfile -t ppids < <(
    echo "${AGENT_PID[1]}"
    echo "$HAPROXY_PID"
    pm=$(bench_postmaster_pid 1)
    echo "$pm"
    # shellcheck disable=SC2013  # the children files hold space-separated PIDs
    for p in $(cat "/proc/$pm/task/"*/children 2>/dev/null); do echo "$p"; done
  )
  read -r patroni_pss patroni_rss < <(memory_kb "${ppids[@]}")
  patroni_procs=${#ppids[@]}
else
  bench_log "the Patroni node did not become healthy"
fi
bench_emit "$(jq -nc --argjson pss "$patroni_pss" --argjson rss "$patroni_rss" --argjson p "$patroni_procs" '
  {type: "run", bench: "density", agent: "patroni", ok: ($pss != null), instances: 1,
   pss_per_instance_kb: $pss, rss_per_instance_kb: $rss, processes_per_instance: $p}')"
bench_cluster_destroy

{
  printf '\ndensity: %s single-small, %s in flight: %s healthy, all ready in %s ms (median provision %s ms)\n' \
    "$INSTANCES" "$IN_FLIGHT" "$healthy" "$(jq -r .all_ready_ms <<<"$pgfleet_line")" "$(bench_fmt "$prov50")"
  printf '  %-16s %10s %10s %8s\n' request p50_ms p99_ms samples
  for req in catalog last_operation bind; do
    printf '  %-16s %10s %10s %8s\n' "$req" "$(jq -r ".$req.p50_ms" <<<"$LOAD")" \
      "$(jq -r ".$req.p99_ms" <<<"$LOAD")" "$(jq -r ".$req.samples" <<<"$LOAD")"
  done
  printf '  memory per idle instance (PSS): pgfleet %s kB (%s processes), Patroni node %s kB (%s processes); broker %s kB\n' \
    "$(jq -r .pss_per_instance_kb <<<"$pgfleet_line")" "$(jq -r .processes_per_instance <<<"$pgfleet_line")" \
    "$patroni_pss" "$patroni_procs" "$broker_pss"
} >&2
