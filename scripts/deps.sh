#!/bin/sh
# Installs the Debian packages veil needs to build, test and benchmark, if any is missing.
# Usage: scripts/deps.sh [build|test|bench]   (default: build)
# Runs apt-get as root, or through sudo; does nothing when everything is present.
set -eu
what=${1:-build}

# build: also curl and sqlite3, which `make run` and the README's first session use.
build="build-essential meson ninja-build pkg-config libsodium-dev libssl-dev libgmp-dev
libjansson-dev libyaml-dev libmicrohttpd-dev libsqlite3-dev libcurl4-openssl-dev
libutf8proc-dev libstemmer-dev libpq-dev libhiredis-dev curl sqlite3"
test="$build libcmocka-dev python3 python3-snowballstemmer clang
libclang-rt-14-dev groff-base python3-yaml python3-jsonschema openapi-specification gdb"
# The full-text search benchmark: PostgreSQL (its server, run privately for the phase), the
# kernel documentation it indexes, and zlib to read that documentation's .gz files.
bench="$test postgresql-15 linux-doc-6.1 zlib1g-dev"

case "$what" in
    build) pkgs=$build ;;
    test) pkgs=$test ;;
    bench) pkgs=$bench ;;
    *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "deps: missing packages:$missing (run as root or install sudo)" >&2
    exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
