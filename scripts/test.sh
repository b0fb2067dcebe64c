#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: formatting, unit tests (plain and under
# AddressSanitizer + UndefinedBehaviorSanitizer) and the integration tests against real PostgreSQL,
# etcd and HAProxy on loopback. Must run as root (integration tests run PostgreSQL as `postgres`).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${PGFLEET_JOBS:-2}
bash scripts/setup.sh

echo "== formatting"
files=$(git ls-files 'src/*.h' 'src/*.cc' 'tests/*.h' 'tests/*.cc' 'bench/*.cc' 'bench/*.h' 2>/dev/null || true)
if [ -n "$files" ]; then
  # shellcheck disable=SC2086
  clang-format --dry-run -Werror $files
fi

echo "== build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGFLEET_WERROR=ON >/dev/null
cmake --build build -j"$jobs"

echo "== build (address and undefined-behaviour sanitizers)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPGFLEET_SANITIZE=ON -DPGFLEET_BENCH=OFF \
  -DPGFLEET_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== unit tests"
ctest --test-dir build -L unit --output-on-failure -j"$jobs"

echo "== unit tests under sanitizers"
ctest --test-dir build-asan -L unit --output-on-failure -j"$jobs"

echo "== integration tests"
ctest --test-dir build -L integration --output-on-failure
