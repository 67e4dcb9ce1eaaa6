#!/usr/bin/env bash
# tests/vm/near_device.sh — make check: memory near a real PCI device.  The
# 2node guest gets a pxb host bridge on node 1 (QEMU's PCI expander bridge,
# whose ACPI proximity the kernel reads into numa_node) holding an e1000 NIC
# and a secondary VGA; guest/near_device.c (linked with libnumamalloc.a)
# checks nm_node_of_device by PCI address (node 1; ENXIO for the root bus's
# devices, numa_node -1; ENODEV for none), nm_malloc_near's pages on node 1
# (move_pages) for small to 4 MiB blocks, near: policies, and a heap of
# interleave:near:09:02.0; then `numamalloc topology` in the guest must list
# the display controller as a GPU of node 1.
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
tool=$build/numamalloc
archive=$build/libnumamalloc.a
[ -x "$tool" ] && [ -f "$archive" ] || { echo "no $tool or $archive: run make first"; exit 1; }
vm_build near_device "$archive" -ldl
devices="-device pxb,id=bridge1,bus_nr=8,numa_node=1 -device e1000,bus=bridge1,addr=0x1"
devices+=" -device secondary-vga,bus=bridge1,addr=0x2"
echo "=== shape 2node with $devices"
"$vm" --shape 2node --timeout 180 --qemu "$devices" --files "$out/near_device $tool" -- \
    sh -c '/near_device; a=$?; NUMAMALLOC_SYSFS_ROOT=/sys /numamalloc topology >/tmp/t.txt; cat /tmp/t.txt;
           grep -qx "  node 1: 0000:09:02.0 (gpu)" /tmp/t.txt || { echo "FAIL: topology does not list 0000:09:02.0 (gpu) on node 1"; a=1; }
           exit $a' 2>&1 | tee "$vm_log"
vm_rc=${PIPESTATUS[0]}
vm_boot=$(sed -n 's/.*(boot to power-off \(.*\))$/\1/p' "$vm_log" | tail -n 1)
[ "$vm_rc" -eq 77 ] || ran=1
vm_record 2node "near_device $(grep '^summary' "$vm_log" | head -n 1)"
vm_finish
