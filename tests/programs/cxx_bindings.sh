#!/usr/bin/env bash
# cxx_bindings.sh — include/numamalloc.hpp: data/cxx_bindings.cc built with
# g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror against the header and
# linked with -lnumamalloc as a user builds it, then run: std::vector,
# std::map and std::pmr containers on each binding (local, a node, a heap,
# a policy), every block checked by the kernel's policy of its page and
# nm_where; equality, rebind, swap, numamalloc::heap, the exceptions, the
# new-handler, a refused scoped_thread_heap and heap::migrate's report.
# Binding, allocator, memory_resource and scoped_thread_heap must refuse a
# temporary numamalloc::heap at compile time.
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
# A temporary numamalloc::heap would dangle (destroyed at the end of the
# statement, or set as the thread's heap when destroyed): each holder of a
# heap refuses one at compile time ("deleted"), and takes a named heap.
for cxx in g++ clang++; do
    command -v $cxx >/dev/null || continue
    for holder in 'numamalloc::binding b' 'numamalloc::allocator<int> a' \
                  'numamalloc::memory_resource r' 'numamalloc::scoped_thread_heap s'; do
        body="nm_policy pol = nm_policy_local(); numamalloc::heap named(pol);"
        printf '#include <numamalloc.hpp>\nvoid f() { %s %s{named}; (void)0; }\n' "$body" "$holder" >"$tmp/named.cc"
        printf '#include <numamalloc.hpp>\nvoid f() { %s %s{numamalloc::heap(pol)}; (void)named; }\n' "$body" "$holder" >"$tmp/temp.cc"
        $cxx "${flags[@]}" -Wno-unused -fsyntax-only "$tmp/named.cc" 2>"$tmp/named.err" ||
            { cat "$tmp/named.err"; bad "$cxx: '$holder{named heap}' does not compile"; }
        if $cxx "${flags[@]}" -Wno-unused -fsyntax-only "$tmp/temp.cc" 2>"$tmp/temp.err"; then
            bad "$cxx: '$holder{numamalloc::heap(pol)}' compiles: a temporary heap would dangle"
        elif ! grep -q deleted "$tmp/temp.err"; then
            cat "$tmp/temp.err"; bad "$cxx: '$holder{numamalloc::heap(pol)}' fails for another reason than a deleted constructor"
        fi
    done
done
# A policy makes a heap: only said aloud (binding{policy}), never converted.
printf '#include <numamalloc.hpp>\nnumamalloc::binding f(const nm_policy &p) { return p; }\n' >"$tmp/conv.cc"
g++ "${flags[@]}" -fsyntax-only "$tmp/conv.cc" 2>/dev/null && bad "an nm_policy converts to a binding implicitly"
echo "temporary heaps refused: checked"
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
