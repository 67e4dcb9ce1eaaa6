#!/bin/bash
# bench/hot-layout.sh: write src/hot.list, the list of the library's
# functions that a program runs, which the build places first in its code
# (docs/design.md, "Code layout").
#
# Runs the benchmark programs (tiny mode, 1 and 2 threads), a C++ program
# and a Python program that forks under valgrind's callgrind with the library
# preloaded, and keeps every function of the library that ran in one of
# them (aliases included: malloc's code is malloc_entry's section), ordered
# by how many of the runs ran it, then by name.  Every libc and C++ entry
# point the library exports is kept whether it ran or not: a C++ program
# calls operator new, another posix_memalign.
#
# Usage: make hot-layout   (builds the library and the programs first)
#        bench/hot-layout.sh [BUILD]     BUILD defaults to build
# Needs valgrind.  Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=src/hot.list
for tool in valgrind callgrind_annotate python3; do
    command -v $tool >/dev/null || { echo "hot-layout: $tool is not installed" >&2; exit 1; }
done
[ -f "$build/libnumamalloc.so" ] && [ -d "$build/bench" ] ||
    { echo "hot-layout: build $build/libnumamalloc.so and $build/bench first" >&2; exit 1; }
lib=$(realpath "$build/libnumamalloc.so")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The runs: a program and its arguments, one per line.
runs=()
for t in 1 2; do
    runs+=("$build/bench/alloc_pairs pattern=pair threads=$t mode=tiny"
           "$build/bench/alloc_pairs pattern=batch threads=$t mode=tiny"
           "$build/bench/prodcons threads=$t mode=tiny"
           "$build/bench/larson threads=$t mode=tiny"
           "$build/bench/rptest threads=$t mode=tiny"
           "$build/bench/mstress threads=$t mode=tiny"
           "$build/bench/shbench pattern=sh6 threads=$t mode=tiny"
           "$build/bench/shbench pattern=sh8 threads=$t mode=tiny"
           "$build/bench/xmalloc threads=$t mode=tiny"
           "$build/bench/cache pattern=scratch threads=$t mode=tiny"
           "$build/bench/server_mix threads=$t mode=tiny"
           "$build/bench/alloc_test threads=$t mode=tiny")
done
runs+=("$build/bench/large mode=tiny" "$build/bench/rss mode=tiny")
# (Without a C++ compiler the C++ test is a script that skips.)
cxx=$build/tests/preload/cxx_threads
[ -x "$cxx" ] && [ "$(head -c 4 "$cxx" | tail -c 3)" = ELF ] && runs+=("$cxx")
# Python, with a fork (the library's fork handlers run in both processes).
cat > "$work/p.py" <<'EOF'
import json, os
text = json.dumps([{"k": i, "v": str(i)} for i in range(100000)])
pid = os.fork()
if pid == 0:
    os._exit(0 if len(json.loads(text)) == 100000 else 1)
_, status = os.waitpid(pid, 0)
raise SystemExit(0 if status == 0 else 1)
EOF
runs+=("python3 $work/p.py")

n=0
for r in "${runs[@]}"; do
    n=$((n + 1))
    read -r -a argv <<< "$r"
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$work/run$n.%p" \
        env LD_PRELOAD="$lib" "${argv[@]}" >/dev/null 2>&1 ||
        { echo "hot-layout: run failed, $out left as it was: $r" >&2; exit 1; }
done

# Function names that ran, one line per run that ran them.
for f in "$work"/run*; do
    callgrind_annotate --threshold=100 --inclusive=no "$f" > "$f.txt" 2>/dev/null ||
        { echo "hot-layout: cannot read $f, $out left as it was" >&2; exit 1; }
    sed -nE "s|.*:([^ :]+) \[[^]]*libnumamalloc\.so\].*|\1|p" "$f.txt" | sed "s/'[0-9]*$//" | sort -u
done | sort | uniq -c > "$work/ran"
grep -qw malloc "$work/ran" ||
    { echo "hot-layout: the runs did not run the library's malloc, $out left as it was" >&2; exit 1; }

# Symbols by address (aliases share one), the exported entry points of
# override.o, and the function sections the objects have.
nm "$lib" | awk '$2 ~ /^[tTiW]$/ {print $1, $3}' > "$work/symbols"
nm --defined-only -g "$build/obj/override.o" | awk '$2 == "T" {print $3}' > "$work/entries"
for o in "$build"/obj/*.o; do readelf -SW "$o"; done |
    sed -nE 's/.* (\.text\.[^ ]+) +PROGBITS.*/\1/p' | sort -u > "$work/sections"
# The build renamed the sections of the last list: their names.
cp "$build/obj/hot.args" "$work/renamed" 2>/dev/null || : > "$work/renamed"

python3 - "$work" > "$work/hot.list" <<'EOF'
import sys, collections
work = sys.argv[1]
names_at = collections.defaultdict(set); addr_of = {}
for line in open(f"{work}/symbols"):
    addr, name = line.split()
    names_at[addr].add(name); addr_of[name] = addr
sections = set(l.strip() for l in open(f"{work}/sections"))
for line in open(f"{work}/renamed"):       # --rename-section NAME=.text.sorted.N
    name, _, renamed = line.split()[-1].partition("=")
    if renamed in sections:
        sections.add(name)
count = {}
for line in open(f"{work}/ran"):
    c, name = line.split()
    count[name] = max(count.get(name, 0), int(c))
for name in open(f"{work}/entries"):
    count.setdefault(name.strip(), 0)
order = []
for name in sorted(count, key=lambda n: (-count[n], n)):
    for alias in sorted(names_at.get(addr_of.get(name), {name}) | {name}):
        s = ".text." + alias
        if s in sections and s not in order:
            order.append(s)
print("# src/hot.list: written by bench/hot-layout.sh (make hot-layout); do not")
print("# edit by hand.")
print("#")
print("# The sections of the library's functions that programs run, most often")
print("# run first: the build renames them .text.sorted.NNNNN, which the link")
print("# places first in .text, in this order, so that together they lie in at")
print("# most two of the 64 KiB windows the kernel maps a file's code by")
print("# (docs/design.md, \"Code layout\").  nm_hot_code_end marks where they end.")
for s in order:
    if s != ".text.nm_hot_code_end":
        print(s)
print(".text.nm_hot_code_end")
EOF
mv "$work/hot.list" "$out"
echo "hot-layout: $(grep -c '^\.text\.' "$out") function sections in $out"
