#!/usr/bin/env bash
# Install what is needed, build, and run the demo on embedded defaults:
# librdkafka's in-process mock cluster as the Kafka broker, the BSG API
# simulator (bsg-api-sim), the worker (bsg-report-worker) and a feed of
# sample events. Reports print as they arrive, then a closing summary.
# Nothing external is needed: no Kafka broker, no BSG account.
#
# Usage: scripts/demo.sh [brw-demo options]
#   --campaigns N      campaigns to send (default 40)
#   --time-scale X     simulator seconds per real second (default 300)
#   --timeout SECONDS  give up after this long (default 120)
#   --quiet            print only the summary
# Exit code: 0 when every campaign was reported and the worker exited 0.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

case "${1:-}" in
-h | --help)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

# The demo needs no real broker, so no --with-kafka.
scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# Only what the demo runs; the tests are built by scripts/test.sh.
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" \
    --target bsg-report-worker bsg-api-sim brw-demo

exec build/brw-demo --bin-dir build "$@"
