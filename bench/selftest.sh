#!/usr/bin/env bash
# bench/selftest.sh: keeps the benchmark harness working (a test for
# `make check`).  Runs bench/run.sh in its tiny size (seconds) and checks
# what it reports, never the times:
#   - every allocator that should run (glibc, numamalloc, and each peer that
#     is installed; or exactly BENCH_ALLOCATORS when set) completed every run
#     of every workload at every thread count, with its self-check passed
#     and a number parsed for every metric, and has a numeric row in every
#     table of results.md;
#   - three deliberately bad allocators are shown as FAIL, never as a number:
#     "corrupts" changes a byte of a live block now and then (a wrong
#     result), "crashes" aborts after 3000 mallocs, and "notloaded" is a
#     file that is not a library (the preload silently fails, so the run
#     would otherwise measure glibc under the wrong name);
#   - run.sh exits 1 because of those failures, and writes runs.csv,
#     results.md and (when gnuplot is installed) the plots.
# Exit 0 = pass, 1 = fail.  Env: NM_LIB (as for run.sh), BENCH_ALLOCATORS.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/bench/run.sh"
threads="1 2"
repeats=2
problems=0
problem() { echo "selftest: FAIL: $*"; problems=$((problems + 1)); }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-selftest.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# ---- the allocators that must complete ------------------------------------------
expected=()
while read -r name status where; do
    if [ "$status" = found ]; then
        expected+=("$name")
    elif [ -n "${BENCH_ALLOCATORS:-}" ] || [ "$name" = glibc ] || [ "$name" = numamalloc ]; then
        problem "allocator $name is missing ($where)"
    else
        echo "selftest: note: peer $name is not installed ($where); not checked"
    fi
done < <("$run" --allocators)
[ ${#expected[@]} -gt 0 ] || { echo "selftest: FAIL: no allocator found"; exit 1; }

# ---- the bad allocators -----------------------------------------------------------
cat >"$work/bad_alloc.c" <<'EOF'
/* Deliberately wrong allocators for the harness test: glibc's malloc, with
 * CORRUPT: every 200th malloc flips a byte of the block the previous malloc
 * returned, if still live; CRASH: the 3000th malloc aborts. */
#include <stdlib.h>
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);
static __thread __attribute__((tls_model("initial-exec"))) void *last_block;
#ifdef CRASH
static _Atomic unsigned long total_calls;
#else
static __thread __attribute__((tls_model("initial-exec"))) unsigned long calls;
#endif

void *malloc(size_t size)
{
    void *p = __libc_malloc(size);
#ifdef CRASH
    if (++total_calls == 3000)
        abort();
#else
    if (++calls % 200 == 0 && last_block)
        *(volatile unsigned char *)last_block ^= 0xff;
#endif
    last_block = p;
    return p;
}

void free(void *p)
{
    if (p && p == last_block)
        last_block = 0;
    __libc_free(p);
}
EOF
cc="${CC:-cc}"
bad_flags=(-std=gnu11 -O2 -Wall -Wextra -Werror -shared -fPIC)
"$cc" "${bad_flags[@]}" "$work/bad_alloc.c" -o "$work/libcorrupts.so" || exit 1
"$cc" "${bad_flags[@]}" -DCRASH "$work/bad_alloc.c" -o "$work/libcrashes.so" || exit 1
echo "this is not a shared library" >"$work/libnotloaded.so"
bad=(corrupts crashes notloaded)

# ---- the run ------------------------------------------------------------------------
out="$work/out"
BENCH=tiny BENCH_REPEATS=$repeats BENCH_THREADS="$threads" BENCH_OUT="$out" \
BENCH_EXTRA_ALLOCATORS="corrupts=$work/libcorrupts.so crashes=$work/libcrashes.so notloaded=$work/libnotloaded.so" \
BENCH_ALLOCATORS="${expected[*]} ${bad[*]}" BENCH_WORKLOADS="" \
    "$run" >"$work/run.log" 2>&1
rc=$?
[ $rc -eq 1 ] || problem "run.sh exited $rc, expected 1 (runs of the bad allocators failed)"
grep -q 'runs FAILED' "$work/run.log" || problem "run.sh did not report the failed runs"
for f in runs.csv results.md; do
    [ -s "$out/$f" ] || problem "run.sh wrote no $f"
done
if command -v gnuplot >/dev/null 2>&1; then
    ls "$out"/*.png >/dev/null 2>&1 || problem "gnuplot is installed but no plot was drawn"
fi

# ---- every run, from runs.csv: "workload threads allocator run ok|why" ------------
awk -F, 'NR > 1 {
    key = $1 " " $2 " " $3 " " $4
    if (!(key in state)) { order[++n] = key; state[key] = "ok" }
    if ($5 != "ok") { if (state[key] == "ok") state[key] = $5 }
    else if ($7 !~ /^[0-9]+(\.[0-9]+)?$/) state[key] = "value not a number: " $7
}
END { for (i = 1; i <= n; i++) print order[i], state[order[i]] }' "$out/runs.csv" >"$work/runs.txt"

while read -r w threaded only; do
    grep -q "^### $w\$" "$out/results.md" || problem "results.md has no table for $w"
    w_threads="$threads"; [ "$threaded" = yes ] || w_threads=1
    for t in $w_threads; do
        for a in "${expected[@]}" "${bad[@]}"; do
            # a workload for some allocators only (numamalloc's own API) must
            # not have run the others at all
            if [ -n "$only" ] && [[ " $only " != *" $a "* ]]; then
                grep -q "^$w $t $a " "$work/runs.txt" && problem "$w threads=$t: ran $a, but it is only for $only"
                continue
            fi
            for ((r = 1; r <= repeats; r++)); do
                line=$(grep "^$w $t $a $r " "$work/runs.txt")
                state="${line#"$w $t $a $r "}"
                if [ -z "$line" ]; then
                    problem "$w threads=$t $a run $r: not in runs.csv"
                elif [[ " ${bad[*]} " == *" $a "* ]]; then
                    [[ "$state" == FAIL* ]] || problem "$w threads=$t $a run $r: a bad allocator was not shown as FAIL ($state)"
                elif [ "$state" != ok ]; then
                    problem "$w threads=$t $a run $r: $state"
                fi
            done
            # the table rows: a number for good allocators, FAIL for bad ones
            rows=$(awk -v w="$w" -v t="$t" -v a="$a" '
                /^### / { in_w = ($2 == w) }
                in_w && $0 ~ ("^\\| " t " \\| " a " \\| ") { print }' "$out/results.md")
            if [ -z "$rows" ]; then
                problem "results.md: no row for $w threads=$t $a"
            elif [[ " ${bad[*]} " == *" $a "* ]]; then
                grep -qv '| \*\*FAIL\*\*' <<<"$rows" && problem "results.md: $w threads=$t $a has a number, not FAIL"
            else
                grep -qvE "^\| $t \| $a \| [0-9]" <<<"$rows" && problem "results.md: $w threads=$t $a has a row without a number"
            fi
        done
    done
done < <(BENCH_WORKLOADS="" "$run" --list)

if [ $problems -gt 0 ]; then
    echo "selftest: $problems problem(s); the run's output:"
    tail -n 40 "$work/run.log" | sed 's/^/  | /'
    exit 1
fi
echo "selftest: ok: ${expected[*]} completed every run; ${bad[*]} shown as FAIL"
exit 0
