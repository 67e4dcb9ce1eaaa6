#!/usr/bin/env bash
# Options: a value that does not parse gives exactly one warning line naming
# the variable (or the NUMAMALLOC_CONF item) and what it accepts, and the
# program runs on; an unknown NUMAMALLOC_ variable or key is named with the
# closest option; valid values give no output; NUMAMALLOC_CONF and a
# program's nm_conf set every option, each overridden by the next source;
# NUMAMALLOC_VERBOSE prints the configuration in effect, NUMAMALLOC_STATS
# the statistics at exit; NUMAMALLOC_STATS_INTERVAL takes 10s, 500ms, 2m
# or a bare number of seconds, from the variable or NUMAMALLOC_CONF; NUMAMALLOC_HUGEPAGES=off keeps
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
expect_warning NUMAMALLOC_STATS 2 "0, 1 (a table) or json"
expect_warning NUMAMALLOC_PURGE_DELAY_MS 10ms "a number of milliseconds (0 = return memory at once)"
expect_warning NUMAMALLOC_PURGE_DELAY_MS -5 "a number of milliseconds (0 = return memory at once)"
expect_warning NUMAMALLOC_CACHE_MB 99999999999999999999 "a number of MiB kept per node, or a size with K, M, G or T"
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
version=$(sed -n 's/^#define NUMAMALLOC_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' "$root/include/numamalloc.h" | paste -sd.)
want="numamalloc: version $version from $lib, *node*
numamalloc: policy local (first touch), huge pages transparent, purge delay 1000 ms (a background thread once threaded), cache 256.0 MiB per node, secure mode off, on error abort"
[[ "$out" == $want ]] || { echo "NUMAMALLOC_VERBOSE=1 printed:"; printf '%s\n' "$out"; fail=1; }
out=$(NUMAMALLOC_VERBOSE=1 NUMAMALLOC_PURGE_DELAY_MS=7 NUMAMALLOC_CACHE_MB=5 LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[[ "$out" == *"purge delay 7 ms"*", cache 5.0 MiB per node"* ]] || { echo "options not applied: $out"; fail=1; }
# What is in effect, not what was asked: a policy that does not parse
# leaves the local policy (and its own warning line).
out=$(NUMAMALLOC_VERBOSE=1 NUMAMALLOC_POLICY=bind:999 NUMAMALLOC_HUGEPAGES=off NUMAMALLOC_SECURE=1 \
      NUMAMALLOC_ON_ERROR=warn NUMAMALLOC_PURGE_THREAD=0 LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[[ "$out" == *"numamalloc: ignoring NUMAMALLOC_POLICY='bind:999': "* &&
   "$out" == *"policy local (first touch), huge pages off, purge delay 1000 ms (no background thread), cache 256.0 MiB per node, secure mode on, on error warn"* ]] ||
    { echo "NUMAMALLOC_VERBOSE=1 with a bad policy, no THP, secure, warn, no thread:"; printf '%s\n' "$out"; fail=1; }
# A long policy is cut in the line, which stays one line.
long=interleave:$(printf '0,%.0s' $(seq 300))0
out=$(NUMAMALLOC_VERBOSE=1 NUMAMALLOC_POLICY="$long" LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ] && [[ "$(printf '%s\n' "$out" | tail -n 1)" == *"..., huge pages "*", on error abort" ]] ||
    { echo "NUMAMALLOC_VERBOSE=1 with a ${#long}-byte policy:"; printf '%s\n' "$out"; fail=1; }
out=$(NUMAMALLOC_VERBOSE=1 NUMAMALLOC_POLICY=interleave:all LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[[ "$out" == *"policy interleave:all, huge pages"* ]] || { echo "NUMAMALLOC_POLICY=interleave:all: $out"; fail=1; }

# Sizes: a unit letter, "iB" or "B" after it, either case; a bare number in
# the variable's unit.
for v in 1G 1g 1GiB 1gb 1024M 1048576K; do
    out=$(NUMAMALLOC_VERBOSE=1 NUMAMALLOC_CACHE_MB=$v LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
    [[ "$out" == *"cache 1.0 GiB per node"* ]] || { echo "NUMAMALLOC_CACHE_MB=$v: $out"; fail=1; }
done
for v in 1B 1Gi G 1GiBB 1X; do
    expect_warning NUMAMALLOC_CACHE_MB "$v" "a number of MiB kept per node, or a size with K, M, G or T"
done
expect_warning NUMAMALLOC_INTERLEAVE_ABOVE 64MB_ "a size in bytes, or with K, M, G or T (0 = off)"

# Durations: ms, s, m or a bare number of seconds.
for v in 10h 1.5s s -1 "10 s" 10S 99999999999999999999; do
    expect_warning NUMAMALLOC_STATS_INTERVAL "$v" "a duration: 10s, 500ms, 2m or a number of seconds (0 = off)"
done
expect_silent NUMAMALLOC_STATS_INTERVAL 0
for v in 10s:10000 500ms:500 2m:120000 5:5000 0ms:; do
    out=$(NUMAMALLOC_VERBOSE=1 NUMAMALLOC_STATS_INTERVAL=${v%%:*} LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
    if [ -n "${v#*:}" ]; then
        [[ "$out" == *", on error abort, statistics every ${v#*:} ms" ]] || { echo "NUMAMALLOC_STATS_INTERVAL=${v%%:*}: $out"; fail=1; }
    else
        [[ "$out" == *", on error abort" ]] || { echo "NUMAMALLOC_STATS_INTERVAL=${v%%:*}: $out"; fail=1; }
    fi
done

# A NUMAMALLOC_ variable that is no option: one line naming the closest.
out=$(NUMAMALLOC_PURGE_DELAY=5 NUMAMALLOC_HUGEPAGE=off LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
want="numamalloc: ignoring variable 'NUMAMALLOC_PURGE_DELAY': not an option; did you mean NUMAMALLOC_PURGE_DELAY_MS?
numamalloc: ignoring variable 'NUMAMALLOC_HUGEPAGE': not an option; did you mean NUMAMALLOC_HUGEPAGES?"
# (the environment's order decides which comes first)
[ "$(printf '%s\n' "$out" | sort)" = "$(printf '%s\n' "$want" | sort)" ] ||
    { echo "unknown variables:"; printf '%s\n' "$out"; fail=1; }
expect_silent NUMAMALLOC_PROC_ROOT /proc

# NUMAMALLOC_CONF: every option by its key, a node list with commas, the
# single variable over the string, each bad item in one line.
out=$(NUMAMALLOC_CONF='verbose:1,purge_delay_ms:7,cache_mb:64M,hugepages:off,secure:true,on_error:warn,purge_thread:off,stats_interval:2m,policy:interleave:0,0' \
      LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[[ "$out" == *"policy interleave:0,0, huge pages off, purge delay 7 ms (no background thread), cache 64.0 MiB per node, secure mode on, on error warn, statistics every 120000 ms" ]] ||
    { echo "NUMAMALLOC_CONF not applied:"; printf '%s\n' "$out"; fail=1; }
out=$(NUMAMALLOC_CONF='verbose:1,cache_mb:64M' NUMAMALLOC_CACHE_MB=3 LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
[[ "$out" == *"cache 3.0 MiB per node"* ]] || { echo "NUMAMALLOC_CACHE_MB does not override NUMAMALLOC_CONF: $out"; fail=1; }
out=$(NUMAMALLOC_CONF='verbose,Verbose:1,purge_dealy_ms:5,cache_mb:lots,:3,,policy:bind:99' LD_PRELOAD="$lib" "${prog[@]}" 2>&1)
want="numamalloc: ignoring NUMAMALLOC_CONF item 'verbose': expected key:value
numamalloc: ignoring NUMAMALLOC_CONF key 'purge_dealy_ms': not an option; did you mean purge_delay_ms?
numamalloc: ignoring NUMAMALLOC_CONF item 'cache_mb:lots': expected a number of MiB kept per node, or a size with K, M, G or T
numamalloc: ignoring NUMAMALLOC_CONF item ':3': expected key:value
numamalloc: ignoring NUMAMALLOC_CONF item 'policy:bind:99': "
[[ "$out" == "$want"* && "$out" == *"policy local (first touch)"* ]] ||
    { echo "NUMAMALLOC_CONF with bad items:"; printf '%s\n' "$out"; fail=1; }

# A program's own nm_conf, under NUMAMALLOC_CONF and the variables.
if command -v cc >/dev/null; then
    tmp=$(mktemp -d)
    printf '%s\n' '#include <stdlib.h>' 'const char *nm_conf = "verbose:1,purge_delay_ms:5000,cache_mb:8";' \
        'int main(void) { free(malloc(10)); return 0; }' > "$tmp/conf.c"
    if cc -std=gnu11 -Wall -Werror "$tmp/conf.c" -o "$tmp/conf" -L"$(dirname "$lib")" -lnumamalloc \
          -Wl,-rpath,"$(dirname "$lib")"; then
        out=$("$tmp/conf" 2>&1)
        [[ "$out" == *"purge delay 5000 ms"*"cache 8.0 MiB per node"* ]] || { echo "nm_conf not applied: $out"; fail=1; }
        out=$(NUMAMALLOC_CONF=cache_mb:9 NUMAMALLOC_PURGE_DELAY_MS=6 "$tmp/conf" 2>&1)
        [[ "$out" == *"purge delay 6 ms"*"cache 9.0 MiB per node"* ]] || { echo "nm_conf not overridden: $out"; fail=1; }
    else
        echo "cannot build a program linked with the library"; fail=1
    fi
    rm -rf "$tmp"
fi

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
