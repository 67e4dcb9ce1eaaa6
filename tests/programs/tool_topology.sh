#!/usr/bin/env bash
# `numamalloc topology` and `topology --json` against what the kernel says,
# read here independently: every line of the text output and every field of
# the JSON is rebuilt from sysfs (online nodes, cpulist, meminfo, distance,
# memory_tiering, HMAT access0/initiators, huge page pools, THP mode) and
# /proc/sys/kernel/numa_balancing, and compared.  On this machine, also
# against `numactl --hardware` (node count, CPUs, sizes, distances).  The
# same checks run on recorded sysfs trees (NUMAMALLOC_SYSFS_ROOT) with
# several nodes, a memory-only node, memory tiers and HMAT data, so the
# multi-node output is checked here too (tests/vm/tool.sh does it on real
# multi-node guests).  The devices by node (network, block, InfiniBand and
# GPU devices that are not virtual, each with the numa_node of its nearest
# parent that has one) are rebuilt from the tree's class and bus
# directories too, on this machine and on tests/sysfs/two-node-devices
# (a NIC on node 0, an NVMe drive and a GPU on node 1, a NIC without a
# node); every text line must fit in 80 columns.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
tool=$build/numamalloc
[ -x "$tool" ] || { echo "no $tool: build it first (make)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
command -v numactl >/dev/null || { echo "numactl not installed (make deps)"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/check.py" <<'EOF'
# check.py TOOL SYSFS_ROOT: run `TOOL topology` (text and --json) with the
# topology read from SYSFS_ROOT and compare both with the tree.
import glob, json, os, re, subprocess, sys

tool, sysfs = sys.argv[1], sys.argv[2]
real = sysfs == "/sys"
errors = []

def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default

def parse_list(text):
    ids = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        ids += range(int(a), int(b or a) + 1)
    return ids

def format_list(ids):
    runs, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        runs.append(str(ids[i]) if i == j else "%d-%d" % (ids[i], ids[j]))
        i = j + 1
    return ",".join(runs)

node_dir = sysfs + "/devices/system/node"
ids = parse_list(read(node_dir + "/online"))

def meminfo(n, key):
    m = re.search(r"%s:\s+(\d+) kB" % key, read("%s/node%d/meminfo" % (node_dir, n), ""))
    return int(m.group(1)) * 1024 if m else 0

def free_now():
    return {n: meminfo(n, "MemFree") for n in ids}

env = dict(os.environ)
if not real:
    env["NUMAMALLOC_SYSFS_ROOT"] = sysfs
free_before = free_now()
runs = {}
for mode, args in (("text", []), ("json", ["--json"])):
    p = subprocess.run([tool, "topology"] + args, env=env, capture_output=True, text=True)
    if p.returncode != 0 or p.stderr:
        errors.append("topology %s: exit %d, stderr %r" % (mode, p.returncode, p.stderr))
    runs[mode] = p.stdout
free_after = free_now()

def free_ok(n, value):
    # Other processes allocate and free memory between our reads and the
    # tool's (milliseconds apart): the value must lie between the two reads
    # taken around both runs, give or take 64 MiB of such traffic.  A
    # recorded tree does not change: exact.
    lo, hi = sorted((free_before[n], free_after[n]))
    slack = 64 << 20 if real else 0
    return lo - slack <= value <= hi + slack

try:
    js = json.loads(runs["json"])
except ValueError as e:
    print("FAIL: topology --json is not valid JSON: %s" % e)
    sys.exit(1)

# What the tree says, node by node.
want = {}
tiers = {}
for path in glob.glob(sysfs + "/devices/virtual/memory_tiering/memory_tier*/nodelist"):
    tier = int(re.search(r"memory_tier(\d+)", path).group(1))
    for n in parse_list(read(path)):
        tiers[n] = tier
for n in ids:
    cpus = parse_list(read("%s/node%d/cpulist" % (node_dir, n), ""))
    hmat_dir = "%s/node%d/access0/initiators" % (node_dir, n)
    hmat = None
    if os.path.exists(hmat_dir + "/read_bandwidth"):
        hmat = {k: int(read(hmat_dir + "/" + f, "0")) for k, f in (
            ("read_bandwidth_mbps", "read_bandwidth"), ("write_bandwidth_mbps", "write_bandwidth"),
            ("read_latency_ns", "read_latency"), ("write_latency_ns", "write_latency"))}
    pools = []
    for d in glob.glob("%s/node%d/hugepages/hugepages-*kB" % (node_dir, n)):
        pools.append({"size_kb": int(re.search(r"hugepages-(\d+)kB", d).group(1)),
                      "total": int(read(d + "/nr_hugepages")), "free": int(read(d + "/free_hugepages"))})
    pools.sort(key=lambda p: p["size_kb"])
    want[n] = dict(cpus=cpus, size=meminfo(n, "MemTotal"), tier=tiers.get(n), hmat=hmat, pools=pools,
                   distance=[int(x) for x in read("%s/node%d/distance" % (node_dir, n)).split()])
memory_only = [n for n in ids if not want[n]["cpus"] and want[n]["size"] > 0]
thp = read(sysfs + "/kernel/mm/transparent_hugepage/enabled")
thp = re.search(r"\[(\w+)\]", thp).group(1) if thp else None
balancing = read("/proc/sys/kernel/numa_balancing")
balancing = int(balancing) if balancing is not None else None
balancing_text = {None: "not in this kernel", 0: "off", 1: "on", 2: "memory tiering",
                  3: "on, and memory tiering"}.get(balancing, "on")

# Devices: what the tool lists, found here independently.
def device_node(path):
    real, top = os.path.realpath(path), os.path.realpath(sysfs + "/devices")
    while True:
        v = read(real + "/numa_node")
        if v is not None and re.fullmatch(r"\d+", v):
            return int(v)
        if real in (top, "/"):
            return None
        real = os.path.dirname(real)

devices = []
for cls in ("net", "block", "infiniband"):
    d = sysfs + "/class/" + cls
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.startswith(".") or "/devices/virtual/" in os.path.realpath(d + "/" + name):
            continue
        if cls == "block" and os.path.exists("%s/%s/partition" % (d, name)):
            continue
        devices.append({"name": name, "kind": cls, "node": device_node(d + "/" + name)})
pci = sysfs + "/bus/pci/devices"
for name in sorted(os.listdir(pci)) if os.path.isdir(pci) else []:
    c = read("%s/%s/class" % (pci, name), "")
    kind = "gpu" if c.startswith("0x03") else "accelerator" if c.startswith("0x12") else None
    if kind and not name.startswith("."):
        devices.append({"name": name, "kind": kind, "node": device_node(pci + "/" + name)})

def wrap(head, items):
    lines, line, column = [], head, len(head)
    for i, item in enumerate(items):
        text = item + ("," if i < len(items) - 1 else "")
        if i and column + 1 + len(text) > 80:
            lines.append(line)
            line, column = " " * len(head) + text, len(head) + len(text)
        else:
            if i:
                line, column = line + " ", column + 1
            line, column = line + text, column + len(text)
    return lines + [line]

def device_lines():
    if not devices:
        return ["devices: none (no network, block or GPU device found)"]
    out = ["devices:"]
    for n in ids + [None]:
        items = ["%s (%s)" % (d["name"], d["kind"]) for d in devices if d["node"] == n]
        if items:
            out += wrap("  node %d: " % n if n is not None else "  no node: ", items)
    return out

def same(what, got, expected):
    if got != expected:
        errors.append("%s: got %r, expected %r" % (what, got, expected))

# ---- JSON ----
same("json node_ids", js.get("node_ids"), ids)
same("json node count", len(js.get("nodes", [])), len(ids))
for n, node in zip(ids, js.get("nodes", [])):
    w = want[n]
    same("json node %d id" % n, node.get("id"), n)
    same("json node %d cpus" % n, node.get("cpus"), w["cpus"])
    same("json node %d cpulist" % n, node.get("cpulist"), format_list(w["cpus"]))
    same("json node %d memory_only" % n, node.get("memory_only"), n in memory_only)
    same("json node %d size_bytes" % n, node.get("size_bytes"), w["size"])
    if not free_ok(n, node.get("free_bytes", -1)):
        errors.append("json node %d free_bytes %r outside [%d, %d]" % (n, node.get("free_bytes"),
                      free_before[n], free_after[n]))
    same("json node %d tier" % n, node.get("tier"), w["tier"])
    same("json node %d hmat" % n, node.get("hmat"), w["hmat"])
    same("json node %d hugepages" % n, node.get("hugepages"), w["pools"])
same("json distances", js.get("distances"), [want[n]["distance"] for n in ids])
same("json memory_only_nodes", js.get("memory_only_nodes"), memory_only)
same("json devices", js.get("devices"), devices)
same("json transparent_hugepages", js.get("transparent_hugepages"), thp)
same("json numa_balancing", js.get("numa_balancing"), balancing)
same("json numa_balancing_mode", js.get("numa_balancing_mode"), balancing_text)

# ---- text: every line, in order ----
def size_text(kb):
    if kb % (1 << 20) == 0: return "%d GiB" % (kb >> 20)
    if kb % 1024 == 0: return "%d MiB" % (kb >> 10)
    return "%d KiB" % kb

lines = runs["text"].splitlines()
expected = ["available: %d node%s (%s)" % (len(ids), "" if len(ids) == 1 else "s", format_list(ids))]
free_lines = {}
for n in ids:
    w = want[n]
    expected.append("node %d cpus: %s" % (n, format_list(w["cpus"]) if w["cpus"] else "none (memory only)"))
    expected.append("node %d size: %d MiB" % (n, w["size"] >> 20))
    free_lines[len(expected)] = n
    expected.append("node %d free: <checked apart>" % n)
    expected.append("node %d tier: %s" % (n, w["tier"] if w["tier"] is not None else "none"))
    pools = ", ".join("%s %d of %d free" % (size_text(p["size_kb"]), p["free"], p["total"]) for p in w["pools"])
    expected.append("node %d huge pages: %s" % (n, pools or "none"))
    if w["hmat"]:
        h = w["hmat"]
        expected.append("node %d access (HMAT): read %d MB/s %d ns, write %d MB/s %d ns" % (
            n, h["read_bandwidth_mbps"], h["read_latency_ns"], h["write_bandwidth_mbps"], h["write_latency_ns"]))
expected.append("node distances:")
expected.append("node " + "".join("%4d" % n for n in ids))
for n in ids:
    expected.append("%4d:" % n + "".join("%4d" % d for d in want[n]["distance"]))
expected.append("memory-only nodes: %s" % (format_list(memory_only) or "none"))
tier_parts = []
for t in sorted(set(tiers[n] for n in ids if n in tiers)):
    members = [n for n in ids if tiers.get(n) == t]
    tier_parts.append(" tier %d: node%s %s" % (t, "" if len(members) == 1 else "s", format_list(members)))
expected.append("memory tiers:" + (";".join(tier_parts) if tier_parts else
                                   " none (the kernel shows no memory_tiering)"))
expected += device_lines()
expected.append("transparent huge pages: %s" % (thp or "unknown (no kernel/mm/transparent_hugepage/enabled)"))
expected.append("automatic NUMA balancing: %s" % balancing_text)
same("text line count", len(lines), len(expected))
for i, (got, exp) in enumerate(zip(lines, expected)):
    if i in free_lines:
        n = free_lines[i]
        m = re.fullmatch(r"node %d free: (\d+) MiB" % n, got)
        lo, hi = sorted((free_before[n], free_after[n]))
        slack = 64 << 20 if real else 0
        if not m or not ((lo - slack) >> 20 <= int(m.group(1)) <= (hi + slack) >> 20):
            errors.append("text line %d: %r, expected node %d free between %d and %d MiB" % (
                i + 1, got, n, (lo - slack) >> 20, (hi + slack) >> 20))
    elif got != exp:
        errors.append("text line %d: %r, expected %r" % (i + 1, got, exp))

for i, line in enumerate(lines):
    if len(line) > 80:
        errors.append("text line %d is %d columns: %r" % (i + 1, len(line), line))

# ---- numactl --hardware, on this machine ----
if real:
    hw = subprocess.run(["numactl", "--hardware"], capture_output=True, text=True).stdout
    m = re.search(r"^available: (\d+) nodes", hw, re.M)
    same("node count against numactl", len(ids), int(m.group(1)) if m else None)
    for n in ids:
        m = re.search(r"^node %d cpus:(.*)$" % n, hw, re.M)
        same("node %d cpus against numactl" % n, want[n]["cpus"], [int(x) for x in m.group(1).split()] if m else None)
        m = re.search(r"^node %d size: (\d+) MB" % n, hw, re.M)
        same("node %d size against numactl (MB)" % n, want[n]["size"] >> 20, int(m.group(1)) if m else None)
    rows = re.findall(r"^\s*(\d+):((?:\s+\d+)+)\s*$", hw, re.M)
    same("distances against numactl", js.get("distances"), [[int(x) for x in r[1].split()] for r in rows])

for e in errors:
    print("FAIL (%s): %s" % (sysfs, e))
if not errors:
    print("%s: %d node(s), text and JSON match the tree%s" % (sysfs, len(ids), " and numactl" if real else ""))
sys.exit(1 if errors else 0)
EOF

fail=0
"$tool" topology
# Many interfaces on one node: their line wraps within 80 columns.
cp -r "$root/tests/sysfs/two-node-devices" "$tmp/many-devices"
for i in $(seq 10 24); do
    mkdir -p "$tmp/many-devices/devices/pci0000:16/0000:16:02.0/0000:17:00.0/net/enp23s0f$i"
    ln -s "../../devices/pci0000:16/0000:16:02.0/0000:17:00.0/net/enp23s0f$i" "$tmp/many-devices/class/net/enp23s0f$i"
done
python3 "$tmp/check.py" "$tool" "$tmp/many-devices" || fail=1
[ "$(NUMAMALLOC_SYSFS_ROOT=$tmp/many-devices "$tool" topology | grep -c '^          enp23s0f')" -ge 3 ] ||
    { echo "FAIL: the 16 interfaces of node 0 are not wrapped over several lines"; fail=1; }
for tree in /sys "$root"/tests/sysfs/{one-node,four-node,eight-node,sparse-cxl,tiered,two-node-devices}; do
    python3 "$tmp/check.py" "$tool" "$tree" || fail=1
done
NUMAMALLOC_SYSFS_ROOT=$root/tests/sysfs/tiered "$tool" topology
NUMAMALLOC_SYSFS_ROOT=$root/tests/sysfs/two-node-devices "$tool" topology --json | sed -n '/"devices"/,/]/p'
exit $fail
