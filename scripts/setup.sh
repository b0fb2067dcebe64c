#!/usr/bin/env bash
# Installs every Debian package pgfleet needs to build, run and test. Idempotent and non-interactive.
# Services shipped by these packages (etcd, PostgreSQL's "main" cluster, HAProxy, PgBouncer) are not
# started: pgfleet starts its own copies with its own directories and ports.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libyaml-cpp-dev libcpp-httplib-dev libssl-dev
  libpq-dev libspdlog-dev libfmt-dev libcli11-dev libsqlite3-dev libkainjow-mustache-dev
  postgresql-15 postgresql-client-15 postgresql-contrib
  etcd-server etcd-client haproxy pgbouncer pgbackrest patroni
  iproute2 procps curl jq sqlite3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: every package is installed"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# Keep package scripts from starting daemons on their default ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  created_policy=1
fi
cleanup() { [ "$created_policy" -eq 1 ] && $sudo rm -f "$policy"; return 0; }
trap cleanup EXIT

# PostgreSQL's packages would otherwise create (and try to start) a "main" cluster on port 5432.
$sudo mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/pgfleet.conf >/dev/null

export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${missing[*]}"
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
