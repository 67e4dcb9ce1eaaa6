#!/usr/bin/env bash
# tests/vm/hugetlb.sh — make check: NUMAMALLOC_HUGEPAGES=hugetlb when the
# hugetlb pool has pages on node 1 only (40 pages of 2 MiB, the 2node
# guest): guest/hugetlb.c allocates and writes 4 MiB and 64 MiB blocks and
# must live.
#   default policy     the blocks get hugetlb pages where the pool has them
#                      (node 1), or normal pages once it is empty
#   bind:0             the pool has nothing on node 0: normal pages, on node 0
#   bind:1             the 4 MiB block gets hugetlb pages, on node 1
# And with an empty pool everywhere: normal pages, no SIGBUS.
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
vm_build hugetlb

pool=/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages
guest="run() { echo \"=== \$1\"; shift; env NUMAMALLOC_HUGEPAGES=hugetlb LD_PRELOAD=$preload \"\$@\" /hugetlb || echo \"exit \$?\"; }"
guest+="; run 'empty pool'"
guest+="; echo 40 > $pool; echo \"pool on node 1: \$(cat $pool)\""
guest+="; run 'default policy'; run 'bind:0' NUMAMALLOC_POLICY=bind:0; run 'bind:1' NUMAMALLOC_POLICY=bind:1"
vm_run 2node 120 "$out/hugetlb $lib" "$guest"
# What each case must print (4 MiB block, then 64 MiB block).
expect() {   # CASE LINE-PATTERN (extended regex, the case's two lines joined by '|')
    local got
    got=$(awk -v c="=== $1" '$0 == c { on = 1; next } /^===/ { on = 0 } on && /^block /' "$vm_log" | tr '\n' '|')
    if [[ "$got" =~ ^$2\|$ ]]; then
        echo "ok   $1: $got"
    else
        echo "FAIL $1: got '$got', expected /$2/"
        bad=1
    fi
}
bad=0
expect 'empty pool' 'block 4 kb=4 nodes=[01](,[01])? absent=0\|block 64 kb=4 nodes=[01](,[01])? absent=0'
expect 'default policy' 'block 4 kb=2048 nodes=1 absent=0\|block 64 kb=(2048 nodes=1|4 nodes=[01](,[01])?) absent=0'
expect 'bind:0' 'block 4 kb=4 nodes=0 absent=0\|block 64 kb=4 nodes=0 absent=0'
expect 'bind:1' 'block 4 kb=2048 nodes=1 absent=0\|block 64 kb=(2048|4) nodes=1 absent=0'
grep -q '^pool on node 1: 40$' "$vm_log" || { echo "FAIL the guest's pool on node 1 was not set to 40 pages"; bad=1; }
[ "$vm_rc" -eq 0 ] && [ $bad -ne 0 ] && vm_rc=1
vm_record 2node "hugetlb pool on node 1 only: empty, default, bind:0, bind:1"
vm_finish
