# shellcheck shell=bash
# Shared functions of the benchmark scripts: one throw-away 3-node cluster at a time (etcd, three HA
# agents, HAProxy), started for a given agent command, and stopped by PID when the script exits.
#
# pgfleet-agent and Patroni are started the same way (`<agent> <node.yml>`), read the same YAML,
# serve the same REST API and keep the same etcd keys, so nothing here depends on which agent runs
# except the command line. Every wait is bounded; nothing is ever killed by name.
#
# Sourced by the scripts in this folder, which must run as root (PostgreSQL-side processes are
# started as the postgres user).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
PG_BIN_DIR=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
PGFLEET_AGENT_BIN=${PGFLEET_AGENT_BIN:-$REPO_ROOT/build/pgfleet-agent}
PATRONI_BIN=${PATRONI_BIN:-$(command -v patroni || echo /usr/bin/patroni)}
PROBE_BIN=${PROBE_BIN:-$REPO_ROOT/build-bench/bench/failover_probe}
BENCH_USER=${BENCH_USER:-postgres}
BENCH_NAMESPACE=/service/
BENCH_NODES=3

# Per-cluster state, reset by bench_cluster_create.
RUN_DIR=""
SCOPE=""
ETCD_PID=""
ETCD_PORT=""
ETCD_PEER_PORT=""
HAPROXY_PID=""
RW_PORT=""
RO_PORT=""
SUPERUSER_PASSWORD=""
REPLICATION_PASSWORD=""
REWIND_PASSWORD=""
PRIMARY_INDEX=""
LEASE_WATCH_PID=""
declare -a PG_PORT=() API_PORT=() AGENT_PID=() BENCH_ALLOCATED_PORTS=() BENCH_EXTRA_PIDS=()

bench_log() { printf '%s bench: %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
bench_die() {
  bench_log "error: $*"
  exit 1
}

# Seconds since the epoch with microseconds, without forking (bash 5).
bench_now() { printf '%s' "$EPOCHREALTIME"; }
# Milliseconds between two bench_now values (or probe *_wall values).
bench_ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# Prints the comment block at the top of the calling script (its description and usage).
bench_usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

bench_require_root() {
  [ "$(id -u)" -eq 0 ] || bench_die "run as root: PostgreSQL-side processes are started as $BENCH_USER"
  id "$BENCH_USER" >/dev/null 2>&1 || bench_die "user $BENCH_USER does not exist"
  local tool
  for tool in etcd haproxy curl jq setpriv ss psql; do
    command -v "$tool" >/dev/null || bench_die "$tool not found in PATH"
  done
  [ -x "$PROBE_BIN" ] || bench_die "failover_probe not found at $PROBE_BIN (build target failover_probe or set PROBE_BIN)"
}

# The command line of an agent: `pgfleet` or `patroni`.
bench_agent_bin() {
  case "$1" in
    pgfleet) printf '%s' "$PGFLEET_AGENT_BIN" ;;
    patroni) printf '%s' "$PATRONI_BIN" ;;
    *) bench_die "unknown agent '$1' (pgfleet or patroni)" ;;
  esac
}

bench_check_agent() {
  local bin
  bin=$(bench_agent_bin "$1")
  [ -x "$bin" ] || bench_die "$1 agent binary not executable: $bin"
  # pgfleet-agent starts the watchdog program from its own directory (a copy of the agent needs it
  # beside it); without it the watchdog runs in a fork of the agent, which the footprint counts.
  if [ "$1" = pgfleet ] && [ ! -x "$(dirname "$bin")/pgfleet-watchdog" ]; then
    bench_die "pgfleet-watchdog not found beside $bin (copy it along with the agent)"
  fi
}

# --agent pgfleet|patroni|both -> the list of agents to run, pgfleet first.
bench_agents_list() {
  case "$1" in
    both) echo "pgfleet patroni" ;;
    pgfleet | patroni) echo "$1" ;;
    *) bench_die "--agent must be pgfleet, patroni or both (got '$1')" ;;
  esac
}

# Picks a loopback TCP port nobody uses and this run has not handed out yet, into BENCH_PORT (a
# global rather than output, so the allocation list survives: no subshell).
BENCH_PORT=""
bench_alloc_port() {
  local port i
  for i in $(seq 1 200); do
    port=$((20000 + RANDOM % 25000))
    [[ " ${BENCH_ALLOCATED_PORTS[*]} " == *" $port "* ]] && continue
    [ -n "$(ss -Htan "sport = :$port")" ] && continue
    BENCH_ALLOCATED_PORTS+=("$port")
    BENCH_PORT=$port
    return 0
  done
  bench_die "no free port found"
}

bench_random_password() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 24; }

