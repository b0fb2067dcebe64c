#!/usr/bin/env bash
# Installs what is needed, builds pgfleet, and starts one local 3-node PostgreSQL cluster by hand
# on this machine (an embedded etcd, three pgfleet-agents, one HAProxy, all on loopback), then prints
# the connection URLs. Run as root; PostgreSQL-side processes run as the `postgres` user.
#
#   bash scripts/local-cluster.sh          start (or report the running cluster)
#   bash scripts/local-cluster.sh status   list the members
#   bash scripts/local-cluster.sh stop     stop everything this script started (by PID)
#
# Settings (environment): PGFLEET_HOME (state directory, default /var/lib/pgfleet/local),
# PGFLEET_PORT_BASE (default 5000: HAProxy read-write on BASE, read-only on BASE+1, PostgreSQL on
# BASE+432.., REST APIs on BASE+3008.., etcd on BASE+2379/BASE+2380).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

home=${PGFLEET_HOME:-/var/lib/pgfleet/local}
base=${PGFLEET_PORT_BASE:-5000}
rw_port=$base
ro_port=$((base + 1))
etcd_port=$((base + 2379))
etcd_peer_port=$((base + 2380))
scope=local
nodes=3
pg_port() { echo $((base + 432 + $1)); }
api_port() { echo $((base + 3008 + $1)); }

log() { printf 'pgfleet: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { cat "$home/$1.pid" 2>/dev/null || true; }
as_pg() { runuser -u postgres -- "$@"; }
# Runs a daemon as postgres in its own session. Everything execs, so $! of a backgrounded
# spawn_pg is the daemon's own PID.
spawn_pg() { exec setsid setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

stop_pid() {
  local name=$1 pid
  pid=$(pid_of "$name")
  if alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid"
  fi
  rm -f "$home/$name.pid"
}

ctl() { "$home/bin/pgfleetctl" -c "$home/node1.yml" "$@"; }

urls() {
  local pw
  pw=$(cat "$home/superuser.password")
  echo "primary (read-write): postgres://postgres:${pw}@127.0.0.1:${rw_port}/postgres"
  echo "replicas (read-only): postgres://postgres:${pw}@127.0.0.1:${ro_port}/postgres"
}

case "${1:-start}" in
  stop)
    for i in $(seq 1 $nodes); do stop_pid "node$i"; done
    stop_pid haproxy
    stop_pid etcd
    log "stopped"
    exit 0
    ;;
  status)
    ctl list
    exit 0
    ;;
  start) ;;
  *) die "usage: $0 [start|status|stop]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root (PostgreSQL-side processes are started as the postgres user)"
bash scripts/setup.sh
log "building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGFLEET_BENCH=OFF >/dev/null
cmake --build build -j"${PGFLEET_JOBS:-2}" --target pgfleet-agent pgfleet-watchdog pgfleetctl

mkdir -p "$home/bin"
chown postgres: "$home"
chmod 700 "$home"
install -m 0755 build/pgfleet-agent build/pgfleet-watchdog build/pgfleetctl "$home/bin/"
for name in superuser replication; do
  [ -s "$home/$name.password" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$home/$name.password")
done
chown postgres: "$home"/*.password
superuser_pw=$(cat "$home/superuser.password")
replication_pw=$(cat "$home/replication.password")

if ! alive "$(pid_of etcd)"; then
  log "starting etcd on 127.0.0.1:$etcd_port"
  as_pg mkdir -p "$home/etcd"
  spawn_pg etcd --name pgfleet --data-dir "$home/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "pgfleet=http://127.0.0.1:$etcd_peer_port" >>"$home/etcd.log" 2>&1 &
  echo $! >"$home/etcd.pid"
  for _ in $(seq 1 100); do
    curl -sf -m 1 "http://127.0.0.1:$etcd_port/health" >/dev/null && break
    sleep 0.2
  done
  curl -sf -m 1 "http://127.0.0.1:$etcd_port/health" >/dev/null || die "etcd did not start (see $home/etcd.log)"
fi

for i in $(seq 1 $nodes); do
  cfg="$home/node$i.yml"
  as_pg mkdir -p "$home/node$i"
  (umask 077; cat >"$cfg" <<YAML
scope: $scope
namespace: /service
name: node$i
restapi:
  listen: 127.0.0.1:$(api_port "$i")
  connect_address: 127.0.0.1:$(api_port "$i")
etcd3:
  hosts: 127.0.0.1:$etcd_port
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:$(pg_port "$i")
  connect_address: 127.0.0.1:$(pg_port "$i")
  data_dir: $home/node$i/data
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: $home/node$i/pgpass
  authentication:
    superuser:
      username: postgres
      password: $superuser_pw
    replication:
      username: replicator
      password: $replication_pw
    rewind:
      username: rewinder
      password: $replication_pw
  parameters:
    unix_socket_directories: $home/node$i
YAML
  )
  chown postgres: "$cfg"
  if ! alive "$(pid_of "node$i")"; then
    log "starting pgfleet-agent node$i (PostgreSQL on 127.0.0.1:$(pg_port "$i"), REST API on 127.0.0.1:$(api_port "$i"))"
    spawn_pg "$home/bin/pgfleet-agent" "$cfg" >>"$home/node$i.log" 2>&1 &
    echo $! >"$home/node$i.pid"
  fi
done

if ! alive "$(pid_of haproxy)"; then
  {
    printf 'global\n  maxconn 200\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30m\n'
    printf '  timeout server 30m\n  timeout check 1s\n'
    for section in "primary $rw_port /primary" "replicas $ro_port /replica"; do
      set -- $section
      printf 'listen %s\n  bind 127.0.0.1:%s\n  option httpchk OPTIONS %s\n' "$1" "$2" "$3"
      printf '  http-check expect status 200\n'
      printf '  default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions\n'
      for i in $(seq 1 $nodes); do
        printf '  server node%s 127.0.0.1:%s check port %s\n' "$i" "$(pg_port "$i")" "$(api_port "$i")"
      done
    done
  } >"$home/haproxy.cfg"
  haproxy -c -q -f "$home/haproxy.cfg" || die "haproxy rejected $home/haproxy.cfg"
  log "starting haproxy (read-write 127.0.0.1:$rw_port, read-only 127.0.0.1:$ro_port)"
  setsid haproxy -db -f "$home/haproxy.cfg" >>"$home/haproxy.log" 2>&1 &
  echo $! >"$home/haproxy.pid"
fi

log "waiting for the cluster to accept writes through 127.0.0.1:$rw_port"
ok=0
for _ in $(seq 1 180); do
  if PGPASSWORD=$superuser_pw PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p "$rw_port" -U postgres -d postgres \
       -Atqc "SELECT NOT pg_is_in_recovery()" 2>/dev/null | grep -q t; then
    ok=1
    break
  fi
  sleep 1
done
[ "$ok" -eq 1 ] || die "the cluster did not accept writes within 3 minutes (logs: $home/node*.log)"
ctl list || true
urls
log "logs and state: $home; stop with: bash scripts/local-cluster.sh stop"
