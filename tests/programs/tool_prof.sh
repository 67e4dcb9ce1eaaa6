#!/usr/bin/env bash
# `numamalloc prof`: heap profiles of a program with three allocation
# functions of known sizes (noinline, built with -g -O1):
#   alloc_small   64 blocks of 4 KiB, 16 freed:  192 KiB live in 48, 256 KiB allocated
#   alloc_medium  10 of 64 KiB, 2 freed:         512 KiB live in 8, 640 KiB allocated
#   alloc_large    3 of 4 MiB, 1 freed:            8 MiB live in 2, 12 MiB allocated
# The profile comes from the library (`numamalloc prof --sample=1`: every
# allocation recorded, so the bytes are exact) when it writes them (it
# knows NUMAMALLOC_PROF_FILE); else from a profile written here by hand
# with the program's real return addresses and /proc/PID/maps, which the
# test says.  Checked:
#   - the report names the three functions (each with "< main", from the
#     executable's .symtab through the maps section), in order of live
#     bytes, with their live bytes and blocks;
#   - --collapsed: the bytes of the lines ending in each function are its
#     live bytes (--alloc: allocated), and all lines sum to the header's
#     total; -o FILE writes the same; --top=1 shows one site;
#   - estimation: a hand-written sampled profile (heap_v2/524288) gives
#     each site's pairs scaled by 1 / (1 - exp(-(bytes/objs) / rate));
#     per-node columns for 2 nodes, "live by node" lines for 4;
#   - --svg: valid XML (python's parser), one <g class="frame"> with a
#     rect and a title per frame of the folded stacks (plus the root), the
#     widths in proportion to the bytes;
#   - errors: not a profile, truncated (a line cut, sites missing), no maps
#     section, a maps section without maps lines, another version, a bad
#     '# site' line, a missing file, unknown options, bad values: one line,
#     exit 1 or 2; a program that cannot be found: 127.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
lib=${NM_LIB:-$build/libnumamalloc.so}
tool=${NM_TOOL:-$build/numamalloc}   # NM_TOOL: another build of the command (sanitizers)
[ -x "$tool" ] || { echo "no $tool: build it first (make)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
command -v cc >/dev/null || { echo "no C compiler (cc) to build the test program"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

cat >"$tmp/prog.c" <<'EOF'
/* Three allocation sites of known sizes, kept live until exit (status 3).
 * "addresses": print, per site, a return address inside the allocating
 * function and the one in main it returns to, then main's own return
 * address, and wait for a byte on stdin (while /proc/PID/maps is read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *kept[128];
static int kept_count;
static int print_addresses;

__attribute__((noinline, noclone)) void *return_address(void) { return __builtin_return_address(0); }

/* Allocate COUNT blocks of SIZE, free FREED of them, keep the rest. */
#define SITE(NAME, SIZE, COUNT, FREED)                                      \
    __attribute__((noinline, noclone)) void NAME(void)                     \
    {                                                                       \
        void *blocks[COUNT];                                                \
        for (int i = 0; i < (COUNT); i++) {                                 \
            blocks[i] = malloc(SIZE);                                       \
            if (!blocks[i]) exit(1);                                        \
            memset(blocks[i], 1, 64);                                       \
        }                                                                   \
        void *inside = return_address();                                    \
        for (int i = 0; i < (COUNT); i++) {                                 \
            if (i < (FREED)) free(blocks[i]);                               \
            else kept[kept_count++] = blocks[i];                            \
        }                                                                   \
        if (print_addresses)                                                \
            printf(#NAME " %p %p\n", inside, __builtin_return_address(0));  \
    }
SITE(alloc_small, 4096, 64, 16)
SITE(alloc_medium, 65536, 10, 2)
SITE(alloc_large, 4 << 20, 3, 1)

int main(int argc, char **argv)
{
    print_addresses = argc > 1 && strcmp(argv[1], "addresses") == 0;
    alloc_small();
    alloc_medium();
    alloc_large();
    if (print_addresses) {
        printf("main %p\n", __builtin_return_address(0));
        fflush(stdout);
        char c;
        if (read(0, &c, 1) < 0) return 1;
    }
    return 3;
}
EOF
# -rdynamic: the functions are in .dynsym too, for the stripped copy below.
cc -g -O1 -fno-omit-frame-pointer -rdynamic -o "$tmp/prog" "$tmp/prog.c" || { echo "FAIL: cannot build the test program"; exit 1; }

cat >"$tmp/gen.py" <<'EOF'
# gen.py ADDRESSES MAPS RATE NODES: a numamalloc heap profile of the test
# program written by hand, with its real return addresses and maps.
# RATE 1: the raw counts are the true ones; else fewer sampled blocks.
# NODES: kernel node ids, e.g. "0,1"; live blocks go round-robin over them.
import sys
addresses, maps, rate, nodes = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(n) for n in sys.argv[4].split(",")]
frames = {}
for line in open(addresses):
    name, *addrs = line.split()
    frames[name] = [int(a, 16) for a in addrs]
# name: (size, allocated, freed, cross-node frees, mismatched)
sites = {"alloc_small": (4096, 64, 16, 4, 0), "alloc_medium": (65536, 10, 2, 2, 1), "alloc_large": (4 << 20, 3, 1, 0, 2)}
if rate > 1:
    sites = {"alloc_small": (4096, 3, 1, 1, 0), "alloc_medium": (65536, 4, 1, 1, 1), "alloc_large": (4 << 20, 3, 1, 0, 2)}
out, totals = [], [0, 0, 0, 0]
for i, (name, (size, alloc, freed, cross, mism)) in enumerate(sites.items()):
    live = alloc - freed
    per = [0] * len(nodes)
    for b in range(live):
        per[(i + b) % len(nodes)] += 1
    out.append("# site live_node %s freed %d:%d cross_node_frees %d:%d mismatched %d:%d" %
               (" ".join("%d:%d" % (n, n * size) for n in per), freed, freed * size, cross, cross * size,
                mism, mism * size))
    stack = [frames[name][0], frames[name][1], frames["main"][0]]
    out.append("%d: %d [ %d: %d] @ %s" % (live, live * size, alloc, alloc * size, " ".join("0x%x" % a for a in stack)))
    totals = [totals[0] + live, totals[1] + live * size, totals[2] + alloc, totals[3] + alloc * size]
print("heap profile: %d: %d [ %d: %d] @ heap_v2/%d" % (*totals, rate))
print("# numamalloc heap profile 1\n# pid 4242\n# command ./prog addresses\n# rank -1")
print("# nodes %d %s" % (len(nodes), " ".join(map(str, nodes))))
print("# sample_bytes %d\n# time_ms 1765000000000\n# sites %d dropped 0" % (rate, len(sites)))
print("\n".join(out))
print("\nMAPPED_LIBRARIES:")
sys.stdout.write(open(maps).read())
EOF

# The program's addresses and maps, while it waits on a pipe (it ends
# when the pipe closes, whatever happens here).
mkfifo "$tmp/fifo"
"$tmp/prog" addresses <"$tmp/fifo" >"$tmp/addresses" &
prog_pid=$!
exec 3>"$tmp/fifo"
for _ in $(seq 100); do grep -q '^main ' "$tmp/addresses" && break; sleep 0.1; done
cp "/proc/$prog_pid/maps" "$tmp/maps" 2>/dev/null
exec 3>&-
wait $prog_pid
[ -s "$tmp/maps" ] && grep -q '^main ' "$tmp/addresses" || { echo "FAIL: no addresses or maps from the test program"; exit 1; }
python3 "$tmp/gen.py" "$tmp/addresses" "$tmp/maps" 1 0,1 >"$tmp/hand.heap" || exit 1
h=$tmp/hand.heap
python3 "$tmp/gen.py" "$tmp/addresses" "$tmp/maps" 524288 0,1 >"$tmp/sampled.heap" || exit 1
python3 "$tmp/gen.py" "$tmp/addresses" "$tmp/maps" 524288 0,1,2,3 >"$tmp/four.heap" || exit 1

# ---- the profile: the library's, or the hand-written one ---------------------------------
if [ -r "$lib" ] && grep -aq NUMAMALLOC_PROF_FILE "$lib"; then
    source="the library ($lib)"
    (cd "$tmp" && "$tool" prof --library="$lib" --sample=1 -o "$tmp/real.%p.heap" -- ./prog) >"$tmp/run.out" 2>"$tmp/run.err"
    rc=$?
    [ $rc -eq 3 ] || bad "prof -- prog exited $rc, the program 3"
    files=("$tmp"/real.*.heap)
    [ ${#files[@]} -eq 1 ] && [ -f "${files[0]}" ] || bad "expected one profile real.PID.heap, found: ${files[*]}"
    profile=${files[0]}
    grep -q 'alloc_large < main' "$tmp/run.err" || { bad "prof -- prog did not report alloc_large < main on stderr:"; cat "$tmp/run.err"; }
    [ -s "$tmp/run.out" ] && bad "prof -- prog wrote on stdout: $(head -c 200 "$tmp/run.out")"
else
    source="a hand-written profile with the program's real addresses and maps (the library at $lib does not write heap profiles)"
    profile=$tmp/hand.heap
    # prof PROGRAM still runs it and passes its status on, saying no profile came.
    (cd "$tmp" && "$tool" prof -o "$tmp/none.%p.heap" -- ./prog) >"$tmp/run.out" 2>"$tmp/run.err"
    rc=$?
    [ $rc -eq 3 ] || bad "prof -- prog exited $rc, the program 3"
    grep -q 'wrote no heap profile' "$tmp/run.err" || { bad "prof -- prog without profiles:"; cat "$tmp/run.err"; }
fi
echo "profile from $source"

"$tool" prof report "$profile" >"$tmp/table" 2>"$tmp/err" || bad "prof report exited $?: $(cat "$tmp/err")"
"$tool" prof report "$profile" --collapsed >"$tmp/live.folded" || bad "prof report --collapsed exited $?"
"$tool" prof report --alloc --collapsed "$profile" >"$tmp/alloc.folded" || bad "prof report --alloc --collapsed exited $?"
"$tool" prof report "$profile" --svg="$tmp/live.svg" -o "$tmp/table2" || bad "prof report --svg exited $?"
cmp -s "$tmp/table" "$tmp/table2" || bad "-o FILE differs from standard output"
"$tool" prof report --top=1 "$profile" >"$tmp/top1" || bad "--top=1 exited $?"
[ "$(grep -c ' < main' "$tmp/top1")" -eq 1 ] || bad "--top=1 shows $(grep -c ' < main' "$tmp/top1") sites"
sed 's/^/    | /' "$tmp/table"

cat >"$tmp/check.py" <<'EOF'
# check.py PROFILE TABLE LIVE.folded ALLOC.folded SVG: the report of the
# test program's profile (exact: every allocation recorded).
import math, re, sys
import xml.dom.minidom
profile, table, live_f, alloc_f, svg = sys.argv[1:6]
errors = []
expected = {"alloc_small": (48 * 4096, 48, 64 * 4096), "alloc_medium": (8 * 65536, 8, 10 * 65536),
            "alloc_large": (2 * (4 << 20), 2, 3 * (4 << 20))}
head = re.match(r"heap profile:\s*(\d+):\s*(\d+)\s*\[\s*(\d+):\s*(\d+)\]\s*@\s*heap_v2/(\d+)", open(profile).readline())
live_total, alloc_total, rate = int(head.group(2)), int(head.group(4)), int(head.group(5))
if rate > 1:
    errors.append("the profile samples (heap_v2/%d): the exact checks need every allocation" % rate)

def folded(path):
    lines = []
    for line in open(path):
        stack, _, value = line.rstrip("\n").rpartition(" ")
        lines.append((stack.split(";"), int(value)))
    return lines

def format_bytes(n):   # tools/util.c's format_bytes
    if n < 1024:
        return "%d B" % n
    v, units = n / 1024, ["KiB", "MiB", "GiB", "TiB", "PiB"]
    u = 0
    while v >= 1024 and u < 4:
        v, u = v / 1024, u + 1
    return "%.1f %s" % (v, units[u])

for path, column, total in ((live_f, 0, live_total), (alloc_f, 2, alloc_total)):
    lines = folded(path)
    for name, want in expected.items():
        got = sum(v for stack, v in lines if stack[-1] == name)
        callers = [stack for stack, v in lines if stack[-1] == name]
        if got != want[column]:
            errors.append("%s: the lines ending in %s sum to %d, expected %d" % (path, name, got, want[column]))
        if not callers or any(len(s) < 2 or s[-2] != "main" for s in callers):
            errors.append("%s: %s is not called from main: %s" % (path, name, callers))
    if sum(v for _, v in lines) != total:
        errors.append("%s: the lines sum to %d, the header's total is %d" % (path, sum(v for _, v in lines), total))
    if any(v <= 0 for _, v in lines):
        errors.append("%s: a line with no bytes" % path)

# The table: each function with "< main", its live bytes and blocks on the
# line above it, in order of live bytes.
rows = open(table).read().split("\n")
order = []
for name, (live, blocks, alloc) in expected.items():
    at = [i for i, r in enumerate(rows) if r.strip().startswith(name + " < main")]
    if len(at) != 1:
        errors.append("table: %d lines for '%s < main'" % (len(at), name))
        continue
    order.append((at[0], name))
    numbers = rows[at[0] - 1]
    if not re.match(r"\s+\d+\s+%s\s+%d\s" % (re.escape(format_bytes(live)), blocks), numbers):
        errors.append("table: the row of %s is %r, expected %s live in %d blocks" % (name, numbers, format_bytes(live), blocks))
    if format_bytes(alloc) not in numbers:
        errors.append("table: the row of %s lacks its allocated %s: %r" % (name, format_bytes(alloc), numbers))
if [n for _, n in sorted(order)] != ["alloc_large", "alloc_medium", "alloc_small"][:len(order)]:
    errors.append("table: the sites are not in order of live bytes: %s" % sorted(order))
if not re.search(r"^  live\s+%s in \d+ blocks?$" % re.escape(format_bytes(live_total)), "\n".join(rows), re.M):
    errors.append("table: no total line 'live %s'" % format_bytes(live_total))
if max(len(r) for r in rows) > 80:
    errors.append("table: a line is wider than 80 columns: %r" % max(rows, key=len))

# The SVG: valid XML, one frame per node of the folded stacks' tree (plus
# the root), each with a rect and a title; widths in proportion.
try:
    doc = xml.dom.minidom.parse(svg)
except Exception as e:
    errors.append("%s is not valid XML: %s" % (svg, e))
    doc = None
if doc:
    prefixes = set()
    for stack, _ in folded(live_f):
        for k in range(1, len(stack) + 1):
            prefixes.add(tuple(stack[:k]))
    frames = [g for g in doc.getElementsByTagName("g") if g.getAttribute("class") == "frame"]
    if len(frames) != len(prefixes) + 1:
        errors.append("svg: %d frames, the folded stacks have %d (+1 root)" % (len(frames), len(prefixes)))
    width = {}
    for g in frames:
        rects, titles = g.getElementsByTagName("rect"), g.getElementsByTagName("title")
        if len(rects) != 1 or len(titles) != 1:
            errors.append("svg: a frame with %d rects and %d titles" % (len(rects), len(titles)))
            continue
        name = titles[0].firstChild.data.split("\n")[0]
        width[name] = width.get(name, 0) + float(rects[0].getAttribute("width"))
    for name, (live, _, _) in expected.items():
        if name not in width:
            errors.append("svg: no frame for %s" % name)
        elif abs(width[name] / width.get("all", 1) - live / live_total) > 0.002:
            errors.append("svg: %s is %.4f of the width, its bytes %.4f" % (name, width[name] / width["all"], live / live_total))
for e in errors:
    print("FAIL: " + e)
sys.exit(1 if errors else 0)
EOF
python3 "$tmp/check.py" "$profile" "$tmp/table" "$tmp/live.folded" "$tmp/alloc.folded" "$tmp/live.svg" || fail=1

# ---- estimation: a sampled hand-written profile -------------------------------------------
cat >"$tmp/estimate.py" <<'EOF'
# estimate.py PROFILE LIVE.folded ALLOC.folded: each folded line's bytes
# are its sample line's pair scaled by 1 / (1 - exp(-(bytes/objs) / rate)).
import math, re, sys
profile, live_f, alloc_f = sys.argv[1:4]
text = open(profile).read()
rate = int(re.match(r"heap profile:.*heap_v2/(\d+)", text).group(1))
def scaled(objs, size):
    return size if objs == 0 else round(size / (1 - math.exp(-(size / objs) / rate)))
samples = re.findall(r"^(\d+): (\d+) \[ (\d+): (\d+)\] @", text, re.M)
want_live = [scaled(int(a), int(b)) for a, b, _, _ in samples]
want_alloc = [scaled(int(c), int(d)) for _, _, c, d in samples]
errors = []
for path, want in ((live_f, want_live), (alloc_f, want_alloc)):
    got = [int(line.rsplit(" ", 1)[1]) for line in open(path)]
    if got != [w for w in want if w]:
        errors.append("%s: %s, expected %s" % (path, got, want))
    if want == want_live and [int(b) for _, b, _, _ in samples] == got:
        errors.append("%s: the raw bytes, not scaled" % path)
for e in errors:
    print("FAIL: " + e)
sys.exit(1 if errors else 0)
EOF
"$tool" prof report "$tmp/sampled.heap" --collapsed >"$tmp/s.live" || bad "sampled --collapsed exited $?"
"$tool" prof report "$tmp/sampled.heap" --collapsed --alloc >"$tmp/s.alloc" || bad "sampled --alloc exited $?"
python3 "$tmp/estimate.py" "$tmp/sampled.heap" "$tmp/s.live" "$tmp/s.alloc" || fail=1
"$tool" prof report "$tmp/sampled.heap" >"$tmp/s.table" || bad "sampled report exited $?"
grep -q 'estimated from samples every 512.0 KiB' "$tmp/s.table" || bad "the sampled report does not say it estimates"
grep -qE '^ +# +live +blocks +node 0 +node 1 +allocated' "$tmp/s.table" || bad "2 nodes: no node columns: $(sed -n 4p "$tmp/s.table")"
"$tool" prof report "$tmp/four.heap" >"$tmp/four.table" || bad "4-node report exited $?"
# alloc_large: 2 live blocks of 4 MiB, round-robin from the third node (ids 2, 3)
grep -A2 'alloc_large < main' "$tmp/four.table" | grep -qE '^ +live by node 0:0 1:0 2:4\.0M 3:4\.0M$' ||
    { bad "4 nodes: no 'live by node' line for alloc_large:"; cat "$tmp/four.table"; }
"$tool" prof report "$tmp/hand.heap" >"$tmp/hand.table" || bad "hand report exited $?"
grep -A1 ' live bytes by node' "$tmp/hand.table" >/dev/null
grep -qE '^  node 0 +4\.3 MiB +50\.0%$' "$tmp/hand.table" || bad "per-node totals: $(grep -A3 'by node' "$tmp/hand.table")"

# ---- prof PROGRAM finding the files: a stand-in for the library ----------------------------
# A script that writes what the library would (the hand-written profile
# with its own pid, at NUMAMALLOC_PROF_FILE with %p replaced) after moving
# to /, and has a child do the same: the program's profile is reported,
# the child's listed, an older file of the same pattern left out; the
# relative -o pattern is taken in prof's directory; the variables are set.
# The preloaded library is an empty one, so that no process of the script
# writes profiles of its own.
mkdir "$tmp/run"
echo 'int nm_test_stand_in;' >"$tmp/empty.c"
cc -shared -fPIC -o "$tmp/empty.so" "$tmp/empty.c" || { echo "FAIL: cannot build an empty library"; exit 1; }
cat >"$tmp/standin.sh" <<'EOF'
#!/bin/sh
cd / || exit 1
[ "$NUMAMALLOC_PROF" = 1 ] && [ "$NUMAMALLOC_PROF_SAMPLE" = 64K ] || exit 9
if [ "${1:-}" != child ]; then sh "$0" child; fi
sed "s/^# pid .*/# pid $$/" "$HAND" >"$(printf '%s' "$NUMAMALLOC_PROF_FILE" | sed "s/%p/$$/")"
exit 5
EOF
chmod +x "$tmp/standin.sh"
sed 's/^# pid .*/# pid 1/' "$h" >"$tmp/run/p.1.heap"
touch -d '2020-01-01' "$tmp/run/p.1.heap"
(cd "$tmp/run" && HAND=$h "$tool" prof --library="$tmp/empty.so" --sample=64K -o 'p.%p.heap' -- "$tmp/standin.sh") >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 5 ] || bad "prof -- standin.sh exited $rc, the program 5 ($(cat "$tmp/err"))"
[ "$(ls "$tmp/run" | wc -l)" -eq 3 ] || bad "prof -- standin.sh: files in the run directory: $(ls "$tmp/run")"
grep -q '^     alloc_large < main' "$tmp/err" || bad "prof -- standin.sh: no report of its profile: $(cat "$tmp/err")"
grep -q '^other processes of the run wrote 1 profile' "$tmp/err" ||
    bad "prof -- standin.sh: the child's profile is not listed: $(cat "$tmp/err")"
grep -q 'p\.1\.heap' "$tmp/err" && bad "prof -- standin.sh: the older p.1.heap is listed"
[ -s "$tmp/out" ] && bad "prof -- standin.sh wrote on stdout"

# ---- a stripped executable: the names come from .dynsym -----------------------------------
if command -v strip >/dev/null; then
    strip -o "$tmp/prog.stripped" "$tmp/prog" || bad "strip failed"
    sed "s|$tmp/prog\$|$tmp/prog.stripped|" "$h" >"$tmp/stripped.heap"
    grep -q 'prog\.stripped$' "$tmp/stripped.heap" || bad "no stripped path in the maps section"
    "$tool" prof report --collapsed "$h" >"$tmp/unstripped.folded" || bad "report exited $?"
    "$tool" prof report --collapsed "$tmp/stripped.heap" >"$tmp/stripped.folded" || bad "stripped report exited $?"
    grep -q ';main;alloc_large ' "$tmp/stripped.folded" && cmp -s "$tmp/stripped.folded" "$tmp/unstripped.folded" ||
        bad "the stripped executable gives other names: $(cat "$tmp/stripped.folded")"
else
    echo "no strip: the .dynsym case is not checked"
fi

# ---- errors: one line on stderr, nothing on stdout ---------------------------------------
error() {
    local want=$1 pattern=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    if [ $rc -ne "$want" ] || [ -s "$tmp/out" ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] ||
        ! grep -qE "^numamalloc: $pattern" "$tmp/err"; then
        bad "$*: expected exit $want and one line 'numamalloc: $pattern'; got exit $rc, stdout $(wc -c <"$tmp/out") bytes, stderr: $(cat "$tmp/err")"
    else
        printf '%-60s %3d  %s\n' "${*#"$tool "}" "$rc" "$(cat "$tmp/err")"
    fi
}
echo "hello" >"$tmp/hello"
error 1 "prof: .*hello: not a heap profile" "$tool" prof report "$tmp/hello"
error 1 "prof: .*prog: not a heap profile" "$tool" prof report "$tmp/prog"
: >"$tmp/empty"
error 1 "prof: .*empty: not a heap profile" "$tool" prof report "$tmp/empty"
second=$(grep -n '^[0-9]' "$h" | sed -n 2p | cut -d: -f1)
{ head -n $((second - 1)) "$h"; sed -n "${second}p" "$h" | head -c 20; } >"$tmp/cut_line"
error 1 "prof: .*cut_line: truncated: line $second is cut short" "$tool" prof report "$tmp/cut_line"
head -n "$second" "$h" >"$tmp/cut_sites"
error 1 "prof: .*cut_sites: truncated: 2 of the 3 sites" "$tool" prof report "$tmp/cut_sites"
sed '/^MAPPED_LIBRARIES:/,$d' "$h" | grep -v '^# sites' >"$tmp/no_maps"
error 1 "prof: .*no_maps: no MAPPED_LIBRARIES section" "$tool" prof report "$tmp/no_maps"
{ sed '/^MAPPED_LIBRARIES:/,$d' "$h"; printf 'MAPPED_LIBRARIES:\nnot maps\n'; } >"$tmp/bad_maps"
error 1 "prof: .*bad_maps: the MAPPED_LIBRARIES section holds no /proc/PID/maps line" "$tool" prof report "$tmp/bad_maps"
sed 's/^# numamalloc heap profile 1$/# numamalloc heap profile 2/' "$h" >"$tmp/v2"
error 1 "prof: .*v2: numamalloc heap profile version 2 \(this command reads version 1\)" "$tool" prof report "$tmp/v2"
sed '0,/^# site live_node [0-9]*:[0-9]* /s//# site live_node 1:x /' "$h" >"$tmp/bad_site"
error 1 "prof: .*bad_site: line [0-9]+: malformed '# site' line" "$tool" prof report "$tmp/bad_site"
sed '0,/^[0-9]/s/ @ 0x/ @ zz/' "$h" >"$tmp/bad_addr"
error 1 "prof: .*bad_addr: line [0-9]+: bad address" "$tool" prof report "$tmp/bad_addr"
sed '1s/heap_v2/heap/' "$h" >"$tmp/v1"
error 1 "prof: .*v1: line 1: not a heap_v2 profile header" "$tool" prof report "$tmp/v1"
error 1 "prof: .*missing.heap: No such file" "$tool" prof report "$tmp/missing.heap"
error 1 "prof: cannot write $tmp/nodir/x.svg" "$tool" prof report "$h" --svg="$tmp/nodir/x.svg"
error 2 "prof report: unknown option '--bogus'" "$tool" prof report --bogus "$h"
error 2 "prof report: no profile file given" "$tool" prof report
error 2 "prof report: give one profile file, not 2" "$tool" prof report "$h" "$h"
error 2 "prof: --top=0: not a number" "$tool" prof report --top=0 "$h"
error 2 "prof: --sample=lots: not a size" "$tool" prof --sample=lots -- true
error 2 "prof: no program given" "$tool" prof
error 2 "prof: unknown option '--bogus'" "$tool" prof --bogus -- true
error 2 "prof: --collapsed is for prof report FILE" "$tool" prof --collapsed -- true
error 127 "$tmp/nothing: No such file" "$tool" prof -- "$tmp/nothing"

# A profile whose maps name a FIFO, or a file replaced since: no wait on
# the FIFO (it blocked in open), and no names from the file now there.
mkfifo "$tmp/maps_fifo"
printf 'heap profile: 1: 100 [ 1: 100] @ heap_v2/1\n1: 100 [ 1: 100] @ 0x401010\n\nMAPPED_LIBRARIES:\n00400000-00500000 r-xp 00000000 00:00 0 %s\n' \
    "$tmp/maps_fifo" >"$tmp/fifo.heap"
timeout 10 "$tool" prof report --collapsed "$tmp/fifo.heap" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 0 ] && grep -q '^maps_fifo+0x100f 100$' "$tmp/out" ||
    bad "a profile naming a FIFO: exit $rc (124: it hung), $(head -c 200 "$tmp/out")"
printf 'heap profile: 1: 100 [ 1: 100] @ heap_v2/1\n1: 100 [ 1: 100] @ 0x401010\n\nMAPPED_LIBRARIES:\n00400000-00500000 r-xp 00000000 00:00 0 %s (deleted)\n' \
    "$tool" >"$tmp/deleted.heap"
"$tool" prof report --collapsed "$tmp/deleted.heap" >"$tmp/out" 2>"$tmp/err"
grep -q '^numamalloc+0x100f 100$' "$tmp/out" ||
    bad "a deleted file's address is not given as FILE+0xOFFSET: $(head -c 200 "$tmp/out")"

# ---- help --------------------------------------------------------------------------------------
for args in "prof --help" "help prof" "prof report --help"; do
    # shellcheck disable=SC2086
    "$tool" $args >"$tmp/help" 2>"$tmp/err"; rc=$?
    [ $rc -eq 0 ] && grep -q 'numamalloc prof report FILE' "$tmp/help" && [ ! -s "$tmp/err" ] ||
        bad "numamalloc $args: exit $rc, $(head -c 200 "$tmp/help")"
done
"$tool" --help | grep -q '^  prof ' || bad "numamalloc --help does not list prof"

[ $fail -eq 0 ] && echo "PASS (profile from $source)"
exit $fail
