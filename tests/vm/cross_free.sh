#!/usr/bin/env bash
# tests/vm/cross_free.sh — make check: the "cross_node_frees" of the
# statistics (nm_stats_json) in the 2node guest (guest/cross_free.c says
# what runs): 1,203 blocks allocated by a thread on one node and freed by a
# thread on the other count 1,203 cross-node frees (a few more allowed for
# glibc's own frees at thread exit); 500 freed by another thread of their
# own node add none.  The JSON is read here with python3.
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
vm_build cross_free -pthread -ldl
vm_run 2node 120 "$lib $out/cross_free" "LD_PRELOAD=$preload /cross_free"
result=fail
if [ "$vm_rc" -eq 0 ]; then
    python3 - "$vm_log" <<'PY' && result=pass
import json, re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "")
stats = {m.group(1): json.loads(m.group(2)) for m in re.finditer(r"^json (\S+) (\{.*\})$", text, re.M)}
cross = {k: v["events"]["cross_node_frees"] for k, v in stats.items()}
print("cross-node frees:", cross)
errors = []
if set(cross) != {"start", "allocated", "second-node-freed", "first-node-freed"}:
    errors.append("steps printed: %r" % sorted(cross))
else:
    base = cross["allocated"]
    if not 1203 <= cross["second-node-freed"] - base <= 1203 + 16:
        errors.append("the other node's thread freed 1203 blocks: %d counted" % (cross["second-node-freed"] - base))
    if not 0 <= cross["first-node-freed"] - cross["second-node-freed"] <= 16:
        errors.append("a thread of the blocks' own node freed 500: %d counted as cross-node"
                      % (cross["first-node-freed"] - cross["second-node-freed"]))
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
PY
fi
# A guest that ran but whose numbers are wrong fails as a guest that failed.
[ "$result" = pass ] || [ "$vm_rc" -ne 0 ] || vm_rc=1
vm_record 2node "cross-node frees $result"
vm_finish
