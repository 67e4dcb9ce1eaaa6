#!/usr/bin/env bash
# `numamalloc run`: the program runs with the library next to the command
# preloaded (before an LD_PRELOAD already set), each option (numactl's short
# forms too) becomes its environment variable, the policy really applies
# (the kernel's policy of the memory under a small, a medium and a large
# block, and of the whole process), -N/-C bind its CPUs, --library and
# NUMAMALLOC_LIBRARY pick the library and installed lib64 and lib/TRIPLET
# trees are found, set-user-ID and static programs are named, --stats prints the
# statistics, arguments and the exit status pass through unchanged, and
# the command finds its library when started through a symbolic link.
# Error cases are in tool_errors.sh.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
tool=$build/numamalloc
[ -x "$tool" ] || { echo "no $tool: build it first (make)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
expect() {   # DESCRIPTION EXPECTED COMMAND...: stdout of COMMAND (stderr must be empty)
    local what=$1 want=$2; shift 2
    local got
    got=$("$@" 2>"$tmp/stderr")
    if [ "$got" != "$want" ] || [ -s "$tmp/stderr" ]; then
        printf 'FAIL %s:\n  expected: %s\n  got:      %s\n  stderr:   %s\n' "$what" "$want" "$got" "$(cat "$tmp/stderr")"
        fail=1
    fi
}
lib=$(cd "$build" && pwd -P)/libnumamalloc.so
show_env='echo "$LD_PRELOAD|${NUMAMALLOC_POLICY-unset}|${NUMAMALLOC_HUGEPAGES-unset}|${NUMAMALLOC_STATS-unset}"'

expect "no options" "$lib|unset|unset|unset" env -u LD_PRELOAD "$tool" run -- sh -c "$show_env"
expect "an LD_PRELOAD already set" "$lib:libm.so.6|unset|unset|unset" \
    env LD_PRELOAD=libm.so.6 "$tool" run -- sh -c "$show_env"
node=$(sed 's/[-,].*//' /sys/devices/system/node/online 2>/dev/null || echo 0)
expect "--membind" "$lib|bind:$node|unset|unset" env -u LD_PRELOAD "$tool" run --membind="$node" -- sh -c "$show_env"
expect "--interleave" "$lib|interleave:all|unset|unset" env -u LD_PRELOAD "$tool" run --interleave=all -- sh -c "$show_env"
expect "--preferred" "$lib|preferred:$node|unset|unset" env -u LD_PRELOAD "$tool" run --preferred="$node" -- sh -c "$show_env"
# (--stats: the shell prints statistics at exit, on a stderr sent to /dev/null here)
expect "--policy" "$lib|local|off|1" sh -c 'exec 2>/dev/null; exec "$@"' sh \
    env -u LD_PRELOAD "$tool" run --policy local --hugepages=off --stats -- sh -c "$show_env"
expect "--hugepages=hugetlb" "$lib|unset|hugetlb|unset" env -u LD_PRELOAD "$tool" run --hugepages=hugetlb -- sh -c "$show_env"
expect "a variable the user set is kept without an option" "$lib|interleave:all|unset|unset" \
    env -u LD_PRELOAD NUMAMALLOC_POLICY=interleave:all "$tool" run -- sh -c "$show_env"
expect "an option replaces the user's variable" "$lib|bind:$node|unset|unset" \
    env -u LD_PRELOAD NUMAMALLOC_POLICY=interleave:all "$tool" run --membind="$node" -- sh -c "$show_env"

# Arguments, options of the program, exit status.
expect "arguments" "a b|--|-x|c|" "$tool" run -- printf '%s|' 'a b' -- -x c
expect "no -- before the program" "-l|" "$tool" run --membind="$node" printf '%s|' -l
"$tool" run -- sh -c 'exit 7'
rc=$?
[ $rc -eq 7 ] || { echo "FAIL: exit status $rc, expected 7"; fail=1; }

# The policy applies: the kernel's policy of the memory under the blocks.
cc -O1 -o "$tmp/policy_of_blocks" "$root/tests/programs/data/policy_of_blocks.c" || exit 1
mask=$(printf '%#x' $((1 << node)))
expect "--membind places the blocks and the process" "small=bind:$mask medium=bind:$mask large=bind:$mask process=bind:$mask " \
    "$tool" run --membind="$node" -- "$tmp/policy_of_blocks"
expect "--interleave places the blocks and the process" \
    "small=interleave:$mask medium=interleave:$mask large=interleave:$mask process=interleave:$mask " \
    "$tool" run --interleave="$node" -- "$tmp/policy_of_blocks"
expect "--preferred places the blocks and the process" \
    "small=preferred:$mask medium=preferred:$mask large=preferred:$mask process=preferred:$mask " \
    "$tool" run --preferred="$node" -- "$tmp/policy_of_blocks"
expect "no policy leaves the process's" "small=default:0 medium=default:0 large=default:0 process=default:0 " \
    "$tool" run -- "$tmp/policy_of_blocks"

# numactl's forms: the short options set the same variables, and the
# policy applies to the whole process (/proc/PID/numa_maps shows the
# process policy on the stack, which no mbind touched), CPUs are bound
# (Cpus_allowed_list), node and CPU lists may repeat an id.
show_process='echo "${NUMAMALLOC_POLICY-unset}|$(awk "/ stack /{print \$2}" /proc/$$/numa_maps)|$(sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" /proc/$$/status)"'
allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
first_cpu=$(echo "$allowed" | sed 's/[-,].*//')
node_cpus=$(cat /sys/devices/system/node/node$node/cpulist)
expect "-m" "bind:$node|bind:$node|$allowed" "$tool" run -m "$node" -- sh -c "$show_process"
expect "--membind, a repeated node" "bind:$node,$node|bind:$node|$allowed" "$tool" run --membind="$node,$node" -- sh -c "$show_process"
expect "-i" "interleave:$node|interleave:$node|$allowed" "$tool" run -i "$node" -- sh -c "$show_process"
expect "-p" "preferred:$node|prefer:$node|$allowed" "$tool" run -p "$node" -- sh -c "$show_process"
expect "-l" "local|local|$allowed" "$tool" run -l -- sh -c "$show_process"
expect "--localalloc, -C" "local|local|$first_cpu" "$tool" run --localalloc -C "$first_cpu" -- sh -c "$show_process"
expect "--physcpubind, repeated" "unset|default|$first_cpu" "$tool" run --physcpubind="$first_cpu,$first_cpu" -- sh -c "$show_process"
expect "-N" "unset|default|$node_cpus" "$tool" run -N "$node" -- sh -c "$show_process"
expect "--cpunodebind=all" "unset|default|$allowed" "$tool" run --cpunodebind=all -- sh -c "$show_process"
# numactl itself agrees on what -N and -m do, where it is installed.
if command -v numactl >/dev/null; then
    want=$(numactl -N "$node" -m "$node" -- sh -c "$show_process" 2>&1 | cut -d'|' -f2-)
    expect "-N -m as numactl" "bind:$node|$want" "$tool" run -N "$node" -m "$node" -- sh -c "$show_process"
fi

# --library and NUMAMALLOC_LIBRARY pick the library; an installed layout
# with lib64 or lib/TRIPLET is found from PREFIX/bin.
cp "$lib" "$tmp/other.so"
expect "--library" "$tmp/other.so|unset|unset|unset" env -u LD_PRELOAD "$tool" run --library="$tmp/other.so" -- sh -c "$show_env"
expect "NUMAMALLOC_LIBRARY" "$tmp/other.so|unset|unset|unset" \
    env -u LD_PRELOAD NUMAMALLOC_LIBRARY="$tmp/other.so" "$tool" run -- sh -c "$show_env"
triplet=$(cc -print-multiarch 2>/dev/null)
for libdir in lib64 ${triplet:+lib/$triplet}; do
    mkdir -p "$tmp/prefix-$libdir/bin" "$tmp/prefix-$libdir/$libdir"
    cp "$tool" "$tmp/prefix-$libdir/bin/numamalloc"
    cp "$lib" "$tmp/prefix-$libdir/$libdir/libnumamalloc.so.0"
    expect "an installed tree with $libdir" "$tmp/prefix-$libdir/$libdir/libnumamalloc.so.0|unset|unset|unset" \
        env -u LD_PRELOAD "$tmp/prefix-$libdir/bin/numamalloc" run -- sh -c "$show_env"
done

# A set-user-ID or statically linked program: one line says the library
# cannot be preloaded; the program still runs under the policy.
cp /bin/true "$tmp/suid-true" && chmod u+s "$tmp/suid-true"
"$tool" run -m "$node" -- "$tmp/suid-true" 2>"$tmp/stderr"
grep -qx "numamalloc: run: $tmp/suid-true is set-user-ID: the loader ignores LD_PRELOAD for it; the memory policy and CPU binding still apply" "$tmp/stderr" ||
    { echo "FAIL: set-user-ID program: $(cat "$tmp/stderr")"; fail=1; }
printf 'int main(void) { return 0; }\n' >"$tmp/static.c"
if cc -static -o "$tmp/static" "$tmp/static.c" 2>/dev/null; then
    "$tool" run -- "$tmp/static" 2>"$tmp/stderr"
    grep -qx "numamalloc: run: $tmp/static is statically linked: no library can be preloaded into it; the memory policy and CPU binding still apply" "$tmp/stderr" ||
        { echo "FAIL: static program: $(cat "$tmp/stderr")"; fail=1; }
else
    echo "(no static C library here: the statically linked case is not checked)"
fi

# --stats: the statistics at exit, on stderr.
"$tool" run --stats -- "$tmp/policy_of_blocks" >/dev/null 2>"$tmp/stats"
grep -qx 'numamalloc statistics' "$tmp/stats" && grep -q '^  large allocs  *[1-9]' "$tmp/stats" ||
    { echo "FAIL: run --stats printed no statistics with the 8 MiB block:"; cat "$tmp/stats"; fail=1; }

# Started through a symbolic link elsewhere: the library is still found.
ln -s "$tool" "$tmp/nm-link"
expect "through a symbolic link" "$lib|unset|unset|unset" env -u LD_PRELOAD "$tmp/nm-link" run -- sh -c "$show_env"

[ $fail -eq 0 ] && echo "numamalloc run: preload, options, policies, arguments and exit status as expected"
exit $fail
