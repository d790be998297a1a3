#!/bin/sh
# bench/run.sh [BUILD_DIR] [--only search|verify]: the benchmarks, as
# `make bench` runs them.
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
# (default 5): timed repetitions of each aggregate, the median is reported. The same phase
# times the analyst role's differentially private answers against exact ones, and measures
# their error by group size over VEIL_BENCH_DP_REPS (default 200) new answers.
# Full-text search (bench/search.c): the kernel documentation of linux-doc-6.1 loaded into
# veil (in process) and into a private PostgreSQL server started here, then queries of one,
# two and three words on both. VEIL_BENCH_SEARCH=0 leaves it out; VEIL_BENCH_SEARCH_DOCS
# (default 10000 x scale, so every file at scale 1) caps the documents;
# VEIL_BENCH_SEARCH_QUERIES (default 200): queries of each size; VEIL_BENCH_SEARCH_CORPUS
# (default /usr/share/doc/linux-doc-6.1); VEIL_BENCH_PG_BIN: where initdb and pg_ctl are
# (default the newest /usr/lib/postgresql/*/bin); VEIL_BENCH_PG_USER: who runs PostgreSQL
# when this script runs as root (default postgres, else nobody).
# `--only search` (or VEIL_BENCH_ONLY=search) runs that phase alone and merges its rows into
# the existing bench/results/latest.md, in place of the search rows there.
# Verification (bench/verify.c): loads, writes and queries in process with the trusted token
# sets kept and checked and without them, timed in turn; the aggregates on and off are timed
# in the analytics phase. `--only verify` (or VEIL_BENCH_ONLY=verify) runs the verify phase
# alone and prints its rows, leaving bench/results/latest.md as it is.
# Exits non-zero if any step fails.
set -eu

build=./build
only=${VEIL_BENCH_ONLY:-}
while [ $# -gt 0 ]; do
    case "$1" in
    --only)
        if [ $# -lt 2 ]; then
            echo "bench: --only needs a phase (search or verify)" >&2
            exit 2
        fi
        only=$2
        shift 2
        ;;
    --only=*)
        only=${1#--only=}
        shift
        ;;
    -*)
        echo "usage: bench/run.sh [BUILD_DIR] [--only search|verify]" >&2
        exit 2
        ;;
    *)
        build=$1
        shift
        ;;
    esac
done
case "$only" in
'' | search | verify) ;;
*)
    echo "bench: --only knows two phases: search and verify" >&2
    exit 2
    ;;
esac
search=${VEIL_BENCH_SEARCH:-1}
case "$search" in
0 | 1) ;;
*)
    echo "bench: VEIL_BENCH_SEARCH must be 0 or 1" >&2
    exit 2
    ;;
esac
if [ "$only" = search ] && [ "$search" = 0 ]; then
    echo "bench: --only search with VEIL_BENCH_SEARCH=0 leaves nothing to run" >&2
    exit 2
fi
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
dpreps=${VEIL_BENCH_DP_REPS:-200}
for n in "$nrows" "$nprows" "$reps" "$dpreps"; do
    case "$n" in
    '' | *[!0-9]*)
        echo "bench: VEIL_BENCH_ROWS, VEIL_BENCH_PAILLIER_ROWS, VEIL_BENCH_AGG_REPS and" \
            "VEIL_BENCH_DP_REPS must be whole numbers" >&2
        exit 2
        ;;
    esac
done
if ! sdocs=${VEIL_BENCH_SEARCH_DOCS:-$(count 10000 500)}; then
    echo "bench: VEIL_BENCH_SCALE must be a positive number" >&2
    exit 2
fi
squeries=${VEIL_BENCH_SEARCH_QUERIES:-200}
for n in "$sdocs" "$squeries"; do
    case "$n" in
    '' | *[!0-9]*)
        echo "bench: VEIL_BENCH_SEARCH_DOCS and VEIL_BENCH_SEARCH_QUERIES must be whole" \
            "numbers" >&2
        exit 2
        ;;
    esac
done
if [ "$squeries" -lt 1 ]; then
    echo "bench: VEIL_BENCH_SEARCH_QUERIES must be at least 1" >&2
    exit 2
