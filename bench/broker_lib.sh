# shellcheck shell=bash
# Shared functions of the broker benchmarks (provision.sh, density.sh): one pgfleet-broker with the
# local backend and its embedded etcd in a throw-away state directory, driven through its Open
# Service Broker API with curl. Sourced after lib.sh. At exit everything the broker started is
# stopped by the PIDs in its state directory (agents, PostgreSQL, HAProxy, etcd), never by name.

PGFLEET_BROKER_BIN=${PGFLEET_BROKER_BIN:-$REPO_ROOT/build/pgfleet-broker}
SERVICE_ID=e0bbd32b-944e-4a1e-bf83-db238487ce21

BROKER_DIR=""
BROKER_PID=""
BROKER_PORT=""
BROKER_PASSWORD=""

broker_require() {
  bench_require_root
  [ -x "$PGFLEET_BROKER_BIN" ] || bench_die "pgfleet-broker not found at $PGFLEET_BROKER_BIN"
  command -v sqlite3 >/dev/null || bench_die "sqlite3 not found in PATH"
  [ -x "$(dirname "$PGFLEET_BROKER_BIN")/pgfleet-agent" ] ||
    bench_die "pgfleet-agent not found beside $PGFLEET_BROKER_BIN"
}

broker_state() { printf '%s/state' "$BROKER_DIR"; }

# Writes a configuration from examples/broker-local.yaml with this run's instance ports (a window
# of 2000 that no listener uses) and embedded etcd ports, and starts the broker.
broker_start() {
  BROKER_DIR=$(mktemp -d /tmp/pgfleet-bench-broker.XXXXXX)
  chmod 0711 "$BROKER_DIR"
  BROKER_PASSWORD=$(bench_random_password)
  bench_alloc_port
  BROKER_PORT=$BENCH_PORT
  bench_alloc_port
  local etcd_port=$BENCH_PORT
  bench_alloc_port
  local etcd_peer_port=$BENCH_PORT
  local low=$((30000 + (RANDOM % 5) * 2000))
  sed "s|^broker:$|broker:\n  ports: $low-$((low + 1999))\n  templates_dir: $REPO_ROOT/examples/templates|" \
    "$REPO_ROOT/examples/broker-local.yaml" >"$BROKER_DIR/broker.yaml"
  # A benchmark may add plans to the end of the plan list first (broker_config_hook <file>).
  if declare -F broker_config_hook >/dev/null; then broker_config_hook "$BROKER_DIR/broker.yaml"; fi
  printf '\netcd:\n  embedded_port: %s\n  embedded_peer_port: %s\n' "$etcd_port" "$etcd_peer_port" \
    >>"$BROKER_DIR/broker.yaml"
  PGFLEET_BROKER_USER=broker PGFLEET_BROKER_PASSWORD=$BROKER_PASSWORD \
    PGFLEET_BROKER_LISTEN=127.0.0.1:$BROKER_PORT PGFLEET_STATE_DIR=$(broker_state) \
    "$PGFLEET_BROKER_BIN" --config "$BROKER_DIR/broker.yaml" >"$BROKER_DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  bench_wait_for 60 broker_answers || bench_die "the broker did not answer: $(tail -5 "$BROKER_DIR/broker.log")"
  bench_log "broker pid $BROKER_PID on 127.0.0.1:$BROKER_PORT, state in $(broker_state)"
}

broker_answers() { [ "$(osb_code GET /v2/catalog)" = 200 ]; }

# osb <method> <path> [body]: prints the answer's body, then a line "<status> <seconds>".
osb() {
  curl -s -m 60 -u "broker:$BROKER_PASSWORD" -H 'X-Broker-API-Version: 2.17' \
    -H 'Content-Type: application/json' -X "$1" ${3:+-d "$3"} \
    -w '\n%{http_code} %{time_total}' "http://127.0.0.1:$BROKER_PORT$2"
}
osb_code() { osb "$@" | tail -1 | cut -d' ' -f1; }

plan_id() {
  osb GET /v2/catalog | sed '$d' | jq -r --arg n "$1" '.services[0].plans[] | select(.name == $n) | .id'
}

# provision <id> <plan id>: 202 expected.
provision() {
  osb PUT "/v2/service_instances/$1?accepts_incomplete=true" \
    "{\"service_id\":\"$SERVICE_ID\",\"plan_id\":\"$2\",\"organization_guid\":\"bench\",\"space_guid\":\"bench\"}"
}

