#!/bin/sh
# Builds the libFuzzer harnesses of tests/fuzz/ with clang, straight from the sources (not
# through meson): the files libveil is made of (the `veil_sources += files(...)` lists of
# src/*/meson.build, so the server and CLI stay out) are compiled once with coverage
# instrumentation, ASan and UBSan, and linked into each harness with the pkg-config
# libraries of meson.build's `deps` (libsodium libcrypto jansson yaml-0.1 sqlite3 ...), its
# cc.find_library ones (-lstemmer), -lpthread and -lm. The harnesses of the HTTP front door
# ($server_harnesses) also get the server's files (src/server/meson.build's `cli_sources`)
# and libmicrohttpd.
# Usage: tests/fuzz/build.sh [OUTDIR]   (default: build-fuzz at the project root)
# Environment: CC (default clang, else clang-14), EXTRA_PKGS (more pkg-config packages).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build-fuzz}
case "$out" in /*) ;; *) out=$(pwd)/$out ;; esac
cc=${CC:-}
if [ -z "$cc" ]; then
    if command -v clang >/dev/null 2>&1; then cc=clang; else cc=clang-14; fi
fi
command -v "$cc" >/dev/null 2>&1 || { echo "fuzz: $cc not found (apt install clang)" >&2; exit 1; }

harnesses="fuzz_policy fuzz_document fuzz_bulk fuzz_config fuzz_words fuzz_store"
server_harnesses="fuzz_http"

# The library's sources, as meson lists them.
srcs=""
for mb in "$top"/src/*/meson.build; do
    d=$(dirname "$mb")
    for f in $(tr '\n' ' ' <"$mb" | grep -o "veil_sources += files([^)]*)" |
               grep -o "'[^']*'" | tr -d "'"); do
        srcs="$srcs $d/$f"
    done
done
[ -n "$srcs" ] || { echo "fuzz: no library sources found in src/*/meson.build" >&2; exit 1; }
server_srcs=""
for f in $(tr '\n' ' ' <"$top/src/server/meson.build" | grep -o "cli_sources += files([^)]*)" |
           grep -o "'[^']*'" | tr -d "'"); do
    server_srcs="$server_srcs $top/src/server/$f"
done
[ -n "$server_srcs" ] || { echo "fuzz: no server sources in src/server/meson.build" >&2; exit 1; }
# Its libraries, as meson.build's deps list them (threads and m are added by hand).
pkgs=$(sed -n '/^deps = \[/,/^\]/p' "$top/meson.build" | grep -o "dependency('[^']*'" |
       sed "s/dependency('//; s/'//" | grep -v '^threads$' | tr '\n' ' ')
pkgs="${pkgs:-libsodium libcrypto jansson yaml-0.1 sqlite3} ${EXTRA_PKGS:-}"
# And the plain libraries it finds with cc.find_library (stemmer has no pkg-config file).
plain=$(sed -n '/^deps = \[/,/^\]/p' "$top/meson.build" | grep -o "find_library('[^']*'" |
        sed "s/find_library('/-l/; s/'//" | grep -v '^-lm$' | tr '\n' ' ')

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# shellcheck disable=SC2086
cflags="-std=c11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Wno-missing-field-initializers \
-I$top/include -I$top/src $san $(pkg-config --cflags $pkgs libmicrohttpd)"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $pkgs) $plain -lpthread -lm"

obj_of() {
    echo "$out/obj/$(basename "$(dirname "$1")")_$(basename "$1" .c).o"
}
mkdir -p "$out/obj"
rm -f "$out"/obj/*.o
for f in $srcs $server_srcs; do
    echo "$f $(obj_of "$f")"
done | xargs -P "$(nproc 2>/dev/null || echo 2)" -n 2 sh -c \
    "$cc $cflags -fsanitize=fuzzer-no-link -c \"\$0\" -o \"\$1\" || exit 255"
objs=""
for f in $srcs; do
    objs="$objs $(obj_of "$f")"
done
for h in $harnesses; do
    # shellcheck disable=SC2086
    $cc $cflags -fsanitize=fuzzer "$top/tests/fuzz/$h.c" $objs $libs -o "$out/$h"
    echo "built $out/$h" >&2
done
server_objs=""
for f in $server_srcs; do
    server_objs="$server_objs $(obj_of "$f")"
done
for h in $server_harnesses; do
    # shellcheck disable=SC2086
    $cc $cflags -fsanitize=fuzzer "$top/tests/fuzz/$h.c" \
        $objs $server_objs $libs $(pkg-config --libs libmicrohttpd) -o "$out/$h"
    echo "built $out/$h" >&2
done
