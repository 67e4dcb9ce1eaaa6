#!/usr/bin/env bash
# tests/vm/kinds.sh — make check: kinds of memory on a machine whose
# firmware describes its memory (ACPI HMAT).  The 4node-cxl guest with
# vm.sh --hmat (node 4 HBM-like: 140 GiB/s and 170 ns from nodes 0-1,
# against 100 GiB/s and 80 ns for each node's own DRAM; the kernel puts it
# in a tier of its own): unit/device --this-machine binds a populated
# region to every kind (hbm, highest-bandwidth, lowest-latency, cxl,
# memory-only, dram, highest-capacity), compares the kind's nodes with the
# HMAT figures read from sysfs by the test itself (bandwidth: node 4;
# latency: the caller's own node) and requires every page on them
# (move_pages); unit/tier --this-machine checks nm_node_perf and
# nm_node_tier against the same sysfs.  examples/omp_memspace.c runs there
# too, with 2 OpenMP threads: omp_high_bw_mem_space's pages must all be on
# node 4, and every memory space and the pool's fallbacks ok.
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
for u in device tier; do
    [ -x "$build/tests/unit/$u" ] || { echo "no $build/tests/unit/$u: run make first"; exit 1; }
done
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 -fopenmp -I"$root/include" "$root/examples/omp_memspace.c" \
    -o "$out/omp_memspace" "$build/libnumamalloc.a" -pthread ||
    { echo "cannot build examples/omp_memspace.c"; exit 1; }
echo "=== shape 4node-cxl with HMAT"
"$vm" --shape 4node-cxl --hmat --timeout 240 --files "$build/tests/unit/device $build/tests/unit/tier $out/omp_memspace" -- \
    sh -c '/device --this-machine; d=$?; /tier --this-machine; t=$?; OMP_NUM_THREADS=2 /omp_memspace; o=$?
           echo "device $d tier $t omp_memspace $o"; [ $d -eq 0 ] && [ $t -eq 0 ] && [ $o -eq 0 ]' \
    2>&1 | tee "$vm_log"
vm_rc=${PIPESTATUS[0]}
vm_boot=$(sed -n 's/.*(boot to power-off \(.*\))$/\1/p' "$vm_log" | tail -n 1)
[ "$vm_rc" -eq 77 ] || ran=1
# The HMAT path must have run: hbm resolved to node 4 with its pages there.
grep -q '^bind:hbm = bind:4: 256 of 256 pages on its nodes' "$vm_log" ||
    { [ "$vm_rc" -ne 0 ] || vm_rc=1; echo "FAIL: no 'bind:hbm = bind:4' line"; }
# OpenMP's high-bandwidth space on the HBM-like node, by every thread.
[ "$(grep -c '^omp_high_bw_mem_space (preferred:highest-bandwidth), thread [01]: 4096-aligned, pages N4=2048$' "$vm_log")" = 2 ] ||
    { [ "$vm_rc" -ne 0 ] || vm_rc=1; echo "FAIL: omp_high_bw_mem_space's pages are not all on node 4"; }
vm_record 4node-cxl "$(grep -c ' pages on its nodes (move_pages)$' "$vm_log") kinds bound and located"
vm_finish
