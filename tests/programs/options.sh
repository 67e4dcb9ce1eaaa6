#!/usr/bin/env bash
# Environment options: a value that does not parse gives exactly one warning
# line naming the variable and what it accepts, and the program runs on;
# valid values give no output; NUMAMALLOC_VERBOSE prints the configuration,
# NUMAMALLOC_STATS the statistics at exit; NUMAMALLOC_HUGEPAGES=off keeps
# huge blocks out of transparent huge pages, and =hugetlb works with or
# without pages in the hugetlb pool.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
lib=${NM_LIB:-$root/build/libnumamalloc.so}
fail=0
prog=(/bin/true)

expect_warning() {   # VAR VALUE ACCEPTED-TEXT
    local out lines
    out=$(env "$1=$2" LD_PRELOAD="$lib" "${prog[@]}" 2>&1) || { echo "$1=$2: program failed"; fail=1; return; }
    lines=$(printf '%s\n' "$out" | grep -c .)
    if [ "$lines" != 1 ] || [[ "$out" != "numamalloc: ignoring $1='$2': expected $3" ]]; then
        echo "$1=$2: expected one warning line naming the variable, got:"; printf '%s\n' "$out"; fail=1
    fi
}
expect_silent() {    # VAR VALUE
    local out
    out=$(env "$1=$2" LD_PRELOAD="$lib" "${prog[@]}" 2>&1) || { echo "$1=$2: program failed"; fail=1; return; }
    [ -z "$out" ] || { echo "$1=$2: expected no output, got: $out"; fail=1; }
}

expect_warning NUMAMALLOC_VERBOSE maybe "0 or 1"
expect_warning NUMAMALLOC_STATS 2 "0 or 1"
expect_warning NUMAMALLOC_PURGE_DELAY_MS 10ms "a number of milliseconds (0 = return memory at once)"
expect_warning NUMAMALLOC_PURGE_DELAY_MS -5 "a number of milliseconds (0 = return memory at once)"
expect_warning NUMAMALLOC_CACHE_MB 99999999999999999999 "a number of MiB kept per node"
expect_warning NUMAMALLOC_HUGEPAGES always "off, thp or hugetlb"
expect_warning NUMAMALLOC_ON_ERROR ignore "abort or warn"
expect_silent NUMAMALLOC_VERBOSE 0
expect_silent NUMAMALLOC_PURGE_DELAY_MS 0
expect_silent NUMAMALLOC_CACHE_MB 0
for v in off thp hugetlb; do expect_silent NUMAMALLOC_HUGEPAGES $v; done
for v in abort warn; do expect_silent NUMAMALLOC_ON_ERROR $v; done