fi
corpus=${VEIL_BENCH_SEARCH_CORPUS:-/usr/share/doc/linux-doc-6.1}

work=$(mktemp -d "${TMPDIR:-/tmp}/veil-bench.XXXXXX")
server_pid=""
pgdir=""
pg_up=""
cleanup() {
    status=$?
    if [ -n "$pg_up" ]; then
        pg_stop || true
    fi
    if [ -n "$pgdir" ]; then
        if [ "$status" -ne 0 ] && [ -f "$pgdir/server.log" ]; then
            echo "bench: PostgreSQL's log ends:" >&2
            tail -n 20 "$pgdir/server.log" >&2
        fi
        rm -rf "$pgdir"
    fi
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

# ---- the private PostgreSQL server of the search phase ----

# Runs a command as the PostgreSQL user: initdb and postgres refuse to run as root.
as_pg() {
    if [ -z "$pg_user" ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$pg_user" -- "$@"
    else
        q=""
        for a in "$@"; do
            q="$q '$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'"
        done
        su -s /bin/sh "$pg_user" -c "$q"
    fi
}

pg_find() {
    pgbin=${VEIL_BENCH_PG_BIN:-}
    if [ -z "$pgbin" ]; then
        pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d \
            2>/dev/null | sort -t/ -k5 -n | tail -n 1)
    fi
    if [ -z "$pgbin" ] && command -v initdb >/dev/null 2>&1; then
        pgbin=$(dirname "$(command -v initdb)")
    fi
    if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ] || [ ! -x "$pgbin/pg_ctl" ]; then
        echo "bench: PostgreSQL's initdb and pg_ctl were not found: scripts/deps.sh bench" \
            "installs postgresql-15 (or set VEIL_BENCH_PG_BIN, or VEIL_BENCH_SEARCH=0)" >&2
        exit 1
    fi
    pg_user=""
    if [ "$(id -u)" -eq 0 ]; then
        pg_user=${VEIL_BENCH_PG_USER:-}
        if [ -z "$pg_user" ]; then
            if id postgres >/dev/null 2>&1; then
                pg_user=postgres
            else
                pg_user=nobody
            fi
        fi
    fi
}

# A cluster in a directory of its own (not under $work, which only this user may enter),
# listening on 127.0.0.1 at a port that was free a moment before and on a Unix socket in
# that directory. Durability in the spirit of veil's SQLite files (WAL, synchronous=NORMAL:
# a commit is not fsynced, the WAL is at checkpoints): fsync=on and full_page_writes=on, but
# a commit does not wait for its WAL flush (synchronous_commit=off).
pg_start() {
    pg_find
    pgdir=$(mktemp -d "${TMPDIR:-/tmp}/veil-bench-pg.XXXXXX")
    chmod 755 "$pgdir"
    mkdir "$pgdir/sock"
    if [ -n "$pg_user" ]; then
        chown -R "$pg_user" "$pgdir"
    fi
    if ! as_pg "$pgbin/initdb" -D "$pgdir/data" -U bench --auth=trust -E UTF8 --locale=C \
        -N >"$work/initdb.log" 2>&1; then
        echo "bench: initdb failed (as ${pg_user:-$(id -un)} in $pgdir):" >&2
        tail -n 20 "$work/initdb.log" >&2
        exit 1
    fi
    cp "$pgdir/data/postgresql.conf" "$work/postgresql.conf"
    tries=0
    while :; do
        pg_port=$("$bench" freeport)
        {
            cat "$work/postgresql.conf"
            echo ""
            echo "# bench/run.sh, the search phase"
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $pg_port"
            echo "unix_socket_directories = '$pgdir/sock'"
            echo "fsync = on"
            echo "synchronous_commit = off"
            echo "full_page_writes = on"
        } >"$pgdir/data/postgresql.conf"
        if as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 start \
            >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 3 ]; then
            echo "bench: PostgreSQL did not start:" >&2
            tail -n 20 "$pgdir/server.log" >&2 || true
            exit 1
        fi
    done
    pg_up=1
    pg_conn="host=$pgdir/sock port=$pg_port user=bench dbname=postgres"
    step "PostgreSQL $("$pgbin/pg_ctl" --version | sed 's/^[^0-9]*\([0-9.]*\).*/\1/')" \
        "on 127.0.0.1:$pg_port" \
        "(data in $pgdir, run by ${pg_user:-$(id -un)})"
}

