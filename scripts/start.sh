#!/usr/bin/env bash
# One command: installs what is needed, builds pgfleet, and starts pgfleet-broker on this machine
# with the local backend and an embedded etcd (examples/broker-local.yaml), then prints how to
# create, bind and delete a PostgreSQL instance through its Open Service Broker API. Run as root;
# every instance's processes run as the `postgres` user.
#
#   bash scripts/start.sh          start the broker (or report the running one)
#   bash scripts/start.sh stop     stop the broker (by PID); instances and etcd keep running
#   bash scripts/start.sh stop-all stop the broker, every instance and the embedded etcd
#
# Settings (environment): PGFLEET_HOME (default /var/lib/pgfleet: binaries in bin/, the broker's
# state in broker/), PGFLEET_BROKER_LISTEN (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

home=${PGFLEET_HOME:-/var/lib/pgfleet}
state=$home/broker
listen=${PGFLEET_BROKER_LISTEN:-127.0.0.1:8080}

log() { printf 'pgfleet: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_in() { cat "$1" 2>/dev/null || true; }

stop_pid_file() {
  local file=$1 sig=${2:-TERM} pid
  pid=$(pid_in "$file")
  if alive "$pid"; then
    kill "-$sig" "$pid"
    for _ in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid"
  fi
  return 0
}

instructions() {
  cat <<EOF
pgfleet-broker (Open Service Broker API 2.17) on http://$listen, user broker, password in $home/broker.password

  osb() { curl -s -u "broker:\$(cat $home/broker.password)" -H 'X-Broker-API-Version: 2.17' -H 'Content-Type: application/json' "\$@"; echo; }
  osb http://$listen/v2/catalog
  osb -X PUT "http://$listen/v2/service_instances/mydb?accepts_incomplete=true" \\
      -d '{"service_id":"e0bbd32b-944e-4a1e-bf83-db238487ce21","plan_id":"347487b1-13d0-4e3f-bf75-3091dc23a86f","organization_guid":"org","space_guid":"space","parameters":{"database":"shop"}}'
  osb http://$listen/v2/service_instances/mydb/last_operation        # until "succeeded"
  osb -X PUT http://$listen/v2/service_instances/mydb/service_bindings/app1 \\
      -d '{"service_id":"e0bbd32b-944e-4a1e-bf83-db238487ce21","plan_id":"347487b1-13d0-4e3f-bf75-3091dc23a86f"}'
  psql "<credentials.uri from the answer>"
  osb -X DELETE "http://$listen/v2/service_instances/mydb/service_bindings/app1?service_id=e0bbd32b-944e-4a1e-bf83-db238487ce21&plan_id=347487b1-13d0-4e3f-bf75-3091dc23a86f"
  osb -X DELETE "http://$listen/v2/service_instances/mydb?service_id=e0bbd32b-944e-4a1e-bf83-db238487ce21&plan_id=347487b1-13d0-4e3f-bf75-3091dc23a86f&accepts_incomplete=true"
EOF
}

case "${1:-start}" in
  stop)
    stop_pid_file "$home/broker.pid"
    log "broker stopped (instances and the embedded etcd keep running; stop-all stops them)"
    exit 0
    ;;
  stop-all)
    stop_pid_file "$home/broker.pid"
    for dir in "$state"/instances/*/; do
      [ -d "$dir" ] || continue
      for node in "$dir"*/; do [ -f "$node/agent.pid" ] && stop_pid_file "$node/agent.pid"; done
      for node in "$dir"*/; do
        [ -f "$node/data/postmaster.pid" ] && stop_pid_file <(head -1 "$node/data/postmaster.pid") QUIT
      done
      [ -f "$dir/haproxy.pid" ] && stop_pid_file "$dir/haproxy.pid"
    done
    stop_pid_file "$state/etcd.pid"
    log "stopped the broker, its instances and its etcd (their data stays in $state)"
    exit 0
    ;;
  start) ;;
  *) die "usage: $0 [start|stop|stop-all]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root (instances are started as the postgres user)"
if alive "$(pid_in "$home/broker.pid")"; then
  log "the broker already runs (pid $(pid_in "$home/broker.pid"))"
  instructions
  exit 0
fi

bash scripts/setup.sh
log "building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGFLEET_BENCH=OFF >/dev/null
cmake --build build -j"${PGFLEET_JOBS:-2}" --target pgfleet-broker pgfleet-agent pgfleet-watchdog pgfleetctl

mkdir -p "$home/bin" "$state"
chmod 755 "$home"
install -m 0755 build/pgfleet-broker build/pgfleet-agent build/pgfleet-watchdog build/pgfleetctl "$home/bin/"
[ -s "$home/broker.password" ] || (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=' >"$home/broker.password")

log "starting pgfleet-broker on $listen (state in $state)"
PGFLEET_BROKER_PASSWORD=$(cat "$home/broker.password") PGFLEET_BROKER_LISTEN=$listen PGFLEET_STATE_DIR=$state \
  setsid "$home/bin/pgfleet-broker" --config "$root/examples/broker-local.yaml" >>"$home/broker.log" 2>&1 &
echo $! >"$home/broker.pid"
for _ in $(seq 1 120); do
  curl -sf -m 1 -u "broker:$(cat "$home/broker.password")" -H 'X-Broker-API-Version: 2.17' \
    "http://$listen/v2/catalog" >/dev/null && break
  alive "$(pid_in "$home/broker.pid")" || die "the broker stopped (see $home/broker.log)"
  sleep 0.5
done
curl -sf -m 1 -u "broker:$(cat "$home/broker.password")" -H 'X-Broker-API-Version: 2.17' \
  "http://$listen/v2/catalog" >/dev/null || die "the broker did not answer (see $home/broker.log)"
instructions
log "log: $home/broker.log; stop with: bash scripts/start.sh stop"
