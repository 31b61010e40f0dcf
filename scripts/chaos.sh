#!/usr/bin/env bash
# A bounded chaos run against a real Kafka broker (not part of CI):
# 3 workers in one group on a 12-partition topic, campaigns fed continuously,
# a random worker killed (SIGKILL or SIGTERM) every 10-40 s and restarted.
# Prints a table (guarantee, fed, reported, lost, duplicates, kills, restarts,
# DLQ, latency) and exits non-zero if anything was lost (with exactly_once,
# also on any duplicate). See docs/testing.md.
#
#   scripts/chaos.sh [MINUTES] [chaos.py options]     (default 10 minutes)
#   scripts/chaos.sh 2 --bin-dir build-rel --rate 20 --seed 1
#   scripts/chaos.sh 10 --guarantee exactly_once   # delivery.guarantee, a stable
#       worker.instance per slot; any duplicate (read_committed) fails the run
#
# Binaries come from --bin-dir (default: $BRW_BIN_DIR or ./build).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
minutes=10
if [[ $# -gt 0 && "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  minutes="$1"
  shift
fi
bin_dir="${BRW_BIN_DIR:-$root/build}"
cd "$root"
exec /usr/bin/python3 "$root/tests/integration/chaos.py" --bin-dir "$bin_dir" \
  --minutes "$minutes" "$@"
