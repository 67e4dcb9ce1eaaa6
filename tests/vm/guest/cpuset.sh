#!/bin/sh
# cpuset.sh — runs inside the 4-node guest (tests/vm/cpuset.sh): puts
# itself into a cgroup v2 cpuset with every CPU and the memory of MEMS only,
# then checks numamalloc there.
#
#   cpuset.sh MEMS EXCLUDED      e.g. cpuset.sh 1-2 0
#
#   - Mems_allowed_list of the shell is MEMS (the cpuset took);
#   - /cpuset threads, policies (guest/cpuset.c says what they check);
#   - NUMAMALLOC_POLICY=interleave:all and NUMAMALLOC_INTERLEAVE_ABOVE=1M:
#     /cpuset allowed, nothing on stderr;
#   - /heap_migrate (tests/unit/heap_migrate.c): a heap moves between the
#     allowed nodes, and a move to the excluded node is refused (EINVAL);
#   - NUMAMALLOC_POLICY=bind:EXCLUDED: exactly one stderr line
#     "numamalloc: ignoring NUMAMALLOC_POLICY='bind:EXCLUDED': node EXCLUDED
#     is not allowed in this cpuset (allowed: MEMS)", and /cpuset threads
#     passes (placement stays local: each thread on its home node);
#   - numamalloc run --policy=interleave:all -- /tool_hold exit: the 64 MiB
#     block's pages on the nodes of MEMS, each of them; the same nodes as
#     numactl --interleave=all gives glibc's malloc (the reference line);
#   - numamalloc run --membind=EXCLUDED: refused (exit status not 0) with
#     the same reason, the program not started; numactl --membind=EXCLUDED
#     is shown for reference.
mems=$1 excluded=$2
fail=0
bad() { echo "FAIL: $*"; fail=1; }
nodes_of() { echo "$1" | sed 's/^[0-9]* [0-9a-f]* block //; s/ mapping .*//' | tr ' ' '\n' | sed 's/=.*//' | sort | tr '\n' ' '; }
expand() { echo "$1" | tr ',' '\n' | awk -F- 'NF { b = NF > 1 ? $2 : $1; for (i = $1; i <= b; i++) print "N" i }' | sort | tr '\n' ' '; }

# ---- the cpuset -----------------------------------------------------------------------------
cg=/sys/fs/cgroup
mount -t cgroup2 none $cg || { echo "cannot mount cgroup2"; exit 1; }
echo +cpuset >$cg/cgroup.subtree_control || { echo "no cpuset controller"; exit 1; }
mkdir $cg/job || exit 1
cat /sys/devices/system/cpu/online >$cg/job/cpuset.cpus || exit 1
echo "$mems" >$cg/job/cpuset.mems || exit 1
echo $$ >$cg/job/cgroup.procs || exit 1
got=$(sed -n 's/^Mems_allowed_list:[[:space:]]*//p' /proc/self/status)
echo "cpuset: cpus $(cat $cg/job/cpuset.cpus.effective), mems $(cat $cg/job/cpuset.mems.effective); Mems_allowed_list $got"
[ "$got" = "$mems" ] || { echo "FAIL: Mems_allowed_list is '$got', not '$mems'"; exit 1; }

# ---- the library ----------------------------------------------------------------------------
run_check() {   # run_check NAME CHECK [VAR=VALUE ...]: /cpuset CHECK with an empty stderr
    name=$1 check=$2
    shift 2
    echo "--- $name: $* /cpuset $check"
    env "$@" /cpuset "$check" 2>/tmp/err || bad "$name: /cpuset $check exited $?"
    cat /tmp/err
    [ ! -s /tmp/err ] || bad "$name: stderr not empty"
}
run_check threads threads
run_check policies policies
run_check env-interleave allowed NUMAMALLOC_POLICY=interleave:all
run_check interleave-above allowed NUMAMALLOC_INTERLEAVE_ABOVE=1M

want="numamalloc: ignoring NUMAMALLOC_POLICY='bind:$excluded': node $excluded is not allowed in this cpuset (allowed: $mems)"
NUMAMALLOC_POLICY=bind:$excluded /cpuset threads 2>/tmp/err || bad "env-refused: /cpuset threads exited $?"
cat /tmp/err
[ "$(grep -vc '^$' /tmp/err)" = 1 ] && [ "$(cat /tmp/err)" = "$want" ] ||
    bad "env-refused: stderr is not the one line '$want'"

# ---- the command, and numactl as the reference -----------------------------------------------
/numamalloc run --policy=interleave:all -- /tool_hold exit >/tmp/run.out 2>/tmp/err ||
    bad "numamalloc run --policy=interleave:all exited $?: $(cat /tmp/err)"
line=$(cat /tmp/run.out)
echo "numamalloc run --policy=interleave:all: $line"
ours=$(nodes_of "$line")
[ "$ours" = "$(expand "$mems")" ] || bad "numamalloc run: the block is on '$ours', not on every node of $mems only"
/numactl --interleave=all /tool_hold exit >/tmp/ref.out 2>/tmp/err || bad "numactl --interleave=all exited $?: $(cat /tmp/err)"
ref=$(cat /tmp/ref.out)
echo "reference: numactl --interleave=all (glibc malloc): $ref"
[ "$(nodes_of "$ref")" = "$ours" ] || bad "numactl --interleave=all puts the block on '$(nodes_of "$ref")', numamalloc on '$ours'"

/numamalloc run --membind="$excluded" -- /tool_hold exit >/tmp/run.out 2>/tmp/err
rc=$?
echo "numamalloc run --membind=$excluded: exit $rc: $(cat /tmp/err)"
[ $rc -ne 0 ] && [ ! -s /tmp/run.out ] || bad "numamalloc run --membind=$excluded: exit $rc, the program ran"
grep -q "node $excluded is not allowed in this cpuset (allowed: $mems)" /tmp/err ||
    bad "numamalloc run --membind=$excluded: no 'node $excluded is not allowed in this cpuset (allowed: $mems)'"
/numactl --membind="$excluded" /tool_hold exit >/tmp/ref.out 2>/tmp/err
echo "reference: numactl --membind=$excluded: exit $?: $(head -n 1 /tmp/err)$(cat /tmp/ref.out)"

# nm_heap_migrate between the allowed nodes, and to the excluded one:
# refused with EINVAL, nothing changed (tests/unit/heap_migrate.c).
/heap_migrate >/tmp/migrate.out 2>&1 || bad "heap_migrate exited $?"
cat /tmp/migrate.out
grep -q "a node without usable memory refused" /tmp/migrate.out ||
    bad "heap_migrate did not try a node outside the cpuset"

[ $fail -eq 0 ] && echo "cpuset: all passed"
exit $fail
