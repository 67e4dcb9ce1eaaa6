#!/usr/bin/env bash
# examples.sh — the examples in examples/ (all but MPI: example_mpi.sh), built
# as a user would build them (-I include -L build -lnumamalloc, rpath; one
# also against libnumamalloc.a) with gcc -Wall -Wextra -Werror, then run.
# Each checks itself (exit status); on top of that their per-node output is
# checked here against the machine's topology read from sysfs:
#   openmp        every thread's two arrays wholly on its CPU's node (sysfs),
#                 with the runtime pinning threads and without; the sum right;
#                 the master's malloc'd array first-touched by a parallel for
#                 schedule(static): every page of each thread's chunk on the
#                 node of the CPU that wrote it
#   buffer_pool   one pool per node with memory, every buffer's pages on it,
#                 as many puts as gets
#   worker_pool   6 tasks per node with memory, each run on its data's node
#   near_device   I/O buffers near the first network interface with a NUMA
#                 node (none here: it says so, and takes them from its own
#                 node) and compute arrays bound to highest-bandwidth, each
#                 line "ok"; again on the recorded tree
#                 tests/sysfs/two-node-devices, where the buffers must be
#                 near eth0 (node 0), and on that tree with node 1's memory
#                 taken away, where the buffers near nvme0n1 (node 1) must
#                 be on node 0, the nearest node with memory
#   bind_inspect  while it waits for Enter (on a FIFO), /proc/PID/numa_maps
#                 read here shows its 256 MiB mapping bind:0 with every page
#                 on N0; `numamalloc maps PID` shows bind:0 too (once
#                 $NM_BUILD/numamalloc is built)
# tests/vm/examples.sh sources this file for the check_* functions and runs
# the examples on 4 nodes.
set -u
root=${NM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
. "$root/tests/programs/data/common.sh"

check_failures=0
check_fail() { echo "FAIL: $*"; check_failures=$((check_failures + 1)); }

# The checks below first turn the lines they judge into plain fields with
# sed (a line of another form is then missing, and counted as such), then
# judge the fields with awk.  Each adds to check_failures.

# thread_problems FIELDS THREADS PAGES CPUMAP WHAT: the problems of the
# per-thread lines in FIELDS ("thread cpu node", then for each array its
# resident pages, its pages and the node they are on): THREADS lines, each
# thread's CPU on its node by CPUMAP, every array's PAGES of PAGES pages on
# that node.  WHAT names the arrays in the messages.
thread_problems() {
    echo "$1" | awk -v threads="$2" -v pages="$3" -v map="$4" -v what="$5" '
        BEGIN { n = split(map, m, "\n"); for (i = 1; i <= n; i++) { split(m[i], f, " "); node_of[f[1]] = f[2] } }
        NF >= 6 {
            seen++
            if (!($2 in node_of)) print "thread " $1 ": unknown cpu " $2
            else if (node_of[$2] != $3) print "thread " $1 ": cpu " $2 " is on node " node_of[$2] ", not " $3
            for (i = 4; i + 2 <= NF; i += 3)
                if ($i != pages || $(i + 1) != pages || $(i + 2) != $3) {
                    print "thread " $1 ": not all " pages " pages of " what " on node " $3
                    break
                }
        }
        END { if (seen != threads) print seen + 0 " well-formed " what " lines, expected " threads }'
}

# check_openmp OUT THREADS PAGES CPUMAP: THREADS thread lines, each with
# PAGES of PAGES pages of both arrays on the thread's node, that node being
# the one CPUMAP (lines "cpu node") gives for the thread's CPU; the sum right.
# And THREADS first-touch lines: PAGES of PAGES pages of the thread's chunk
# of the master's array on the node of the CPU it wrote them from.
# Sets openmp_nodes to the nodes the threads ran on, openmp_touch_nodes to
# the nodes the chunks were found on.
check_openmp() {
    local out=$1 threads=$2 pages=$3 cpumap=$4 fields problems
    fields=$(sed -n 's/^thread \([0-9]*\): cpu \([0-9]*\) node \([0-9]*\): nm_malloc_onnode \([0-9]*\)\/\([0-9]*\) pages on node \([0-9]*\), malloc \([0-9]*\)\/\([0-9]*\) pages on node \([0-9]*\)$/\1 \2 \3 \4 \5 \6 \7 \8 \9/p' "$out")
    problems=$(thread_problems "$fields" "$threads" "$pages" "$cpumap" "each array")
    grep -Eq '^sum ([0-9]+), expected \1: ok$' "$out" || problems+=" no right sum line"
    [ -z "$problems" ] || check_fail "openmp: $problems"
    openmp_nodes=$(echo "$fields" | awk 'NF == 9 { print $3 }' | sort -nu | tr '\n' ' ' | sed 's/ $//')
    fields=$(sed -n 's/^first touch: thread \([0-9]*\): cpu \([0-9]*\) node \([0-9]*\): elements [0-9]*-[0-9]*, \([0-9]*\)\/\([0-9]*\) pages of its chunk on node \([0-9]*\)$/\1 \2 \3 \4 \5 \6/p' "$out")
    problems=$(thread_problems "$fields" "$threads" "$pages" "$cpumap" "its chunk")
    [ -z "$problems" ] || check_fail "openmp first touch: $problems"
    openmp_touch_nodes=$(echo "$fields" | awk 'NF == 6 { print $6 }' | sort -nu | tr '\n' ' ' | sed 's/ $//')
}

# check_buffer_pool OUT "NODES": one pool per node of NODES (the nodes with
# memory, ascending), every buffer's pages on the pool's node, gets == puts > 0,
# none by a thread of another node.
check_buffer_pool() {
    local out=$1 nodes=$2 fields problems
    fields=$(sed -n 's/^pool on node \([0-9]*\): \([0-9]*\) buffers of 64 KiB, \([0-9]*\)\/\([0-9]*\) pages on node \([0-9]*\), \([0-9]*\) gets and \([0-9]*\) puts, \([0-9]*\) by threads of other nodes: ok$/\1 \2 \3 \4 \5 \6 \7 \8/p' "$out")
    problems=$(echo "$fields" | awk -v nodes="$nodes" '
        NF == 8 {
            got = got (got == "" ? "" : " ") $1
            if ($3 != $4 || $4 != $2 * 16 || $5 != $1) print "pool " $1 ": " $3 "/" $4 " pages of " $2 " buffers on node " $5
            if ($6 <= 0 || $6 != $7 || $8 != 0) print "pool " $1 ": " $6 " gets, " $7 " puts, " $8 " by other nodes"
        }
        END { if (got != nodes) print "pools on nodes \"" got "\", expected \"" nodes "\"" }')
    grep -q "damaged buffers: every buffer on its pool's node$" "$out" || problems+=" no closing line"
    [ -z "$problems" ] || check_fail "buffer_pool: $problems"
}

# check_worker_pool OUT "NODES": 6 tasks per node of NODES (nodes with memory,
# all with CPUs here), each run on the node its data is on.
check_worker_pool() {
    local out=$1 nodes=$2 fields problems
    fields=$(sed -n 's/^task *\([0-9]*\): data ([a-z_ ]*) on node \([0-9]*\), ran on node \([0-9]*\), sum ok$/\1 \2 \3/p' "$out")
    problems=$(echo "$fields" | awk -v nodes="$nodes" '
        BEGIN { count = split(nodes, list, " "); for (i = 1; i <= count; i++) want[list[i]] = 1 }
        NF == 3 {
            tasks++
            if ($2 != $3 || !($2 in want)) print "task " $1 ": data on node " $2 ", ran on node " $3
            per_node[$2]++
        }
        END {
            if (tasks != 6 * count) print tasks + 0 " well-formed task lines, expected " 6 * count
            for (n in want) if (per_node[n] != 6) print per_node[n] + 0 " tasks on node " n ", expected 6"
        }')
    grep -Eq "^[0-9]+ tasks, 0 wrong sums, 0 off their data's node: every task ran where its data is$" "$out" ||
        problems+=" no closing line"
    [ -z "$problems" ] || check_fail "worker_pool: $problems"
}

# check_bound_line "NUMA_MAPS LINE" NODE PAGES: the line says bind:NODE and
# NNODE=COUNT with COUNT >= PAGES, and names no page on another node.
check_bound_line() {
    local line=$1 node=$2 pages=$3
    echo "$line" | awk -v node="$node" -v pages="$pages" '
        { ok = 0; other = 0
          for (i = 2; i <= NF; i++) {
              if ($i == "bind:" node) bound = 1
              if ($i ~ /^N[0-9]+=/) { split(substr($i, 2), f, "="); if (f[1] == node && f[2] >= pages) ok = 1; else other = 1 }
          }
          exit !(bound && ok && !other) }' ||
        check_fail "bind_inspect: numa_maps line is not bind:$node with >= $pages pages on N$node alone: $line"
}

# The rest runs when the script is run, not when it is sourced.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

lib_dir=$build
if [ ! -f "$lib_dir/libnumamalloc.so" ] || [ ! -f "$lib_dir/libnumamalloc.a" ]; then
    echo "FAIL: no $lib_dir/libnumamalloc.so or .a (run make lib)"
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nm-examples.XXXXXX")
demo_pid=""
trap '[ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

cflags=(-std=gnu11 -Wall -Wextra -Werror -O2 -I"$root/include")
# shellcheck disable=SC2054  # the commas belong to -Wl
link=(-L"$lib_dir" -lnumamalloc -Wl,-rpath,"$lib_dir")
build_example() {   # NAME EXTRA-FLAGS...: examples/NAME.c -> $tmp/NAME
    local name=$1; shift
    gcc "${cflags[@]}" "$@" "$root/examples/$name.c" -o "$tmp/$name" "${link[@]}" ||
        { echo "FAIL: cannot build examples/$name.c"; exit 1; }
    ldd "$tmp/$name" | grep -q "libnumamalloc.so.0 => $lib_dir/libnumamalloc.so.0" ||
        { echo "FAIL: $name does not load $lib_dir/libnumamalloc.so.0"; ldd "$tmp/$name"; exit 1; }
}
build_example openmp -fopenmp
build_example buffer_pool -pthread
build_example worker_pool -pthread
build_example bind_inspect
build_example pipeline -pthread
build_example omp_memspace -fopenmp
build_example near_device
# The static library works as well (and malloc is numamalloc's there too).
gcc "${cflags[@]}" -pthread "$root/examples/buffer_pool.c" -o "$tmp/buffer_pool_static" \
    "$lib_dir/libnumamalloc.a" -pthread || { echo "FAIL: cannot build buffer_pool against libnumamalloc.a"; exit 1; }
# clang too, where installed (compiled only).  Its OpenMP header comes with
# libomp-dev, which make deps does not install: openmp.c only where it is.
if command -v clang >/dev/null; then
    for name in buffer_pool worker_pool bind_inspect pipeline near_device; do
        clang "${cflags[@]}" -pthread -c "$root/examples/$name.c" -o "$tmp/$name.clang.o" ||
            check_fail "clang cannot build examples/$name.c"
    done
    if echo '#include <omp.h>' | clang -fopenmp -x c -fsyntax-only - 2>/dev/null; then
        clang "${cflags[@]}" -fopenmp -c "$root/examples/openmp.c" -o "$tmp/openmp.clang.o" ||
            check_fail "clang cannot build examples/openmp.c"
    else
        echo "note: clang has no OpenMP header here (libomp-dev): openmp.c not built with clang"
    fi
fi

# The machine, from sysfs: nodes with memory, and each CPU's node.
nodes_with_memory=$(nm_nodes_with_memory)
cpumap=$(for c in /sys/devices/system/cpu/cpu[0-9]*; do
             cpu=${c##*cpu}; node=0
             for l in "$c"/node[0-9]*; do [ -e "$l" ] && node=${l##*node}; done
             echo "$cpu $node"
         done)
echo "nodes with memory: $nodes_with_memory"

run_example() {   # LABEL COMMAND...: run, keep the output in $tmp/LABEL.out, require status 0
    local label=$1; shift
    local start rc
    start=$(date +%s%N)
    timeout 120 "$@" >"$tmp/$label.out" 2>&1
    rc=$?
    echo "--- $label ($(( ($(date +%s%N) - start) / 1000000 )) ms, exit $rc)"
    cat "$tmp/$label.out"
    [ $rc -eq 0 ] || check_fail "$label exited with status $rc"
}

# OpenMP: 4 threads pinning themselves (2 per CPU on a 2-CPU machine), 8 MiB
# (2048 pages) per array; then 2 threads pinned by the runtime, 4 MiB.
run_example openmp env OMP_NUM_THREADS=4 "$tmp/openmp"
check_openmp "$tmp/openmp.out" 4 2048 "$cpumap"
echo "threads ran on nodes: $openmp_nodes; first-touched chunks on nodes: $openmp_touch_nodes"
run_example openmp_bound env OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$tmp/openmp" 4
grep -q 'pinned by the OpenMP runtime' "$tmp/openmp_bound.out" ||
    check_fail "openmp: OMP_PROC_BIND=close not seen by the example"
check_openmp "$tmp/openmp_bound.out" 2 1024 "$cpumap"

run_example buffer_pool "$tmp/buffer_pool"
check_buffer_pool "$tmp/buffer_pool.out" "$nodes_with_memory"
run_example buffer_pool_static "$tmp/buffer_pool_static"
check_buffer_pool "$tmp/buffer_pool_static.out" "$nodes_with_memory"

run_example worker_pool "$tmp/worker_pool"
check_worker_pool "$tmp/worker_pool.out" "$nodes_with_memory"

# near_device: on this machine (one node, or devices without affinity: it
# must say why the buffers are local), then on a recorded tree with a NIC
# on node 0.
run_example near_device "$tmp/near_device"
grep -Eq '^I/O buffers (near [^ ]+|local) \(node [0-9]+\): 16 x 256 KiB, 1024/1024 pages on node [0-9]+: ok$' \
    "$tmp/near_device.out" || check_fail "near_device: no ok line for the I/O buffers"
if grep -q '^I/O buffers local' "$tmp/near_device.out"; then
    grep -Eq '(no network interface here has a NUMA node|has no NUMA node affinity); I/O buffers on this thread.s node instead$' \
        "$tmp/near_device.out" || check_fail "near_device: local buffers without a reason"
fi
grep -Eq '^compute arrays on highest-bandwidth \(bind:[0-9,-]+\): 2 x 8 MiB, 4096/4096 pages there: ok$' \
    "$tmp/near_device.out" || check_fail "near_device: no ok line for the compute arrays"
run_example near_device_tree env NUMAMALLOC_SYSFS_ROOT="$root/tests/sysfs/two-node-devices" "$tmp/near_device"
grep -qx 'I/O buffers near eth0 (node 0): 16 x 256 KiB, 1024/1024 pages on node 0: ok' \
    "$tmp/near_device_tree.out" || check_fail "near_device on two-node-devices: buffers not near eth0 on node 0"
# A device on a node without memory: the tree with node 1's memory taken
# away, and the NVMe drive of node 1: nm_malloc_near takes the buffers from
# node 0, the nearest with memory, and they are checked there.
cp -a "$root/tests/sysfs/two-node-devices" "$tmp/cpu-only-node"
echo 0 >"$tmp/cpu-only-node/devices/system/node/has_memory"
sed -i 's/MemTotal: *[0-9]*/MemTotal: 0/' "$tmp/cpu-only-node/devices/system/node/node1/meminfo"
run_example near_device_no_memory env NUMAMALLOC_SYSFS_ROOT="$tmp/cpu-only-node" "$tmp/near_device" nvme0n1
grep -qx 'I/O buffers near nvme0n1 (node 1): 16 x 256 KiB, 1024/1024 pages on node 0: ok' \
    "$tmp/near_device_no_memory.out" ||
    check_fail "near_device: buffers near nvme0n1 (node 1, no memory) not checked on node 0"

# OpenMP memory spaces on numamalloc heaps: each space's blocks aligned and
# located, and a pool's two fallbacks.
run_example omp_memspace env OMP_NUM_THREADS=2 "$tmp/omp_memspace"
[ "$(grep -c '^omp_[a-z_]*_mem_space: ok$' "$tmp/omp_memspace.out")" = 4 ] ||
    check_fail "omp_memspace: not the 4 memory spaces ok"
grep -q '^pool of 16 MiB: .*: ok$' "$tmp/omp_memspace.out" || check_fail "omp_memspace: the pool's fallbacks"

# pipeline, profiled as the README shows: its sum, and a profile whose
# sites include the records it allocates (20,000 x 2 KiB: about 78
# samples at the default rate; the chance of none is e^-78).
run_example pipeline env NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_FILE="$tmp/pipeline.heap" "$tmp/pipeline"
grep -q ' sum [0-9]*: ok$' "$tmp/pipeline.out" || check_fail "pipeline: its sum is not ok"
head -n 1 "$tmp/pipeline.heap" 2>/dev/null | grep -q '^heap profile: .* @ heap_v2/524288$' ||
    check_fail "pipeline: no heap profile at the default rate in $tmp/pipeline.heap"
read_samples=$(grep -c '^[0-9]*: [0-9]* \[ [1-9]' "$tmp/pipeline.heap" 2>/dev/null)
[ "${read_samples:-0}" -ge 2 ] || check_fail "pipeline: the profile has ${read_samples:-0} sites that allocated"

# bind_inspect, held on a FIFO while its numa_maps is read from here.
mkfifo "$tmp/enter"
start=$(date +%s%N)
"$tmp/bind_inspect" <"$tmp/enter" >"$tmp/bind_inspect.out" 2>&1 &
demo_pid=$!
exec 3>"$tmp/enter"    # opens once the demo opens its end
for _ in $(seq 300); do
    grep -q '^Press Enter' "$tmp/bind_inspect.out" && break
    kill -0 "$demo_pid" 2>/dev/null || break
    sleep 0.1
done
if grep -q '^Press Enter' "$tmp/bind_inspect.out"; then
    addr=$(sed -n 's/^pid [0-9]*: 256 MiB at 0x\([0-9a-f]*\) .*/\1/p' "$tmp/bind_inspect.out")
    # The mapping that holds the block: the last numa_maps line at or below it.
    line=$(awk -v a="$addr" 'function hex(s,  i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
                             hex($1) <= hex(a) { l = $0 } END { print l }' "/proc/$demo_pid/numa_maps")
    echo "numa_maps of pid $demo_pid: $line"
    check_bound_line "$line" 0 65536
    # The command the README shows, once it is built (make builds $build/numamalloc).
    if [ -x "$build/numamalloc" ]; then
        if "$build/numamalloc" maps "$demo_pid" >"$tmp/maps.out" 2>&1; then
            echo "numamalloc maps $demo_pid:"; cat "$tmp/maps.out"
            grep -q 'bind:0' "$tmp/maps.out" || check_fail "numamalloc maps $demo_pid does not show bind:0"
        else
            check_fail "numamalloc maps $demo_pid failed: $(tail -n 3 "$tmp/maps.out")"
        fi
    else
        echo "note: no $build/numamalloc yet: numamalloc maps not tried"
    fi
else
    check_fail "bind_inspect never asked for Enter"
fi
echo >&3
exec 3>&-
wait "$demo_pid"
rc=$?
demo_pid=""
echo "--- bind_inspect ($(( ($(date +%s%N) - start) / 1000000 )) ms, exit $rc)"
cat "$tmp/bind_inspect.out"
[ $rc -eq 0 ] || check_fail "bind_inspect exited with status $rc"
grep -q '^nm_where: 65536/65536 pages on node 0$' "$tmp/bind_inspect.out" ||
    check_fail "bind_inspect: nm_where does not report 65536/65536 pages on node 0"

if [ $check_failures -ne 0 ]; then
    echo "examples: $check_failures failure(s)"
    exit 1
fi
echo "examples: ok"
