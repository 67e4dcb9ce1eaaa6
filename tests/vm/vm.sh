#!/usr/bin/env bash
# tests/vm/vm.sh — boot a small Linux guest with an emulated NUMA topology
# under QEMU (TCG, no KVM needed) and run one command in it.
#
#   tests/vm/vm.sh --shape 2node|4node|4node-cxl|sparse [--files "a b c"]
#                  [--timeout SECONDS] [--console] [--qemu "ARGS"] [--hmat]
#                  -- COMMAND [ARGS...]
#
# --qemu adds QEMU arguments (devices: tests/vm/near_device.sh puts PCI
# devices behind a pxb host bridge on node 1); --hmat gives the guest an
# ACPI HMAT table (bandwidth and latency per node, below).
# The guest is a Debian cloud kernel plus an initramfs holding busybox, the
# given files (each copied to /BASENAME in the guest; ELF files bring the
# libraries ldd finds for them, and the dynamic loader), and an init that
# mounts proc, sys and dev, runs COMMAND in / and powers off.
# COMMAND's output comes back on the host's stdout; vm.sh exits with
# COMMAND's exit status.  Other outcomes have their own codes:
#   77  no guest can be had here (no qemu-system-x86_64, no kernel): skip
#   70  the guest never reported an exit status (boot failure, panic)
#   71  the guest ran past --timeout (default 180 s)
#   64  bad usage
# A guest whose kernel fails before the command starts (no NM_VM_BEGIN from
# init: a crash of the emulated boot, no project code run yet) is booted
# once more, with its console shown; a second such failure exits 70.
# The kernel (from the newest linux-image-*-cloud-amd64 package, fetched with
# `apt-get download`, never installed) and busybox are cached in
# $NM_BUILD/vm/ (default build/vm/).  NM_VM_KERNEL=/path/to/vmlinuz uses
# another kernel.  See tests/vm/README.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${NM_BUILD:-$root/build}
cache=$build/vm

usage() { echo "usage: $0 --shape 2node|4node|4node-cxl|sparse [--files \"F ...\"] [--timeout S] [--console] [--qemu \"ARGS\"] [--hmat] -- COMMAND [ARGS...]" >&2; exit 64; }
skip() { echo "vm.sh: $*"; exit 77; }

shape="" files="" timeout_s=180 show_console=0 qemu_extra="" hmat=0
while [ $# -gt 0 ]; do
    case "$1" in
        --shape) shape=${2:-}; shift 2 || usage ;;
        --files) files=${2:-}; shift 2 || usage ;;
        --timeout) timeout_s=${2:-}; shift 2 || usage ;;
        --console) show_console=1; shift ;;
        --qemu) qemu_extra=${2:-}; shift 2 || usage ;;
        --hmat) hmat=1; shift ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
[ $# -gt 0 ] && [ -n "$shape" ] || usage

# ---------------------------------------------------------------- shapes
# One line per QEMU node: "cpus MiB", where cpus is 0 or 1 (one socket per
# node with CPUs) and MiB 0 means "memory removed at boot" (see sparse).
# dist() gives the SLIT distance between two QEMU nodes.
#
#   2node      2 nodes with a CPU each, distance 20
#   4node      4 nodes with a CPU each: pairs {0,1} {2,3} at 12, else 21
#   4node-cxl  4node plus node 4: memory only (a CXL or HBM tier), 28 from
#              nodes 0-1 and 32 from nodes 2-3
#   sparse     guest node ids 0, 1, 3: CPU nodes 0 and 1, node 3 memory only
#              (QEMU refuses gaps in its node ids, and Linux numbers nodes in
#              the order the ACPI SRAT names them: CPUs first, then memory.
#              So QEMU node 2 is given memory that the kernel is told to
#              ignore, memmap=...$..., which leaves guest node 2 offline.)
nodes=()
case "$shape" in
    2node)     nodes=("1 512" "1 512") ;;
    4node)     nodes=("1 384" "1 384" "1 384" "1 384") ;;
    4node-cxl) nodes=("1 384" "1 384" "1 384" "1 384" "0 256") ;;
    sparse)    nodes=("1 512" "1 512" "0 0" "0 256") ;;
    *) echo "vm.sh: unknown shape '$shape' (2node, 4node, 4node-cxl, sparse)" >&2; exit 64 ;;
