#!/bin/sh
# Builds the fuzz harnesses (build.sh) and runs each for SECONDS (default 20) with
# -max_len=65536, starting from the seeds in tests/fuzz/corpus/<name>/ (new inputs go to a
# scratch corpus, the seeds are left as they are). Prints TAP, one line per harness:
#     ok 1 - fuzz_policy 20s, 123456 execs
# and exits non-zero if any harness crashed, leaked, timed out or could not be built; the
# input that did it is kept under $FUZZ_OUT (default build-fuzz/findings) and named.
# Usage: tests/fuzz/run.sh [SECONDS]   (or FUZZ_SECONDS=N; default 20)
set -u
secs=${1:-${FUZZ_SECONDS:-20}}
top=$(cd "$(dirname "$0")/../.." && pwd)
bld=${FUZZ_BUILD:-$top/build-fuzz}
findings=${FUZZ_OUT:-$bld/findings}
harnesses="fuzz_policy fuzz_document fuzz_bulk fuzz_config fuzz_words fuzz_store fuzz_http"
n=$(echo "$harnesses" | wc -w)
echo "1..$n"
mkdir -p "$bld"
if ! "$top/tests/fuzz/build.sh" "$bld" >"$bld/build.log" 2>&1; then
    cat "$bld/build.log" >&2
    i=0
    for h in $harnesses; do
        i=$((i + 1))
        echo "not ok $i - $h could not be built"
    done
    exit 1
fi
mkdir -p "$findings"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
i=0
for h in $harnesses; do
    i=$((i + 1))
    seeds="$top/tests/fuzz/corpus/$h"
    mkdir -p "$scratch/$h"
    log="$scratch/$h.log"
    set -- "$scratch/$h"
    [ -d "$seeds" ] && set -- "$@" "$seeds"
    mkdir -p "$scratch/tmp"
    TMPDIR="$scratch/tmp" "$bld/$h" -max_total_time="$secs" -max_len=65536 -timeout=30 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$findings/$h-" "$@" \
        >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "ok $i - $h ${secs}s, ${execs:-0} execs"
    else
        failed=$((failed + 1))
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "not ok $i - $h ${secs}s, ${execs:-?} execs, exit $rc${art:+, input: $art}"
        # The report, without libFuzzer's progress lines.
        grep -vE '^(INFO:|#[0-9]+[[:space:]]|MS:|stat::|Done |[[:space:]]*NEW_FUNC|base unit:|=>0x|[[:space:]]+0x)' \
            "$log" | grep -v '^[[:space:]]*$' | head -50 | sed 's/^/# /'
    fi
done
[ "$failed" -eq 0 ]
