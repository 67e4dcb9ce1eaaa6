#!/usr/bin/env bash
# `numamalloc stat -- PROGRAM`: a program that allocates and writes 32 MiB
# (one large block) and small blocks, writes to stdout and stderr (lines
# that look like the statistics' indented lines, a line written in two
# parts) and exits 3:
#   - stat exits 3; the program's stdout and stderr come through unchanged
#     (the statistics block is taken out of stderr, nothing else); stdin
#     reaches the program;
#   - the JSON report (-o FILE --json): the six /proc/vmstat counters with
#     before, after and delta = after - before >= 0, numa_hit grown; each
#     node of sysfs with its numastat deltas >= 0 and free memory; exactly
#     one numamalloc statistics object (the library's JSON, with numbers)
#     with the large block counted; max RSS >= 32 MiB;
#   - the text report (on stderr) after the program's own stderr, with the
#     same sections;
#   - a program killed by SIGTERM: exit 143, "killed by signal 15", no
#     statistics; two programs in a shell: two blocks;
#   - --membind reaches the program (the kernel's policy of its blocks).
# Error cases are in tool_errors.sh.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
tool=$build/numamalloc
[ -x "$tool" ] || { echo "no $tool: build it first (make)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

cat >"$tmp/work.c" <<'EOF'
/* Allocate, write and free 32 MiB and small blocks; talk on stdout and
 * stderr; exit 3 (or kill ourselves with SIGTERM when given "kill"). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    size_t size = 32u << 20;
    char *big = malloc(size);
    if (!big) return 1;
    memset(big, 1, size);
    void *small[1000];
    for (int i = 0; i < 1000; i++) small[i] = malloc(16 + i);
    for (int i = 0; i < 1000; i++) free(small[i]);
    fputs("err one\n  indented err\n", stderr);
    fputs("partial-", stderr);
    fflush(stderr);
    usleep(50000);
    fputs("line\nevents\n", stderr);
    printf("out %d\n", big[size - 1]);
    free(big);
    if (argc > 1 && strcmp(argv[1], "kill") == 0) {
        fflush(stdout);
        kill(getpid(), SIGTERM);
    }
    return 3;
}
EOF
cc -O1 -o "$tmp/work" "$tmp/work.c" || exit 1
cc -O1 -o "$tmp/policy_of_blocks" "$root/tests/programs/data/policy_of_blocks.c" || exit 1
program_err=$'err one\n  indented err\npartial-line\nevents'
nodes=$(cat /sys/devices/system/node/online 2>/dev/null || echo 0)

cat >"$tmp/check.py" <<'EOF'
# check.py REPORT.json PROGRAM BLOCKS EXIT SIGNAL: the JSON report of a run.
import json, re, sys

path, program, blocks, exit_status, signal = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
errors = []
def same(what, got, expected):
    if got != expected:
        errors.append("%s: got %r, expected %r" % (what, got, expected))
try:
    r = json.load(open(path))
except ValueError as e:
    print("FAIL: the report is not valid JSON: %s" % e)
    sys.exit(1)

def parse_list(text):
    ids = []
    for part in filter(None, text.strip().split(",")):
        a, _, b = part.partition("-")
        ids += range(int(a), int(b or a) + 1)
    return ids

same("command", r["command"][0], program)
same("exit_status", r["exit_status"], exit_status)
same("signal", r["signal"], None if signal == "-" else int(signal))
if not r["elapsed_s"] > 0:
    errors.append("elapsed_s %r" % r["elapsed_s"])
vmstat = open("/proc/vmstat").read()
names = ["numa_hit", "numa_miss", "numa_foreign", "numa_local", "numa_other", "numa_interleave"]
same("vmstat counters", sorted(r["vmstat"]), sorted(names))
for name in names:
    c = r["vmstat"].get(name)
    if re.search(r"^%s \d+$" % name, vmstat, re.M) is None:
        same("vmstat " + name + " (not in this kernel's /proc/vmstat)", c, None)
        continue
    if not isinstance(c, dict):
        errors.append("vmstat %s: %r" % (name, c))
        continue
    same("vmstat %s delta" % name, c["delta"], c["after"] - c["before"])
    if c["delta"] < 0:
        errors.append("vmstat %s delta %d < 0" % (name, c["delta"]))
if isinstance(r["vmstat"].get("numa_hit"), dict) and exit_status == 3 and r["vmstat"]["numa_hit"]["delta"] <= 0:
    errors.append("numa_hit did not grow while the program faulted in 32 MiB")

ids = parse_list(open("/sys/devices/system/node/online").read())
same("nodes", [n["node"] for n in r["nodes"]], ids)
for n in r["nodes"]:
    meminfo = open("/sys/devices/system/node/node%d/meminfo" % n["node"]).read()
    total = int(re.search(r"MemTotal:\s+(\d+) kB", meminfo).group(1)) * 1024
    for key in ("free_before_bytes", "free_after_bytes"):
        if not 0 < n[key] <= total:
            errors.append("node %d %s = %d, not in (0, %d]" % (n["node"], key, n[key], total))
    same("node %d counters" % n["node"], sorted(n["deltas"]), sorted(names))
    for name, d in n["deltas"].items():
        if d is None or d < 0:
            errors.append("node %d delta %s = %r" % (n["node"], name, d))

stats = r["numamalloc_statistics"]
same("numamalloc statistics blocks", len(stats), blocks)
for i, block in enumerate(stats):
    if not isinstance(block, dict) or not {"pid", "process", "nodes", "classes", "events"} <= set(block):
        errors.append("block %d is not the library's statistics object: %r" % (i, str(block)[:200]))
        continue
    if block["events"]["large_allocs"] < 1:
        errors.append("block %d: the 32 MiB block is not counted as a large allocation" % i)
    if not block["command"].endswith("/work"):
        errors.append("block %d: command %r" % (i, block["command"]))
    if "err" in json.dumps(block) or "partial" in json.dumps(block):
        errors.append("block %d holds the program's own stderr" % i)
if exit_status == 3 and r["max_rss_bytes"] < 32 << 20:
    errors.append("max_rss_bytes %d < 32 MiB" % r["max_rss_bytes"])
for e in errors:
    print("FAIL: " + e)
sys.exit(1 if errors else 0)
EOF

# ---- JSON report to a file: the program's output untouched ---------------------------
"$tool" stat --json -o "$tmp/report.json" -- "$tmp/work" >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
[ $rc -eq 3 ] || bad "stat exited $rc, the program 3"
[ "$(cat "$tmp/out")" = "out 1" ] || bad "stdout: '$(cat "$tmp/out")', expected 'out 1'"
[ "$(cat "$tmp/err")" = "$program_err" ] || { bad "stderr differs from the program's:"; cat "$tmp/err"; }
python3 "$tmp/check.py" "$tmp/report.json" "$tmp/work" 1 3 - || fail=1

# ---- text report on stderr, after the program's stderr ------------------------------------
"$tool" stat -- "$tmp/work" >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
[ $rc -eq 3 ] || bad "text: stat exited $rc, the program 3"
cat "$tmp/err"
[ "$(head -n 4 "$tmp/err")" = "$program_err" ] || bad "text: the program's stderr does not come first"
sed -n 5p "$tmp/err" | grep -qx "numamalloc stat: $tmp/work" || bad "text: no 'numamalloc stat:' line after the program's stderr"
sed -n 6p "$tmp/err" | grep -q '^  exit status 3, .* s elapsed, ' || bad "text: no exit status line"
for name in numa_hit numa_miss numa_foreign numa_local numa_other numa_interleave; do
    [ "$(grep -c "^  $name " "$tmp/err")" -eq 2 ] || bad "text: $name is not in both tables"
done
grep -q "^  node  *$(echo "$nodes" | sed 's/[-,].*//')\b" "$tmp/err" || bad "text: no per-node table"
grep -q '^numamalloc statistics$' "$tmp/err" && grep -q '^  large allocs  *[1-9]' "$tmp/err" ||
    bad "text: no statistics block with the large block"

# ---- killed by a signal; two processes; stdin; --membind -----------------------------------
"$tool" stat --json -o "$tmp/killed.json" -- "$tmp/work" kill >/dev/null 2>"$tmp/err" </dev/null
rc=$?
[ $rc -eq 143 ] || bad "killed: stat exited $rc, expected 143 (128 + SIGTERM)"
python3 "$tmp/check.py" "$tmp/killed.json" "$tmp/work" 0 143 15 || fail=1
"$tool" stat -- "$tmp/work" kill >/dev/null 2>"$tmp/err" </dev/null
grep -q '^  killed by signal 15 ' "$tmp/err" || bad "killed: the text report does not say 'killed by signal 15'"
grep -q '^numamalloc statistics: none' "$tmp/err" || bad "killed: the text report does not say there are no statistics"

"$tool" stat --json -o "$tmp/two.json" -- sh -c "'$tmp/work'; '$tmp/work'" >/dev/null 2>"$tmp/err" </dev/null
python3 - "$tmp/two.json" <<'EOF' || bad "two programs: not two statistics blocks"
import json, re, sys
blocks = json.load(open(sys.argv[1]))["numamalloc_statistics"]
# sh may use malloc too and leave a block of its own: the two programs' are
# the ones with a large block.
sys.exit(0 if sum(b["events"]["large_allocs"] > 0 for b in blocks) == 2 else 1)
EOF
[ "$(grep -c '^err one$' "$tmp/err")" -eq 2 ] || bad "two programs: their stderr did not both come through"

out=$(echo "through stdin" | "$tool" stat -o /dev/null -- cat)
[ "$out" = "through stdin" ] || bad "stdin did not reach the program: '$out'"

first=${nodes%%[-,]*}
out=$("$tool" stat --membind="$first" -o /dev/null -- "$tmp/policy_of_blocks")
mask=$(printf '%#x' $((1 << first)))
[ "$out" = "small=bind:$mask medium=bind:$mask large=bind:$mask process=bind:$mask " ] ||
    bad "stat --membind=$first: the program's blocks and process policy are '$out'"
out=$("$tool" stat -m "$first" -o - -- "$tmp/policy_of_blocks" 2>/dev/null | head -n 1)
[ "$out" = "small=bind:$mask medium=bind:$mask large=bind:$mask process=bind:$mask " ] ||
    bad "stat -m $first -o -: the program's first line is '$out'"
"$tool" stat --json -o - -- true 2>/dev/null | python3 -c 'import json,sys; json.load(sys.stdin)' ||
    bad "stat --json -o -: standard output is not the JSON report"
# A line of the program's own that starts as the library's JSON does but is
# no whole object passes through to stderr, and the report stays valid.
half='{"numamalloc":"9.9.9","pid":1,'
"$tool" stat --json -o "$tmp/half.json" -- sh -c "echo '$half' >&2" >/dev/null 2>"$tmp/err" </dev/null
grep -qxF "$half" "$tmp/err" || bad "stat: the program's half JSON line did not come through: $(cat "$tmp/err")"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/half.json" ||
    bad "stat --json: a half JSON line of the program made the report invalid"

[ $fail -eq 0 ] && echo "numamalloc stat: counters, statistics, output pass-through, exit statuses as expected"
exit $fail
