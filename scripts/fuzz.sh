#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (docs/fuzzing.md), one after another,
# each for a given time, and prints a summary table.
#
# Usage: scripts/fuzz.sh [--merge] [SECONDS] [TARGET...]
#   SECONDS  run time of each target (default 60)
#   TARGET   event, detail, jwt, time, config, tzif (default: all six)
#   --merge  afterwards, add to fuzz/corpus/<target> the inputs of the
#            working corpus that reach new coverage (libFuzzer -merge=1);
#            review them before committing, and keep the corpus small
#
# It installs clang and the libFuzzer runtime if missing (apt-get, as root),
# configures build-fuzz/ with clang and -DBRW_FUZZ=ON, and builds only the
# fuzz_<target> binaries. Each target runs as one process (one job) on a
# working copy of its seed corpus, build-fuzz/work/<target>/corpus, which
# grows across runs; the repository's corpus is only written with --merge.
# Crash reproducers land in build-fuzz/work/<target>/artifacts/. Exits 1 if
# any target crashed (or failed to run), 2 on a usage error.
#
# Environment: BRW_FUZZ_BUILD_DIR (default build-fuzz), BRW_FUZZ_SOURCE_DIR
# (default the repository; the top-level CMakeLists.txt must have
# add_subdirectory(fuzz)), BRW_FUZZ_FLAGS (extra libFuzzer flags).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${BRW_FUZZ_SOURCE_DIR:-$root}"
build="${BRW_FUZZ_BUILD_DIR:-$root/build-fuzz}"
all_targets=(event detail jwt time config tzif)
seconds=60
merge=0
targets=()

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

for arg in "$@"; do
    case "$arg" in
    --merge) merge=1 ;;
    -h | --help) usage; exit 0 ;;
    *[!0-9]*)
        if [[ " ${all_targets[*]} " == *" $arg "* ]]; then
            targets+=("$arg")
        else
            echo "fuzz.sh: unknown argument or target: $arg" >&2
            exit 2
        fi
        ;;
    *) seconds="$arg" ;;
    esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")
if ((seconds < 1)); then
    echo "fuzz.sh: SECONDS must be at least 1" >&2
    exit 2
fi

# clang with a working libFuzzer runtime: compile a trivial target to know.
have_libfuzzer() {
    local tmp
    tmp="$(mktemp -d)"
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$tmp/t.c"
    clang -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1
    local rc=$?
    rm -rf "$tmp"
    return $rc
}

"$root/scripts/install-deps.sh"
if ! command -v clang >/dev/null 2>&1 || ! have_libfuzzer; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "fuzz.sh: clang with libFuzzer is missing; as root run:" >&2
        echo "  apt-get install -y clang libclang-rt-14-dev" >&2
        exit 1
    fi
    echo "== installing clang and the libFuzzer runtime =="
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y clang libclang-rt-14-dev
    have_libfuzzer || { echo "fuzz.sh: clang cannot link a libFuzzer target" >&2; exit 1; }
fi

echo "== build ($build) =="
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DBRW_FUZZ=ON \
    -DBRW_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
bins=()
for t in "${targets[@]}"; do bins+=("fuzz_$t"); done
if ! cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${bins[@]}"; then
    echo "fuzz.sh: build failed (is add_subdirectory(fuzz) in $src/CMakeLists.txt?)" >&2
    exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rows=()
status=0
for t in "${targets[@]}"; do
    work="$build/work/$t"
    mkdir -p "$work/corpus" "$work/artifacts"
    # The seeds (and every reproducer) join the working corpus; inputs found
    # by earlier runs stay.
    cp -n "$root/fuzz/corpus/$t/"* "$work/corpus/" 2>/dev/null || true
    dict=()
    [[ -f "$root/fuzz/dict/$t.dict" ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
    log="$work/run.log"
    touch "$work/.start"
    echo "== fuzz_$t: ${seconds}s, log $log =="
    start=$(date +%s)
    set +e
    # shellcheck disable=SC2086
    "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/" \
        "${dict[@]}" ${BRW_FUZZ_FLAGS:-} "$work/corpus" >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    execs=$(awk '/stat::number_of_executed_units:/ { n = $2 } END { print n + 0 }' "$log")
    size=$(find "$work/corpus" -type f | wc -l)
    crashes=$(find "$work/artifacts" -type f -newer "$work/.start" | wc -l)
    if ((rc != 0)); then
        status=1
        ((crashes > 0)) || crashes="exit:$rc"
        echo "fuzz_$t failed (exit $rc); the end of its log:" >&2
        tail -n 40 "$log" >&2
        find "$work/artifacts" -type f -newer "$work/.start" -printf '  reproducer: %p\n' >&2
    fi
    rows+=("$t $elapsed $execs $size $crashes")
    if ((merge)); then
        before=$(find "$root/fuzz/corpus/$t" -type f | wc -l)
        "$build/fuzz/fuzz_$t" -merge=1 "$root/fuzz/corpus/$t" "$work/corpus" \
            >"$work/merge.log" 2>&1 || { echo "fuzz.sh: merge of $t failed" >&2; status=1; }
        after=$(find "$root/fuzz/corpus/$t" -type f | wc -l)
        echo "merged $((after - before)) input(s) into fuzz/corpus/$t ($after files)"
        ((after <= 200)) || echo "fuzz.sh: fuzz/corpus/$t has $after files; keep it under ~200" >&2
    fi
done

echo
printf '%-8s %8s %12s %8s %8s\n' target seconds executions corpus crashes
for r in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-8s %8s %12s %8s %8s\n' $r
done
exit $status
