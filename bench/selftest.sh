#!/usr/bin/env bash
# bench/selftest.sh: keeps the benchmark harness working (a test for
# `make check`).  Runs bench/run.sh in its tiny size (seconds) and checks
# what it reports, never the times:
#   - every allocator that should run (glibc, numamalloc and its variants,
#     and each peer that is installed; or exactly BENCH_ALLOCATORS when set)
#     completed every run of every workload it runs in (bench/run.sh --list)
#     at every thread count, with its self-check passed and a number parsed
#     for every metric (or, for a metric the workload declares optional, one
#     of the words that say the machine cannot measure it), ran no workload
#     it is not meant for, and has a row in every table of results.md;
#   - three deliberately bad allocators are shown as FAIL, never as a number:
#     "corrupts" changes a byte of a live block now and then (a wrong
#     result; a run in which it changed none may pass, since nothing went
#     wrong, but every run in which it did must fail, and some must),
#     "crashes" aborts at the 3000th malloc, or at exit if the program makes
#     fewer (in a real program -- redis, sqlite3, python3, a compiler --
#     a changed byte may go unnoticed, so there "corrupts" may pass), and "notloaded" is a file that is not a library (the preload
#     silently fails, so the run would otherwise measure glibc under the
#     wrong name);
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
 * returned, if still live, and the count of bytes flipped is written to
 * stderr at exit ("corrupts: flipped N"); CRASH: the 3000th malloc aborts,
 * and a program that made fewer aborts at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