# Runs a command as the PostgreSQL user with a clean environment.
bench_as_user() {
  setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --init-groups \
    env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME="$RUN_DIR" USER="$BENCH_USER" \
    LOGNAME="$BENCH_USER" LANG=C.UTF-8 "$@"
}

# The same, replacing the calling shell. `bench_exec_as_user cmd &` runs in a background subshell
# that this exec replaces, and setpriv and env exec too (unlike runuser, which forks), so $! is the
# command's own PID: the one the scripts signal.
bench_exec_as_user() {
  exec setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --init-groups \
    env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME="$RUN_DIR" USER="$BENCH_USER" \
    LOGNAME="$BENCH_USER" LANG=C.UTF-8 "$@"
}

# Polls a command until it succeeds, at most `timeout` seconds. bench_wait_for <timeout> <cmd...>
bench_wait_for() {
  local timeout=$1
  shift
  local deadline
  deadline=$(awk -v n="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { printf "%.3f", n + t }')
  while true; do
    "$@" && return 0
    awk -v n="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(n >= d) }' && return 1
    sleep 0.1
  done
}

# Sends a signal to a PID only if it is alive and still the process we started (its command line
# contains `expect`), so a reused PID is never hit.
bench_signal_pid() {
  local sig=$1 pid=$2 expect=${3:-}
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  if [ -n "$expect" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$expect"; then
    return 0
  fi
  kill "-$sig" "$pid" 2>/dev/null || true
}

bench_pid_alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# Waits for a PID to go, at most `timeout` seconds; reaps it if it is our child.
bench_wait_gone() {
  local pid=$1 timeout=$2
  bench_wait_for "$timeout" bench_not_alive "$pid" || return 1
  wait "$pid" 2>/dev/null || true
}
bench_not_alive() { ! bench_pid_alive "$1"; }

# Stops one PID: `sig`, then SIGKILL after `grace` seconds.
bench_stop_pid() {
  local pid=$1 sig=$2 grace=$3 expect=${4:-}
  bench_pid_alive "$pid" || return 0
  bench_signal_pid "$sig" "$pid" "$expect"
  bench_wait_gone "$pid" "$grace" && return 0
  bench_signal_pid KILL "$pid" "$expect"
  bench_wait_gone "$pid" 5 || bench_log "pid $pid did not exit"
}

# ---- cluster ---------------------------------------------------------------------------------

node_dir() { printf '%s/node%s' "$RUN_DIR" "$1"; }
data_dir() { printf '%s/node%s/data' "$RUN_DIR" "$1"; }

bench_cluster_create() {
  bench_cluster_destroy
  RUN_DIR=$(mktemp -d /tmp/pgfleet-bench.XXXXXX)
  chown "$BENCH_USER:" "$RUN_DIR"
  chmod 700 "$RUN_DIR"
  SCOPE="bench-$(basename "$RUN_DIR" | cut -d. -f2 | tr '[:upper:]' '[:lower:]')"
  SUPERUSER_PASSWORD=$(bench_random_password)
  REPLICATION_PASSWORD=$(bench_random_password)
  REWIND_PASSWORD=$(bench_random_password)
  BENCH_ALLOCATED_PORTS=()
  PG_PORT=() API_PORT=() AGENT_PID=() BENCH_EXTRA_PIDS=()
  PRIMARY_INDEX=""
  local i
  for i in $(seq 1 $BENCH_NODES); do
    bench_alloc_port
    PG_PORT[i]=$BENCH_PORT
    bench_alloc_port
    API_PORT[i]=$BENCH_PORT
    bench_as_user mkdir -p "$(node_dir "$i")"
  done
  bench_alloc_port
  ETCD_PORT=$BENCH_PORT
  bench_alloc_port
  ETCD_PEER_PORT=$BENCH_PORT
  bench_alloc_port
  RW_PORT=$BENCH_PORT
  bench_alloc_port
  RO_PORT=$BENCH_PORT
}

etcd_healthy() { curl -sf -m 1 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

bench_start_etcd() {
  bench_exec_as_user etcd --name bench --data-dir "$RUN_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state new --initial-cluster-token "$SCOPE" \
    >>"$RUN_DIR/etcd.log" 2>&1 &
  ETCD_PID=$!
  bench_wait_for 30 etcd_healthy || bench_die "etcd did not become healthy (see $RUN_DIR/etcd.log)"
}

# Writes node<i>.yml for the three nodes from one template. Timing is ttl/loop_wait/retry_timeout.
bench_write_configs() {
  local ttl=$1 loop_wait=$2 retry_timeout=$3 i
  for i in $(seq 1 $BENCH_NODES); do
    bench_as_user tee "$RUN_DIR/node$i.yml" >/dev/null <<EOF
scope: $SCOPE
namespace: $BENCH_NAMESPACE
name: node$i

restapi:
  listen: 127.0.0.1:${API_PORT[i]}
  connect_address: 127.0.0.1:${API_PORT[i]}

etcd3:
  hosts: 127.0.0.1:$ETCD_PORT

bootstrap:
  dcs:
    ttl: $ttl
    loop_wait: $loop_wait
    retry_timeout: $retry_timeout
    maximum_lag_on_failover: 1048576
    synchronous_mode: $([ "${BENCH_SYNCHRONOUS:-0}" = 1 ] && echo true || echo false)
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_connections: 50
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
        shared_buffers: 32MB
  initdb:
  - encoding: UTF8
  - locale: C.UTF-8

postgresql:
  listen: 127.0.0.1:${PG_PORT[i]}
  connect_address: 127.0.0.1:${PG_PORT[i]}
  data_dir: $(data_dir "$i")
  bin_dir: $PG_BIN_DIR
  pgpass: $(node_dir "$i")/pgpass
  authentication:
    superuser:
      username: postgres
      password: $SUPERUSER_PASSWORD
    replication:
      username: replicator
      password: $REPLICATION_PASSWORD
    rewind:
      username: rewinder
      password: $REWIND_PASSWORD
  parameters:
    unix_socket_directories: $(node_dir "$i")
  pg_hba:
  - local all all peer
  - host replication replicator 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
EOF
  done
}

bench_start_haproxy() {
  local cfg=$RUN_DIR/haproxy.cfg i
  {
    cat <<EOF
global
    maxconn 200

defaults
    mode tcp
    retries 2
    timeout connect 1s
    timeout client 30m
    timeout server 30m
    timeout check 1s

listen read_write
    bind 127.0.0.1:$RW_PORT
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions
EOF
    for i in $(seq 1 $BENCH_NODES); do
      echo "    server node$i 127.0.0.1:${PG_PORT[i]} maxconn 100 check port ${API_PORT[i]}"
    done
    cat <<EOF

listen read_only
    bind 127.0.0.1:$RO_PORT
    balance roundrobin
    option httpchk OPTIONS /replica
    http-check expect status 200
    default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions
EOF
    for i in $(seq 1 $BENCH_NODES); do
      echo "    server node$i 127.0.0.1:${PG_PORT[i]} maxconn 100 check port ${API_PORT[i]}"
    done
  } | bench_as_user tee "$cfg" >/dev/null
  haproxy -c -q -f "$cfg" || bench_die "haproxy rejected $cfg"
  bench_exec_as_user haproxy -db -f "$cfg" >>"$RUN_DIR/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  bench_wait_for 10 bench_port_listening "$RW_PORT" || bench_die "haproxy did not listen on $RW_PORT"
}

bench_port_listening() { [ -n "$(ss -Htln "sport = :$1")" ]; }

bench_start_agent() {
  local agent=$1 i=$2 bin
  bin=$(bench_agent_bin "$agent")
  bench_exec_as_user "$bin" "$RUN_DIR/node$i.yml" >>"$RUN_DIR/node$i.log" 2>&1 &
  AGENT_PID[i]=$!
}

bench_start_agents() {
  local agent=$1 i
  # pgfleet says which configuration keys it does not support; surface that before the run.
  if [ "$agent" = pgfleet ] &&
    ! bench_as_user "$PGFLEET_AGENT_BIN" --validate-config "$RUN_DIR/node1.yml" \
      >"$RUN_DIR/validate-config.log" 2>&1; then
    bench_log "warning: pgfleet-agent --validate-config rejected node1.yml:"
    sed 's/^/  /' "$RUN_DIR/validate-config.log" >&2
  fi
  for i in $(seq 1 $BENCH_NODES); do
    bench_start_agent "$agent" "$i"
  done
}

# etcd + configs + HAProxy, ready for agents. bench_cluster_prepare <ttl/loop_wait/retry_timeout>
bench_cluster_prepare() {
  local timing=$1 ttl loop_wait retry_timeout
  IFS=/ read -r ttl loop_wait retry_timeout <<<"$timing"
  [ -n "$retry_timeout" ] || bench_die "timing must be ttl/loop_wait/retry_timeout (got '$timing')"
  bench_cluster_create
  bench_start_etcd
  bench_write_configs "$ttl" "$loop_wait" "$retry_timeout"
  bench_start_haproxy
}

# ---- health ----------------------------------------------------------------------------------

bench_http_code() { curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1$2" || true; }

# Index of the node whose /primary answers 200 (exactly one), else fails.
bench_find_primary() {
  local i found=""
  for i in $(seq 1 $BENCH_NODES); do
    if [ "$(bench_http_code "${API_PORT[i]}" /primary)" = 200 ]; then
      [ -n "$found" ] && return 1
      found=$i
    fi
  done
  [ -n "$found" ] || return 1
  PRIMARY_INDEX=$found
}

bench_psql_rw() {
  PGPASSWORD=$SUPERUSER_PASSWORD PGCONNECT_TIMEOUT=2 psql -X -q -At -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$RW_PORT" -U postgres -d postgres "$@"
}

bench_conninfo_rw() {
  printf 'host=127.0.0.1 port=%s user=postgres password=%s dbname=postgres' "$RW_PORT" \
    "$SUPERUSER_PASSWORD"
}

# One leader, the two others answer /replica and stream from it, the leader lists 3 members.
bench_replicas_streaming() {
  bench_find_primary || return 1
  local i streaming members
  for i in $(seq 1 $BENCH_NODES); do
    [ "$i" = "$PRIMARY_INDEX" ] && continue
    [ "$(bench_http_code "${API_PORT[i]}" /replica)" = 200 ] || return 1
  done
  streaming=$(curl -sf -m 1 "http://127.0.0.1:${API_PORT[PRIMARY_INDEX]}/patroni" |
    jq '[.replication // [] | .[] | select(.state == "streaming")] | length' 2>/dev/null) || return 1
  [ "${streaming:-0}" -ge $((BENCH_NODES - 1)) ] || return 1
  members=$(curl -sf -m 1 "http://127.0.0.1:${API_PORT[PRIMARY_INDEX]}/cluster" |
    jq '.members | length' 2>/dev/null) || return 1
  [ "${members:-0}" -eq "$BENCH_NODES" ]
}

bench_write_works() {
  bench_psql_rw -c "CREATE TABLE IF NOT EXISTS bench_ready (at timestamptz); INSERT INTO bench_ready VALUES (now())" \
    >/dev/null 2>&1
}

bench_cluster_healthy() { bench_replicas_streaming && bench_write_works; }

# Waits (bounded) for the cluster to be healthy; prints the seconds it took.
bench_wait_healthy() {
  local timeout=${1:-180} t0
  t0=$(bench_now)
  if ! bench_wait_for "$timeout" bench_cluster_healthy; then
    bench_log "cluster not healthy after ${timeout}s; logs in $RUN_DIR"
    return 1
  fi
  bench_ms_between "$t0" "$(bench_now)"
}

bench_postmaster_pid() { head -1 "$(data_dir "$1")/postmaster.pid" 2>/dev/null || true; }

# ---- leader key ------------------------------------------------------------------------------

bench_leader_key() { printf '%s%s/leader' "$BENCH_NAMESPACE" "$SCOPE"; }

# Polls the leader key through etcd's JSON gateway every `interval` seconds into `file`, one line
# per poll: "<epoch seconds> <create_revision|-> <base64 value|->". A new create_revision is a new
# lease holder (or the same member re-acquiring after losing it).
bench_lease_watch_start() {
  local file=$1 interval=${2:-0.05} key
  key=$(bench_leader_key | base64 -w0)
  : >"$file"
  (
    trap '' INT
    body="{\"key\":\"$key\"}"
    url="http://127.0.0.1:$ETCD_PORT/v3/kv/range"
    while [ ! -e "$file.stop" ]; do
      t=$EPOCHREALTIME
      r=$(curl -s -m 1 -X POST "$url" -d "$body" || true)
      if [[ $r == *'"header"'* ]]; then
        if [[ $r =~ \"create_revision\":\"([0-9]+)\" ]]; then
          rev=${BASH_REMATCH[1]}
          [[ $r =~ \"value\":\"([^\"]*)\" ]] && val=${BASH_REMATCH[1]} || val=-
          echo "$t $rev $val"
        else
          echo "$t - -"
        fi
      fi
      sleep "$interval"
    done
  ) >>"$file" 2>/dev/null &
  LEASE_WATCH_PID=$!
  BENCH_EXTRA_PIDS+=("$LEASE_WATCH_PID")
}

bench_lease_watch_stop() {
  local file=$1
  [ -n "$LEASE_WATCH_PID" ] || return 0
  touch "$file.stop"
  bench_wait_gone "$LEASE_WATCH_PID" 5 || bench_stop_pid "$LEASE_WATCH_PID" TERM 2
  LEASE_WATCH_PID=""
}

# From a watch file and a kill time: JSON with when the killed holder's lease ended (the first poll
# after the kill that no longer saw its key) and when the next holder appeared.
bench_lease_analyse() {
  local file=$1 kill_wall=$2
  awk -v k="$kill_wall" '
    $1 < k { if ($2 != "-") { rev = $2; val = $3 } next }
    expired == "" && $2 != rev { expired = $1 }
    expired != "" && newt == "" && $2 != "-" && $2 != rev { newt = $1; newval = $3 }
    END {
      printf "{\"held_before_kill\":%s", (rev == "" ? "false" : "true")
      if (expired != "") printf ",\"lease_expired_wall\":%.6f,\"lease_expired_after_kill_ms\":%.1f", expired, (expired - k) * 1000
      if (newt != "") printf ",\"new_leader_wall\":%.6f,\"new_leader_value\":\"%s\"", newt, newval
      printf "}\n"
    }' "$file"
}

# Leader-key statistics over a watch file: how many times the lease changed hands and how long
# the cluster had no leader in total.
bench_lease_summary() {
  local file=$1
  awk '
    NR == 1 { prev = $2; pt = $1; if ($2 != "-") lastval = $3; next }
    {
      if (prev == "-") vacant += $1 - pt
      if ($2 != prev && $2 != "-") { acquisitions++; if ($3 != lastval && lastval != "") changes++ }
      if ($2 != "-") lastval = $3
      if ($2 == "-" && prev != "-") losses++
      prev = $2; pt = $1
    }
    END {
      printf "{\"polls\":%d,\"lease_losses\":%d,\"lease_acquisitions\":%d,", NR, losses, acquisitions
      printf "\"leader_changes\":%d,\"leaderless_ms\":%.0f}\n", changes, vacant * 1000
    }
  ' "$file"
}

bench_etcd_get() {
  local key
  key=$(printf '%s' "$1" | base64 -w0)
  curl -sf -m 2 -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/range" -d "{\"key\":\"$key\"}" |
    jq -r '.kvs[0].value // empty' | base64 -d 2>/dev/null
}

# True when the sync key names a synchronous standby of the current leader (synchronous mode).
bench_sync_standby_named() {
  local leader sync
  leader=$(bench_etcd_get "$(bench_leader_key)") || return 1
  sync=$(bench_etcd_get "${BENCH_NAMESPACE}${SCOPE}/sync") || return 1
  [ -n "$leader" ] && jq -e --arg l "$leader" '.leader == $l and (.sync_standby // "") != ""' \
    <<<"$sync" >/dev/null 2>&1
}

# Number of entries in the cluster's history key (one per promotion after the first).
bench_history_length() {
  local h
  h=$(bench_etcd_get "$BENCH_NAMESPACE$SCOPE/history" || true)
  [ -n "$h" ] || {
    echo 0
    return
  }
  jq 'length' <<<"$h" 2>/dev/null || echo 0
}

# ---- probe ---------------------------------------------------------------------------------

PROBE_PID=""

# Starts the failover probe against the read-write port; its report goes to $RUN_DIR/probe.json.
# bench_probe_start_failover <duration seconds> <stop-after seconds>
bench_probe_start_failover() {
  "$PROBE_BIN" --conninfo "$(bench_conninfo_rw)" --mode failover --duration "$1" \
    --stop-after "$2" --verify-timeout 30 >"$RUN_DIR/probe.json" 2>"$RUN_DIR/probe.log" &
  PROBE_PID=$!
  BENCH_EXTRA_PIDS+=("$PROBE_PID")
}

bench_probe_rows_at_least() {
  local n
  n=$(bench_psql_rw -c "SELECT count(*) FROM pgfleet_probe" 2>/dev/null) || return 1
  [ "${n:-0}" -ge "$1" ]
}

# Waits (bounded) for the probe to finish and prints its report (an empty object if it had none).
bench_probe_wait() {
  local timeout=$1
  bench_wait_gone "$PROBE_PID" "$timeout" || {
    bench_log "probe still running after ${timeout}s; stopping it"
    bench_stop_pid "$PROBE_PID" TERM 40
  }
  PROBE_PID=""
  if jq -e . "$RUN_DIR/probe.json" >/dev/null 2>&1; then
    cat "$RUN_DIR/probe.json"
  else
    echo '{}'
  fi
}

# PID of node i's postmaster, checked to be a live postgres serving that data directory.
bench_live_postmaster() {
  local pid
  pid=$(bench_postmaster_pid "$1")
  [ -n "$pid" ] && bench_pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$(data_dir "$1")" || return 1
  printf '%s' "$pid"
}

# ---- one kill experiment (failover.sh, crash_restart.sh) -------------------------------------

bench_fail_run() {
  local bench=$1 agent=$2 timing=$3 run=$4 why=$5
  bench_log "$bench $agent $timing run $run failed: $why"
  bench_emit "$(jq -nc --arg b "$bench" --arg a "$agent" --arg t "$timing" --argjson r "$run" \
    --arg e "$why" '{type: "run", bench: $b, agent: $a, timing: $t, run: $r, ok: false, error: $e}')"
}

# Fresh cluster; the probe writes through HAProxy; then SIGKILL of the primary's agent and
# postmaster together (bench=failover) or of its postmaster only (bench=crash_restart). The probe
# is marked (SIGUSR1) just before the kill. Emits one result line.
# bench_kill_run <failover|crash_restart> <agent> <timing> <run number>
bench_kill_run() {
  local bench=$1 agent=$2 timing=$3 run=$4 ttl loop_wait boot_ms primary agent_pid pm_pid probe lease
  local line delay_ms
  ttl=${timing%%/*}
  loop_wait=${timing#*/}
  loop_wait=${loop_wait%%/*}
  bench_log "$bench $agent $timing run $run: starting cluster"
  bench_cluster_prepare "$timing"
  bench_start_agents "$agent"
  if ! boot_ms=$(bench_wait_healthy 180); then
    bench_fail_run "$bench" "$agent" "$timing" "$run" "cluster did not become healthy"
    return 0
  fi
  if [ "$BENCH_SYNCHRONOUS" = 1 ] && ! bench_wait_for 60 bench_sync_standby_named; then
    bench_fail_run "$bench" "$agent" "$timing" "$run" "no synchronous standby named in the sync key"
    return 0
  fi
  bench_lease_watch_start "$RUN_DIR/lease.log" 0.05
  bench_probe_start_failover $((ttl * 3 + 90)) 3
  # About a second of steady writes before the kill.
  if ! bench_wait_for 30 bench_probe_rows_at_least 50; then
    bench_fail_run "$bench" "$agent" "$timing" "$run" "probe did not write through haproxy"
    return 0
  fi
  delay_ms=$(bench_kill_delay_ms "$loop_wait")
  sleep "$(awk -v ms="$delay_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
  if ! bench_find_primary; then
    bench_fail_run "$bench" "$agent" "$timing" "$run" "no single primary before the kill"
    return 0
  fi
  primary=$PRIMARY_INDEX
  agent_pid=${AGENT_PID[primary]}
  if ! pm_pid=$(bench_live_postmaster "$primary"); then
    bench_fail_run "$bench" "$agent" "$timing" "$run" "primary postmaster not found"
    return 0
  fi
  kill -USR1 "$PROBE_PID" 2>/dev/null || true
  if [ "$bench" = failover ]; then
    bench_log "$bench $agent $timing run $run: SIGKILL node$primary agent $agent_pid + postmaster $pm_pid"
    kill -KILL "$agent_pid" "$pm_pid" 2>/dev/null || true
  else
    bench_log "$bench $agent $timing run $run: SIGKILL node$primary postmaster $pm_pid"
    kill -KILL "$pm_pid" 2>/dev/null || true
  fi
  probe=$(bench_probe_wait $((ttl * 3 + 150)))
  bench_lease_watch_stop "$RUN_DIR/lease.log"
  lease=$(bench_lease_analyse "$RUN_DIR/lease.log" "$(jq -r '.kill_wall // 0' <<<"$probe")")
  line=$(jq -nc --arg b "$bench" --arg a "$agent" --arg t "$timing" --argjson r "$run" \
    --argjson boot "$boot_ms" --argjson p "$probe" --argjson l "$lease" --arg killed "node$primary" \
    --argjson delay "$delay_ms" '
    ($l.new_leader_value // "" | @base64d? // "") as $new
    | {type: "run", bench: $b, agent: $a, timing: $t, run: $r,
       ok: ($p.recovered == true and $p.verified == true),
       window_ms: $p.window_ms, kill_to_recovery_ms: $p.kill_to_recovery_ms,
       kill_to_first_ack_ms: $p.kill_to_first_ack_ms,
       lease_expired_after_kill_ms: $l.lease_expired_after_kill_ms,
       after_lease_ms: (if $l.lease_expired_wall != null and $p.window_end_wall != null
                        then (($p.window_end_wall - $l.lease_expired_wall) * 1000) else null end),
       lease_lost: (if $l.lease_expired_wall != null then 1 else 0 end),
       acked: $p.acked, missing: $p.missing, unacked_present: $p.unacked_present,
       probe_errors: $p.errors, killed: $killed, new_leader: $new, bootstrap_ms: $boot,
       kill_delay_ms: $delay,
       error: ($p.error // $p.verify_error)}
    | with_entries(select(.value != null and .value != ""))' | bench_round_ms)
  bench_emit "$line"
  bench_log "$bench $agent $timing run $run: window $(jq -r '.window_ms // "-"' <<<"$line") ms," \
    "after lease expiry $(jq -r '.after_lease_ms // "-"' <<<"$line") ms," \
    "missing $(jq -r '.missing // "-"' <<<"$line")"
  bench_cluster_destroy
}

# ---- teardown --------------------------------------------------------------------------------

bench_cluster_destroy() {
  [ -n "$RUN_DIR" ] || return 0
  local i pid
  for pid in "${BENCH_EXTRA_PIDS[@]}"; do
    bench_stop_pid "$pid" TERM 3
  done
  LEASE_WATCH_PID=""
  for i in "${!AGENT_PID[@]}"; do
    bench_signal_pid TERM "${AGENT_PID[i]}" "node$i.yml"
  done
  for i in "${!AGENT_PID[@]}"; do
    bench_stop_pid "${AGENT_PID[i]}" TERM 30 "node$i.yml"
  done
  # A postmaster the agent left behind (agent killed, or agent that does not stop it): immediate
  # shutdown, then SIGKILL.
  for i in $(seq 1 $BENCH_NODES); do
    pid=$(bench_postmaster_pid "$i")
    if [ -n "$pid" ]; then
      bench_stop_pid "$pid" QUIT 10 postgres
    fi
  done
  bench_stop_pid "$HAPROXY_PID" USR1 5 haproxy
  bench_stop_pid "$ETCD_PID" TERM 10 etcd
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    bench_log "kept $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
  fi
  RUN_DIR="" ETCD_PID="" HAPROXY_PID=""
  AGENT_PID=() BENCH_EXTRA_PIDS=()
}

# ---- common options and output ---------------------------------------------------------------

# Parses the options every script shares; the rest is left in BENCH_ARGS.
# shellcheck disable=SC2034  # read by the scripts that source this file
BENCH_AGENT=both
BENCH_RUNS=5
BENCH_OUT=""
BENCH_KILL_DELAY=loop_wait
BENCH_SYNCHRONOUS=0
BENCH_SEED=$(($(date +%s) % 32768))
declare -a BENCH_ARGS=()
# The preamble every benchmark shares: root, the agents to measure (each checked), the result file.
bench_setup() {
  bench_require_root
  AGENTS=$(bench_agents_list "$BENCH_AGENT")
  local a
  for a in $AGENTS; do bench_check_agent "$a"; done
  bench_results_init "$1"
  bench_log "seed $BENCH_SEED (--seed $BENCH_SEED repeats this run's random kill delays)"
}

# Runs `<command...> <agent> <timing> <run>` for every timing in $TIMINGS, run number and agent,
# with a fresh cluster each time. Agents alternate within a run number so that drifting machine
# load hits both alike. Leaves the timings in `timing_list` for the summary.
bench_for_each_run() {
  IFS=, read -r -a timing_list <<<"$TIMINGS"
  local timing run agent
  for timing in "${timing_list[@]}"; do
    for run in $(seq 1 "$BENCH_RUNS"); do
      for agent in $AGENTS; do
        "$@" "$agent" "$timing" "$run"
        bench_cluster_destroy
      done
    done
  done
}

# Parses the common options, --timing (default: $1) and --synchronous; sets TIMINGS and
# BENCH_SYNCHRONOUS. bench_parse_args <default timings> "$@"
bench_parse_args() {
  TIMINGS=$1
  shift
  bench_parse_common "$@"
  set -- "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --timing) TIMINGS=$2; shift 2 ;;
      --synchronous) BENCH_SYNCHRONOUS=1; shift ;;
      -h | --help) bench_usage; exit 0 ;;
      *) bench_die "unknown option $1" ;;
    esac
  done
}

bench_parse_common() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --agent) BENCH_AGENT=$2; shift 2 ;;
      --runs) BENCH_RUNS=$2; shift 2 ;;
      --out) BENCH_OUT=$2; shift 2 ;;
      --keep) BENCH_KEEP=1; shift ;;
      --kill-delay) BENCH_KILL_DELAY=$2; shift 2 ;;
      --seed) BENCH_SEED=$2; shift 2 ;;
      *) BENCH_ARGS+=("$1"); shift ;;
    esac
  done
  [[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || bench_die "--runs must be a positive integer"
  [[ $BENCH_KILL_DELAY == loop_wait || $BENCH_KILL_DELAY =~ ^[0-9]+$ ]] ||
    bench_die "--kill-delay must be loop_wait or a number of milliseconds"
  [[ $BENCH_SEED =~ ^[0-9]+$ ]] || bench_die "--seed must be a non-negative integer"
  RANDOM=$BENCH_SEED
}

# A random delay before a kill, in milliseconds: uniform in [0, loop_wait) by default, so that the
# kill lands anywhere in the agents' renewal cycle instead of at the phase the cluster's start-up
# happens to give it. bench_kill_delay_ms <loop_wait seconds>
bench_kill_delay_ms() {
  local range
  if [ "$BENCH_KILL_DELAY" = loop_wait ]; then range=$(($1 * 1000)); else range=$BENCH_KILL_DELAY; fi
  [ "$range" -gt 0 ] || {
    echo 0
    return
  }
  echo $(((RANDOM * 32768 + RANDOM) % range))
}

# The script's own copy of its result lines (for the summary), removed at exit; installs the
# teardown trap.
BENCH_RESULTS=""
bench_results_init() {
  BENCH_RESULTS=$(mktemp "/tmp/pgfleet-bench-$1.XXXXXX")
  trap 'set +e; bench_cluster_destroy; rm -f "$BENCH_RESULTS"' EXIT
  trap 'exit 130' INT TERM
}

# Rounds every "*_ms" number of a JSON object to 0.1 ms.
bench_round_ms() {
  jq -c 'with_entries(if (.key | endswith("_ms")) and (.value | type) == "number"
                      then .value = ((.value * 10 | round) / 10) else . end)'
}

# Prints one result line (a JSON object) on stdout and appends it to the results and to --out.
bench_emit() {
  local line
  line=$(bench_round_ms <<<"$1") || bench_die "invalid result json: $1"
  printf '%s\n' "$line"
  [ -n "$BENCH_RESULTS" ] && printf '%s\n' "$line" >>"$BENCH_RESULTS"
  [ -n "$BENCH_OUT" ] && printf '%s\n' "$line" >>"$BENCH_OUT"
  return 0
}

# Median of a field over result lines matching agent (and timing, when given). null if none.
bench_median() {
  local file=$1 agent=$2 field=$3 timing=${4:-}
  jq -s --arg a "$agent" --arg t "$timing" --arg f "$field" '
    [ .[] | select(.type == "run" and .ok == true and .agent == $a and ($t == "" or .timing == $t)) | .[$f]
      | select(. != null) ] | sort
    | if length == 0 then null
      elif length % 2 == 1 then .[(length - 1) / 2]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end' "$file"
}

bench_sum() {
  local file=$1 agent=$2 field=$3 timing=${4:-}
  jq -s --arg a "$agent" --arg t "$timing" --arg f "$field" '
    [ .[] | select(.type == "run" and .ok == true and .agent == $a and ($t == "" or .timing == $t)) | .[$f]
      | select(. != null) ] | add' "$file"
}

# pgfleet/patroni, two decimals, or n/a.
bench_ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'
}

# Prints, for each timing, the median (and sum) of metrics per agent with the pgfleet/patroni
# ratio: JSON summary lines on stdout, a table on stderr.
# bench_summarise <results file> <bench> "<timings>" "<median metrics>" "<sum metrics>"
bench_summarise() {
  local file=$1 bench=$2 timings=$3 medians=$4 sums=$5 t m stat pg pa ratio list table=""
  [ -s "$file" ] || return 0
  for t in $timings; do
    [ "$t" = - ] && t=""
    table+=$'\n'"$bench${t:+ (ttl/loop_wait/retry_timeout $t)}: successful samples"
    table+=" pgfleet=$(bench_count_ok "$file" pgfleet "$t") patroni=$(bench_count_ok "$file" patroni "$t")"$'\n'
    table+=$(printf '  %-40s %12s %12s %16s' metric pgfleet patroni pgfleet/patroni)$'\n'
    for stat in median sum; do
      list=$medians
      [ "$stat" = sum ] && list=$sums
      for m in $list; do
        if [ "$stat" = median ]; then
          pg=$(bench_median "$file" pgfleet "$m" "$t")
          pa=$(bench_median "$file" patroni "$m" "$t")
        else
          pg=$(bench_sum "$file" pgfleet "$m" "$t")
          pa=$(bench_sum "$file" patroni "$m" "$t")
        fi
        ratio=$(bench_ratio "$pg" "$pa")
        bench_emit "$(jq -nc --arg b "$bench" --arg t "$t" --arg m "$m" --arg s "$stat" \
          --argjson pg "$pg" --argjson pa "$pa" --arg r "$ratio" \
          '{type: "summary", bench: $b, timing: $t, metric: $m, stat: $s, pgfleet: $pg,
            patroni: $pa, ratio: (if $r == "n/a" then null else ($r | tonumber) end)}')"
        table+=$(printf '  %-40s %12s %12s %16s' "$stat $m" "$(bench_fmt "$pg")" "$(bench_fmt "$pa")" \
          "$ratio")$'\n'
      done
    done
  done
  printf '%s' "$table" >&2
}

bench_count_ok() {
  jq -s --arg a "$2" --arg t "$3" \
    '[ .[] | select(.type == "run" and .ok == true and .agent == $a and ($t == "" or .timing == $t)) ] | length' "$1"
}

bench_fmt() {
  case "$1" in
    null | "") echo - ;;
    *) awk -v v="$1" 'BEGIN { if (v == int(v)) printf "%d", v; else printf "%.1f", v }' ;;
  esac
}
