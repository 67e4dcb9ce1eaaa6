#!/usr/bin/env bash
# The library builds warning-free with clang too (-Wall -Wextra -Werror), and
# the clang-built library passes the allocation conformance tests.
set -eu
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v clang >/dev/null || { echo "clang not installed (make deps installs it)"; exit 77; }
build=$(mktemp -d); trap 'rm -rf "$build"' EXIT
make -s -C "$root" CC=clang BUILD="$build" lib tool >"$build.log" 2>&1 ||
    { cat "$build.log"; rm -f "$build.log"; exit 1; }
rm -f "$build.log"
for t in sizes realloc calloc aligned stress; do
    clang -std=gnu11 -Wall -Wextra -Werror -O2 -I"$root/include" -I"$root/src" -pthread \
        "$root/tests/preload/$t.c" -o "$build/$t"
    LD_PRELOAD="$build/libnumamalloc.so" "$build/$t" >"$build/$t.log" 2>&1 ||
        { echo "clang build: $t failed"; tail -n 20 "$build/$t.log"; exit 1; }
done
echo "clang build passes sizes, realloc, calloc, aligned, stress"
