#!/usr/bin/env bash
# tests/vm/memcg.sh — make check: numamalloc in a memory cgroup with
# memory.max set (what systemd's MemoryMax=, Kubernetes memory limits and
# Slurm's cgroup plugin set up).  memory.max never makes a mapping fail:
# over it the kernel reclaims and, with no swap (the guest has none), kills
# the process.  In the 2node guest, with memory.max = 160 MiB, a program of
# four worker threads (guest/memcg.c) runs three jobs of up to 123 MiB each
# (small/medium blocks, then large ones, then small/medium freed by other
# threads), with an idle gap of 1.5 purge delays, no gap, or malloc_trim(0)
# between them (guest/memcg.sh).  Passes when, under numamalloc, the idle
# and trim runs complete (exit 0, no OOM kill); memory.current after each
# gap, the back-to-back run, and glibc's malloc in all three are printed as
# the reference.
# Exit 0 = passed; 77 = no guest can be had here, or it has no cgroup2
# memory controller.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
vm_build memcg
files="$out/memcg $lib $root/tests/vm/guest/memcg.sh"
vm_run 2node 400 "$files" "sh /memcg.sh 160M"
vm_record 2node "$(grep '^result' "$vm_log" | sed 's/^result //; s/, memory.events max [0-9]*//' | tr '\n' ';' | sed 's/;$//')"
vm_finish
