#!/usr/bin/env bash
# tests/vm/thread_start.sh — make check: a worker pool coming up on a
# two-node machine.  In the 2node guest (two CPUs, one per node),
# guest/thread_start.c starts eight threads that allocate at once; it runs
# 400 times under numamalloc and must exit 0 every time (a thread that
# moved to the other node while its first allocation set up its heap, and
# allocated again inside that set-up, went on with the heap it had just
# given back: 7-16 of 400 runs crashed so).  The same runs on glibc's malloc
# are printed for reference.
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
vm_build thread_start

runs=400
guest="count() { f=0; i=0; while [ \$i -lt $runs ]; do i=\$((i + 1)); env \"\$@\" /thread_start >/dev/null 2>&1 || f=\$((f + 1)); done; echo \"\$f\"; }"
guest+="; echo \"numamalloc: crashed or failed in \$(count LD_PRELOAD=$preload) of $runs runs\""
guest+="; echo \"glibc: crashed or failed in \$(count NM_ALLOCATOR=glibc) of $runs runs\""
vm_run 2node 240 "$out/thread_start $lib" "$guest"
if [ "$vm_rc" -eq 0 ]; then
    grep -q "^numamalloc: crashed or failed in 0 of $runs runs$" "$vm_log" || vm_rc=1
fi
vm_record 2node "$(grep '^numamalloc:\|^glibc:' "$vm_log" | tr '\n' ';' | sed 's/;$//')"
vm_finish