pg_stop() {
    pg_up=""
    if ! as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w -t 60 stop >/dev/null 2>&1; then
        echo "bench: PostgreSQL did not stop cleanly" >&2
        return 1
    fi
}

# What the search phase needs, checked before any phase runs.
search_check() {
    if [ ! -d "$corpus" ]; then
        echo "bench: the search corpus $corpus is missing: scripts/deps.sh bench installs" \
            "linux-doc-6.1 (or set VEIL_BENCH_SEARCH_CORPUS, or VEIL_BENCH_SEARCH=0)" >&2
        exit 1
    fi
    pg_find
}

# The search phase: a veil data directory made with the admin commands, a private
# PostgreSQL, then bench_core search with both (veil in process).
run_search() {
    sdata=$work/search
    "$veil" init --data "$sdata" >/dev/null
    "$veil" tenant create search --data "$sdata" >/dev/null
    "$veil" collection apply --tenant search "$root/bench/kdocs.yaml" --data "$sdata" \
        >/dev/null
    tok_search=$("$veil" token create --tenant search --role clerk --data "$sdata")
    pg_start
    step "search: $corpus (at most $sdocs documents), $squeries queries of 1, 2 and 3 words"
    "$bench" search --corpus "$corpus" --data "$sdata" --token "$tok_search" \
        --pg "$pg_conn" --max-docs "$sdocs" --queries "$squeries" --batch 256 --out "$res"
    pg_stop
    rm -rf "$pgdir" "$sdata"
    pgdir=""
}

res=$work/results.txt
: >"$res"
sdesc="search: the gzipped files of linux-doc-6.1 (at most $sdocs), $squeries queries of"
sdesc="$sdesc each size (1, 2 and 3 words), seed 1"

# The verify phase: bulk load, sizes, writes and queries with verification on and off.
run_verify() {
    step "verify: $nbulk invoices into a verified and an unverified data directory," \
        "$nquery queries of each kind, writes, all in turn"
    "$bench" verify --docs "$work/bulk.ndjson" --data "$work/verify" \
        --policy "$root/examples/invoices.yaml" --queries "$nquery" --batch "$batch" --out "$res"
    rm -rf "$work/verify"
}

if [ "$search" = 1 ] && [ "$only" != verify ]; then
    search_check
fi
if [ "$only" = search ]; then
    run_search
fi
if [ "$only" = verify ]; then
    step "generating $nbulk invoices"
    "$veil" generate invoices --count "$nbulk" --seed 2 >"$work/bulk.ndjson"
    run_verify
    "$bench" report --results "$res" --data-desc "the verify phase alone" >"$work/latest.md"
    grep -e '^| benchmark' -e '^| ---' -e '^| Verification' "$work/latest.md"
    step "the verify phase alone: bench/results/latest.md is left as it was"
    exit 0
fi

