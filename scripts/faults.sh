#!/usr/bin/env bash
# The full fault-injection suite, one command: installs and builds what it needs, then runs the
# catalogue of fixed scenarios and random schedules from a seed, in asynchronous and synchronous
# mode, against pgfleet-agent (and, with --patroni, the same scenarios against Patroni), and
# prints the table docs/reliability.md shows. Must run as root (network namespaces).
#
# usage: scripts/faults.sh [--seed N] [--schedules N] [--patroni] [--out DIR]
#   --schedules N  random schedules per mode (default 50: 100 in all, with the catalogue twice)
#   --seed N       the run's seed (default: from the clock; printed either way)
#   --patroni      also run the catalogue against Patroni
#   --out DIR      where the log and results go (default: faults-results/<date>)
set -euo pipefail
cd "$(dirname "$0")/.."

seed=""
schedules=50
patroni=0
out="faults-results/$(date +%Y%m%d-%H%M%S)"
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2 ;;
    --schedules) schedules=$2; shift 2 ;;
    --patroni) patroni=1; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: scripts/faults.sh [--seed N] [--schedules N] [--patroni] [--out DIR]" >&2; exit 2 ;;
  esac
done
[ -n "$seed" ] || seed=$(( $(date +%s) % 1000000 ))

bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${PGFLEET_JOBS:-2}" --target pgfleet-faults pgfleet-agent

mkdir -p "$out"
results="$out/results.jsonl"
log="$out/run.log"
runner=build/tests/pgfleet-faults
echo "fault-injection suite: seed $seed, $schedules random schedules per mode; log in $log"

status=0
run() {
  echo "== pgfleet-faults $*" | tee -a "$log"
  if ! "$runner" --results "$results" "$@" \
    > >(tee -a "$log" | grep --line-buffered -E '^\[.*(schedule|PASS|FAIL)|violation|replay') 2>&1; then
    status=1
  fi
}
run --catalogue
run --catalogue --synchronous
run --seed "$seed" --schedules "$schedules"
run --seed "$((seed + 1))" --schedules "$schedules" --synchronous
if [ "$patroni" -eq 1 ]; then
  run --catalogue --agent patroni
  run --catalogue --synchronous --agent patroni
fi

"$runner" --summarize "$results" | tee "$out/table.md"
exit "$status"
