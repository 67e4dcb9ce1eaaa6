#!/usr/bin/env bash
# `numamalloc maps PID` on a running process: a child started with
# `numamalloc run --membind=N` (N: the first node) allocates 64 MiB with
# malloc, writes it, prints the block's address and waits.  Then:
#   - the mapping holding the block is of kind numamalloc, named
#     [anon:numamalloc] (anon when the kernel cannot name mappings, which
#     this test finds out by itself), with policy bind:N and >= 16384
#     pages on node N; its kind has >= 64 MiB resident, N<node>= pages in
#     the text output, and bind:N among its policies;
#   - the whole JSON (--json --mappings) agrees with /proc/PID/numa_maps and
#     /proc/PID/maps read here: every mapping's start, end, policy, name and
#     pages per node; per-node totals; heap, stack and file mapping counts;
#     kinds adding up to the total;
#   - the text output's tables agree with the JSON;
#   - a process that does not use numamalloc has no numamalloc memory;
#   - two processes (text: two reports; JSON: an array of the two objects),
#     a command name, -o FILE and -o -;
#   - --system: each node's MemTotal as sysfs says, the total their sum, the
#     text within 80 columns; on a recorded eight-node tree, two blocks of
#     columns with each node's MemFree;
#   - recorded numa_maps and maps files (NUMAMALLOC_PROC_ROOT) with what
#     this kernel cannot show (named mappings, hugetlb pages, policies
#     with a space or a flag, 4 nodes) give exactly the expected kinds.
# Error cases are in tool_errors.sh.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
tool=$build/numamalloc
[ -x "$tool" ] || { echo "no $tool: build it first (make)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
tmp=$(mktemp -d)
watchdog=""
cleanup() { [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cat >"$tmp/hold.c" <<'EOF'
/* Allocate 64 MiB with malloc, write it, print "PID ADDRESS SIZE", wait for EOF on stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void)
{
    size_t size = 64u << 20;
    char *p = malloc(size);
    if (!p) return 1;
    memset(p, 1, size);
    printf("%d %p %zu\n", (int)getpid(), (void *)p, size);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    return p[size - 1] == 1 ? 0 : 2;
}
EOF
cc -O1 -o "$tmp/hold" "$tmp/hold.c" || exit 1
node=$(sed 's/[-,].*//' /sys/devices/system/node/online 2>/dev/null || echo 0)

# start_child NAME COMMAND...: run it (under a watchdog) with stdin from a
# fifo we hold open, wait (at most 20 s) for its first line of output,
# which starts with the pid of the process to look at.
start_child() {
    local name=$1; shift
    mkfifo "$tmp/$name.in"
    timeout 120 "$@" <"$tmp/$name.in" >"$tmp/$name.out" &
    watchdog=$!
    exec 3>"$tmp/$name.in"
    for _ in $(seq 200); do
        if [ -s "$tmp/$name.out" ]; then
            read -r child _ <"$tmp/$name.out"
            return 0
        fi
        sleep 0.1
    done
    echo "FAIL: $name printed nothing in 20 s"; exit 1
}
stop_child() {
    exec 3>&-
    wait "$watchdog"; local rc=$?
    watchdog=""
    return $rc
}

cat >"$tmp/check.py" <<'EOF'
# check.py TOOL PID ADDR NODE: compare `numamalloc maps` with /proc/PID.
import ctypes, json, mmap, re, subprocess, sys

tool, pid, addr, node = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 16), int(sys.argv[4])
errors = []
def same(what, got, expected):
    if got != expected:
        errors.append("%s: got %r, expected %r" % (what, got, expected))

def run(*args):
    p = subprocess.run([tool, "maps", str(pid)] + list(args), capture_output=True, text=True)
    if p.returncode != 0 or p.stderr:
        errors.append("maps %s: exit %d, stderr %r" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout

text = run()
text_list = run("--mappings")
try:
    js = json.loads(run("--json", "--mappings"))
except ValueError as e:
    print("FAIL: maps --json is not valid JSON: %s" % e)
    sys.exit(1)
numa_maps = open("/proc/%d/numa_maps" % pid).read().splitlines()
maps = open("/proc/%d/maps" % pid).read().splitlines()

# Can this kernel name anonymous mappings?  Try it here (prctl PR_SET_VMA).
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
buf = mmap.mmap(-1, 4096)
start = ctypes.addressof(ctypes.c_char.from_buffer(buf))
names = libc.prctl(0x53564D41, 0, start, 4096, ctypes.cast(ctypes.c_char_p(b"probe"), ctypes.c_void_p).value) == 0
same("anon_names_supported", js.get("anon_names_supported"), names)

# Every mapping, from the kernel's files.
areas = {}
for line in maps:
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
    areas[int(m.group(1), 16)] = (int(m.group(2), 16), m.group(3))
kernel = []
for line in numa_maps:
    start_hex, rest = line.split(" ", 1)
    m = re.match(r"((?:prefer \(many\)|weighted interleave)?\S*)", rest)
    policy = m.group(1)
    page_kb = int(re.search(r"kernelpagesize_kB=(\d+)", rest).group(1)) if "kernelpagesize_kB" in rest else 4
    pages = {int(n): int(c) * page_kb // 4 for n, c in re.findall(r"\bN(\d+)=(\d+)", rest)}
    start = int(start_hex, 16)
    end, name = areas.get(start, (start, ""))
    kernel.append(dict(start=start, end=end, policy=policy, name=name, pages=pages, rest=rest))
got = js.get("mappings", [])
same("mapping count", len(got), len(kernel))
for g, k in zip(got, kernel):
    where = "mapping %x" % k["start"]
    same(where + " start", int(g["start"], 16), k["start"])
    same(where + " end", int(g["end"], 16), k["end"])
    same(where + " policy", g["policy"], k["policy"])
    same(where + " name", g["name"], k["name"])
    same(where + " pages", {n["node"]: n["pages"] for n in g["nodes"]}, k["pages"])
    for n in g["nodes"]:
        same(where + " bytes", n["bytes"], n["pages"] * 4096)

# Per-node totals.
totals = {}
for k in kernel:
    for n, c in k["pages"].items():
        totals[n] = totals.get(n, 0) + c
for n in js["nodes"]:
    same("node %d pages" % n["node"], n["pages"], totals.get(n["node"], 0))
missing = set(totals) - {n["node"] for n in js["nodes"]}
same("nodes with pages missing from the JSON", missing, set())
same("total pages", js["total"]["pages"], sum(totals.values()))

kinds = {k["kind"]: k for k in js["kinds"]}
same("kinds", list(kinds), ["numamalloc", "numamalloc-region", "heap", "stack", "anon", "hugetlb", "file", "other"])
same("sum of the kinds' resident bytes", sum(k["resident_bytes"] for k in js["kinds"]), js["total"]["bytes"])
same("heap mappings", kinds["heap"]["mappings"], sum(1 for k in kernel if k["name"] == "[heap]"))
same("stack mappings", kinds["stack"]["mappings"], sum(1 for k in kernel if k["name"] == "[stack]"))
same("file mappings", kinds["file"]["mappings"],
     sum(1 for k in kernel if "file=" in k["rest"] and " huge" not in " " + k["rest"]))
same("mapping count field", js.get("mapping_count"), len(kernel))
same("pid", js.get("pid"), pid)
same("command", js.get("command"), open("/proc/%d/comm" % pid).read().strip())

# The 64 MiB block.
if addr:
    holding = [g for g in got if int(g["start"], 16) <= addr < int(g["end"], 16)]
    same("mappings holding the block", len(holding), 1)
    kind = "numamalloc" if names else "anon"
    if holding:
        h = holding[0]
        same("kind of the block's mapping", h["kind"], kind)
        if names:
            same("name of the block's mapping", h["name"], "[anon:numamalloc]")
        same("policy of the block's mapping", h["policy"], "bind:%d" % node)
        on_node = {n["node"]: n["pages"] for n in h["nodes"]}.get(node, 0)
        if on_node < 16384:
            errors.append("the block's mapping has %d pages on node %d, expected >= 16384" % (on_node, node))
    k = kinds[kind]
    if k["resident_bytes"] < 64 << 20:
        errors.append("kind %s: %d bytes resident, expected >= 64 MiB" % (kind, k["resident_bytes"]))
    if "bind:%d" % node not in [p["policy"] for p in k["policies"]]:
        errors.append("kind %s: policies %r lack bind:%d" % (kind, k["policies"], node))
    kind_pages = {n["node"]: n["pages"] for n in k["nodes"]}.get(node, 0)
    line = [l for l in text.splitlines() if l.startswith(kind + " ")]
    if len(line) != 1 or " N%d=%d" % (node, kind_pages) not in line[0]:
        errors.append("text: no line for kind %s with N%d=%d: %r" % (kind, node, kind_pages, line))
    if names == ("does not name anonymous mappings" in text):
        errors.append("text: the note about unnamed mappings is %s" % ("there" if names else "missing"))
    start_text = "%x-" % int(holding[0]["start"], 16) if holding else "?"
    if not any(l.startswith(start_text) and " bind:%d " % node in l for l in text_list.splitlines()):
        errors.append("maps --mappings: no line for the block's mapping %s... with bind:%d" % (start_text, node))
else:
    same("numamalloc mappings of a process without numamalloc", kinds["numamalloc"]["mappings"], 0)

# The text tables against the JSON.
rows = {m.group(1): (int(m.group(2))) for m in re.finditer(r"^(\d+|total)\s+(\d+)\s+\S+ \S+$", text, re.M)}
for n in js["nodes"]:
    same("text node %d pages" % n["node"], rows.get(str(n["node"])), n["pages"])
same("text total pages", rows.get("total"), js["total"]["pages"])
for k in js["kinds"]:
    m = re.search(r"^%s\s+(\d+) " % re.escape(k["kind"]), text, re.M)
    same("text mappings of kind %s" % k["kind"], int(m.group(1)) if m else None, k["mappings"])
for label, out in (("maps", text), ("maps --mappings", text_list)):
    wide = [l for l in out.splitlines() if len(l) > 80]
    if wide:
        errors.append("%s: %d lines wider than 80 columns, first: %r" % (label, len(wide), wide[0]))
first = text.splitlines()[0] if text else ""
if not first.startswith("process %d (%s): %d mappings" % (pid, js.get("command"), len(kernel))):
    errors.append("text: first line %r" % first)

for e in errors:
    print("FAIL: " + e)
sys.exit(1 if errors else 0)
EOF

fail=0
start_child hold "$tool" run --membind="$node" -- "$tmp/hold"
read -r _ addr size <"$tmp/hold.out"
echo "child $child: $size bytes at $addr, bound to node $node"
"$tool" maps "$child"
python3 "$tmp/check.py" "$tool" "$child" "$addr" "$node" || fail=1
stop_child || { echo "FAIL: the child exited with status $?"; fail=1; }

# A process without numamalloc.
start_child plain sh -c 'echo $$; exec cat'
python3 "$tmp/check.py" "$tool" "$child" 0 "$node" || fail=1

# Several processes, and a command name: one report each (text), an array
# of the same objects (JSON); -o writes the file, - is standard output.
plain=$child
cp "$tmp/hold" "$tmp/nm-maps-probe"
start_child probe "$tool" run -- "$tmp/nm-maps-probe"
probe=$child
"$tool" maps --json "$plain" "$probe" >"$tmp/two.json" || { echo "FAIL: maps of two pids exited $?"; fail=1; }
"$tool" maps nm-maps-probe >"$tmp/name.txt" || { echo "FAIL: maps nm-maps-probe exited $?"; fail=1; }
"$tool" maps -o "$tmp/one.json" --json "$probe" && "$tool" maps -o - --json "$probe" >"$tmp/one-stdout.json" ||
    { echo "FAIL: maps -o exited $?"; fail=1; }
"$tool" maps "$plain" "$probe" >"$tmp/two.txt"
python3 - "$tmp" "$plain" "$probe" <<'END' || fail=1
import json, sys
tmp, plain, probe = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
errors = []
two = json.load(open(tmp + "/two.json"))
if not isinstance(two, list) or [p["pid"] for p in two] != [plain, probe]:
    errors.append("maps --json PID PID: not an array of the two processes: %r" % str(two)[:200])
numamalloc = {p["pid"]: sum(k["resident_bytes"] for k in p["kinds"] if k["kind"] in ("numamalloc", "anon")) for p in two}
if isinstance(two, list) and numamalloc.get(probe, 0) < 64 << 20:
    errors.append("maps --json: the probe's 64 MiB block is not there: %r" % numamalloc)
one = json.load(open(tmp + "/one.json"))
if not isinstance(one, dict) or one["pid"] != probe:
    errors.append("maps -o FILE --json PID: not the object of %d" % probe)
if json.load(open(tmp + "/one-stdout.json"))["pid"] != probe:
    errors.append("maps -o - --json PID: not the object of %d" % probe)
name = open(tmp + "/name.txt").read()
if not name.startswith("process %d (nm-maps-probe): " % probe) or name.count("\nprocess ") != 0:
    errors.append("maps NAME: not one report of %d: %r" % (probe, name[:100]))
text = open(tmp + "/two.txt").read()
heads = [l for l in text.splitlines() if l.startswith("process ")]
if [h.split()[1] for h in heads] != [str(plain), str(probe)]:
    errors.append("maps PID PID: reports %r" % heads)
for e in errors:
    print("FAIL (several processes): " + e)
sys.exit(1 if errors else 0)
END
stop_child || { echo "FAIL: the probe exited with status $?"; fail=1; }
child=$plain
stop_child

# The whole system, as numastat -m: each node's meminfo, in MiB (text) and
# bytes (JSON), agreeing with sysfs; the text fits 80 columns.
"$tool" maps --system >"$tmp/system.txt" && "$tool" maps --system --json >"$tmp/system.json" ||
    { echo "FAIL: maps --system exited $?"; fail=1; }
cat "$tmp/system.txt"
python3 - "$tmp" <<'END' || fail=1
import glob, json, re, sys
tmp = sys.argv[1]
errors = []
js = json.load(open(tmp + "/system.json"))
text = open(tmp + "/system.txt").read()
for path in sorted(glob.glob("/sys/devices/system/node/node[0-9]*/meminfo")):
    node = int(re.search(r"node(\d+)/meminfo", path).group(1))
    kb = {m.group(1): int(m.group(2)) for m in re.finditer(r"^Node \d+ (\w+):\s+(\d+) kB", open(path).read(), re.M)}
    got = [n for n in js["nodes"] if n["node"] == node]
    if not got:
        errors.append("--system --json: no node %d" % node)
        continue
    if got[0]["MemTotal"] != kb["MemTotal"] * 1024:
        errors.append("node %d MemTotal %d, sysfs %d kB" % (node, got[0]["MemTotal"], kb["MemTotal"]))
if js["total"]["MemTotal"] != sum(n["MemTotal"] for n in js["nodes"]):
    errors.append("total MemTotal is not the nodes' sum")
row = [l.split() for l in text.splitlines() if l.startswith("MemTotal")]
if not row or abs(float(row[-1][-1]) - js["total"]["MemTotal"] / 2**20) > 0.01:
    errors.append("text MemTotal total %r, JSON %d" % (row, js["total"]["MemTotal"]))
long = [l for l in text.splitlines() if len(l) > 80]
if long:
    errors.append("lines over 80 columns: %r" % long)
for e in errors:
    print("FAIL (--system): " + e)
sys.exit(1 if errors else 0)
END
# Eight nodes (a recorded tree): two blocks of columns, 0-4 then 5-7 and
# the total, each value that of the node's meminfo.
eight=$root/tests/sysfs/eight-node
NUMAMALLOC_SYSFS_ROOT=$eight "$tool" maps --system >"$tmp/eight.txt" || { echo "FAIL: maps --system (eight nodes) exited $?"; fail=1; }
python3 - "$tmp/eight.txt" "$eight" <<'END' || fail=1
import re, sys
text, root = open(sys.argv[1]).read(), sys.argv[2]
errors = []
heads = [l.split()[1:] for l in text.splitlines() if l.startswith("node ")]
if heads != [["0", "1", "2", "3", "4"], ["5", "6", "7", "total"]]:
    errors.append("column blocks %r" % heads)
rows = [l.split() for l in text.splitlines() if l.startswith("MemFree ")]
values = [float(v) for r in rows for v in r[1:]]
want = []
for n in range(8):
    kb = int(re.search(r"MemFree:\s+(\d+) kB", open("%s/devices/system/node/node%d/meminfo" % (root, n)).read()).group(1))
    want.append(kb / 1024)
if len(values) != 9 or any(abs(a - b) > 0.01 for a, b in zip(values, want + [sum(want)])):
    errors.append("MemFree %r, meminfo says %r" % (values, want))
if any(len(l) > 80 for l in text.splitlines()):
    errors.append("lines over 80 columns")
for e in errors:
    print("FAIL (--system, eight nodes): " + e)
sys.exit(1 if errors else 0)
END

# ---- recorded files (NUMAMALLOC_PROC_ROOT) ------------------------------------------------
# What this machine's kernel cannot show: mappings named [anon:numamalloc]
# and [anon:numamalloc-region], hugetlb pages (counted in 2 MiB pages by
# numa_maps), the policy names with a space, a mode flag, pages on 4 nodes.
proc=$tmp/proc/4242
mkdir -p "$proc"
echo app >"$proc/comm"
printf 'Name:\tapp\nMems_allowed_list:\t0-3\n' >"$proc/status"
cat >"$proc/numa_maps" <<'END'
555555554000 default file=/usr/bin/app mapped=2 N0=2 kernelpagesize_kB=4
555555556000 default heap anon=10 dirty=10 N0=6 N1=4 kernelpagesize_kB=4
7f0000000000 prefer:1 anon=16384 dirty=16384 active=0 N1=16384 kernelpagesize_kB=4
7f0004000000 default anon=3 dirty=3 N0=3 kernelpagesize_kB=4
7f0010000000 interleave:0-3 anon=4096 dirty=4096 N0=1024 N1=1024 N2=1024 N3=1024 kernelpagesize_kB=4
7f0020000000 bind:2 file=/anon_hugepage\040(deleted) huge anon=8 dirty=8 N2=8 kernelpagesize_kB=2048
7f0030000000 prefer (many):0-1 anon=100 dirty=100 N0=60 N1=40 kernelpagesize_kB=4
7f0040000000 weighted interleave:0-3 anon=8 dirty=8 N0=2 N1=2 N2=2 N3=2 kernelpagesize_kB=4
7f0050000000 bind=static:3 anon=512 dirty=512 N3=512 kernelpagesize_kB=4
7ffd00000000 default stack anon=5 dirty=5 N0=5 kernelpagesize_kB=4
7ffd10000000 default
END
cat >"$proc/maps" <<'END'
555555554000-555555556000 r-xp 00000000 08:01 1234                       /usr/bin/app
555555556000-555555560000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0004000000 rw-p 00000000 00:00 0                          [anon:numamalloc]
7f0004000000-7f0004010000 rw-p 00000000 00:00 0 
7f0010000000-7f0011000000 rw-p 00000000 00:00 0                          [anon:numamalloc-region]
7f0020000000-7f0021000000 rw-s 00000000 00:0f 5678                       /anon_hugepage (deleted)
7f0030000000-7f0030064000 rw-p 00000000 00:00 0                          [anon:numamalloc]
7f0040000000-7f0040008000 rw-p 00000000 00:00 0                          [anon:other thing]
7f0050000000-7f0050200000 rw-p 00000000 00:00 0                          [anon:numamalloc]
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7ffd10000000-7ffd10002000 r-xp 00000000 00:00 0                          [vdso]
END
NUMAMALLOC_PROC_ROOT=$tmp/proc "$tool" maps 4242 | tee "$tmp/recorded.txt"
NUMAMALLOC_PROC_ROOT=$tmp/proc "$tool" maps 4242 --json >"$tmp/recorded.json"
python3 - "$tmp/recorded.json" "$tmp/recorded.txt" <<'END' || fail=1
import json, sys
js, text = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
K, M = 1024, 1 << 20
# kind: (mappings, size, {node: pages of 4 KiB}, [(policy, mappings, resident pages)])
expected = {
    "numamalloc": (3, 64 * M + 400 * K + 2 * M, {0: 60, 1: 16384 + 40, 3: 512},
                   [("prefer:1", 1, 16384), ("prefer (many):0-1", 1, 100), ("bind=static:3", 1, 512)]),
    "numamalloc-region": (1, 16 * M, {0: 1024, 1: 1024, 2: 1024, 3: 1024}, [("interleave:0-3", 1, 4096)]),
    "heap": (1, 40 * K, {0: 6, 1: 4}, [("default", 1, 10)]),
    "stack": (1, 132 * K, {0: 5}, [("default", 1, 5)]),
    "anon": (2, 64 * K + 32 * K, {0: 3 + 2, 1: 2, 2: 2, 3: 2},
             [("default", 1, 3), ("weighted interleave:0-3", 1, 8)]),
    "hugetlb": (1, 16 * M, {2: 8 * 512}, [("bind:2", 1, 8 * 512)]),
    "file": (1, 8 * K, {0: 2}, [("default", 1, 2)]),
    "other": (1, 8 * K, {}, [("default", 1, 0)]),
}
errors = []
for k in js["kinds"]:
    mappings, size, pages, policies = expected[k["kind"]]
    got = (k["mappings"], k["size_bytes"], {n["node"]: n["pages"] for n in k["nodes"]},
           [(p["policy"], p["mappings"], p["resident_bytes"] // 4096) for p in k["policies"]])
    if got != (mappings, size, pages, policies):
        errors.append("kind %s: got %r, expected %r" % (k["kind"], got, (mappings, size, pages, policies)))
    if k["resident_bytes"] != sum(pages.values()) * 4096:
        errors.append("kind %s: resident_bytes %d" % (k["kind"], k["resident_bytes"]))
totals = {}
for _, _, pages, _ in expected.values():
    for n, c in pages.items():
        totals[n] = totals.get(n, 0) + c
got_nodes = {n["node"]: n["pages"] for n in js["nodes"]}
if any(got_nodes.get(n) != c for n, c in totals.items()) or any(got_nodes[n] for n in set(got_nodes) - set(totals)):
    errors.append("nodes: got %r, expected %r" % (got_nodes, totals))
if (js["command"], js["mems_allowed"], js["mapping_count"]) != ("app", "0-3", 11):
    errors.append("header: %r" % ((js["command"], js["mems_allowed"], js["mapping_count"]),))
lines = text.splitlines()
for line, policies in (("numamalloc               3   66.4 MiB   66.4 MiB  N0=60 N1=16424 N3=512",
                        "                  policies: prefer:1; prefer (many):0-1; bind=static:3"),
                       ("hugetlb                  1   16.0 MiB   16.0 MiB  N2=4096",
                        "                  policies: bind:2")):
    if line not in lines:
        errors.append("text: no line %r" % line)
    elif lines[lines.index(line) + 1] != policies:
        errors.append("text: after %r, %r instead of %r" % (line, lines[lines.index(line) + 1], policies))
wide = [l for l in lines if len(l) > 80]
if wide:
    errors.append("text: %d lines wider than 80 columns, first: %r" % (len(wide), wide[0]))
for e in errors:
    print("FAIL (recorded files): " + e)
sys.exit(1 if errors else 0)
END

[ $fail -eq 0 ] && echo "numamalloc maps agrees with /proc/PID/numa_maps and /proc/PID/maps"
exit $fail
