#!/bin/bash
# bench/hot-layout.sh: write src/hot.ld, the list of the library's functions
# that a program runs, which the link places first (docs/design.md, "Code
# layout").
#
# Runs the benchmark programs (tiny mode, 1 and 2 threads), a fork, and a
# Python and a C++ program under valgrind's callgrind with the library
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
out=src/hot.ld
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
[ -x "$build/tests/preload/fork" ] && runs+=("$build/tests/preload/fork")
[ -x "$build/tests/preload/cxx_threads" ] && runs+=("$build/tests/preload/cxx_threads")
if command -v python3 >/dev/null; then
    echo 'import json; print(len(json.dumps([{"k": i, "v": str(i)} for i in range(100000)])))' > "$work/p.py"
    runs+=("python3 $work/p.py")
fi

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

python3 - "$work" > "$work/hot.ld" <<'EOF'
import sys, collections
work = sys.argv[1]
names_at = collections.defaultdict(set); addr_of = {}
for line in open(f"{work}/symbols"):
    addr, name = line.split()
    names_at[addr].add(name); addr_of[name] = addr
sections = set(l.strip() for l in open(f"{work}/sections"))
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
print("/* src/hot.ld: written by bench/hot-layout.sh; do not edit by hand.")
print(" *")
print(" * The library's functions that programs run, placed first in its code")
print(" * (docs/design.md, \"Code layout\"): together they lie in at most two")
print(" * of the 64 KiB windows the kernel maps a file's pages by, which is what")
print(" * a program maps of the code.  Then the code of crtbeginS (run at load),")
print(" * libc_nonshared (pthread_atfork) and libgcc (__popcountdi2).")
print(" * Everything else follows in .text. */")
print("SECTIONS\n{\n  .text.hot :\n  {")
print("    *(.text.startup .text.startup.*)")
for s in order:
    print(f"    *({s})")
print("    *crtbeginS.o(.text)\n    *libc_nonshared.a:*(.text .text.*)\n    *libgcc.a:*(.text .text.*)")
print("  }\n}\nINSERT BEFORE .text;")
EOF
mv "$work/hot.ld" "$out"
echo "hot-layout: $(grep -c '^    \*(\.text\.' "$out") function sections in $out"
