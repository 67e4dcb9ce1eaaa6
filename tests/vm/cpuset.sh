#!/usr/bin/env bash
# tests/vm/cpuset.sh — make check: numamalloc inside a cgroup v2 cpuset
# (what Slurm --mem-bind and container runtimes set up).  In the 4node guest
# (nodes 0-3, one CPU each; {0,1} and {2,3} 12 apart, others 21) the guest
# script (guest/cpuset.sh) moves itself into a cpuset with every CPU and the
# memory of nodes 1-2 only, so that threads on nodes 0 and 3 run where
# memory may not be taken.  Checked there (guest/cpuset.c, guest/cpuset.sh):
# threads on nodes 0 and 3 get the memory of nodes 1 and 2, every page of
# malloc, heaps, regions and numamalloc run --policy=interleave:all on nodes
# 1-2 only, "all" is 1-2, node 0 refused with "node 0 is not allowed in this
# cpuset (allowed: 1-2)", nm_heap_migrate between nodes 1 and 2 and refused
# (EINVAL) to node 0, and numactl --interleave=all as the reference.
# Exit 0 = passed; 77 = no guest can be had here, or numactl is not
# installed (make deps).
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
archive=$build/libnumamalloc.a
tool=$build/numamalloc
numactl=$(command -v numactl) || { echo "numactl not installed (make deps)"; exit 77; }
[ -f "$archive" ] || { echo "no $archive: run make lib first"; exit 1; }
[ -x "$tool" ] || { echo "no $tool: run make first"; exit 1; }
vm_build cpuset "$archive"
vm_build tool_hold
migrate=$build/tests/unit/heap_migrate
[ -x "$migrate" ] || { echo "no $migrate: run make first"; exit 1; }
files="$out/cpuset $out/tool_hold $tool $lib $numactl $migrate $root/tests/vm/guest/cpuset.sh"
vm_run 4node 300 "$files" "sh /cpuset.sh 1-2 0"
vm_record 4node "$(grep -c '^FAIL\|: FAIL' "$vm_log") failures; $(grep '^thread on node' "$vm_log" | sed 's/ (home [0-9]*)//' | awk '!seen[$0]++' | tr '\n' ';' | sed 's/;$//')"
vm_finish
