#!/usr/bin/env bash
# tests/vm/ring_free.sh — make check: worker threads on two nodes hand
# blocks round a ring in the 2node guest (guest/ring_free.c says what
# runs); the blocks each thread allocates afterwards are all on its own
# node (move_pages), though it freed blocks of its own node's other thread
# (handed on through the node's arena) and of the other node's.  The same
# program under glibc is run too and its figure printed, for comparison.
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
vm_build ring_free -pthread
vm_run 2node 120 "$lib $out/ring_free" \
    "echo '== glibc'; /ring_free; echo '== numamalloc'; LD_PRELOAD=$preload /ring_free"
result=fail
glibc=$(sed -n '/^== glibc/,/^== numamalloc/p' "$vm_log" | grep '^summary' | tail -1)
if [ "$vm_rc" -eq 0 ]; then
    numa=$(sed -n '/^== numamalloc/,$p' "$vm_log" | grep '^summary' | tail -1)
    [ "$numa" = "summary misplaced 0" ] && result=pass
fi
# A guest that ran but whose numbers are wrong fails as a guest that failed.
[ "$result" = pass ] || [ "$vm_rc" -ne 0 ] || vm_rc=1
vm_record 2node "new blocks on their own node after a ring of frees: $result (glibc: ${glibc:-no figure})"
vm_finish