# Two bad values: two lines, one per variable.
out=$(NUMAMALLOC_STATS=x NUMAMALLOC_ON_ERROR=y LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[ "$(printf '%s\n' "$out" | grep -c '^numamalloc: ignoring')" = 2 ] || { echo "two bad values: $out"; fail=1; }

out=$(NUMAMALLOC_VERBOSE=1 LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[[ "$out" == "numamalloc: "*node*"purge delay 1000 ms, cache 256.0 MiB per node" ]] ||
    { echo "NUMAMALLOC_VERBOSE=1 printed: $out"; fail=1; }
out=$(NUMAMALLOC_VERBOSE=1 NUMAMALLOC_PURGE_DELAY_MS=7 NUMAMALLOC_CACHE_MB=5 LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[[ "$out" == *"purge delay 7 ms, cache 5.0 MiB per node" ]] || { echo "options not applied: $out"; fail=1; }

out=$(NUMAMALLOC_STATS=1 LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
for want in "numamalloc statistics" "  node" "block size" "thread heaps"; do
    [[ "$out" == *"$want"* ]] || { echo "NUMAMALLOC_STATS=1 output lacks '$want':"; printf '%s\n' "$out"; fail=1; }
done

# Huge pages off: a 64 MiB block gets no THP advice (smaps shows no "hg" flag
# on its range); with thp it does.
hg_flags() {
    env NUMAMALLOC_HUGEPAGES="$1" LD_PRELOAD="$lib" python3 -c '
import ctypes, re
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(64 << 20)
text = open("/proc/self/smaps").read()
entries = re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text)
for e in entries:
    lo, hi = (int(x, 16) for x in e.split()[0].split("-"))
    if lo <= p < hi:
        flags = re.search(r"VmFlags:(.*)", e).group(1).split()
        print("hg" if "hg" in flags else "nohg")
'
}
if command -v python3 >/dev/null && [ -r /proc/self/smaps ]; then
    [ "$(hg_flags off)" = nohg ] || { echo "NUMAMALLOC_HUGEPAGES=off: block advised for THP"; fail=1; }
    [ "$(hg_flags thp)" = hg ] || { echo "NUMAMALLOC_HUGEPAGES=thp: block not advised for THP"; fail=1; }
fi
# NUMAMALLOC_HUGEPAGES=hugetlb: blocks of 4 and 64 MiB are written in full
# and the program exits 0 whether the hugetlb pool is empty (the usual state:
# the blocks then get normal pages) or holds pages (the blocks get them:
# smaps shows a 2048 kB kernel page size for their range).
hugetlb_blocks() {
    env NUMAMALLOC_HUGEPAGES=hugetlb LD_PRELOAD="$lib" python3 -c '
import ctypes, re
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
text = None
kinds = []
for size in (4 << 20, 64 << 20):
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    text = open("/proc/self/smaps").read()
    for e in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        lo, hi = (int(x, 16) for x in e.split()[0].split("-"))
        if lo <= p < hi:
            kinds.append(re.search(r"KernelPageSize:\s*(\d+)", e).group(1))
print(" ".join(kinds))
'
}
hugepages_file=/proc/sys/vm/nr_hugepages
if command -v python3 >/dev/null && [ -r /proc/self/smaps ] && [ -r "$hugepages_file" ]; then
    pool=$(cat "$hugepages_file")
    if [ "$pool" -eq 0 ]; then
        got=$(hugetlb_blocks 2>&1) || { echo "NUMAMALLOC_HUGEPAGES=hugetlb, empty pool: exit $?: $got"; fail=1; }
        [ "$got" = "4 4" ] || { echo "NUMAMALLOC_HUGEPAGES=hugetlb, empty pool: page sizes '$got', expected '4 4'"; fail=1; }
    fi
    # With a pool of 40 huge pages (80 MiB: the spans of both blocks take
    # 8 + 68 MiB), when we may set one.
    if [ "$pool" -eq 0 ] && [ -w "$hugepages_file" ] && echo 40 > "$hugepages_file" 2>/dev/null; then
        if [ "$(cat "$hugepages_file")" -ge 8 ]; then
            got=$(hugetlb_blocks 2>&1) || { echo "NUMAMALLOC_HUGEPAGES=hugetlb, pool of 40: exit $?: $got"; fail=1; }
            [ "${got%% *}" = 2048 ] || { echo "NUMAMALLOC_HUGEPAGES=hugetlb, pool of 40: page sizes '$got', expected 2048 for the 4 MiB block"; fail=1; }
        fi
        # A heap's freed hugetlb block keeps its pages for the heap's next
        # block: with a pool of 8 pages, an 8 MiB heap block (a 12 MiB span:
        # 6 pages) is written and freed, a plain 8 MiB block is taken (it
        # finds 2 pages and falls back to normal ones), and the heap's next
        # 8 MiB calloc, on the first span, is written in full: no SIGBUS.
        if echo 8 > "$hugepages_file" 2>/dev/null && [ "$(cat "$hugepages_file")" -eq 8 ]; then
            got=$(env NUMAMALLOC_HUGEPAGES=hugetlb LD_PRELOAD="$lib" python3 -c '
import ctypes
libc = ctypes.CDLL(None)
for name in ("nm_heap_new", "nm_heap_malloc", "nm_heap_calloc", "malloc"):
    getattr(libc, name).restype = ctypes.c_void_p
libc.nm_heap_new.argtypes = [ctypes.c_void_p]
libc.nm_heap_malloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.nm_heap_calloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 8 << 20
h = libc.nm_heap_new(None)
p = libc.nm_heap_malloc(h, size)
ctypes.memset(p, 0xff, size)
libc.free(p)
q = libc.malloc(size)
ctypes.memset(q, 1, size)
r = libc.nm_heap_calloc(h, 1, size)
zero = ctypes.string_at(r, 4096) == bytes(4096) and ctypes.string_at(r + size - 4096, 4096) == bytes(4096)
ctypes.memset(r, 2, size)
print("ok" if zero else "calloc not zero")
' 2>&1) || got="exit $?: $got"
            [ "$got" = ok ] || { echo "NUMAMALLOC_HUGEPAGES=hugetlb, a heap block reused after the pool ran short: $got"; fail=1; }
        fi
        echo 0 > "$hugepages_file"
    fi
fi
[ $fail = 0 ] && echo "options parsed, reported and applied as documented"
exit $fail
