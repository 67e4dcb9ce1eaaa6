#!/bin/sh
# tool.sh — runs inside the multi-node guest (tests/vm/tool.sh): the
# numamalloc command on a multi-node kernel.
#
#   tool.sh ONLINE MEMORY_ONLY BIND_NODE INTERLEAVE_NODES
#   e.g. tool.sh 0-4 4 1 0-3
#
#   topology: "available:" names the shape's nodes; each node's CPUs, size
#     and distance row are those of sysfs; the memory-only nodes are the
#     shape's;
#   run --membind=BIND -- /tool_hold: all 16384 pages of the 64 MiB block on
#     BIND (move_pages, in the program itself), and `maps --mappings` shows
#     the mapping holding it with exactly the pages per node move_pages
#     found, policy bind:BIND, kind numamalloc when the kernel names
#     mappings (as /proc/PID/maps says);
#   run -m BIND -N BIND: the program's stack (the process policy, which
#     no mbind touched) is bound to BIND with its pages there, and its CPUs
#     are BIND's;
#   run --interleave=NODES: the block's pages on every node of NODES and on
#     no other; maps agrees with move_pages again;
#   stat --membind=BIND: numa_hit grew by at least 32 on node BIND (64 MiB
#     take at least 32 page allocations of at most 2 MiB), and numamalloc's
#     statistics are in the report.
# The JSON outputs are printed between "=== json NAME" and "=== end" lines
# for the host to validate.
tool=/numamalloc
online=$1 memonly=$2 bind=$3 interleave=$4
fail=0
bad() { echo "FAIL: $*"; fail=1; }
expand() { echo "$1" | tr ',' '\n' | awk -F- 'NF { b = NF > 1 ? $2 : $1; for (i = $1; i <= b; i++) print i }'; }
count() { expand "$1" | wc -l | tr -d ' '; }

# ---- topology ------------------------------------------------------------------------------
$tool topology >/tmp/topology.txt 2>/tmp/err || bad "topology exited $?: $(cat /tmp/err)"
cat /tmp/topology.txt
grep -qx "available: $(count "$online") nodes ($online)" /tmp/topology.txt ||
    bad "topology: not 'available: $(count "$online") nodes ($online)'"
[ "$(cat /sys/devices/system/node/online)" = "$online" ] || bad "sysfs says nodes $(cat /sys/devices/system/node/online)"
for n in $(expand "$online"); do
    dir=/sys/devices/system/node/node$n
    cpus=$(cat $dir/cpulist)
    [ -n "$cpus" ] || cpus="none (memory only)"
    grep -qx "node $n cpus: $cpus" /tmp/topology.txt || bad "topology: no 'node $n cpus: $cpus'"
    mib=$(awk '/MemTotal/ { print int($4 / 1024) }' $dir/meminfo)
    grep -qx "node $n size: $mib MiB" /tmp/topology.txt || bad "topology: no 'node $n size: $mib MiB'"
    row=$(awk -v n="$n" '$1 == n ":" { $1 = ""; print }' /tmp/topology.txt | tr -s ' ' | sed 's/^ //')
    want=$(tr -s ' ' <$dir/distance)
    [ "$row" = "$want" ] || bad "topology: distances of node $n '$row', sysfs '$want'"
done
grep -qx "memory-only nodes: $memonly" /tmp/topology.txt || bad "topology: memory-only nodes are not '$memonly'"
echo "=== json topology"; $tool topology --json; echo "=== end"

