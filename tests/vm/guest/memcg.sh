#!/bin/sh
# memcg.sh — runs inside the guest (tests/vm/memcg.sh): /memcg (guest/memcg.c:
# jobs A small/medium, B large, C small/medium freed by other threads, 4
# workers, at most 128 MiB live) in a memory cgroup of its own with
# memory.max = MAX, once per gap (idle, busy, trim), with numamalloc
# preloaded and then on glibc's malloc.  Each run gets a fresh cgroup, so
# that its memory.peak and memory.events (oom_kill) are its own.
#
#   memcg.sh MAX      e.g. memcg.sh 160M
#
# Judged, numamalloc only: the idle and trim runs complete (exit 0, no OOM
# kill): the free memory it keeps for reuse (for at most the purge delay,
# or until malloc_trim) and the huge pages of its large blocks must leave
# the jobs room under memory.max, as glibc's malloc does.
# Reported: what memory.current is above the baseline after each gap (for
# numamalloc, the empty first pages that idle threads keep stay: see
# tests/vm/README.md), busy (jobs back to back: numamalloc may still hold
# the previous job's memory), idle with NUMAMALLOC_HUGEPAGES=off, and
# glibc's malloc in all three.
# Exit 77 when the guest has no cgroup2 memory controller (its reason last).
max=$1
fail=0
bad() { echo "FAIL: $*"; fail=1; }
cg=/sys/fs/cgroup
mount -t cgroup2 none $cg 2>/dev/null || { echo "cannot mount cgroup2 on $cg"; exit 77; }
grep -qw memory $cg/cgroup.controllers || { echo "cgroup2 has no memory controller ($(cat $cg/cgroup.controllers))"; exit 77; }
echo +memory >$cg/cgroup.subtree_control || { echo "cannot enable the memory controller"; exit 77; }
[ "$(grep -vc '^Filename' /proc/swaps)" = 0 ] || { echo "FAIL: the guest has swap"; exit 1; }
echo "kernel $(uname -r), MemTotal $(sed -n 's/MemTotal: *//p' /proc/meminfo), no swap, memory.max $max"

run() {   # run ALLOCATOR GAP [memcg options]: ALLOCATOR numamalloc, numamalloc-nothp or glibc
    alloc=$1 gap=$2
    shift 2
    dir=$cg/$alloc-$gap
    mkdir $dir || exit 1
    echo "$max" >$dir/memory.max || exit 1
    [ -f $dir/memory.peak ] || { echo "no memory.peak (kernel older than 5.19)"; exit 77; }
    echo "--- $alloc, gap $gap"
    case $alloc in
    numamalloc) pre=LD_PRELOAD=/libnumamalloc.so ;;
    numamalloc-nothp) pre="LD_PRELOAD=/libnumamalloc.so NUMAMALLOC_HUGEPAGES=off" ;;
    glibc) pre= ;;
    esac
    sh -c 'echo $$ >'"$dir"'/cgroup.procs && exec env $0 /memcg "$@"' "${pre:-NM_ALLOCATOR=glibc}" "$gap" "$@" 2>&1
    rc=$?
    oom=$(sed -n 's/^oom_kill //p' $dir/memory.events)
    peak=$(($(cat $dir/memory.peak) / 1048576))
    echo "result $alloc $gap: exit $rc, oom_kill $oom, memory.peak $peak MiB, memory.events max $(sed -n 's/^max //p' $dir/memory.events)"
}

for gap in idle trim busy; do
    run numamalloc $gap
    if [ $gap != busy ]; then
        [ $rc -eq 0 ] && [ "$oom" = 0 ] || bad "numamalloc, gap $gap: exit $rc, oom_kill $oom"
    fi
done
echo "=== reference, nothing judged: numamalloc without huge pages, idle"
run numamalloc-nothp idle
echo "=== glibc's malloc, the same (reference, nothing judged)"
for gap in idle trim busy; do run glibc $gap; done

[ $fail -eq 0 ] && echo "memcg: all passed"
exit $fail
