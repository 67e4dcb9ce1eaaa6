#!/usr/bin/env bash
# tests/vm/api.sh — make check: the explicit placement API (nm_malloc_onnode,
# heaps with a policy, NUMAMALLOC_POLICY, NUMAMALLOC_INTERLEAVE_ABOVE,
# numactl's policies, nm_reserve, nm_where, bad input) on real multi-node
# kernels.  In the 4node-cxl guest (nodes 0-3 with CPUs, node 4 memory only)
# and the 2node guest:
#   - the unit tests that check more when there are several nodes
#     (guest/units.sh): region (libnuma comes in with numactl, at its host
#     path, so region compares nm_where with numa_move_pages too), onnode,
#     realloc_placement (on-node and heap blocks keep node and policy through
#     realloc, on every node),
#     user_heap, heap_migrate (nm_heap_migrate: pages move between nodes,
#     checked with move_pages), tier --this-machine (the guest's own tiers),
#     policy (its recorded sysfs trees are copied in and NM_ROOT points at
#     them) and device --this-machine (every kind of memory the guest has, as
#     bind: a populated region's pages on the kind's nodes by move_pages: in
#     4node-cxl bind:cxl is node 4 and bind:dram nodes 0-3);
#   - guest/api_place.c, linked with libnumamalloc.a: every check
#     (tests/vm/README.md lists them).
# In the sparse guest (node ids 0, 1, 3; node 2 offline; node 3 memory only)
# api_place alone: the same checks with a gap in the ids.
# Exit 0 = everything passed in every shape; 77 = no guest can be had here,
# or numactl is not installed (make deps).
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
archive=$build/libnumamalloc.a
numactl=$(command -v numactl) || { echo "numactl not installed (make deps)"; exit 77; }
units=(region onnode user_heap heap_migrate realloc_placement tier policy device)
for u in "${units[@]}"; do
    [ -x "$build/tests/unit/$u" ] || { echo "no $build/tests/unit/$u: run make first"; exit 1; }
done
[ -f "$archive" ] || { echo "no $archive: run make lib first"; exit 1; }
vm_build api_place "$archive" -ldl
tar -C "$root" -cf "$out/nmroot.tar" tests/sysfs || { echo "cannot pack tests/sysfs"; exit 1; }

files="$out/api_place $out/nmroot.tar $numactl $root/tests/vm/guest/units.sh"
for u in "${units[@]}"; do files+=" $build/tests/unit/$u"; done

# Exit 0 or 1 only: 77 would read as "no guest".
units_then="sh /units.sh region onnode user_heap heap_migrate realloc_placement 'tier --this-machine' policy 'device --this-machine'; u=\$?; echo '--- api_place'"
api="/api_place --numactl /numactl; a=\$?"
for shape in 4node-cxl 2node sparse; do
    if [ "$shape" = sparse ]; then guest="u=0; $api"; else guest="$units_then; $api"; fi
    vm_run "$shape" 300 "$files" "$guest; [ \$u -eq 0 ] && [ \$a -eq 0 ]"
    unit_line=$(grep '^units' "$vm_log" | head -n 1)
    vm_record "$shape" "${unit_line:+$unit_line; }api_place $(grep '^summary' "$vm_log" | head -n 1)"
done
vm_finish