esac
dist() {
    local a=$1 b=$2
    [ "$a" = "$b" ] && { echo 10; return; }
    case "$shape" in
        2node) echo 20 ;;
        4node|4node-cxl)
            if [ "$a" = 4 ] || [ "$b" = 4 ]; then
                [ $((a + b - 4)) -le 1 ] && echo 28 || echo 32
            elif [ $((a / 2)) = $((b / 2)) ]; then echo 12
            else echo 21; fi ;;
        sparse)
            if [ $((a + b)) -eq 1 ]; then echo 20
            elif [ "$a" -ge 2 ] && [ "$b" -ge 2 ]; then echo 20
            else echo 28; fi ;;
    esac
}

# ---------------------------------------------------------------- tools
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (make deps)"
mkdir -p "$cache"

# Newest linux-image-<version>-cloud-amd64 that apt knows (signed image, not
# -dbg or -unsigned).  An empty list means apt's lists were never fetched.
kernel_packages() {
    apt-cache pkgnames linux-image- 2>/dev/null |
        grep -E '^linux-image-[0-9][^ ]*-cloud-amd64$' | sort -V -r
}

fetch_kernel() {
    local pkgs tmp p
    command -v apt-get >/dev/null || skip "no guest kernel: apt-get not available (set NM_VM_KERNEL=/path/to/vmlinuz)"
    pkgs=$(kernel_packages)
    if [ -z "$pkgs" ] && [ "$(id -u)" -eq 0 ]; then
        apt-get update -q >/dev/null 2>&1 || true
        pkgs=$(kernel_packages)
    fi
    [ -n "$pkgs" ] || skip "no guest kernel: apt knows no linux-image-*-cloud-amd64 (run apt-get update)"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    for p in $pkgs; do
        if (cd "$tmp" && apt-get download -q "$p" >/dev/null 2>&1); then
            dpkg -x "$tmp"/*.deb "$tmp/x"
            local image
            image=$(ls "$tmp"/x/boot/vmlinuz-* 2>/dev/null | head -n 1)
            if [ -n "$image" ]; then
                cp "$image" "$cache/$(basename "$image")"
                ln -sf "$(basename "$image")" "$cache/vmlinuz"
                rm -rf "$tmp"
                return 0
            fi
        fi
        rm -rf "${tmp:?}"/*
    done
    rm -rf "$tmp"
    skip "no guest kernel: apt-get download of linux-image-*-cloud-amd64 failed"
}

# busybox: the host's (static from busybox-static, or dynamic: its libraries
# are copied like any other file's), else busybox-static fetched into the cache.
fetch_busybox() {
    local tmp
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    if command -v apt-get >/dev/null && (cd "$tmp" && apt-get download -q busybox-static >/dev/null 2>&1); then
        dpkg -x "$tmp"/busybox-static_*.deb "$tmp/x"
        [ -x "$tmp/x/bin/busybox" ] && cp "$tmp/x/bin/busybox" "$cache/busybox"
    fi
    rm -rf "$tmp"
    [ -x "$cache/busybox" ] || skip "busybox not installed and busybox-static could not be fetched (make deps)"
}

(
    flock 9
    if [ -z "${NM_VM_KERNEL:-}" ] && [ ! -s "$cache/vmlinuz" ]; then fetch_kernel; fi
    if [ ! -x /bin/busybox ] && [ ! -x "$cache/busybox" ]; then fetch_busybox; fi
) 9>"$cache/.lock"
kernel=${NM_VM_KERNEL:-$cache/vmlinuz}
[ -s "$kernel" ] || skip "no guest kernel at $kernel"
busybox=/bin/busybox
[ -x "$busybox" ] || busybox=$cache/busybox

# ---------------------------------------------------------------- initramfs
work=$(mktemp -d "${TMPDIR:-/tmp}/nm-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc}

# Copy a file to the same path in the guest, with the libraries it needs.
copy_with_libs() {
    local src=$1 dest=$2 lib
    mkdir -p "$stage/$(dirname "$dest")"
    cp -L "$src" "$stage/$dest"
    if head -c 4 "$src" | grep -q 'ELF'; then
        # ldd prints "name => /path (addr)" and "/path/ld-linux... (addr)".
        for lib in $(ldd "$src" 2>/dev/null | grep -oE '/[^ ]+' ); do
            [ -e "$stage/$lib" ] && continue
            mkdir -p "$stage/$(dirname "$lib")"
            cp -L "$lib" "$stage/$lib"
        done
    fi
}

copy_with_libs "$busybox" /bin/busybox
for f in $files; do
    [ -e "$f" ] || { echo "vm.sh: no such file: $f" >&2; exit 64; }
    copy_with_libs "$f" "/$(basename "$f")"
done

# The command, quoted for the guest's sh.
{
    printf '#!/bin/sh\n'
    printf '%q ' "$@"
    printf '\n'
} >"$stage/cmd"

# init: the command's output and the exit marker go to the second serial
# port (ttyS1), apart from the kernel's console on ttyS0.
cat >"$stage/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/ HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
chmod 1777 /tmp    # the initramfs itself is writable memory; a tmpfs mounted here
                   # would hide files copied from a host path under /tmp
cd /
exec 3>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
echo NM_VM_BEGIN >&3
sh /cmd >&3 2>&3 </dev/null
echo "NM_VM_EXIT=$?" >&3
exec 3>&-
sync
poweroff -f
EOF
chmod 755 "$stage/init" "$stage/cmd"
if command -v cpio >/dev/null; then
    (cd "$stage" && find . | cpio -o -H newc --quiet) >"$work/initrd.cpio"
else
    (cd "$stage" && find . | "$busybox" cpio -o -H newc) >"$work/initrd.cpio" 2>/dev/null
fi

# ---------------------------------------------------------------- qemu
machine=pc
[ $hmat -eq 1 ] && machine=pc,hmat=on
qemu=(qemu-system-x86_64 -nodefaults -no-user-config -nographic -monitor none -no-reboot
      -machine "$machine" -accel tcg)
ncpu=0 total=0 removed="" base=0 i=0
for n in "${nodes[@]}"; do
    set -- $n; cpus=$1 mib=$2
    size=$mib
    if [ "$mib" -eq 0 ]; then size=64; removed="64M\$$((base))M"; fi
    initiator=""
    if [ $hmat -eq 1 ]; then initiator=",initiator=$([ "$cpus" -eq 1 ] && echo $i || echo 0)"; fi
    qemu+=(-object "memory-backend-ram,id=m$i,size=${size}M" -numa "node,nodeid=$i,memdev=m$i$initiator")
    if [ "$cpus" -eq 1 ]; then ncpu=$((ncpu + 1)); fi
    total=$((total + size)); base=$((base + size)); i=$((i + 1))
done
nnodes=$i
# Guest addresses: node memory is laid out in node order from 0, and below
# 3.5 GiB all of it stays under 4 GiB, so node k starts at the sum of the
# sizes before it (which is what memmap= needs for the removed node).
[ "$total" -le 3072 ] || { echo "vm.sh: shape too large" >&2; exit 64; }
socket=0 i=0
for n in "${nodes[@]}"; do
    set -- $n
    if [ "$1" -eq 1 ]; then qemu+=(-numa "cpu,node-id=$i,socket-id=$socket"); socket=$((socket + 1)); fi
    i=$((i + 1))
done
for ((a = 0; a < nnodes; a++)); do
    for ((b = 0; b < nnodes; b++)); do
        [ $a -eq $b ] || qemu+=(-numa "dist,src=$a,dst=$b,val=$(dist $a $b)")
    done
done
# --hmat: an ACPI HMAT table.  From each node with CPUs to each node: DRAM
# (a node with CPUs) 8 ns per unit of distance and 1000/distance GiB/s
# (local: 80 ns, 100 GiB/s); memory without CPUs is HBM-like, 6 ns per unit
# and 4000/distance GiB/s (from distance 28: 170 ns, 140 GiB/s: more
# bandwidth, more latency); all rounded to tens (QEMU stores every value as
# a multiple of one base).  A memory-only node's initiator is node 0.
if [ $hmat -eq 1 ]; then
    i=0
    for n in "${nodes[@]}"; do
        set -- $n
        if [ "$1" -eq 1 ]; then
            for ((b = 0; b < nnodes; b++)); do
                set -- ${nodes[$b]}
                d=$(dist $i $b)
                if [ "$1" -eq 1 ]; then per_unit=8 scale=1000; else per_unit=6 scale=4000; fi
                lat=$(( (per_unit * d + 5) / 10 * 10 )) bw=$(( (scale / d + 5) / 10 * 10 ))
                qemu+=(-numa "hmat-lb,initiator=$i,target=$b,hierarchy=memory,data-type=access-latency,latency=$lat"
                       -numa "hmat-lb,initiator=$i,target=$b,hierarchy=memory,data-type=access-bandwidth,bandwidth=${bw}G")
            done
        fi
        i=$((i + 1))
    done
fi
append="console=ttyS0 panic=-1 quiet numa_balancing=disable"
[ -n "$removed" ] && append+=" memmap=$removed"
# --qemu: more devices (split on blanks), e.g. a PCI bridge on a node:
# "-device pxb,id=b1,bus_nr=8,numa_node=1 -device e1000,bus=b1,addr=1".
# shellcheck disable=SC2206  # the words are meant to split
[ -n "$qemu_extra" ] && qemu+=($qemu_extra)
qemu+=(-m "${total}M" -smp "$ncpu,sockets=$ncpu,cores=1,threads=1"
       -kernel "$kernel" -initrd "$work/initrd.cpio" -append "$append"
       -serial "file:$work/console.log" -serial "file:$work/out.log")

show_guest_log() {
    echo "---- qemu:"; cat "$work/qemu.log"
    echo "---- guest console (last 40 lines):"; tr -d '\r' <"$work/console.log" | tail -n 40
}

for attempt in 1 2; do
    rm -f "$work/out.log" "$work/console.log"
    start=$(date +%s%N)
    set +e
    timeout -k 5 "$timeout_s" "${qemu[@]}" >"$work/qemu.log" 2>&1
    qrc=$?
    set -e
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    touch "$work/out.log" "$work/console.log"
    tr -d '\r' <"$work/out.log" >"$work/out.txt"
    status=$(sed -n 's/^NM_VM_EXIT=\([0-9]*\)$/\1/p' "$work/out.txt" | tail -n 1)
    if [ -z "$status" ] && [ $qrc -ne 124 ] && [ $qrc -ne 137 ] && [ $attempt -eq 1 ] &&
       ! grep -qx NM_VM_BEGIN "$work/out.txt"; then
        echo "vm.sh: shape $shape: the guest failed before its command started (qemu exit $qrc); booting it once more" >&2
        show_guest_log >&2
        continue
    fi
    break
done
# The command's output: the lines between the markers.
sed -n '/^NM_VM_BEGIN$/,/^NM_VM_EXIT=/{/^NM_VM_BEGIN$/d;/^NM_VM_EXIT=/d;p}' "$work/out.txt"
if [ $show_console -eq 1 ]; then show_guest_log >&2; fi
if [ -n "$status" ]; then
    echo "vm.sh: shape $shape: guest command exited $status (boot to power-off $((ms / 1000)).$(( (ms % 1000) / 100 ))s)" >&2
    exit "$status"
fi
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
    echo "vm.sh: shape $shape: guest timed out after ${timeout_s}s" >&2
    show_guest_log >&2
    exit 71
fi
echo "vm.sh: shape $shape: guest gave no exit status (qemu exit $qrc): boot failure or crash" >&2
show_guest_log >&2
exit 70
