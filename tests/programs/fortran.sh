#!/usr/bin/env bash
# fortran.sh — the Fortran bindings (module numamalloc, built by make into
# $NM_BUILD/fortran/numamalloc.mod and $NM_BUILD/libnumamalloc_fortran.a):
#   - every function numamalloc.h declares has an interface bound to it
#     (bind(c, name="nm_...")) in bindings/fortran/numamalloc.F90;
#   - the BIND(C) types match the C structs: size and every member's
#     offset, and the enumerators and constants, printed by a C program
#     (data/fortran_layout.c) and by a Fortran one (data/fortran_layout.f90)
#     and compared line by line;
#   - data/fortran_api.f90 calls every binding and checks each result;
#   - examples/fortran_onnode.f90, built as its header says (with OpenMP),
#     run with 4 threads and with 1: one array on every node with memory
#     (from sysfs), one per thread, each 2048/2048 pages on its node and
#     summed right.
# Skipped (77) where gfortran is missing.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
# shellcheck source=tests/programs/data/common.sh
. "$root/tests/programs/data/common.sh"   # nm_nodes_with_memory
nm_fortran_ready "$build"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nm-fortran.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# Every nm_ function of the header, bound.
module=$root/bindings/fortran/numamalloc.F90
missing=""
for fn in $(grep -oE '\bnm_[a-z_]+\(' "$root/include/numamalloc.h" | tr -d '(' | sort -u); do
    grep -q "bind(c, name=\"$fn\")" "$module" || missing+=" $fn"
done
[ -z "$missing" ] || bad "numamalloc.F90 binds no interface to:$missing"
echo "numamalloc.h functions bound: $(grep -oE '\bnm_[a-z_]+\(' "$root/include/numamalloc.h" | sort -u | wc -l)"

# Layout: C and Fortran must print the same lines.
gcc -std=gnu11 -Wall -Wextra -Werror -I"$root/include" "$root/tests/programs/data/fortran_layout.c" \
    -o "$tmp/layout_c" || { echo "FAIL: cannot build fortran_layout.c"; exit 1; }
gfortran "${nm_fflags[@]}" "$root/tests/programs/data/fortran_layout.f90" -o "$tmp/layout_f" "${nm_flink[@]}" ||
    { echo "FAIL: cannot build fortran_layout.f90"; exit 1; }
"$tmp/layout_c" >"$tmp/layout_c.out" && "$tmp/layout_f" >"$tmp/layout_f.out" || bad "a layout program failed"
if diff "$tmp/layout_c.out" "$tmp/layout_f.out" >"$tmp/layout.diff"; then
    echo "layout: $(wc -l <"$tmp/layout_c.out") sizes, offsets and constants the same in C and Fortran" \
         "(nm_policy: $(grep '^nm_policy size' "$tmp/layout_c.out"))"
else
    bad "C (<) and Fortran (>) layouts differ:"; cat "$tmp/layout.diff"
fi

# The API, from Fortran.
gfortran "${nm_fflags[@]}" "$root/tests/programs/data/fortran_api.f90" -o "$tmp/api" "${nm_flink[@]}" ||
    { echo "FAIL: cannot build fortran_api.f90"; exit 1; }
timeout 120 "$tmp/api" >"$tmp/api.out" 2>&1
rc=$?
cat "$tmp/api.out"
[ $rc -eq 0 ] || bad "fortran_api exited with status $rc"
grep -Eq '^fortran api: [0-9]+ checks, 0 failed$' "$tmp/api.out" || bad "fortran_api: no passing summary line"

# The example, as a user builds it.
gfortran "${nm_fflags[@]}" -fopenmp "$root/examples/fortran_onnode.f90" -o "$tmp/fortran_onnode" "${nm_flink[@]}" ||
    { echo "FAIL: cannot build examples/fortran_onnode.f90"; exit 1; }
nodes_with_memory=$(nm_nodes_with_memory)
sum=$((1048576 * 1048577 / 2))
for threads in 4 1; do
    OMP_NUM_THREADS=$threads timeout 120 "$tmp/fortran_onnode" >"$tmp/ex.out" 2>&1
    rc=$?
    echo "--- fortran_onnode, OMP_NUM_THREADS=$threads (exit $rc)"; cat "$tmp/ex.out"
    [ $rc -eq 0 ] || bad "fortran_onnode exited with status $rc"
    problems=$(sed -n 's/^\(node\|thread\) \([0-9]*\): node \([0-9]*\): \([0-9]*\)\/\([0-9]*\) pages on node \([0-9]*\), sum \([0-9]*\) ok$/\1 \2 \3 \4 \5 \6 \7/p' "$tmp/ex.out" |
        awk -v nodes="$nodes_with_memory" -v threads="$threads" -v sum="$sum" '
            BEGIN { n = split(nodes, l, " "); for (i = 1; i <= n; i++) want[l[i]] = 1 }
            {
                if ($4 != 2048 || $5 != 2048 || $3 != $6 || $7 != sum) print $1 " " $2 ": not 2048/2048 pages on node " $3 " with the right sum"
                if (!($3 in want)) print $1 " " $2 ": node " $3 " is not a node with memory"
                if ($1 == "node") { got = got (got == "" ? "" : " ") $2; if ($2 != $3) print "node line " $2 " names node " $3 }
                else thread_lines++
            }
            END {
                if (got != nodes) print "node lines for \"" got "\", expected \"" nodes "\""
                if (thread_lines != threads) print thread_lines + 0 " thread lines, expected " threads
            }')
    [ -z "$problems" ] || bad "fortran_onnode ($threads threads): $problems"
    grep -qx 'every array on its node: ok' "$tmp/ex.out" || bad "fortran_onnode: no closing line"
done

[ $fail -eq 0 ] || exit 1
echo "fortran: bindings complete, layout identical, API checks and the example pass"
