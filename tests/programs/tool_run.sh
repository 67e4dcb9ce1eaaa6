#!/usr/bin/env bash
# `numamalloc run`: the program runs with the library next to the command
# preloaded (before an LD_PRELOAD already set), each option becomes its
# environment variable, the policy really applies (the kernel's policy of
# the memory under a small, a medium and a large block), --stats prints the
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
expect "--membind places the blocks" "small=bind:$mask medium=bind:$mask large=bind:$mask process=default:0 " \
    "$tool" run --membind="$node" -- "$tmp/policy_of_blocks"
expect "--interleave places the blocks" \
    "small=interleave:$mask medium=interleave:$mask large=interleave:$mask process=default:0 " \
    "$tool" run --interleave="$node" -- "$tmp/policy_of_blocks"
expect "--preferred places the blocks" \
    "small=preferred:$mask medium=preferred:$mask large=preferred:$mask process=default:0 " \
    "$tool" run --preferred="$node" -- "$tmp/policy_of_blocks"

# --stats: the statistics at exit, on stderr.
"$tool" run --stats -- "$tmp/policy_of_blocks" >/dev/null 2>"$tmp/stats"
grep -qx 'numamalloc statistics' "$tmp/stats" && grep -q '^  large allocs  *[1-9]' "$tmp/stats" ||
    { echo "FAIL: run --stats printed no statistics with the 8 MiB block:"; cat "$tmp/stats"; fail=1; }

# Started through a symbolic link elsewhere: the library is still found.
ln -s "$tool" "$tmp/nm-link"
expect "through a symbolic link" "$lib|unset|unset|unset" env -u LD_PRELOAD "$tmp/nm-link" run -- sh -c "$show_env"

[ $fail -eq 0 ] && echo "numamalloc run: preload, options, policies, arguments and exit status as expected"
exit $fail
