#!/usr/bin/env bash
# tests/vm/placement.sh — make check: numamalloc's placement on real
# multi-node kernels.  Builds tests/vm/guest/placement.c and runs it, with
# numamalloc preloaded, in guests of every shape vm.sh knows (2 nodes,
# 4 nodes, 4 nodes plus a memory-only node, sparse node ids).  In the 4-node
# guest the same program also runs without the preload, on glibc's malloc,
# as a report for comparison (never judged).
# Exit 0 = every check passed in every shape; 77 = no guest can be had here.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
lib=${NM_LIB:-$build/libnumamalloc.so}
vm=$root/tests/vm/vm.sh
out=$build/vm/guest

[ -f "$lib" ] || { echo "no $lib: run make lib first"; exit 1; }
mkdir -p "$out"
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 -pthread "$root/tests/vm/guest/placement.c" \
    -o "$out/placement" || { echo "cannot build tests/vm/guest/placement.c"; exit 1; }
preload=/$(basename "$lib")

# shape, /sys/devices/system/node/online and has_cpu it must show, glibc report
shapes=(
    "2node     0-1   0-1 no"
    "4node     0-3   0-3 yes"
    "4node-cxl 0-4   0-3 no"
    "sparse    0-1,3 0-1 no"
)
results=() failed=0 ran=0
for s in "${shapes[@]}"; do
    set -- $s
    shape=$1 online=$2 cpus=$3 report=$4
    guest="LD_PRELOAD=$preload /placement --expect-online $online --expect-cpus $cpus; rc=\$?"
    if [ "$report" = yes ]; then
        guest+="; echo '=== the same on glibc malloc (report only, nothing judged)'; /placement --report"
    fi
    guest+="; exit \$rc"
    echo "=== shape $shape"
    log=$(mktemp)
    "$vm" --shape "$shape" --timeout 140 --files "$out/placement $lib" -- sh -c "$guest" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    boot=$(sed -n 's/.*(boot to power-off \(.*\))$/\1/p' "$log" | tail -n 1)
    summary=$(grep '^summary' "$log" | head -n 1)
    reason=$(grep -v '^$' "$log" | tail -n 1)
    rm -f "$log"
    if [ "$rc" -eq 77 ]; then
        # No guest here (vm.sh says why): a skip, unless other shapes ran.
        [ $ran -eq 0 ] && { echo "$reason"; exit 77; }
        results+=("FAIL $shape: $reason"); failed=1; continue
    fi
    ran=$((ran + 1))
    if [ "$rc" -eq 0 ]; then results+=("PASS $shape ($boot): $summary")
    else results+=("FAIL $shape (exit $rc${boot:+, $boot}): $summary"); failed=1; fi
done
echo "=== results"
printf '%s\n' "${results[@]}"
exit $failed