extern void *__libc_malloc(size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
static __thread __attribute__((tls_model("initial-exec"))) void *last_block;
#ifdef CRASH
static _Atomic unsigned long total_calls;
#else
static __thread __attribute__((tls_model("initial-exec"))) unsigned long calls;
static _Atomic unsigned long flipped;
#endif

void *malloc(size_t size)
{
    void *p = __libc_malloc(size);
#ifdef CRASH
    if (++total_calls == 3000)
        abort();
#else
    if (++calls % 200 == 0 && last_block) {
        *(volatile unsigned char *)last_block ^= 0xff;
        flipped++;
    }
#endif
    last_block = p;
    return p;
}

void *realloc(void *p, size_t size)
{
    if (p && p == last_block)
        last_block = 0;
    return __libc_realloc(p, size);
}

void free(void *p)
{
    if (p && p == last_block)
        last_block = 0;
    __libc_free(p);
}

__attribute__((destructor)) static void at_exit(void)
{
#ifdef CRASH
    abort();
#else
    char line[64];
    int n = snprintf(line, sizeof line, "corrupts: flipped %lu\n", (unsigned long)flipped);
    if (write(2, line, (size_t)n) < 0)
        return;
#endif
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
settings=(BENCH=tiny BENCH_REPEATS="$repeats" BENCH_THREADS="$threads" BENCH_OUT="$out"
          BENCH_EXTRA_ALLOCATORS="corrupts=$work/libcorrupts.so crashes=$work/libcrashes.so notloaded=$work/libnotloaded.so"
          BENCH_ALLOCATORS="${expected[*]} ${bad[*]}" BENCH_WORKLOADS="")
env "${settings[@]}" "$run" >"$work/run.log" 2>&1
rc=$?
[ $rc -eq 1 ] || problem "run.sh exited $rc, expected 1 (runs of the bad allocators failed)"
grep -q 'runs FAILED' "$work/run.log" || problem "run.sh did not report the failed runs"
for f in runs.csv results.md; do
    [ -s "$out/$f" ] || problem "run.sh wrote no $f"
done
if command -v gnuplot >/dev/null 2>&1; then
    ls "$out"/*.png >/dev/null 2>&1 || problem "gnuplot is installed but no plot was drawn"
fi

# ---- the workloads: "name threaded kind optional-metrics allocators-that-run-it..." ------
env "${settings[@]}" "$run" --list >"$work/list.txt" || problem "run.sh --list failed"
optional=""   # workload:metric,...
while read -r w threaded kind opt runners; do
    [ "$opt" = "-" ] && continue
    IFS=',' read -r -a opts <<<"$opt"
    for m in "${opts[@]}"; do optional+="${optional:+,}$w:$m"; done
done <"$work/list.txt"

# ---- every run, from runs.csv: "workload threads allocator run ok|why" ------------
awk -F, -v optional="$optional" 'BEGIN { n_opt = split(optional, o, ","); for (i = 1; i <= n_opt; i++) is_opt[o[i]] = 1 }
NR > 1 {
    key = $1 " " $2 " " $3 " " $4
    if (!(key in state)) { order[++n] = key; state[key] = "ok" }
    if ($5 != "ok") { if (state[key] == "ok") state[key] = $5 }
    else if ($7 ~ /^[0-9]+(\.[0-9]+)?$/) { }
    else if ((($1 ":" $6) in is_opt) && $7 ~ /^(unsupported|one_node)$/) { }
    else state[key] = "value not a number: " $7
}
END { for (i = 1; i <= n; i++) print order[i], state[order[i]] }' "$out/runs.csv" >"$work/runs.txt"

# The bytes "corrupts" flipped in a run (its stderr), or "none" if it never
# got to say (it died first).
flipped() {
    local n
    n=$(sed -n 's/^corrupts: flipped \([0-9]*\)$/\1/p' "$out/tmp/logs/$1.err" 2>/dev/null | tail -n 1)
    echo "${n:-none}"
}

corrupt_fails=0
while read -r w threaded kind opt runners; do
    grep -q "^### $w\$" "$out/results.md" || problem "results.md has no table for $w"
    w_threads="$threads"; [ "$threaded" = yes ] || w_threads=1
    for t in $w_threads; do
        for a in "${expected[@]}" "${bad[@]}"; do
            # an allocator not meant for the workload (numamalloc's own API;
            # a variant for some workloads only) must not have run at all
            if [[ " $runners " != *" $a "* ]]; then
                grep -q "^$w $t $a " "$work/runs.txt" && problem "$w threads=$t: ran $a, which it should not (runs for: $runners)"
                continue
            fi
            must_fail=0
            for ((r = 1; r <= repeats; r++)); do
                line=$(grep "^$w $t $a $r " "$work/runs.txt")
                state="${line#"$w $t $a $r "}"
                if [ -z "$line" ]; then
                    problem "$w threads=$t $a run $r: not in runs.csv"
                elif [ "$a" = corrupts ] && [ "$(flipped "${w}_t${t}_${a}_$r")" = 0 ]; then
                    : # it corrupted nothing: the run may pass
                elif [ "$a" = corrupts ] && [ "$kind" = script ]; then
                    # a real program need not notice a changed byte
                    [[ "$state" == FAIL* ]] && corrupt_fails=$((corrupt_fails + 1))
                elif [[ " ${bad[*]} " == *" $a "* ]]; then
                    must_fail=1
                    if [[ "$state" == FAIL* ]]; then
                        [ "$a" = corrupts ] && corrupt_fails=$((corrupt_fails + 1))
                    else
                        problem "$w threads=$t $a run $r: a bad allocator was not shown as FAIL ($state)"
                    fi
                elif [ "$state" != ok ]; then
                    problem "$w threads=$t $a run $r: $state"
                fi
            done
            # the table rows: a number (or n/a for an optional metric) for
            # good allocators, FAIL for bad ones that misbehaved
            rows=$(awk -v w="$w" -v t="$t" -v a="$a" '
                /^### / { in_w = ($2 == w) }
                in_w && $0 ~ ("^\\| " t " \\| " a " \\| ") { print }' "$out/results.md")
            if [ -z "$rows" ]; then
                problem "results.md: no row for $w threads=$t $a"
            elif [ $must_fail -eq 1 ]; then
                grep -qv '| \*\*FAIL\*\*' <<<"$rows" && problem "results.md: $w threads=$t $a has a number, not FAIL"
            elif [[ " ${bad[*]} " != *" $a "* ]]; then
                grep -qvE "^\| $t \| $a \| ([0-9]|n/a: )" <<<"$rows" && problem "results.md: $w threads=$t $a has a row without a number"
            fi
        done
    done
done <"$work/list.txt"
[ $corrupt_fails -gt 0 ] || problem "the corrupting allocator corrupted no run (the test lost its teeth)"

if [ $problems -gt 0 ]; then
    echo "selftest: $problems problem(s); the run's output:"
    tail -n 40 "$work/run.log" | sed 's/^/  | /'
    exit 1
fi
echo "selftest: ok: ${expected[*]} completed every run; ${bad[*]} shown as FAIL"
exit 0
