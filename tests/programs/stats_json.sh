#!/usr/bin/env bash
# Statistics as JSON, checked with python's json module against what the
# program knows (tests/programs/data/stats_json.c: ten 3 MiB blocks live,
# then freed):
#   - nm_stats_json: its pid, command and rank (SLURM_PROCID, and Open MPI's
#     variable first when both are set), ten more large blocks live and
#     then ten fewer, ten large frees, at least 30 MiB more in use and a
#     peak in use at least that, the process's RSS at least 30 MiB while they
#     live and its page faults; the snprintf contract (checked in the
#     program);
#   - blocks in use: with 1000 blocks of 40 bytes and 300 of 3000 live, the
#     classes serving them count at least that many blocks in use, their
#     bytes at least count x size, exactly blocks x block size and no more
#     than their pages hold, and the nodes' in_blocks at least all of that;
#     after the frees each class counts at least that many fewer; the large
#     entry counts the ten 3 MiB blocks while they live;
#   - NUMAMALLOC_STATS=json prints the same object at exit on stderr, and
#     nothing else there;
#   - NUMAMALLOC_STATS_FILE=DIR/s.%p.%r.json writes it to that file (the
#     pid and rank put in); a file that cannot be written: one warning line,
#     the statistics on stderr;
#   - NUMAMALLOC_STATS=1 with a file: the table goes to the file;
#   - a symbolic link in the file's place is not followed, a set-user-ID
#     program run by another user writes no file, and a command name that
#     is not UTF-8 still gives valid JSON;
#   - NUMAMALLOC_STATS_INTERVAL=300ms (or stats_interval:300ms in
#     NUMAMALLOC_CONF): a program that sleeps 1.2 s without allocating
#     writes at least 3 objects, one per line, each valid JSON with its pid
#     and a later time_ms than the one before, to the file (appended; with
#     NUMAMALLOC_STATS=json the one at exit comes last) or to stderr;
#     interval 0 writes none; a program that forks gets lines from parent
#     and child, each in its own %p file, and ends.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${NM_BUILD:-$root/build}
lib=${NM_LIB:-$build/libnumamalloc.so}
command -v python3 >/dev/null || { echo "python3 not installed (make deps)"; exit 77; }
command -v cc >/dev/null || { echo "no C compiler"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

cc -std=gnu11 -Wall -Wextra -Werror -O1 -I"$root/include" "$root/tests/programs/data/stats_json.c" \
    -o "$tmp/prog" -L"$(dirname "$lib")" -lnumamalloc -Wl,-rpath,"$(dirname "$lib")" ||
    { echo "cannot build tests/programs/data/stats_json.c"; exit 1; }

SLURM_PROCID=5 "$tmp/prog" >"$tmp/out" 2>"$tmp/err" || bad "the program failed: $(cat "$tmp/err")"
python3 - "$tmp/out" "$tmp/prog" 5 <<'PY' || fail=1
import json, sys
lines = open(sys.argv[1]).read().splitlines()
pid = int(lines[0])
live, freed = (json.loads(l) for l in lines[1:3])
errors = []
def check(cond, what):
    if not cond: errors.append(what)
MiB = 1 << 20
for name, s in (("live", live), ("freed", freed)):
    check(s["pid"] == pid, "%s: pid %r, the program's is %d" % (name, s["pid"], pid))
    check(s["command"] == sys.argv[2], "%s: command %r" % (name, s["command"]))
    check(s["rank"] == int(sys.argv[3]), "%s: rank %r" % (name, s["rank"]))
    check(s["numamalloc"].count(".") == 2, "%s: version %r" % (name, s["numamalloc"]))
    for key in ("rss", "peak_rss", "minor_faults", "major_faults"):
        check(isinstance(s["process"][key], int), "%s: process.%s %r" % (name, key, s["process"].get(key)))
    check(s["process"]["peak_rss"] >= s["process"]["rss"] > 0, "%s: rss %r" % (name, s["process"]))
    for n in s["nodes"]:
        check(n["peak_in_use"] >= n["in_use"], "%s: node %d in_use %d above its peak %d" % (name, n["node"], n["in_use"], n["peak_in_use"]))
        check(n["mapped"] >= n["committed"], "%s: node %d committed above mapped" % (name, n["node"]))
    for c in s["classes"]:
        check(c["page_bytes"] in (c["pages"] << 16, c["pages"] << 19), "%s: class %r" % (name, c))
def total(s, key): return sum(n[key] for n in s["nodes"])
check(total(live, "large_blocks") - total(freed, "large_blocks") == 10,
      "large blocks %d live, %d after the frees: not 10 fewer" % (total(live, "large_blocks"), total(freed, "large_blocks")))
check(freed["events"]["large_frees"] - live["events"]["large_frees"] == 10, "large frees %r -> %r" % (live["events"], freed["events"]))
check(live["events"]["large_allocs"] >= 10, "large allocs %d" % live["events"]["large_allocs"])
check(total(live, "in_use") - total(freed, "in_use") >= 30 * MiB, "in use %d -> %d" % (total(live, "in_use"), total(freed, "in_use")))
check(total(freed, "peak_in_use") >= 30 * MiB, "peak in use %d" % total(freed, "peak_in_use"))
check(live["process"]["rss"] >= 30 * MiB, "rss %d with 30 MiB written" % live["process"]["rss"])
check(live["process"]["minor_faults"] >= 30 * MiB // (2 * MiB), "minor faults %d" % live["process"]["minor_faults"])
# Blocks in use, counted page by page when the statistics are taken.
check(live["large"]["blocks_in_use"] - freed["large"]["blocks_in_use"] == 10, "large %r -> %r" % (live["large"], freed["large"]))
check(live["large"]["bytes_in_use"] - freed["large"]["bytes_in_use"] >= 30 * MiB, "large bytes %r -> %r" % (live["large"], freed["large"]))
small_live, small_freed = (json.loads(l) for l in lines[3:5])
def serving(s, size):   # the smallest class listed that holds `size`: the one serving it
    return min((c for c in s["classes"] if c["block_size"] >= size), key=lambda c: c["block_size"])
ours = 0
for count, size in ((1000, 40), (300, 3000)):
    c, after = serving(small_live, size), serving(small_freed, size)
    check(after["block_size"] == c["block_size"], "%d-byte blocks: class %d, then %d" % (size, c["block_size"], after["block_size"]))
    check(c["blocks_in_use"] >= count, "%d blocks of %d bytes live: class %r" % (count, size, c))
    check(c["bytes_in_use"] == c["blocks_in_use"] * c["block_size"], "class %r: bytes are not blocks x size" % c)
    check(c["bytes_in_use"] >= count * size, "%d blocks of %d bytes live: class %r" % (count, size, c))
    check(c["bytes_in_use"] <= c["page_bytes"], "class %r: more bytes in use than its pages hold" % c)
    check(c["blocks_in_use"] - after["blocks_in_use"] >= count, "%d blocks of %d bytes freed: %r -> %r" % (count, size, c, after))
    ours += c["bytes_in_use"]
check(small_live["blocks_counted"] is True and small_live["heaps_skipped"] == 0, "blocks not all counted: %r %r" % (small_live["blocks_counted"], small_live["heaps_skipped"]))
check(total(small_live, "in_blocks") >= ours, "nodes' in_blocks %d, classes hold %d" % (total(small_live, "in_blocks"), ours))
check(total(live, "in_blocks") - total(freed, "in_blocks") >= 30 * MiB, "in_blocks %d -> %d with 30 MiB freed" % (total(live, "in_blocks"), total(freed, "in_blocks")))
for e in errors: print("FAIL:", e)
sys.exit(1 if errors else 0)
PY

# Open MPI's variable is asked first.
OMPI_COMM_WORLD_RANK=2 SLURM_PROCID=5 "$tmp/prog" >"$tmp/out" 2>/dev/null
python3 -c 'import json,sys; sys.exit(json.loads(open(sys.argv[1]).read().splitlines()[1])["rank"] != 2)' "$tmp/out" ||
    bad "OMPI_COMM_WORLD_RANK=2 SLURM_PROCID=5: rank is not 2"
"$tmp/prog" >"$tmp/out" 2>/dev/null
python3 -c 'import json,sys; sys.exit(json.loads(open(sys.argv[1]).read().splitlines()[1])["rank"] is not None)' "$tmp/out" ||
    bad "no rank variable: rank is not null"

# At exit, on stderr: one object and nothing else.
NUMAMALLOC_STATS=json "$tmp/prog" >/dev/null 2>"$tmp/err" || bad "NUMAMALLOC_STATS=json: the program failed"
python3 - "$tmp/err" <<'PY' || bad "NUMAMALLOC_STATS=json: stderr is not one statistics object"
import json, sys
text = open(sys.argv[1]).read()
s = json.loads(text)
sys.exit(0 if text.count("\n") == 1 and s["events"]["large_frees"] >= 10 else 1)
PY

# To a file, with the pid and rank in its name.
SLURM_PROCID=7 NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE="$tmp/s.%p.%r.json" "$tmp/prog" >"$tmp/out" 2>"$tmp/err"
pid=$(head -n 1 "$tmp/out")
[ -s "$tmp/err" ] && bad "NUMAMALLOC_STATS_FILE: stderr not empty: $(cat "$tmp/err")"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(s["pid"] != int(sys.argv[2]) or s["rank"] != 7)' \
    "$tmp/s.$pid.7.json" "$pid" || bad "NUMAMALLOC_STATS_FILE: no object for pid $pid and rank 7 in $tmp/s.$pid.7.json"
NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE="$tmp/none/s.json" "$tmp/prog" >/dev/null 2>"$tmp/err"
head -n 1 "$tmp/err" | grep -qx "numamalloc: cannot write NUMAMALLOC_STATS_FILE='$tmp/none/s.json': statistics go to stderr" &&
    tail -n 1 "$tmp/err" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' ||
    bad "an unwritable NUMAMALLOC_STATS_FILE: $(cat "$tmp/err")"
# A symbolic link in the file's place is not followed (its target stays
# as it was); the statistics go to stderr.
echo keep >"$tmp/target"
ln -s "$tmp/target" "$tmp/link.json"
NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE="$tmp/link.json" "$tmp/prog" >/dev/null 2>"$tmp/err"
[ "$(cat "$tmp/target")" = keep ] && tail -n 1 "$tmp/err" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' ||
    bad "NUMAMALLOC_STATS_FILE naming a symbolic link: target now '$(head -c 80 "$tmp/target")', stderr $(head -c 200 "$tmp/err")"
# A set-user-ID program run by another user (secure execution) creates no
# file the environment names (when we are root and can run as nobody).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    chmod 755 "$tmp" && cp "$tmp/prog" "$tmp/suid-prog" && chmod 4755 "$tmp/suid-prog"
    setpriv --reuid=65534 --regid=65534 --clear-groups env NUMAMALLOC_STATS=json \
        NUMAMALLOC_STATS_FILE=/tmp/nm-suid-stats.$$.json "$tmp/suid-prog" >/dev/null 2>"$tmp/err"
    if [ -e /tmp/nm-suid-stats.$$.json ]; then
        bad "a set-user-ID program wrote NUMAMALLOC_STATS_FILE"; rm -f /tmp/nm-suid-stats.$$.json
    fi
    tail -n 1 "$tmp/err" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' ||
        bad "a set-user-ID program: no statistics on stderr: $(head -c 200 "$tmp/err")"
fi
# A command name that is not UTF-8 (any bytes may name a file) still gives
# valid JSON, the name's valid characters kept.
weird=$tmp/$'prog-\xff\x01-\xc3\xa9'
cp "$tmp/prog" "$weird"
"$weird" >"$tmp/out" 2>/dev/null
python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read().splitlines()[1]); sys.exit(not s["command"].endswith("prog-\u00ff\u0001-\u00e9"))' "$tmp/out" ||
    bad "a command name that is not UTF-8: $(sed -n 2p "$tmp/out" | head -c 300)"
NUMAMALLOC_STATS=1 NUMAMALLOC_STATS_FILE="$tmp/table.%%.txt" "$tmp/prog" >/dev/null 2>"$tmp/err"
grep -q '^numamalloc statistics$' "$tmp/table.%.txt" && [ ! -s "$tmp/err" ] ||
    bad "NUMAMALLOC_STATS=1 with a file: no table in $tmp/table.%.txt"

# Every interval, while the program sleeps.
cc -std=gnu11 -Wall -Wextra -Werror -O1 "$root/tests/programs/data/stats_interval.c" -o "$tmp/sleeper" -Wl,--no-as-needed \
    -L"$(dirname "$lib")" -lnumamalloc -Wl,-rpath,"$(dirname "$lib")" -pthread ||
    { echo "cannot build tests/programs/data/stats_interval.c"; exit 1; }
# lines FILE PID MIN: FILE holds at least MIN JSON objects, one per line,
# of process PID, none earlier than the one before (two may fall in the
# same millisecond: the last dump and the exit's).
lines() {
    python3 - "$@" <<'PY'
import json, sys
path, pid, least = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
text = open(path).read()
objects = [json.loads(l) for l in text.splitlines()]
times = [o["time_ms"] for o in objects]
ok = (len(objects) >= least and text.endswith("\n") and all(o["pid"] == pid for o in objects)
      and all(a <= b for a, b in zip(times, times[1:])))
if not ok: print("%s: %d objects, pids %s, times %s" % (path, len(objects), [o["pid"] for o in objects], times))
sys.exit(0 if ok else 1)
PY
}
NUMAMALLOC_STATS_INTERVAL=300ms NUMAMALLOC_STATS_FILE="$tmp/every.%p.jsonl" timeout 20 "$tmp/sleeper" 1200 >"$tmp/out" 2>"$tmp/err" ||
    bad "NUMAMALLOC_STATS_INTERVAL=300ms: the program failed or hung: $(cat "$tmp/err")"
pid=$(head -n 1 "$tmp/out")
lines "$tmp/every.$pid.jsonl" "$pid" 3 || bad "NUMAMALLOC_STATS_INTERVAL=300ms over 1.2 s: not 3 JSON lines in the file"
[ -s "$tmp/err" ] && bad "NUMAMALLOC_STATS_INTERVAL with a file: stderr not empty: $(head -c 300 "$tmp/err")"
NUMAMALLOC_CONF=stats_interval:300ms timeout 20 "$tmp/sleeper" 1200 >"$tmp/out" 2>"$tmp/err"
lines "$tmp/err" "$(head -n 1 "$tmp/out")" 3 || bad "NUMAMALLOC_CONF=stats_interval:300ms: not 3 JSON lines on stderr"
NUMAMALLOC_STATS=json NUMAMALLOC_STATS_INTERVAL=300ms NUMAMALLOC_STATS_FILE="$tmp/both.jsonl" timeout 20 "$tmp/sleeper" 1200 >"$tmp/out" 2>"$tmp/err"
lines "$tmp/both.jsonl" "$(head -n 1 "$tmp/out")" 4 || bad "NUMAMALLOC_STATS=json with an interval: not the dumps and the one at exit, appended"
NUMAMALLOC_STATS_INTERVAL=0 NUMAMALLOC_STATS_FILE="$tmp/none.%p.jsonl" timeout 20 "$tmp/sleeper" 1200 >"$tmp/out" 2>"$tmp/err"
ls "$tmp"/none.* >/dev/null 2>&1 && bad "NUMAMALLOC_STATS_INTERVAL=0 wrote $(ls "$tmp"/none.*)"
[ -s "$tmp/err" ] && bad "NUMAMALLOC_STATS_INTERVAL=0: stderr not empty: $(head -c 300 "$tmp/err")"
NUMAMALLOC_STATS_INTERVAL=300ms NUMAMALLOC_STATS_FILE="$tmp/fork.%p.jsonl" timeout 20 "$tmp/sleeper" 1200 fork >"$tmp/out" 2>"$tmp/err" ||
    bad "NUMAMALLOC_STATS_INTERVAL with a fork: the program failed or hung (status $?)"
[ "$(wc -l <"$tmp/out")" = 2 ] || bad "the forking program printed $(wc -l <"$tmp/out") pids"
while read -r pid; do
    lines "$tmp/fork.$pid.jsonl" "$pid" 3 || bad "NUMAMALLOC_STATS_INTERVAL with a fork: process $pid"
done <"$tmp/out"

# The pace holds in a program with one thread: 100 ms over 1.2 s is 11 or
# 12 dumps (a check for the program's end before each once took 200 ms).
NUMAMALLOC_STATS_INTERVAL=100ms NUMAMALLOC_STATS_FILE="$tmp/pace.%p.jsonl" timeout 20 "$tmp/sleeper" 1200 >"$tmp/out" 2>"$tmp/err"
lines "$tmp/pace.$(head -n 1 "$tmp/out").jsonl" "$(head -n 1 "$tmp/out")" 9 ||
    bad "NUMAMALLOC_STATS_INTERVAL=100ms over 1.2 s: fewer than 9 dumps"
# A program whose first thread ends with pthread_exit while a thread that
# never allocates sleeps 300 ms ends then, not at the next dump (30 s).
start=$(date +%s%N)
NUMAMALLOC_STATS_INTERVAL=30s NUMAMALLOC_STATS_FILE="$tmp/pexit.jsonl" timeout 20 "$tmp/sleeper" 300 pexit >"$tmp/out" 2>"$tmp/err"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed" -lt 3000 ] || bad "NUMAMALLOC_STATS_INTERVAL=30s: a program whose threads all ended took $elapsed ms to end"
# A relative file stays the one of the start directory when the program
# changes directory: every dump in it, none in the new one.
mkdir -p "$tmp/cwd/sub"
(cd "$tmp/cwd" && NUMAMALLOC_STATS_INTERVAL=200ms NUMAMALLOC_STATS_FILE=rel.jsonl timeout 20 "$tmp/sleeper" 1200 chdir sub >"$tmp/out" 2>"$tmp/err")
lines "$tmp/cwd/rel.jsonl" "$(head -n 1 "$tmp/out")" 5 && [ ! -e "$tmp/cwd/sub/rel.jsonl" ] ||
    bad "a relative NUMAMALLOC_STATS_FILE after chdir: $(wc -l <"$tmp/cwd/rel.jsonl" 2>/dev/null) lines in the first, $(wc -l <"$tmp/cwd/sub/rel.jsonl" 2>/dev/null) in the new directory"

[ $fail = 0 ] && echo "statistics as JSON: the program's numbers, at exit, to a file, every interval"
exit $fail