# Polls last_operation every `interval` seconds until the state is no longer "in progress" (or
# the instance is gone: 410); prints the final state. wait_operation <id> <timeout> [interval]
wait_operation() {
  local id=$1 timeout=$2 interval=${3:-0.1} deadline answer code state
  deadline=$(awk -v n="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { printf "%.3f", n + t }')
  while true; do
    answer=$(osb GET "/v2/service_instances/$id/last_operation")
    code=$(tail -1 <<<"$answer" | cut -d' ' -f1)
    if [ "$code" = 410 ]; then
      echo gone
      return 0
    fi
    state=$(sed '$d' <<<"$answer" | jq -r '.state // empty' 2>/dev/null || true)
    if [ -n "$state" ] && [ "$state" != "in progress" ]; then
      echo "$state"
      return 0
    fi
    if awk -v n="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(n >= d) }'; then
      echo timeout
      return 0
    fi
    sleep "$interval"
  done
}

# bind <id> <binding id> <plan id>: the answer as osb prints it.
bind() {
  osb PUT "/v2/service_instances/$1/service_bindings/$2" \
    "{\"service_id\":\"$SERVICE_ID\",\"plan_id\":\"$3\"}"
}

deprovision() {
  osb DELETE "/v2/service_instances/$1?service_id=$SERVICE_ID&plan_id=$2&accepts_incomplete=true"
}

# A write with a binding's credentials: write_with <uri>
write_with() {
  PGCONNECT_TIMEOUT=5 psql -X -q -At -v ON_ERROR_STOP=1 "$1" \
    -c 'CREATE TABLE IF NOT EXISTS bench_ready (at timestamptz); INSERT INTO bench_ready VALUES (now())' \
    >/dev/null 2>&1
}

# The REST API ports of an instance's agents, from the broker's port reservations.
instance_api_ports() {
  sqlite3 -readonly "$(broker_state)/broker.db" \
    "SELECT port FROM ports WHERE instance_id = '$1' AND purpose LIKE 'api%'" 2>/dev/null
}

# Every replica of an instance streams from its leader: the leader's /patroni lists
# (nodes - 1) streaming replicas.
instance_streaming() {
  local id=$1 nodes=$2 port role streaming
  for port in $(instance_api_ports "$id"); do
    role=$(curl -sf -m 1 "http://127.0.0.1:$port/patroni" | jq -r '.role // empty' 2>/dev/null || true)
    [ "$role" = master ] || [ "$role" = primary ] || continue
    streaming=$(curl -sf -m 1 "http://127.0.0.1:$port/patroni" |
      jq '[.replication // [] | .[] | select(.state == "streaming")] | length' 2>/dev/null) || return 1
    [ "${streaming:-0}" -ge $((nodes - 1)) ]
    return
  done
  return 1
}

# PIDs of the processes of the instance in directory instances/<name>: its agents with everything
# they run (watchdog, PostgreSQL and its processes), a postmaster no agent started, HAProxy. One
# process table snapshot, walked in awk.
instance_pids() {
  local dir roots
  dir="$(broker_state)/instances/$1"
  roots=$(cat "$dir"/*/agent.pid "$dir/haproxy.pid" 2>/dev/null; head -qn1 "$dir"/*/data/postmaster.pid 2>/dev/null)
  ps -e -o pid= -o ppid= | awk -v roots="$roots" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      n = split(roots, r, /[ \n]+/)
      for (k = 1; k <= n; k++) if (r[k] in parent) keep[r[k]] = 1
      do {
        added = 0
        for (k in pids) { p = pids[k]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; added = 1 } }
      } while (added)
      for (p in keep) print p
    }'
}

# Stops the broker, then whatever its instances still run, then its etcd; removes the directory
# unless --keep.
broker_teardown() {
  [ -n "$BROKER_DIR" ] || return 0
  bench_stop_pid "$BROKER_PID" TERM 30 pgfleet-broker
  local dir pid
  for dir in "$(broker_state)"/instances/*/; do
    [ -d "$dir" ] || continue
    for pid in $(cat "$dir"*/agent.pid 2>/dev/null); do bench_stop_pid "$pid" TERM 20 pgfleet-agent; done
    for pid in $(head -qn1 "$dir"*/data/postmaster.pid 2>/dev/null); do
      bench_stop_pid "$pid" QUIT 10 postgres
    done
    for pid in $(cat "$dir/haproxy.pid" 2>/dev/null); do bench_stop_pid "$pid" TERM 5 haproxy; done
  done
  for pid in $(cat "$(broker_state)/etcd.pid" 2>/dev/null); do bench_stop_pid "$pid" TERM 10 etcd; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    bench_log "kept $BROKER_DIR"
  else
    rm -rf "$BROKER_DIR"
  fi
  BROKER_DIR=""
}

# p50 and p99 (nearest rank) of a file of numbers (seconds), in milliseconds: "<p50> <p99> <n>".
percentiles_ms() {
  sort -g "$1" | awk '{ v[NR] = $1 * 1000 } END {
    if (NR == 0) { print "null null 0"; exit }
    i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
    printf "%.1f %.1f %d\n", v[i50], v[i99], NR }'
}

# The median of `field` over the successful runs that match a jq selector, null when none:
# bench_median <jq selector> <field>
bench_median() {
  jq -s "[ .[] | select(.type == \"run\" and .ok == true) | select($1) | .$2 | select(. != null) ]
    | sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end" "$BENCH_RESULTS"
}
