#!/bin/sh
# hardware.sh — runs inside the multi-node guest (tests/vm/crosscheck.sh):
# libnuma's view of the emulated machine, through `numactl --hardware`, must
# match the shape.
#
#   hardware.sh NUMACTL "available: 5 nodes (0-4)" "CPU-LESS NODES" "CPU NODES"
#
# e.g. hardware.sh /numactl "available: 5 nodes (0-4)" "4" "0 1 2 3"
numactl=$1 available=$2 cpuless=$3 cpunodes=$4
out=$("$numactl" --hardware) || { echo "numactl --hardware failed"; exit 1; }
echo "$out"
fail=0
line=$(echo "$out" | grep '^available:')
if [ "$line" != "$available" ]; then
    echo "FAIL: numactl says '$line', the shape promised '$available'"; fail=1
fi
for n in $cpuless; do
    cpus=$(echo "$out" | sed -n "s/^node $n cpus: *//p")
    size=$(echo "$out" | sed -n "s/^node $n size: \([0-9]*\) MB/\1/p")
    if [ -n "$cpus" ]; then echo "FAIL: memory-only node $n has CPUs '$cpus'"; fail=1; fi
    if [ -z "$size" ] || [ "$size" -eq 0 ]; then echo "FAIL: memory-only node $n has no memory"; fail=1; fi
done
for n in $cpunodes; do
    cpus=$(echo "$out" | sed -n "s/^node $n cpus: *//p")
    if [ -z "$cpus" ]; then echo "FAIL: node $n has no CPUs"; fail=1; fi
done
[ $fail -eq 0 ] && echo "numactl --hardware matches the shape"
exit $fail
