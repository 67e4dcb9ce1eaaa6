#!/usr/bin/env bash
# Every error of the numamalloc command: a malformed policy, a node that
# does not exist, a bad CPU list or one outside the cpuset, a library that
# is not there (--library, NUMAMALLOC_LIBRARY), a missing or unrunnable program, a process that does not
# exist or cannot be read, a malformed process id, bad options and commands.
# Each must give exactly one line on stderr, beginning "numamalloc: " and
# saying what is wrong, nothing on stdout (never a partial table), and the
# documented exit status (2 usage, 1 cannot read, 126/127 program).  Also
# the help texts: every command's --help on stdout, exit 0.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
tool=$build/numamalloc
[ -x "$tool" ] || { echo "no $tool: build it first (make)"; exit 1; }
tmp=$(mktemp -d); chmod 755 "$tmp"; trap 'rm -rf "$tmp"' EXIT
fail=0 cases=0 not_run=""

# error STATUS PATTERN COMMAND...: COMMAND exits STATUS, prints nothing on
# stdout and one line on stderr: "numamalloc: " then text matching PATTERN
# (an extended regular expression).
error() {
    local want=$1 pattern=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    cases=$((cases + 1))
    if [ $rc -ne "$want" ] || [ -s "$tmp/out" ] || [ "$lines" -ne 1 ] ||
        ! grep -qE "^numamalloc: $pattern" "$tmp/err"; then
        echo "FAIL: $*"
        echo "  expected exit $want and one line 'numamalloc: $pattern'"
        echo "  got exit $rc, stdout $(wc -c <"$tmp/out") bytes, stderr:"
        sed 's/^/    | /' "$tmp/err"
        fail=1
    else
        printf '%-70s %3d  %s\n' "${*#"$tool "}" "$rc" "$(cat "$tmp/err")"
    fi
}

online=$(cat /sys/devices/system/node/online 2>/dev/null || echo 0)
missing_node=$(( $(echo "$online" | tr ',-' '\n\n' | sort -n | tail -n 1) + 1 ))

cpus_allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
cpu_outside=$(( $(echo "$cpus_allowed" | tr ',-' '\n\n' | sort -n | tail -n 1) + 1 ))

# ---- policies, nodes and CPUs (run and stat check them the same way) -----------------------
for cmd in run stat; do
    error 2 "$cmd: bad policy '--policy=bogus': unknown policy 'bogus'" "$tool" $cmd --policy=bogus -- true
    error 2 "$cmd: bad policy '--policy=bind:': bind needs nodes" "$tool" $cmd --policy=bind: -- true
    error 2 "$cmd: bad policy '--policy=interleave:0-x': bad node list '0-x'" \
        "$tool" $cmd --policy=interleave:0-x -- true
    error 2 "$cmd: bad policy '--membind=$missing_node': node $missing_node does not exist \\(nodes: $online\\)" \
        "$tool" $cmd --membind=$missing_node -- true
    error 2 "$cmd: bad policy '--interleave=0,$missing_node': node $missing_node does not exist" \
        "$tool" $cmd --interleave=0,$missing_node -- true
    error 2 "$cmd: bad policy '--preferred=999': node 999 does not exist" "$tool" $cmd --preferred=999 -- true
    error 2 "$cmd: give only one of --policy, --interleave \\(-i\\), --membind \\(-m\\), --preferred \\(-p\\), --localalloc \\(-l\\)" \
        "$tool" $cmd --membind=0 --interleave=0 -- true
    error 2 "$cmd: give only one of --policy" "$tool" $cmd -m 0 -l -- true
    error 2 "$cmd: bad policy '-m $missing_node': node $missing_node does not exist" "$tool" $cmd -m $missing_node -- true
    error 2 "$cmd: bad policy '-i x': bad node list 'x'" "$tool" $cmd -i x -- true
    error 2 "$cmd: bad node list '-N $missing_node': node $missing_node does not exist" "$tool" $cmd -N $missing_node -- true
    error 2 "$cmd: bad CPU list '--physcpubind=0-x': not a list such as 0-3,8" "$tool" $cmd --physcpubind=0-x -- true
    error 2 "$cmd: bad CPU list '-C 99999': 99999 is out of range" "$tool" $cmd -C 99999 -- true
    error 2 "$cmd: '-C $cpu_outside': none of these CPUs is available to this process \\(CPUs: $cpus_allowed\\)" \
        "$tool" $cmd -C $cpu_outside -- true
    error 2 "$cmd: give only one of --cpunodebind \\(-N\\), --physcpubind \\(-C\\)" "$tool" $cmd -N 0 -C 0 -- true
    error 1 "--library=$tmp/none.so: No such file or directory" "$tool" $cmd --library="$tmp/none.so" -- true
    error 1 "NUMAMALLOC_LIBRARY=$tmp/none.so: No such file or directory" env NUMAMALLOC_LIBRARY="$tmp/none.so" "$tool" $cmd -- true
    error 2 "$cmd: --hugepages=huge: not a mode \\(off, thp, hugetlb\\)" "$tool" $cmd --hugepages=huge -- true
    error 2 "$cmd: unknown option '--bogus'" "$tool" $cmd --bogus -- true
    error 2 "$cmd: option '--policy' needs a value" "$tool" $cmd --policy
    error 2 "$cmd: no program given" "$tool" $cmd
    error 2 "$cmd: no program given" "$tool" $cmd --membind=0 --
