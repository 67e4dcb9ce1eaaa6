#!/usr/bin/env bash
# tests/vm/examples.sh — make check: the examples of examples/ on four nodes.
# In the 4node guest (nodes 0-3, one CPU each: CPU i is on node i) it runs
# openmp, buffer_pool, worker_pool and bind_inspect (built as in
# tests/programs/examples.sh: -lnumamalloc with an rpath, so the guest gets
# libnumamalloc.so.0 and libgomp.so.1 at their host paths through vm.sh's
# ldd) and checks their per-node output with the check_* functions of
# tests/programs/examples.sh:
#   openmp        4 threads, one per node, each thread's arrays wholly on the
#                 node of its CPU; threads on all of nodes 0-3; the master's
#                 malloc'd array first-touched by a parallel for
#                 schedule(static): each thread's chunk wholly on its node,
#                 the chunks on all of nodes 0-3
#   buffer_pool   a pool on each of nodes 0-3, every buffer on its pool's node
#   worker_pool   6 tasks per node, each run on the node holding its data
#   bind_inspect  256 MiB bound to node 0 and 64 MiB bound
#                 to node 2: while each waits for Enter (a FIFO), the guest
#                 dumps /proc/PID/numa_maps, and the block's mapping must say
#                 bind:N with every page on N alone
# MPI is not run in the guest (tests/programs/example_mpi.sh runs it here).
# Exit 0 = everything passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
. "$root/tests/programs/examples.sh"    # check_* (its own tests do not run when sourced)
vm_need_lib

examples=(openmp buffer_pool worker_pool bind_inspect)
for name in "${examples[@]}"; do
    flags=(-pthread)
    [ "$name" = openmp ] && flags=(-fopenmp)
    gcc -std=gnu11 -Wall -Wextra -Werror -O2 "${flags[@]}" -I"$root/include" \
        "$root/examples/$name.c" -o "$out/ex_$name" -L"$build" -lnumamalloc -Wl,-rpath,"$build" ||
        { echo "cannot build examples/$name.c"; exit 1; }
done

# What the guest runs: each example between "=== NAME" and "=== NAME exit
# STATUS" lines; the demos with their numa_maps between "=== maps N" lines.
cat >"$out/examples_guest.sh" <<'EOF'
status=0
for name in openmp buffer_pool worker_pool; do
    echo "=== $name"
    "/ex_$name"
    rc=$?
    echo "=== $name exit $rc"
    [ $rc -eq 0 ] || status=1
done
for spec in "0 256" "2 64"; do
    set -- $spec
    node=$1 mib=$2
    mkfifo /tmp/enter$node
    /ex_bind_inspect --node $node --mib $mib </tmp/enter$node >/tmp/demo$node.out 2>&1 &
    pid=$!
    exec 3>/tmp/enter$node
    i=0
    while ! grep -q '^Press Enter' /tmp/demo$node.out && kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    echo "=== maps $node"
    grep -v file= /proc/$pid/numa_maps   # anonymous mappings only
    echo "=== maps $node end"
    echo >&3
    exec 3>&-
    wait $pid
    rc=$?
    echo "=== bind_inspect $node"
    cat /tmp/demo$node.out
    echo "=== bind_inspect $node exit $rc"
    [ $rc -eq 0 ] || status=1
done
exit $status
EOF

files="$out/examples_guest.sh"
for name in "${examples[@]}"; do files+=" $out/ex_$name"; done
vm_run 4node 240 "$files" "sh /examples_guest.sh"

# section NAME: the lines between "=== NAME" and the next "=== " line.
section() { awk -v s="=== $1" '$0 == s { on = 1; next } /^=== / { on = 0 } on' "$vm_log"; }
exit_of() { sed -n "s/^=== $1 exit \([0-9]*\)$/\1/p" "$vm_log"; }

if [ "$vm_rc" -ne 77 ]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/nm-vm-examples.XXXXXX")
    trap 'rm -f "$vm_log"; rm -rf "$tmp"' EXIT
    for name in openmp buffer_pool worker_pool "bind_inspect 0" "bind_inspect 2"; do
        [ "$(exit_of "$name")" = 0 ] || check_fail "$name: exit status '$(exit_of "$name")' in the guest"
    done
    section openmp >"$tmp/openmp.out"
    check_openmp "$tmp/openmp.out" 4 2048 "$(printf '0 0\n1 1\n2 2\n3 3')"
    [ "$openmp_nodes" = "0 1 2 3" ] || check_fail "openmp: threads ran on nodes '$openmp_nodes', expected 0 1 2 3"
    [ "$openmp_touch_nodes" = "0 1 2 3" ] ||
        check_fail "openmp: first-touched chunks on nodes '$openmp_touch_nodes', expected 0 1 2 3"
    section buffer_pool >"$tmp/buffer_pool.out"
    check_buffer_pool "$tmp/buffer_pool.out" "0 1 2 3"
    section worker_pool >"$tmp/worker_pool.out"
    check_worker_pool "$tmp/worker_pool.out" "0 1 2 3"
    for spec in "0 256" "2 64"; do
        read -r node mib <<<"$spec"
        pages=$((mib * 256))
        section "bind_inspect $node" >"$tmp/demo.out"
        grep -q "^nm_where: $pages/$pages pages on node $node$" "$tmp/demo.out" ||
            check_fail "bind_inspect --node $node: nm_where does not report $pages/$pages pages on node $node"
        addr=$(sed -n 's/^pid [0-9]*: [0-9]* MiB at 0x\([0-9a-f]*\) .*/\1/p' "$tmp/demo.out")
        [ -n "$addr" ] || { check_fail "bind_inspect --node $node: no block address"; continue; }
        # The block's mapping: the last numa_maps line starting at or below it.
        line=$(section "maps $node" | awk -v a="$addr" '
            function hex(s,  i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
            hex($1) <= hex(a) { l = $0 } END { print l }')
        echo "node $node block's numa_maps line: $line"
        check_bound_line "$line" "$node" "$pages"
    done
    [ "$check_failures" -eq 0 ] || [ "$vm_rc" -ne 0 ] || vm_rc=1
fi
vm_record 4node "openmp nodes ${openmp_nodes:-none}, first touch ${openmp_touch_nodes:-none}; $check_failures check(s) failed"
vm_finish
