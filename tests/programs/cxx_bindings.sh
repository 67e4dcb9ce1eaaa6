#!/usr/bin/env bash
# cxx_bindings.sh — include/numamalloc.hpp: data/cxx_bindings.cc built with
# g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror against the header and
# linked with -lnumamalloc as a user builds it, then run: std::vector,
# std::map and std::pmr containers on each binding (local, a node, a heap,
# a policy), every block checked by the kernel's policy of its page and
# nm_where; equality, rebind, swap, numamalloc::heap, and the exceptions.
# The header also compiles alone (with and without RTTI), and with clang++
# where installed.
# Skipped (77) without g++.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
command -v g++ >/dev/null || { echo "g++ not installed (make deps)"; exit 77; }
[ -f "$build/libnumamalloc.so" ] || { echo "FAIL: no $build/libnumamalloc.so (run make)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nm-cxx.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
flags=(-std=c++17 -Wall -Wextra -Wpedantic -Werror -O2 -I"$root/include")

for cxx in g++ clang++; do
    command -v $cxx >/dev/null || { echo "note: no $cxx"; continue; }
    echo '#include <numamalloc.hpp>' | $cxx "${flags[@]}" -x c++ -fsyntax-only - ||
        bad "numamalloc.hpp does not compile on its own with $cxx"
    # Projects that build without RTTI include it too.
    echo '#include <numamalloc.hpp>' | $cxx "${flags[@]}" -fno-rtti -x c++ -fsyntax-only - ||
        bad "numamalloc.hpp does not compile with $cxx -fno-rtti"
done
g++ "${flags[@]}" "$root/tests/programs/data/cxx_bindings.cc" -o "$tmp/cxx_bindings" \
    -L"$build" -lnumamalloc -Wl,-rpath,"$build" || { echo "FAIL: cannot build cxx_bindings.cc"; exit 1; }
if command -v clang++ >/dev/null; then
    clang++ "${flags[@]}" -c "$root/tests/programs/data/cxx_bindings.cc" -o "$tmp/cxx_bindings.clang.o" ||
        bad "clang++ cannot build cxx_bindings.cc"
fi
timeout 120 "$tmp/cxx_bindings" >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
[ $rc -eq 0 ] || bad "cxx_bindings exited with status $rc"
grep -Eq '^cxx bindings: [0-9]+ checks, 0 failed$' "$tmp/out" || bad "no passing summary line"
[ "$(grep -c ': ok$' "$tmp/out")" -eq 12 ] || bad "expected 12 blocks checked ok, found $(grep -c ': ok$' "$tmp/out")"
[ $fail -eq 0 ] || exit 1
echo "cxx_bindings: ok"
