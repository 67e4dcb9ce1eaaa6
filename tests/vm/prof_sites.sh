#!/usr/bin/env bash
# tests/vm/prof_sites.sh — make check: the heap profiler's sites in the
# 2node guest (guest/prof_sites.c says what runs, with every allocation
# recorded).  The profile must show exactly four sites of the program's
# own code, each found by the function that called malloc: site_local
# with 400 x 128 B live, all on the first node, none freed; site_cross
# with 300 x 256 B allocated, all freed by the second node's thread, so
# 300 cross-node frees and nothing live; site_leak with 200 x 512 B live,
# all on the second node; site_moved with 100 x 64 B live on the second
# node, where the program moved their pages, all counted as mismatched
# (their heap binds them to the first); no other block is mismatched.
# The profile is read here with python3; `numamalloc prof report`, run in
# the guest on the same file, must name the functions, and its folded
# stacks give each site's live bytes.
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
tool=$build/numamalloc
[ -x "$tool" ] || { echo "no $tool: run make first"; exit 1; }
vm_build prof_sites -pthread -ldl
vm_run 2node 120 "$lib $out/prof_sites $tool" \
    "NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_SAMPLE=1 NUMAMALLOC_PROF_FILE=/dev/null LD_PRELOAD=$preload /prof_sites &&
     /numamalloc prof report --top=20 /tmp/prof_sites.heap | sed 's/^/report /' &&
     /numamalloc prof report --collapsed /tmp/prof_sites.heap | sed 's/^/folded /'"
result=fail
if [ "$vm_rc" -eq 0 ]; then
    python3 - "$vm_log" <<'PY' && result=pass
import re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "")
sites = {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^site (\w+) (0x[0-9a-f]+)$", text, re.M)}
first, second = map(int, re.search(r"^nodes (\d+) (\d+)$", text, re.M).groups())
prof = [l[5:] for l in text.split("\n") if l.startswith("prof ")]
errors = []
node_ids = next(list(map(int, l.split()[3:])) for l in prof if l.startswith("# nodes "))
maps = prof[prof.index("MAPPED_LIBRARIES:") + 1:]
ours = []
for l in maps:
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s+(/prof_sites)$", l)
    if m and "x" in m.group(3):
        ours.append((int(m.group(1), 16), int(m.group(2), 16)))
if not ours:
    errors.append("the maps section has no code mapping of /prof_sites")
found = {}
site_line = None
for l in prof:
    if l.startswith("# site "):
        site_line = l
        continue
    m = re.match(r"(\d+): (\d+) \[ (\d+): (\d+)\] @(.*)$", l)
    if not m:
        continue
    frames = [int(a, 16) for a in m.group(5).split()]
    if not frames or not any(lo <= frames[0] < hi for lo, hi in ours):
        continue   # a site of libc's own, not the program's
    name = min(((frames[0] - a, n) for n, a in sites.items() if a < frames[0]), default=(None, "?"))[1]
    pairs = re.findall(r"(\d+):(\d+)", site_line)
    node_pairs = [tuple(map(int, p)) for p in pairs[:len(node_ids)]]
    freed, cross, mismatched = [tuple(map(int, p)) for p in pairs[len(node_ids):]]
    found.setdefault(name, []).append(dict(live=(int(m.group(1)), int(m.group(2))),
        alloc=(int(m.group(3)), int(m.group(4))), nodes=dict(zip(node_ids, node_pairs)),
        freed=freed, cross=cross, mismatched=mismatched))
print("sites of the program:", {k: len(v) for k, v in found.items()})
if sorted(found) != ["cross", "leak", "local", "moved"] or any(len(v) != 1 for v in found.values()):
    errors.append("want exactly the sites cross, leak, local, moved: got %r" % {k: len(v) for k, v in found.items()})
else:
    want = {
        "local": dict(live=(400, 51200), alloc=(400, 51200), freed=(0, 0), cross=(0, 0), node=first),
        "cross": dict(live=(0, 0), alloc=(300, 76800), freed=(300, 76800), cross=(300, 76800), node=None),
        "leak": dict(live=(200, 102400), alloc=(200, 102400), freed=(0, 0), cross=(0, 0), node=second),
        "moved": dict(live=(100, 6400), alloc=(100, 6400), freed=(0, 0), cross=(0, 0), node=second),
    }
    for name, w in want.items():
        s = found[name][0]
        print(name, s)
        for key in ("live", "alloc", "freed", "cross"):
            if s[key] != w[key]:
                errors.append("%s: %s %r, want %r" % (name, key, s[key], w[key]))
        if w["node"] is not None and s["nodes"].get(w["node"]) != w["live"]:
            errors.append("%s: live on node %d: %r, want all of %r (per node: %r)"
                          % (name, w["node"], s["nodes"].get(w["node"]), w["live"], s["nodes"]))
        want_mismatched = w["live"] if name == "moved" else (0, 0)
        if s["mismatched"] != want_mismatched:
            errors.append("%s: mismatched %r, want %r" % (name, s["mismatched"], want_mismatched))
# The command, run in the guest on the same profile, names the functions.
report = [l[7:] for l in text.split("\n") if l.startswith("report ")]
folded = {}
for l in text.split("\n"):
    if l.startswith("folded "):
        stack, _, value = l[7:].rpartition(" ")
        leaf = stack.split(";")[-1]
        folded[leaf] = folded.get(leaf, 0) + int(value)
for name, live in (("site_local", 51200), ("site_leak", 102400), ("site_moved", 6400)):
    if not any(name in l for l in report):
        errors.append("numamalloc prof report does not name %s" % name)
    if folded.get(name) != live:
        errors.append("folded stacks ending in %s: %r bytes, want %d" % (name, folded.get(name), live))
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
PY
fi
# A guest that ran but whose numbers are wrong fails as a guest that failed.
[ "$result" = pass ] || [ "$vm_rc" -ne 0 ] || vm_rc=1
vm_record 2node "profiler sites $result"
vm_finish