if [ -z "$only" ]; then
    step "generating $nput + $nbulk invoices"
    "$veil" generate invoices --count "$nput" --seed 1 >"$work/put.ndjson"
    "$veil" generate invoices --count "$nbulk" --seed 2 >"$work/bulk.ndjson"
    # The analytics data: max(10, N/1000) organisations, so about 1,000 at 1,000,000 rows.
    step "generating $nrows invoices for the analytics phase"
    "$veil" generate invoices --count "$nrows" --seed 3 >"$work/analytics.ndjson"
    # The invoices policy with amount summed by Paillier instead of ASHE (the rest of the
    # field, its bounds among it, as it is: the analyst role needs them).
    sed 's/^\(  amount: *{.*[^ ]\) *}$/\1, sum: { scheme: paillier, bits: 2048 } }/' \
        "$root/examples/invoices.yaml" >"$work/invoices-paillier.yaml"
    if ! grep -q '^  amount: .*scheme: paillier' "$work/invoices-paillier.yaml"; then
        echo "bench: cannot make the Paillier policy from examples/invoices.yaml" >&2
        exit 1
    fi

    data=$work/veil
    mkdir -p "$work/base"
    "$veil" init --data "$data" >/dev/null
    # Throughput is what is measured: no per-token rate limit (the default, 1000 requests a
    # second a token, would be the ceiling of the GET rows).
    printf 'rate_limits: { default: off }\n' >>"$data/veil.yaml"
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

    run_verify

    if [ "$search" = 1 ]; then
        run_search
    fi

    step "analytics: $nrows invoices (ASHE), the first $nprows with Paillier; the loads take a" \
        "while, progress follows"
    "$bench" analytics --docs "$work/analytics.ndjson" --data "$work/analytics" \
        --db "$work/base/analytics.db" --policy "$root/examples/invoices.yaml" \
        --paillier-policy "$work/invoices-paillier.yaml" --rows "$nrows" \
        --paillier-rows "$nprows" --reps "$reps" --batch "$batch" --dp-reps "$dpreps" \
        --out "$res"
fi

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

mkdir -p "$root/bench/results"
latest=$root/bench/results/latest.md
if [ -z "$only" ]; then
    desc="veil generate invoices: $nput documents (seed 1) for PUT, GET and in process;"
    desc="$desc $nbulk (seed 2) for bulk and the $nquery queries a run;"
    desc="$desc VEIL_BENCH_SCALE=$scale; server: $server_threads threads; up to 500 warm-up"
    desc="$desc operations before each timing (warm-up ids are separate from timed ids);"
    desc="$desc analytics: veil generate invoices, $nrows documents (seed 3), the first"
    desc="$desc $nprows of them with Paillier, aggregates timed $reps times after a warm-up"
    desc="$desc (medians); differential privacy: $dpreps new answers of the error table"
    desc="$desc; verification: the $nbulk bulk invoices loaded on and off, $nquery queries"
    nwrites=$((5 * nquery < nbulk - 50 ? 5 * nquery : nbulk - 50))
    desc="$desc of each kind on and off in 10 rounds in turn, $nwrites writes of each kind"
    if [ "$search" = 1 ]; then
        desc="$desc; $sdesc"
    fi
    "$bench" report --results "$res" --server-hwm "$server_hwm" --commit "$commit" \
        --build-type "$build_type" --data-desc "$desc" >"$work/latest.md"
    cp "$work/latest.md" "$latest"
    cat "$work/latest.md"
    exit 0
fi

# --only search: its rows and notes take the place of the search rows and notes of the last
# full report, whose other rows stay as they were measured; with no report yet, this one
# stands alone.
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
alone="These rows come from \`bench/run.sh --only search\` ($(date -u '+%Y-%m-%d %H:%M UTC'),"
alone="$alone commit $commit, build type $build_type, load average $load), merged into the"
alone="$alone last full report."
"$bench" report --results "$res" --commit "$commit" --build-type "$build_type" \
    --data-desc "$sdesc (the search phase alone)" --search-alone "$alone" >"$work/latest.md"
if [ -f "$latest" ] && grep -q '^| --- |' "$latest"; then
    awk -v newf="$work/latest.md" '
        BEGIN {
            while ((getline l < newf) > 0) {
                if (l ~ /^\| Full-text search/) {
                    rows = rows l "\n"
                } else if (l ~ /^- \*\*Full-text search/) {
                    notes = notes l "\n"
                }
            }
        }
        /^\| Full-text search/ || /^- \*\*Full-text search/ { next }
        !done && (/^\| Peak RSS/ || (intable && !/^\|/)) {
            printf "%s", rows
            done = 1
        }
        /^\|/ { intable = 1 }
        { print }
        END {
            if (!done) {
                printf "%s", rows
            }
            printf "%s", notes
        }' "$latest" >"$work/merged.md"
    cp "$work/merged.md" "$latest"
    step "the search rows are merged into $latest"
else
    cp "$work/latest.md" "$latest"
fi
grep -e '^| benchmark' -e '^| ---' -e '^| Full-text search' -e '^- \*\*Full-text search' \
    "$work/latest.md"
