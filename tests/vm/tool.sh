#!/usr/bin/env bash
# tests/vm/tool.sh — make check: the numamalloc command on multi-node
# kernels (guest/tool.sh says what is checked).  In the 4node-cxl guest
# (nodes 0-3 with CPUs, node 4 memory only): topology, run --membind=1,
# run --interleave=0-3 with maps on 4 nodes, stat --membind=1.  In the
# sparse guest (ids 0, 1, 3; node 3 memory only): the same with
# --interleave=all.  The JSON the guest prints (topology, maps, stat) must
# parse here (python3).
# Exit 0 = all passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
tool=$build/numamalloc
[ -x "$tool" ] || { echo "no $tool: run make first"; exit 1; }
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
vm_build tool_hold
files="$tool $lib $out/tool_hold $root/tests/vm/guest/tool.sh"

# The JSON blocks of the last guest's output, each parsed.
check_json() {
    python3 - "$vm_log" <<'PY'
import json, re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "")
blocks = re.findall(r"^=== json (\S+)\n(.*?)^=== end$", text, re.M | re.S)
bad = 0
for name, body in blocks:
    try:
        json.loads(body)
    except ValueError as e:
        print("FAIL: %s JSON: %s" % (name, e)); bad = 1
print("%d JSON outputs parsed" % len(blocks))
sys.exit(1 if bad or len(blocks) != 4 else 0)   # topology, maps x2, stat
PY
}

for shape in 4node-cxl sparse; do
    case $shape in
        4node-cxl) args="0-4 4 1 0-3" ;;
        sparse)    args="0-1,3 3 1 all" ;;
    esac
    vm_run "$shape" 180 "$files" "sh /tool.sh $args"
    if [ "$vm_rc" -eq 0 ] && ! check_json; then vm_rc=1; fi
    vm_record "$shape" "$(grep -c '^FAIL' "$vm_log") failures"
done
vm_finish
