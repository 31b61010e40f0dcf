#!/usr/bin/env bash
# Command two of the README: install what is needed, build, and pass the whole
# test suite. .ci/run calls exactly this.
#
#   1. scripts/install-deps.sh --with-kafka (Debian packages, Kafka jars)
#   2. a -Werror build and every ctest test: unit, and the end-to-end tests
#      on a real Apache Kafka broker that the tests start on 127.0.0.1
#   3. an ASan/UBSan build and its run of the unit tests and of the
#      sanitizer end-to-end test (a worker run that must close its loop and
#      leak nothing)
#
# Build trees: build/ and build-asan/ (override with BRW_BUILD_DIR and
# BRW_ASAN_BUILD_DIR). Extra ctest arguments may follow, e.g. -R unit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${BRW_BUILD_DIR:-$root/build}"
asan="${BRW_ASAN_BUILD_DIR:-$root/build-asan}"
jobs="$(nproc 2>/dev/null || echo 2)"
start=$(date +%s)

"$root/scripts/install-deps.sh" --with-kafka

echo "== build (-Werror) =="
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRW_WERROR=ON
cmake --build "$build" -j "$jobs"

echo "== build (ASan/UBSan) =="
cmake -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE=Debug -DBRW_WERROR=ON \
  -DBRW_SANITIZE=ON
cmake --build "$asan" -j "$jobs"

status=0
echo "== tests: unit and end to end =="
(cd "$build" && ctest --output-on-failure --timeout 900 "$@") || status=1

echo "== tests under ASan/UBSan =="
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd "$asan" && ctest --output-on-failure --timeout 900 -L 'unit|asan' "$@") ||
  status=1

echo "== test command finished in $(( $(date +%s) - start )) s, status $status =="
exit $status