# ---- run + maps ------------------------------------------------------------------------------
# check_hold NAME: the program started by `numamalloc run` wrote its line
# to /tmp/NAME.out; compare `numamalloc maps` with it.  Sets pid, block.
check_hold() {
    name=$1 policy=$2
    i=0
    while [ ! -s /tmp/$name.out ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    read -r pid start rest </tmp/$name.out || { bad "$name: the program printed nothing"; return; }
    echo "$name: $(cat /tmp/$name.out)"
    block=$(echo "$rest" | sed 's/^block \(.*\) mapping .*/\1/')
    mapping=$(echo "$rest" | sed 's/.* mapping //')
    $tool maps "$pid" --mappings >/tmp/$name.maps 2>/tmp/err || bad "$name: maps exited $?: $(cat /tmp/err)"
    cat /tmp/$name.maps
    # A mapping's two lines (address, size, policy, kind; pages, name) as one.
    line=$(grep -A1 "^$start-" /tmp/$name.maps | tr '\n' ' ')
    [ -n "$line" ] || { bad "$name: maps lists no mapping at $start"; return; }
    got=$(echo "$line" | tr ' ' '\n' | grep '^N[0-9]*=' | tr '\n' ' ' | sed 's/ $//')
    [ "$got" = "$mapping" ] || bad "$name: maps says '$got' for the mapping at $start, move_pages '$mapping'"
    echo "$line" | grep -q " $policy " || bad "$name: the mapping at $start does not have policy $policy"
    if grep -q "^$start-.*\[anon:numamalloc\]" /proc/$pid/maps; then
        echo "$line" | grep -q ' numamalloc ' || bad "$name: the mapping at $start is not of kind numamalloc"
        grep -q '^numamalloc  .*N[0-9]' /tmp/$name.maps || bad "$name: the numamalloc kind has no pages"
    else
        echo "$name: this kernel does not name mappings: [anon:numamalloc] not checked"
        grep -q 'does not name anonymous mappings' /tmp/$name.maps || bad "$name: maps does not say mappings are unnamed"
    fi
    for n in $(expand "$online"); do
        grep -q "^$n  *[0-9]* " /tmp/$name.maps || bad "$name: maps has no row for node $n"
    done
    echo "=== json maps-$name"; $tool maps "$pid" --json --mappings; echo "=== end"
}

$tool run --membind="$bind" -- /tool_hold >/tmp/bind.out 2>/tmp/bind.err &
check_hold bind "bind:$bind"
[ "$block" = "N$bind=16384" ] || bad "bind: the block's pages are '$block', expected N$bind=16384"
kill "$pid"

# numactl's forms: -m applies to the whole process (its stack, which no
# mbind touched, is bound and on BIND), -N runs it on BIND's CPUs.
stack=$($tool run -m "$bind" -N "$bind" -- sh -c 'grep " stack " /proc/$$/numa_maps; sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" /proc/$$/status')
echo "run -m $bind -N $bind: $stack"
case $(echo "$stack" | head -n 1) in
    *" bind:$bind stack "*) ;;
    *) bad "run -m $bind: the program's stack is not bound to $bind: $stack" ;;
esac
echo "$stack" | head -n 1 | tr ' ' '\n' | grep '^N[0-9]*=' | grep -qv "^N$bind=" &&
    bad "run -m $bind: stack pages on another node: $stack"
[ "$(echo "$stack" | tail -n 1)" = "$(cat /sys/devices/system/node/node$bind/cpulist)" ] ||
    bad "run -N $bind: CPUs '$(echo "$stack" | tail -n 1)', node $bind has $(cat /sys/devices/system/node/node$bind/cpulist)"

# "all" is every node with memory: every node of these shapes.
nodes=$interleave
[ "$interleave" = all ] && nodes=$online
$tool run --interleave="$interleave" -- /tool_hold >/tmp/interleave.out 2>/tmp/interleave.err &
check_hold interleave "interleave:$nodes"
total=0
for n in $(expand "$online"); do
    pages=$(echo "$block" | tr ' ' '\n' | sed -n "s/^N$n=//p")
    total=$((total + ${pages:-0}))
    if expand "$nodes" | grep -qx "$n"; then
        [ "${pages:-0}" -gt 0 ] || bad "interleave: no page of the block on node $n"
    else
        [ -z "$pages" ] || bad "interleave: $pages pages of the block on node $n, outside $nodes"
    fi
done
[ $total -eq 16384 ] || bad "interleave: $total pages of the block resident, expected 16384"
kill "$pid"

# ---- stat ----------------------------------------------------------------------------------
$tool stat --membind="$bind" -o /tmp/stat.txt -- /tool_hold exit >/tmp/stat.out 2>/tmp/stat.err ||
    bad "stat exited $?: $(cat /tmp/stat.err)"
cat /tmp/stat.txt
hits=$(awk -v n="$bind" '
    $1 == "node" && !col { for (i = 2; i <= NF; i++) if ($i == n) col = i }
    $1 == "numa_hit" && col { print $col }' /tmp/stat.txt)
[ "${hits:-0}" -ge 32 ] || bad "stat: numa_hit grew by '${hits}' on node $bind, expected >= 32"
grep -q '^  large allocs  *[1-9]' /tmp/stat.txt || bad "stat: no numamalloc statistics with the 64 MiB block"
$tool stat --membind="$bind" --json -o /tmp/stat.json -- /tool_hold exit >/dev/null 2>&1 || bad "stat --json exited $?"
echo "=== json stat"; cat /tmp/stat.json; echo "=== end"

[ $fail -eq 0 ] && echo "numamalloc topology, run, maps and stat agree with sysfs and move_pages"
exit $fail
