#!/usr/bin/env bash
# Resize: the write unavailability an application sees while its cluster moves to a bigger plan
# (cluster-small -> cluster-medium: every node restarts, one at a time, with one switchover),
# beside one plain switchover of the same cluster, in the same run.
#
# One pgfleet-broker (local backend, embedded etcd). Each run provisions a cluster-small instance
# and binds it; failover_probe writes one numbered row every 20 ms through the bound URI (HAProxy's
# read-write endpoint), reconnecting on errors. First a switchover: the mark, then POST /switchover
# to the leader's agent. Then the resize: the mark, then PATCH the instance to cluster-medium and
# poll last_operation until it succeeds. Each time the probe reports the longest gap between
# acknowledged writes from the mark on (window_ms) and which acknowledged rows are missing.
#
# usage: bench/resize.sh [--runs 5] [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/broker_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/broker_lib.sh"

TIMEOUT=240
bench_parse_common "$@"
set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) bench_usage; exit 0 ;;
    *) bench_die "unknown option $1" ;;
  esac
done

broker_require
bench_results_init resize
RUN_DIR=$(mktemp -d /tmp/pgfleet-bench-resize.XXXXXX)
trap 'set +e; [ -n "${PROBE_PID:-}" ] && bench_stop_pid "$PROBE_PID" TERM 10; broker_teardown; rm -rf "$RUN_DIR" "$BENCH_RESULTS"' EXIT
broker_start

# The leader's agent API port and name: "<port> <node name>".
leader_of() {
  local port name role
  while read -r port name; do
    role=$(curl -sf -m 1 "http://127.0.0.1:$port/patroni" | jq -r '.role // empty' 2>/dev/null || true)
    if [ "$role" = master ] || [ "$role" = primary ]; then
      echo "$port $name"
      return 0
    fi
  done < <(osb GET "/pgfleet/v1/instances/$1" | sed '$d' | jq -r '.deployment.nodes[] | "\(.api_port) \(.name)"')
  return 1
}
replica_of() {
  local leader=$1 port name
  while read -r port name; do
    [ "$name" = "$leader" ] && continue
    [ "$(curl -sf -m 1 "http://127.0.0.1:$port/patroni" | jq -r '.replication_state // empty' 2>/dev/null)" = streaming ] || continue
    echo "$name"
    return 0
  done < <(osb GET "/pgfleet/v1/instances/$2" | sed '$d' | jq -r '.deployment.nodes[] | "\(.api_port) \(.name)"')
  return 1
}

probe_rows() { [ "$(psql -X -At "$URI" -c 'SELECT count(*) FROM pgfleet_probe' 2>/dev/null || echo 0)" -ge "$1" ]; }

# probe_window <label> <command...>: runs the probe, marks, runs the command, prints the report.
probe_window() {
  local label=$1
  shift
  "$PROBE_BIN" --conninfo "$URI" --mode failover --duration "$TIMEOUT" --stop-after 20 \
    --interval-ms 20 --verify-timeout 30 >"$RUN_DIR/probe.json" 2>"$RUN_DIR/probe.log" &
  PROBE_PID=$!
  bench_wait_for 30 probe_rows "$((${ROWS:-0} + 50))" || bench_die "the probe does not write: $(tail -3 "$RUN_DIR/probe.log")"
  kill -USR1 "$PROBE_PID"
  bench_log "$label"
  "$@" || bench_die "$label failed"
  bench_wait_gone "$PROBE_PID" "$TIMEOUT" || bench_stop_pid "$PROBE_PID" TERM 40
  PROBE_PID=""
  ROWS=$(psql -X -At "$URI" -c 'SELECT count(*) FROM pgfleet_probe')
  cat "$RUN_DIR/probe.json"
}

switch_over() {
  local leader port name candidate
  leader=$(leader_of "$ID") || return 1
  read -r port name <<<"$leader"
  candidate=$(replica_of "$name" "$ID") || return 1
  [ "$(curl -s -m 90 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d "{\"leader\": \"$name\", \"candidate\": \"$candidate\"}" "http://127.0.0.1:$port/switchover")" = 200 ]
}

resize() {
  local answer
  answer=$(osb PATCH "/v2/service_instances/$ID?accepts_incomplete=true" \
    "{\"service_id\":\"$SERVICE_ID\",\"plan_id\":\"$(plan_id cluster-medium)\"}")
  [ "$(tail -1 <<<"$answer" | cut -d' ' -f1)" = 202 ] || { bench_log "PATCH answered: $answer"; return 1; }
  [ "$(wait_operation "$ID" "$TIMEOUT")" = succeeded ]
}

for run in $(seq 1 "$BENCH_RUNS"); do
  ID="bench-resize-$run"
  ROWS=0
  small=$(plan_id cluster-small)
  [ "$(provision "$ID" "$small" | tail -1 | cut -d' ' -f1)" = 202 ] || bench_die "provision refused"
  [ "$(wait_operation "$ID" "$TIMEOUT")" = succeeded ] || bench_die "provision failed"
  URI=$(bind "$ID" b1 "$small" | sed '$d' | jq -r '.credentials.uri // empty')
  [ -n "$URI" ] || bench_die "bind failed"
  bench_wait_for 60 instance_streaming "$ID" 3 || bench_die "replicas not streaming"
  switchover=$(probe_window "switchover run $run" switch_over)
  bench_wait_for 60 instance_streaming "$ID" 3 || bench_die "replicas not streaming after the switchover"
  resized=$(probe_window "resize run $run" resize)
  steps=$(osb GET "/pgfleet/v1/instances/$ID" | sed '$d' | jq -c '.last_operation.steps')
  bench_emit "$(jq -nc --argjson r "$run" --argjson s "$switchover" --argjson z "$resized" \
    --argjson steps "$steps" '
    {type: "run", bench: "resize", run: $r,
     ok: ($s.verified == true and $z.verified == true and ($s.missing | length) == 0
          and ($z.missing | length) == 0),
     switchover_window_ms: $s.window_ms, resize_window_ms: $z.window_ms,
     switchover_missing: ($s.missing | length), resize_missing: ($z.missing | length),
     acked: ($s.acked + $z.acked), resize_steps: $steps}' | bench_round_ms)"
  bench_log "run $run: switchover window $(tail -1 "$BENCH_RESULTS" | jq -r .switchover_window_ms) ms, resize window $(tail -1 "$BENCH_RESULTS" | jq -r .resize_window_ms) ms"
  deprovision "$ID" "$(plan_id cluster-medium)" >/dev/null
  wait_operation "$ID" "$TIMEOUT" >/dev/null
done

sw=$(bench_median true switchover_window_ms)
rz=$(bench_median true resize_window_ms)
ok=$(jq -s '[ .[] | select(.type == "run" and .ok == true) ] | length' "$BENCH_RESULTS")
bench_emit "$(jq -nc --argjson s "$sw" --argjson z "$rz" --argjson ok "$ok" '
  {type: "summary", bench: "resize", stat: "median", switchover_window_ms: $s,
   resize_window_ms: $z, ok_runs: $ok,
   resize_over_switchover: (if $s != null and $z != null and $s > 0 then ($z / $s * 100 | round / 100) else null end)}')"
printf '\nlongest write gap seen through the bound URI (median of %s good runs)\n' "$ok" >&2
printf '  %-44s %10s\n' "one switchover" "$(bench_fmt "$sw") ms" >&2
printf '  %-44s %10s\n' "cluster-small -> cluster-medium (rolling)" "$(bench_fmt "$rz") ms" >&2
printf '  %-44s %10s\n' "resize / switchover" "$(bench_ratio "$rz" "$sw")" >&2
