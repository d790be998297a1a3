#!/bin/sh
# bench/run.sh BUILD_DIR: the benchmarks of SPEC section 8, as `make bench` runs them.
#
# Makes sample data (`veil generate`), a fresh data directory with three tenants
# (one per write workload), starts `veil server` on a free port, and runs every phase
# twice, plain SQLite first and veil right after, each in its own bench_core process.
# Then stops the server with SIGTERM, runs the in-process phase, and writes one markdown
# table to stdout and bench/results/latest.md. Temporary files go when it ends.
#
# VEIL_BENCH_SCALE (default 1) scales every count: 0.1 for a quick run.
# VEIL_BENCH_THREADS (default "1 4"): client threads for PUT, GET and query.
# VEIL_BENCH_ROWS (default 1000000 x scale): invoices of the analytics phase (SUM GROUP BY
# org, plaintext vs ASHE, in process); VEIL_BENCH_PAILLIER_ROWS (default 100000 x scale;
# 0: none): the first of them loaded again with Paillier sums; VEIL_BENCH_AGG_REPS
# (default 5): timed repetitions of each aggregate, the median is reported.
# Exits non-zero if any step fails.
set -eu

build=${1:-./build}
root=$(cd "$(dirname "$0")/.." && pwd)
case "$build" in /*) ;; *) build=$(pwd)/$build ;; esac
veil=$build/veil
bench=$build/bench/bench_core
for exe in "$veil" "$bench"; do
    if [ ! -x "$exe" ]; then
        echo "bench: $exe is missing: run make first" >&2
        exit 1
    fi
done

scale=${VEIL_BENCH_SCALE:-1}
threads=${VEIL_BENCH_THREADS:-"1 4"}
count() { # count BASE MIN: BASE * scale, at least MIN
    awk -v b="$1" -v m="$2" -v s="$scale" 'BEGIN {
        if (s !~ /^[0-9]*\.?[0-9]+$/ || s <= 0) { exit 1 }
        n = int(b * s); if (n < m) { n = m }; print n }'
}
if ! nput=$(count 20000 200) || ! nbulk=$(count 50000 1000) ||
    ! nquery=$(count 2000 100); then
    echo "bench: VEIL_BENCH_SCALE must be a positive number" >&2
    exit 2
fi
batch=1000
if ! nrows=${VEIL_BENCH_ROWS:-$(count 1000000 1000)} ||
    ! nprows=${VEIL_BENCH_PAILLIER_ROWS:-$(count 100000 100)}; then
    echo "bench: VEIL_BENCH_SCALE must be a positive number" >&2
    exit 2
fi
reps=${VEIL_BENCH_AGG_REPS:-5}
for n in "$nrows" "$nprows" "$reps"; do
    case "$n" in
    '' | *[!0-9]*)
        echo "bench: VEIL_BENCH_ROWS, VEIL_BENCH_PAILLIER_ROWS and VEIL_BENCH_AGG_REPS" \
            "must be whole numbers" >&2
        exit 2
        ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/veil-bench.XXXXXX")
server_pid=""
cleanup() {
    status=$?
    if [ -n "$server_pid" ]; then
        if kill -0 "$server_pid" 2>/dev/null; then
            kill -TERM "$server_pid" 2>/dev/null || true
        fi
        src=0
        wait "$server_pid" 2>/dev/null || src=$?
        if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
            echo "bench: failed; the server's exit status was $src; its log ends:" >&2
            tail -n 20 "$work/server.log" >&2
        fi
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "bench: $*" >&2; }

step "generating $nput + $nbulk invoices"
"$veil" generate invoices --count "$nput" --seed 1 >"$work/put.ndjson"
"$veil" generate invoices --count "$nbulk" --seed 2 >"$work/bulk.ndjson"
# The analytics data: max(10, N/1000) organisations, so about 1,000 at 1,000,000 rows.
step "generating $nrows invoices for the analytics phase"
"$veil" generate invoices --count "$nrows" --seed 3 >"$work/analytics.ndjson"
# The invoices policy with amount summed by Paillier instead of ASHE.
sed 's/^\(  amount: *\){.*}/\1{ type: decimal, scale: 2, protect: [sum, range], sum: { scheme: paillier, bits: 2048 } }/' \
    "$root/examples/invoices.yaml" >"$work/invoices-paillier.yaml"
if ! grep -q '^  amount: .*scheme: paillier' "$work/invoices-paillier.yaml"; then
    echo "bench: cannot make the Paillier policy from examples/invoices.yaml" >&2
    exit 1
fi

data=$work/veil
mkdir -p "$work/base"
"$veil" init --data "$data" >/dev/null
for t in put1 put4 bulk; do
    "$veil" tenant create "$t" --data "$data" >/dev/null
    "$veil" collection apply --tenant "$t" "$root/examples/invoices.yaml" --data "$data" \
        >/dev/null
done
tok_put1=$("$veil" token create --tenant put1 --role clerk --data "$data")
tok_put4=$("$veil" token create --tenant put4 --role clerk --data "$data")
tok_bulk=$("$veil" token create --tenant bulk --role clerk --data "$data")

"$veil" server --data "$data" --listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
url=""
i=0
while [ $i -lt 100 ]; do
    url=$(sed -n 's/^veil: listening on \(http:[^ ]*\).*/\1/p' "$work/server.log" | head -n 1)
    [ -n "$url" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$url" ]; then
    echo "bench: the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
step "server $server_pid on $url"

res=$work/results.txt
: >"$res"
# pair PHASE THREADS DOCS TOKEN DB [extra options]: baseline, then veil.
pair() {
    phase=$1 th=$2 docs=$3 tok=$4 db=$5
    shift 5
    "$bench" sqlite "$phase" --threads "$th" --docs "$docs" --db "$db" --out "$res" "$@"
    "$bench" http "$phase" --threads "$th" --docs "$docs" --url "$url" --token "$tok" \
        --out "$res" "$@"
}

for th in $threads; do
    if [ "$th" = 1 ]; then
        pair put 1 "$work/put.ndjson" "$tok_put1" "$work/base/put1.db"
    else
        # A tenant and table of its own: these are new documents too, not replacements.
        pair put "$th" "$work/put.ndjson" "$tok_put4" "$work/base/put4.db"
    fi
done
for th in $threads; do
    pair get "$th" "$work/put.ndjson" "$tok_put1" "$work/base/put1.db"
done
pair bulk 1 "$work/bulk.ndjson" "$tok_bulk" "$work/base/bulk.db" --batch "$batch"
for th in $threads; do
    pair query "$th" "$work/bulk.ndjson" "$tok_bulk" "$work/base/bulk.db" --queries "$nquery"
done

server_hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$server_pid/status")
server_threads=$(sed -n 's/^Threads:[[:space:]]*\([0-9]*\)/\1/p' "/proc/$server_pid/status")
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
if [ "$rc" -ne 0 ]; then
    echo "bench: the server exited with status $rc on SIGTERM:" >&2
    tail -n 20 "$work/server.log" >&2
    exit 1
fi
step "server stopped (peak RSS ${server_hwm} KiB, $server_threads threads)"

"$bench" inproc --docs "$work/put.ndjson" --data "$work/lib" --db "$work/base/lib.db" \
    --policy "$root/examples/invoices.yaml" --out "$res"

step "analytics: $nrows invoices (ASHE), the first $nprows with Paillier; the loads take a" \
    "while, progress follows"
"$bench" analytics --docs "$work/analytics.ndjson" --data "$work/analytics" \
    --db "$work/base/analytics.db" --policy "$root/examples/invoices.yaml" \
    --paillier-policy "$work/invoices-paillier.yaml" --rows "$nrows" \
    --paillier-rows "$nprows" --reps "$reps" --batch "$batch" --out "$res"

commit=unknown
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    # --no-optional-locks: reading the status must not rewrite the index.
    if [ -n "$(git --no-optional-locks -C "$root" status --porcelain --untracked-files=no \
        2>/dev/null)" ]; then
        commit="$commit (with uncommitted changes)"
    fi
fi
build_type=$(sed -n "s/^ *buildtype *= *'\{0,1\}\([a-z]*\).*/\1/p" \
    "$build/meson-private/cmd_line.txt" 2>/dev/null | head -n 1)
[ -n "$build_type" ] || build_type=unknown

desc="veil generate invoices: $nput documents (seed 1) for PUT, GET and in process;"
desc="$desc $nbulk (seed 2) for bulk and the $nquery queries a run;"
desc="$desc VEIL_BENCH_SCALE=$scale; server: $server_threads threads; up to 500 warm-up"
desc="$desc operations before each timing (warm-up ids are separate from timed ids);"
desc="$desc analytics: veil generate invoices, $nrows documents (seed 3), the first $nprows"
desc="$desc of them with Paillier, aggregates timed $reps times after a warm-up (medians)"

mkdir -p "$root/bench/results"
"$bench" report --results "$res" --server-hwm "$server_hwm" --commit "$commit" \
    --build-type "$build_type" --data-desc "$desc" >"$work/latest.md"
cp "$work/latest.md" "$root/bench/results/latest.md"
cat "$work/latest.md"
