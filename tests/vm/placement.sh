#!/usr/bin/env bash
# tests/vm/placement.sh — make check: numamalloc's placement on real
# multi-node kernels.  Builds tests/vm/guest/placement.c and runs it, with
# numamalloc preloaded, in guests of every shape vm.sh knows (2 nodes,
# 4 nodes, 4 nodes plus a memory-only node, sparse node ids).  In the 4-node
# guest the same program also runs without the preload, on glibc's malloc,
# as a report for comparison (never judged; tests/vm/report/locality.sh
# compares more allocators).
# Exit 0 = every check passed in every shape; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
vm_build placement

# shape, /sys/devices/system/node/online and has_cpu it must show, glibc report
shapes=(
    "2node     0-1   0-1 no"
    "4node     0-3   0-3 yes"
    "4node-cxl 0-4   0-3 no"
    "sparse    0-1,3 0-1 no"
)
for s in "${shapes[@]}"; do
    set -- $s
    shape=$1 online=$2 cpus=$3 report=$4
    guest="LD_PRELOAD=$preload /placement --expect-online $online --expect-cpus $cpus; rc=\$?"
    if [ "$report" = yes ]; then
        guest+="; echo '=== the same on glibc malloc (report only, nothing judged)'; /placement --report"
    fi
    guest+="; exit \$rc"
    vm_run "$shape" 140 "$out/placement $lib" "$guest"
    vm_record "$shape" "$(grep '^summary' "$vm_log" | head -n 1)"
done
vm_finish
