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
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
lib=${NM_LIB:-$build/libnumamalloc.so}
vm=$root/tests/vm/vm.sh
out=$build/vm/guest

[ -f "$lib" ] || { echo "no $lib: run make lib first"; exit 1; }
numactl=$(command -v numactl) || { echo "numactl not installed (make deps)"; exit 77; }
[ -f /usr/include/numa.h ] || { echo "libnuma-dev not installed (make deps)"; exit 77; }
mkdir -p "$out"
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 -pthread "$root/tests/vm/guest/crosscheck.c" \
    -o "$out/crosscheck" -lnuma || { echo "cannot build tests/vm/guest/crosscheck.c"; exit 1; }
preload=/$(basename "$lib")
hw=$root/tests/vm/guest/hardware.sh

failed=0 results=()
run() {   # shape, guest command
    local shape=$1 rc log
    log=$(mktemp)
    echo "=== shape $shape"
    "$vm" --shape "$shape" --timeout 180 --files "$hw $numactl $out/crosscheck $lib" -- sh -c "$2" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 77 ]; then grep -v '^$' "$log" | tail -n 1; rm -f "$log"; exit 77; fi
    rm -f "$log"
    [ "$rc" -eq 0 ] && results+=("PASS $shape") || { results+=("FAIL $shape (exit $rc)"); failed=1; }
}
run 4node-cxl "sh /hardware.sh /numactl 'available: 5 nodes (0-4)' '4' '0 1 2 3' && LD_PRELOAD=$preload /crosscheck"
run sparse "sh /hardware.sh /numactl 'available: 3 nodes (0-1,3)' '3' '0 1'"
echo "=== results"
printf '%s\n' "${results[@]}"
exit $failed
