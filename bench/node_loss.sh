#!/usr/bin/env bash
# A lost node through the broker: one pgfleet-broker (local backend, embedded etcd, self-healing
# on), one cluster-small instance; each run kills a node's agent and PostgreSQL together (SIGKILL,
# as a crashed machine would) and measures the time until the instance is at full strength again:
# the killed node runs a new PostgreSQL, the leader lists both replicas streaming, and a write with
# bound credentials succeeds. Odd runs kill a replica, even runs the primary (for which the time
# until a write succeeds again is reported too). Nothing but the broker's supervisor and the agents
# act.
#
# There is no peer in this benchmark: Patroni restarts nothing itself (a node whose Patroni died
# stays down until a process manager or a person starts it), so its figure depends on that
# manager, not on Patroni.
#
# usage: bench/node_loss.sh [--runs 6] [--timeout 120] [--out results.jsonl] [--keep]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/broker_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/broker_lib.sh"

BENCH_RUNS=6
TIMEOUT=120
bench_parse_common "$@"
set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) TIMEOUT=$2; shift 2 ;;
    -h | --help) bench_usage; exit 0 ;;
    *) bench_die "unknown option $1" ;;
  esac
done

broker_require
bench_results_init node_loss
trap 'set +e; broker_teardown; rm -f "$BENCH_RESULTS"' EXIT
broker_start

PLAN=$(plan_id cluster-small)
[ -n "$PLAN" ] || bench_die "no cluster-small plan in the catalog"
provision loss "$PLAN" >/dev/null
[ "$(wait_operation loss 180)" = succeeded ] || bench_die "the instance was not provisioned"
URI=$(bind loss app "$PLAN" | sed '$d' | jq -r '.credentials.uri')
NAME=$(sqlite3 -readonly "$(broker_state)/broker.db" \
  "SELECT json_extract(deployment, '\$.name') FROM instances WHERE id = 'loss'")
DIR="$(broker_state)/instances/$NAME"

# The node (0-2) whose agent says it is the primary; fails when none or several do.
primary_node() {
  local n port role found=""
  for n in 0 1 2; do
    port=$(sqlite3 -readonly "$(broker_state)/broker.db" \
      "SELECT port FROM ports WHERE instance_id = 'loss' AND purpose = 'api$n'")
    role=$(curl -sf -m 1 "http://127.0.0.1:$port/patroni" | jq -r '.role // empty' 2>/dev/null || true)
    if [ "$role" = master ] || [ "$role" = primary ]; then
      [ -n "$found" ] && return 1
      found=$n
    fi
  done
  [ -n "$found" ] && printf '%s' "$found"
}

postmaster_of() { head -1 "$DIR/node$1/data/postmaster.pid" 2>/dev/null || true; }

# Full strength with node $1 running a PostgreSQL other than pid $2.
healed() {
  local pm
  pm=$(postmaster_of "$1")
  [ -n "$pm" ] && [ "$pm" != "$2" ] && bench_pid_alive "$pm" && instance_streaming loss 3 &&
    write_with "$URI"
}

bench_wait_for 60 healed 0 none || bench_die "the instance is not at full strength"
for run in $(seq 1 "$BENCH_RUNS"); do
  primary=$(primary_node) || bench_die "no single primary before run $run"
  if [ $((run % 2)) = 1 ]; then
    victim=$(((primary + 1) % 3))
    role=replica
  else
    victim=$primary
    role=primary
  fi
  agent=$(cat "$DIR/node$victim/agent.pid")
  pm=$(postmaster_of "$victim")
  bench_log "run $run: SIGKILL node$victim ($role): agent $agent, postmaster $pm"
  t0=$(bench_now)
  kill -KILL "$agent" "$pm" 2>/dev/null || true
  write_ms=null
  if [ "$role" = primary ] && bench_wait_for "$TIMEOUT" write_with "$URI"; then
    write_ms=$(bench_ms_between "$t0" "$(bench_now)")
  fi
  full_ms=null
  if bench_wait_for "$TIMEOUT" healed "$victim" "$pm"; then
    full_ms=$(bench_ms_between "$t0" "$(bench_now)")
  fi
  bench_log "run $run: full strength after ${full_ms} ms"
  bench_emit "$(jq -nc --argjson r "$run" --arg role "$role" --argjson f "$full_ms" \
    --argjson w "$write_ms" \
    '{type: "run", bench: "node_loss", agent: "pgfleet", run: $r, killed: $role,
      ok: ($f != null), loss_to_full_ms: $f, loss_to_write_ms: $w}')"
  # The next kill starts from a settled instance.
  sleep 5
done

for role in replica primary; do
  jq -s -c --arg k "$role" '
    [ .[] | select(.type == "run" and .killed == $k and .ok == true) ] as $runs
    | def med(f): ([ $runs[] | f | select(. != null) ] | sort
        | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2]
          else (.[length / 2 - 1] + .[length / 2]) / 2 end);
      {type: "summary", bench: "node_loss", killed: $k, runs: ($runs | length),
       median_loss_to_full_ms: med(.loss_to_full_ms),
       median_loss_to_write_ms: med(.loss_to_write_ms)}' "$BENCH_RESULTS"
done