done

# ---- programs that cannot be run ------------------------------------------------------
: >"$tmp/not-executable"
for cmd in run stat; do
    error 127 "no-such-program-here: command not found" "$tool" $cmd -- no-such-program-here
    error 127 "$tmp/none/prog: No such file or directory" "$tool" $cmd -- "$tmp/none/prog"
    error 126 "$tmp/not-executable: Permission denied" "$tool" $cmd -- "$tmp/not-executable"
done
error 1 "stat: cannot write /nonexistent-dir/report: No such file or directory" \
    "$tool" stat -o /nonexistent-dir/report -- touch "$tmp/ran"
[ ! -e "$tmp/ran" ] || { echo "FAIL: stat ran the program although it could not write its report"; fail=1; }

# The command without its library next to it (or in ../lib).
mkdir "$tmp/bin" && cp "$tool" "$tmp/bin/numamalloc"
error 1 "cannot find libnumamalloc.so" "$tmp/bin/numamalloc" run -- true

# ---- maps -----------------------------------------------------------------------------
pid_max=$(cat /proc/sys/kernel/pid_max)   # pids are below pid_max: this one never exists
error 1 "maps: no process $pid_max" "$tool" maps "$pid_max"
for bad_pid in 12abc 0 99999999999; do
    error 2 "maps: '$bad_pid' is not a process id" "$tool" maps "$bad_pid"
done
error 2 "maps: '' is not a process id nor a command name" "$tool" maps ''
error 1 "maps: no process named '\\+5'" "$tool" maps +5
error 2 "maps: unknown option '-5'" "$tool" maps -5
error 2 "maps: no process given" "$tool" maps
error 1 "maps: no process named 'no-such-program-here'" "$tool" maps no-such-program-here
error 1 "maps: no process $pid_max" "$tool" maps $$ "$pid_max"
error 2 "maps: --system takes no process, not '$$'" "$tool" maps --system $$
error 1 "maps: cannot write /nonexistent-dir/m: No such file or directory" "$tool" maps -o /nonexistent-dir/m $$
error 2 "maps: unknown option '--bogus'" "$tool" maps --bogus $$

# A process that cannot be read: ours, read as nobody (when we are root),
# or init's (when we are not).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    error 1 "maps: cannot read /proc/$$/numa_maps of process $$ \\(bash\\): Permission denied" \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$tool" maps $$
elif [ "$(id -u)" -ne 0 ] && [ "$(stat -c %u /proc/1)" != "$(id -u)" ]; then
    error 1 "maps: cannot read /proc/1/numa_maps of process 1 \\(.*\\): Permission denied" "$tool" maps 1
else
    not_run="a process that cannot be read (setpriv not installed)"
fi
# A kernel thread has no memory map (kthreadd is pid 2 outside containers).
if [ "$(cat /proc/2/comm 2>/dev/null)" = kthreadd ]; then
    error 1 "maps: process 2 \\(kthreadd\\) has no memory map" "$tool" maps 2
fi

# ---- topology, commands ---------------------------------------------------------------
error 2 "topology: unexpected argument 'extra'" "$tool" topology extra
error 2 "topology: unknown option '--bogus'" "$tool" topology --bogus
error 2 "no command given" "$tool"
error 2 "unknown command 'frobnicate'" "$tool" frobnicate
error 2 "help: unknown command 'frobnicate'" "$tool" help frobnicate

# ---- help texts ------------------------------------------------------------------------
for args in "--help" "help" "run --help" "topology --help" "maps --help" "stat --help" "help maps" "--version"; do
    # shellcheck disable=SC2086
    "$tool" $args >"$tmp/out" 2>"$tmp/err"
    rc=$?
    case $args in
        --version) want="numamalloc [0-9]+\\.[0-9]+\\.[0-9]+$" ;;
        "help maps") want="usage: numamalloc maps " ;;
        --help | help) want="usage: numamalloc COMMAND" ;;
        *) want="usage: numamalloc ${args%% *} " ;;
    esac
    if [ $rc -ne 0 ] || [ -s "$tmp/err" ] || ! head -n 1 "$tmp/out" | grep -qE "^$want"; then
        echo "FAIL: numamalloc $args: exit $rc, first line '$(head -n 1 "$tmp/out")', stderr '$(cat "$tmp/err")'"
        fail=1
    fi
done

[ $fail -eq 0 ] || exit 1
echo "$cases error cases: one line each, the right exit status, nothing on stdout"
if [ -n "$not_run" ]; then echo "not checked here: $not_run"; exit 77; fi
exit 0
