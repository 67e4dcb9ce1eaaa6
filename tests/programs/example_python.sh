#!/usr/bin/env bash
# example_python.sh — examples/python_ctypes.py (numamalloc's API through
# ctypes) run with NUMAMALLOC_LIBRARY=$NM_BUILD/libnumamalloc.so: a 16 MiB
# buffer on every node with memory (from sysfs) and one from a bind heap,
# each 4096/4096 pages on its node with its contents read back; bind:999
# refused with the library's reason; the statistics parsed from JSON.
# Skipped (77) without python3.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
# shellcheck source=tests/programs/data/common.sh
. "$root/tests/programs/data/common.sh"   # nm_nodes_with_memory
command -v python3 >/dev/null || { echo "python3 not installed"; exit 77; }
[ -f "$build/libnumamalloc.so" ] || { echo "FAIL: no $build/libnumamalloc.so (run make)"; exit 1; }
out=$(mktemp); trap 'rm -f "$out"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

NUMAMALLOC_LIBRARY=$build/libnumamalloc.so timeout 120 python3 "$root/examples/python_ctypes.py" >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || bad "python_ctypes.py exited with status $rc"

nodes=$(nm_nodes_with_memory)
got=$(sed -n 's/^node \([0-9]*\): 16 MiB at 0x[0-9a-f]*, 4096\/4096 pages on node \1, usable [0-9]*: ok$/\1/p' "$out" |
      tr '\n' ' ' | sed 's/ $//')
[ "$got" = "$nodes" ] || bad "buffers wholly on nodes '$got', expected every node with memory: '$nodes'"
grep -Eq '^heap bind:([0-9]+): 16 MiB at 0x[0-9a-f]+, 4096/4096 pages on node \1, usable [0-9]+: ok$' "$out" ||
    bad "no heap buffer wholly on its bound node"
grep -q '^bind:999 refused: node 999 does not exist' "$out" || bad "bind:999 not refused with its reason"
grep -Eq '^stats: numamalloc [0-9.]+, node ' "$out" || bad "no statistics line"
grep -qx 'python_ctypes: every buffer on its node' "$out" || bad "no closing line"
[ $fail -eq 0 ] || exit 1
echo "example_python: ok"
