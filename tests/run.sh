#!/bin/sh
# Runs every test against the build in $1 (default build-test): the cmocka unit programs
# and the end-to-end suite, all speaking TAP; prints each result and ends with one line
# "N passed, N failed". Exits non-zero if anything failed or crashed.
set -u
build=${1:-build-test}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0
failed=0

count() { # count NAME FILE RC
    p=$(grep -c '^ok ' "$2")
    f=$(grep -c '^not ok ' "$2")
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $1 exited with status $3" | tee -a "$2"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "$build"/tests/unit/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "# $name"
    CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$out/$name" 2>"$out/$name.err"
    rc=$?
    grep -E '^(not )?ok ' "$out/$name" | sed "s/^/  /"
    [ "$rc" -ne 0 ] && { cat "$out/$name" "$out/$name.err" | grep -v '^ok ' | head -60; }
    count "$name" "$out/$name" "$rc"
done

echo "# checksrc"
scripts/checksrc.sh >"$out/checksrc" 2>&1
rc=$?
sed "s/^/  /" "$out/checksrc"
count checksrc "$out/checksrc" "$rc"

if [ -f tests/e2e/run.py ]; then
    echo "# e2e"
    python3 tests/e2e/run.py --veil "$build/veil" >"$out/e2e" 2>"$out/e2e.err"
    rc=$?
    grep -E '^(not )?ok |^#' "$out/e2e" | sed "s/^/  /"
    [ "$rc" -ne 0 ] && tail -80 "$out/e2e.err"
    count e2e "$out/e2e" "$rc"
fi

if [ -x tests/fuzz/run.sh ]; then
    echo "# fuzz"
    tests/fuzz/run.sh "${FUZZ_SECONDS:-20}" >"$out/fuzz" 2>"$out/fuzz.err"
    rc=$?
    grep -E '^(not )?ok |^#' "$out/fuzz" | sed "s/^/  /"
    [ "$rc" -ne 0 ] && tail -40 "$out/fuzz.err"
    count fuzz "$out/fuzz" "$rc"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
