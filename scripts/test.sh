#!/usr/bin/env bash
# Command two of the README: install what is needed, build, and pass the whole
# test suite. .ci/run calls exactly this.
#
#   1. scripts/install-deps.sh --with-kafka (Debian packages, the current
#      librdkafka line built from Debian's source package into the cache,
#      Kafka jars)
#   2. against the current librdkafka line (2.14.2, the default build):
#      a -Werror build and every ctest test: unit, and the end-to-end tests
#      on a real Apache Kafka broker that the tests start on 127.0.0.1
#   3. against the current line, an ASan/UBSan build and its run of the unit
#      tests and of the sanitizer end-to-end test (a worker run that must
#      close its loop and leak nothing)
#   4. against Debian 12's librdkafka 2.0.2 (the floor; -DBRW_RDKAFKA=system)
#      a -Werror build, the unit tests and the end-to-end tests
#      test_pipeline, test_crash_restart and test_group_scaling
#
# Build trees: build/, build-asan/ and build-floor/ (override with
# BRW_BUILD_DIR, BRW_ASAN_BUILD_DIR and BRW_FLOOR_BUILD_DIR). Extra ctest
# arguments may follow, e.g. -R unit; they apply to every run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${BRW_BUILD_DIR:-$root/build}"
asan="${BRW_ASAN_BUILD_DIR:-$root/build-asan}"
floor="${BRW_FLOOR_BUILD_DIR:-$root/build-floor}"
# The end-to-end tests the floor line runs (ctest -R).
# test_backlog: a paused partition's end and the statistics differ between
# the lines (on 2.0.2 a fetch under way at the pause still moves the end).
floor_e2e='^e2e\.(test_pipeline|test_crash_restart|test_group_scaling|test_exactly_once|test_group_scaling_eo|test_backlog)$'
jobs="$(nproc 2>/dev/null || echo 2)"
start=$(date +%s)

"$root/scripts/install-deps.sh" --with-kafka

echo "== build (-Werror, librdkafka current) =="
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRW_WERROR=ON
cmake --build "$build" -j "$jobs"

echo "== build (ASan/UBSan, librdkafka current) =="
cmake -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE=Debug -DBRW_WERROR=ON \
  -DBRW_SANITIZE=ON
cmake --build "$asan" -j "$jobs"

echo "== build (-Werror, librdkafka 2.0.2 from Debian 12: the floor) =="
cmake -S "$root" -B "$floor" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRW_WERROR=ON \
  -DBRW_RDKAFKA=system
cmake --build "$floor" -j "$jobs"

status=0
echo "== tests: unit and end to end (librdkafka current) =="
(cd "$build" && ctest --output-on-failure --timeout 900 "$@") || status=1

echo "== tests under ASan/UBSan (librdkafka current) =="
(
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  cd "$asan" && ctest --output-on-failure --timeout 900 -L 'unit|asan' "$@"
) || status=1

echo "== tests: unit, pipeline, crash, group and exactly-once e2e (librdkafka 2.0.2) =="
(cd "$floor" && ctest --output-on-failure --timeout 900 -L unit "$@") ||
  status=1
(cd "$floor" && ctest --output-on-failure --timeout 900 -R "$floor_e2e" "$@") ||
  status=1

echo "== test command finished in $(( $(date +%s) - start )) s, status $status =="
exit $status
