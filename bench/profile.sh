#!/usr/bin/env bash
# bench/profile.sh: where the time of a malloc+free pair goes, allocator by
# allocator, on machines whose hardware counters perf cannot read (virtual
# machines): valgrind's callgrind runs bench/alloc_pairs with a fixed number
# of pairs and simulates the caches (D1 32 KiB 8-way, LL 32 MiB 16-way, 64 B
# lines) and the branch predictor.  Only the pair loops are counted
# (run_pair / run_batch, warm-up included, with everything they call), and
# the costs are split in two: the benchmark program's own code (its tag
# writes and checks, the same for every allocator) and everything else --
# the allocator's library, and the PLT stubs of the malloc and free calls
# (which callgrind cannot always tell apart from the library: tcmalloc's
# fast paths show up as an unknown object).
#
#   bench/profile.sh [pair|batch] [ALLOCATOR ...]     (default: pair, numamalloc tcmalloc)
#   PROFILE_PAIRS=200000 (per run), PROFILE_KEEP=DIR keeps the callgrind files,
#   PROFILE_D1=size,ways,line sets another first-level data cache (e.g. 32768,64,64
#   to see how many misses are conflicts: more ways, the same size)
#
# Prints one Markdown table: per pair, the allocator's instructions (Ir),
# data reads and writes, D1 and LL misses, conditional branches and their
# mispredictions (simulated), indirect branches, and the same totals for
# the whole loop.  Needs valgrind (`apt-get install valgrind`).
# Exit status: 0, 1 when a run failed, 2 for bad usage.
set -u
unset LD_PRELOAD
root=$(cd "$(dirname "$0")/.." && pwd)
pattern="${1:-pair}"
[ $# -gt 0 ] && shift
case "$pattern" in pair|batch) ;; *) echo "usage: bench/profile.sh [pair|batch] [ALLOCATOR ...]" >&2; exit 2 ;; esac
allocators=("$@")
[ ${#allocators[@]} -gt 0 ] || allocators=(numamalloc tcmalloc)
pairs="${PROFILE_PAIRS:-200000}"
command -v valgrind >/dev/null 2>&1 || { echo "profile: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

BENCH_WORKLOADS=alloc_pair "$root/bench/run.sh" --build >/dev/null || exit 1
program="${BENCH_BUILD:-$root/build/bench}/alloc_pairs"
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-profile.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

declare -A lib
while read -r name status where; do
    [ "$status" = found ] && lib[$name]="$where"
done < <(BENCH_ALLOCATORS="${allocators[*]}" "$root/bench/run.sh" --allocators)

# Sums the exclusive costs of a callgrind file by object: one line per
# object, "object Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim".
by_object() {
    awk '
    function name_of(spec,    id, rest) {
        # "(12) /path" defines id 12; "(12)" refers to it
        if (match(spec, /^\([0-9]+\)/)) {
            id = substr(spec, 2, RLENGTH - 2)
            rest = substr(spec, RLENGTH + 1)
            sub(/^ /, "", rest)
            if (rest != "") names[id] = rest
            return names[id]
        }
        return spec
    }
    /^events:/ { n_events = NF - 1; next }
    /^ob=/ { current = name_of(substr($0, 4)); next }
    /^cob=/ { name_of(substr($0, 5)); next }
    /^calls=/ { skip = 1; next }
    /^[0-9+*-]/ {
        if (skip) { skip = 0; next }   # the inclusive cost of a call
        for (i = 2; i <= NF; i++) cost[current, i - 1] += $i
        seen[current] = 1
        next
    }
    END {
        for (ob in seen) {
            line = ob
            for (i = 1; i <= n_events; i++) line = line " " (cost[ob, i] + 0)
            print line
        }
    }' "$1"
}

echo "Callgrind, alloc_pairs pattern=$pattern, $pairs pairs after a warm-up of $((pairs / 4)), one thread; per malloc+free pair:"
echo
echo "| allocator | Ir | Dr | Dw | D1 misses | LL misses | cond. branches | mispredicted | indirect branches | loop Ir | loop D1 misses | loop mispredicted |"
echo "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
status=0
for a in "${allocators[@]}"; do
    if [ -z "${lib[$a]:-}" ]; then
        echo "| $a | not found | | | | | | | | | | |"
        status=1
        continue
    fi
    out="$work/callgrind.$a.$pattern"
    # shellcheck disable=SC2054  # the commas are valgrind's
    cmd=(valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes
         --D1="${PROFILE_D1:-32768,8,64}" --LL=33554432,16,64 --collect-atstart=no
         --toggle-collect=run_pair --toggle-collect=run_batch
         --callgrind-out-file="$out" "$program" pattern="$pattern" pairs="$pairs" threads=1)
    [ "${lib[$a]}" != "-" ] && cmd=(env LD_PRELOAD="${lib[$a]}" "${cmd[@]}")
    "${cmd[@]}" >"$work/$a.out" 2>"$work/$a.err"
    result=$(grep '^RESULT ' "$work/$a.out")
    if [[ "$result" != *check=ok* ]]; then
        echo "| $a | run failed: $(tail -n 1 "$work/$a.err") | | | | | | | | | | |"
        status=1
        continue
    fi
    done_pairs=$(sed -n 's/.* pairs=\([0-9]*\) .*/\1/p' <<<"$result")
    warm_pairs=$(sed -n 's/.* warmup_pairs=\([0-9]*\) .*/\1/p' <<<"$result")
    total_pairs=$((done_pairs + warm_pairs))
    by_object "$out" | awk -v a="$a" -v program="$program" -v n="$total_pairs" '
        # Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim = $2..$14
        {
            for (i = 2; i <= NF; i++) all[i] += $i
            if ($1 != program)
                for (i = 2; i <= NF; i++) mine[i] += $i
        }
        END {
            printf "| %s | %.1f | %.1f | %.1f | %.3f | %.3f | %.1f | %.3f | %.2f | %.1f | %.3f | %.3f |\n", a,
                mine[2] / n, mine[3] / n, mine[4] / n, (mine[6] + mine[7]) / n, (mine[9] + mine[10]) / n,
                mine[11] / n, (mine[12] + mine[14]) / n, mine[13] / n,
                all[2] / n, (all[6] + all[7]) / n, (all[12] + all[14]) / n
        }'
    [ -n "${PROFILE_KEEP:-}" ] && mkdir -p "$PROFILE_KEEP" && cp "$out" "$PROFILE_KEEP/"
done
echo
echo "Ir .. indirect: outside the benchmark program (the allocator, and the PLT stubs of malloc and free); mispredicted: conditional and indirect branches; loop: the whole pair loop, the benchmark's tag writes and checks included."
exit $status
