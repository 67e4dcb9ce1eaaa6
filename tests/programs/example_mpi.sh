#!/usr/bin/env bash
# example_mpi.sh — examples/mpi.c built with mpicc (-Wall -Wextra -Werror,
# -lnumamalloc) and run with `mpirun -np 2` three ways:
#   linked      numamalloc linked in, Open MPI as configured
#   hooks       the same with Open MPI's memory hooks on (--mca osc ucx loads
#               UCX, which installs them; Debian turns UCX off by default)
#   preloaded   hooks on, and LD_PRELOAD=$NM_LIB for mpirun and every rank,
#               with NUMAMALLOC_PURGE_DELAY_MS=0 NUMAMALLOC_CACHE_MB=0 so
#               that freed memory goes back to the OS from inside free
# A fourth run, linked, writes NUMAMALLOC_STATS=json to
# NUMAMALLOC_STATS_FILE=rank%r.pid%p.json: one file per rank, each holding
# its rank and pid.
# Each run must end (a watchdog turns a hang, e.g. a deadlock between the
# hooks and the allocator, into a failure) with status 0, and its output
# must show: both ranks' vectors wholly on their node, the Allreduce
# checksum equal to the closed form computed here, no damaged word in the
# ring messages, memory returned to the OS, and, with the hooks on, Open
# MPI's hooks having seen at least as much go as numamalloc returned.  In
# the preloaded run NUMAMALLOC_VERBOSE=1 must show numamalloc starting in
# mpirun as well as in both ranks.
# Exit 77 when Open MPI is not installed (make deps).
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
lib=${NM_LIB:-$build/libnumamalloc.so}
if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
    echo "Open MPI not installed: no mpicc or mpirun (make deps)"
    exit 77
fi
[ -f "$build/libnumamalloc.so" ] || { echo "FAIL: no $build/libnumamalloc.so (run make lib)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nm-example-mpi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

mpicc -std=gnu11 -Wall -Wextra -Werror -O2 -I"$root/include" "$root/examples/mpi.c" -o "$tmp/mpi_example" \
    -L"$build" -lnumamalloc -Wl,-rpath,"$build" || { echo "FAIL: mpicc cannot build examples/mpi.c"; exit 1; }
# clang through the same wrapper, where installed (compiled only).
if command -v clang >/dev/null; then
    OMPI_CC=clang mpicc -std=gnu11 -Wall -Wextra -Werror -O2 -I"$root/include" -c "$root/examples/mpi.c" \
        -o "$tmp/mpi_example.clang.o" || fail "mpicc with clang cannot build examples/mpi.c"
fi
ldd "$tmp/mpi_example" | grep -q "libnumamalloc.so.0 => $build/libnumamalloc.so.0" ||
    { echo "FAIL: mpi_example does not load $build/libnumamalloc.so.0"; exit 1; }

# Root may run mpirun only when told so twice.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# shellcheck disable=SC2054  # self,vader is one argument
mpirun=(mpirun -np 2 --oversubscribe --allow-run-as-root --mca btl self,vader)
# The Allreduce sums 0 .. 2 * 512Ki - 1.
n=$((2 * 512 * 1024))
checksum=$((n * (n - 1) / 2))

# run_mpi LABEL HOOKS(yes|no) ENV... : run the example, then check its output.
run_mpi() {
    local label=$1 hooks=$2; shift 2
    local out="$tmp/$label.out" start rc mca=()
    [ "$hooks" = yes ] && mca=(--mca osc ucx)
    start=$(date +%s%N)
    timeout -k 5 120 env "$@" "${mpirun[@]}" "${mca[@]}" "$tmp/mpi_example" >"$out" 2>&1
    rc=$?
    echo "--- $label ($(( ($(date +%s%N) - start) / 1000000 )) ms, exit $rc)"
    cat "$out"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then fail "$label: mpirun still running after 120 s (hang or deadlock)"; return; fi
    [ $rc -eq 0 ] || fail "$label: mpirun exited with status $rc"
    local r
    for r in 0 1; do
        grep -Eq "^rank $r: node ([0-9]+), cpu [0-9]+: 4 MiB vector from a bind:\1 heap, 1024/1024 pages on node \1$" "$out" ||
            fail "$label: rank $r's vector is not reported wholly on its node"
        local line returned seen
        line=$(grep "^rank $r: 12 rounds of 16 MiB messages, 0 bad words; numamalloc returned " "$out")
        [ -n "$line" ] || { fail "$label: rank $r reports no clean exchange"; continue; }
        returned=$(echo "$line" | sed -n 's/.*numamalloc returned \([0-9]*\) MiB to the OS.*/\1/p')
        [ "${returned:-0}" -gt 0 ] || fail "$label: rank $r returned no memory to the OS"
        if [ "$hooks" = yes ]; then
            seen=$(echo "$line" | sed -n "s/.*Open MPI's hooks saw [0-9]* releases, \([0-9]*\) MiB$/\1/p")
            if [ -z "$seen" ]; then fail "$label: rank $r saw no Open MPI memory hooks"
            elif [ "$seen" -lt "${returned:-0}" ]; then fail "$label: rank $r: hooks saw $seen MiB, numamalloc returned $returned MiB"; fi
        fi
    done
    grep -q "^2 ranks, checksum $checksum: ok$" "$out" || fail "$label: no '2 ranks, checksum $checksum: ok'"
}

run_mpi linked no
run_mpi hooks yes
run_mpi preloaded yes LD_PRELOAD="$lib" NUMAMALLOC_VERBOSE=1 NUMAMALLOC_PURGE_DELAY_MS=0 NUMAMALLOC_CACHE_MB=0
# One start-up line per process with numamalloc loaded: mpirun and 2 ranks
# at least (a local daemon may add one).
started=$(grep -c '^numamalloc: .*purge delay 0 ms' "$tmp/preloaded.out")
[ "$started" -ge 3 ] || fail "preloaded: numamalloc started in $started processes, expected mpirun and 2 ranks"

# Statistics per rank: NUMAMALLOC_STATS_FILE with %r and %p gives each rank
# its own JSON file, named and filled with its rank (mpirun, not linked
# with numamalloc, writes none).
mkdir "$tmp/stats"
run_mpi stats no NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE="$tmp/stats/rank%r.pid%p.json"
python3 - "$tmp/stats" <<'EOF' || fail "stats: not one JSON file per rank, named and filled with it"
import glob, json, os, re, sys
files = sorted(glob.glob(os.path.join(sys.argv[1], "*")))
ranks = []
for f in files:
    m = re.fullmatch(r"rank(\d+)\.pid(\d+)\.json", os.path.basename(f))
    s = json.load(open(f))
    if not m or s["rank"] != int(m.group(1)) or s["pid"] != int(m.group(2)):
        print("stats: %s holds rank %r pid %r" % (os.path.basename(f), s.get("rank"), s.get("pid")))
        sys.exit(1)
    ranks.append(s["rank"])
print("stats files:", [os.path.basename(f) for f in files])
sys.exit(0 if sorted(ranks) == [0, 1] else 1)
EOF

if [ $failures -ne 0 ]; then
    echo "example_mpi: $failures failure(s)"
    exit 1
fi
echo "example_mpi: ok"
