#!/usr/bin/env bash
# tests/vm/crosscheck.sh — make check: independent checks of the multi-node
# guests and of how tests/vm measures placement, with libnuma and numactl:
#   - `numactl --hardware` in the 4node-cxl guest shows 5 nodes, node 4
#     with memory and no CPUs; in the sparse guest 3 nodes with ids 0-1,3,
#     node 3 memory only (guest/hardware.sh);
#   - in the 4node-cxl guest, with numamalloc preloaded, the pages of a
#     small, a medium and a huge block are located by the raw move_pages
#     system call (placement.c's method), by libnuma's numa_move_pages and
#     by /proc/self/numa_maps, which must agree (guest/crosscheck.c).
# Exit 0 = all agree; 77 = no guest here, or libnuma/numactl not installed.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
numactl=$(command -v numactl) || { echo "numactl not installed (make deps)"; exit 77; }
[ -f /usr/include/numa.h ] || { echo "libnuma-dev not installed (make deps)"; exit 77; }
vm_build crosscheck -lnuma
hw=$root/tests/vm/guest/hardware.sh
files="$hw $numactl $out/crosscheck $lib"

vm_run 4node-cxl 180 "$files" "sh /hardware.sh /numactl 'available: 5 nodes (0-4)' '4' '0 1 2 3' && LD_PRELOAD=$preload /crosscheck"
vm_record 4node-cxl ""
vm_run sparse 180 "$files" "sh /hardware.sh /numactl 'available: 3 nodes (0-1,3)' '3' '0 1'"
vm_record sparse ""
vm_finish
