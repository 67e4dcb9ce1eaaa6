#!/usr/bin/env bash
# bench/programs.sh: real programs from Debian packages as workloads of
# bench/run.sh, each run under the allocator named by BENCH_PRELOAD (the
# library to preload; empty for glibc), which this script applies to the
# process measured only -- the redis server (not redis-benchmark), the
# compiler (gcc's driver and cc1, or clang), sqlite3, python3.
#
#   bench/programs.sh program=NAME mode=tiny|quick|full
#   bench/programs.sh program=NAME check=1     exit 0 if it can run, else
#                                              77 with the reason (the apt-get command)
#
# Programs:
#   redis       redis-server under redis-benchmark on 127.0.0.1 (a random
#               port): a fixed number of requests of 9 kinds (sets, gets,
#               lists, sets, hashes, sorted sets, LRANGE), 20 clients, 4
#               requests pipelined; seconds for them all, requests per second
#   redis_idle  redis-server loaded with DEBUG POPULATE (small and 4 KiB
#               values), then FLUSHALL, then left idle for numamalloc's
#               purge delay (read from src/options.c) + 1 s without a
#               request; its RSS when fresh, loaded, and at the end of the
#               idle time (VmRSS, sampled from /proc every 100 ms)
#   sqlite      sqlite3 on an in-memory database: 100000 rows inserted,
#               two indexes, a GROUP BY into a new table, a join, an UPDATE,
#               a DELETE, sorted queries
#   python      python3 building and sorting lists, dicts and strings
#   gcc, clang  the compiler at -O2 on a generated C file (many functions
#               with loops, switches and structs)
#
# Each prints one RESULT line like the C programs (bench/bench.h):
# the metrics, peak_rss_kb (the measured process's VmHWM, or for a short
# program its maximum RSS from wait4), malloc_from (the library the
# program's calls to malloc were bound to, from the dynamic loader's own
# log, LD_DEBUG=bindings: so a preload that did not take is caught),
# checksum and check=ok|fail.
#
# Self-checks: redis: a key written before the load must read back the
# same after it, the key counts must be what was written, and the server
# must exit 0 when stopped; sqlite: the counts and sums of the queries
# must equal the ones computed here independently (awk); python: the
# script checks its own results (sorted orders, sums, lookups); gcc and
# clang: the object compiled under the allocator is linked (without it)
# and run, and must print the value computed here independently (awk).
#
# A redis-server uses jemalloc when Debian built it so; for the glibc row
# this script preloads libc itself, so that glibc's malloc serves it.
set -u
unset LD_PRELOAD
root=$(cd "${0%/*}/.." && pwd)

program="" mode=quick check=0
for arg in "$@"; do
    case "$arg" in
        program=*) program="${arg#program=}" ;;
        mode=*) mode="${arg#mode=}" ;;
        check=*) check="${arg#check=}" ;;
        *) echo "programs.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done
case "$mode" in tiny|quick|full) ;; *) echo "programs.sh: mode must be tiny, quick or full" >&2; exit 2 ;; esac

# ---- what each program needs: commands, and the package that has them -----
declare -A needs=(
    [redis]="redis-server:redis-server redis-benchmark:redis-tools redis-cli:redis-tools"
    [redis_idle]="redis-server:redis-server redis-cli:redis-tools"
    [sqlite]="sqlite3:sqlite3"
    [python]="python3:python3"
    [gcc]="gcc:gcc"
    [clang]="clang:clang"
)
[ -n "${needs[$program]:-}" ] || { echo "programs.sh: program must be one of: ${!needs[*]}" >&2; exit 2; }
missing_pkgs=""
for pair in ${needs[$program]} time:time; do
    cmd="${pair%%:*}" pkg="${pair#*:}"
    case "$cmd" in
        python3) path=/usr/bin/python3 ;;   # the system's, not a version manager's shim
        time) path=/usr/bin/time ;;         # GNU time, for the child's maximum RSS
        *) path=$(command -v "$cmd" 2>/dev/null) ;;
    esac
    if [ -z "$path" ] || [ ! -x "$path" ]; then
        [[ " $missing_pkgs " == *" $pkg "* ]] || missing_pkgs+="${missing_pkgs:+ }$pkg"
    fi
done
if [ -n "$missing_pkgs" ]; then
    echo "skipped: not installed: \`sudo apt-get install $missing_pkgs\` (or \`make bench-deps\`)"
    exit 77
fi
[ "$check" = 1 ] && { echo ok; exit 0; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-programs.XXXXXX") || exit 1
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

check_ok=1
fail() { echo "programs.sh: $program: $*" >&2; check_ok=0; }

# The environment of the measured process: the preload, and the loader's
# log of symbol bindings (to tell which library malloc came from).
preload="${BENCH_PRELOAD:-}"
measured_env=(LD_DEBUG=bindings LD_DEBUG_OUTPUT="$work/ld")
[ -n "$preload" ] && measured_env+=(LD_PRELOAD="$preload")

# The library the measured processes' malloc calls were bound to (base
# name), from the loader's log; an executable's own PLT entry is skipped.
malloc_from() {
    local libs
    libs=$(cat "$work"/ld.* 2>/dev/null |
        sed -n "s/.* to \([^ ]*\) \[[0-9]*\]: normal symbol \`malloc'.*/\1/p" |
        grep '\.so' | sed 's,.*/,,' | sort -u | tr '\n' '+')
    libs="${libs%+}"
    echo "${libs:-unknown}"
}

now() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }   # microseconds
seconds_since() { local d=$(( $(now) - $1 )); printf '%d.%06d' $((d / 1000000)) $((d % 1000000)); }

# VmHWM or VmRSS of a process, in KiB.
proc_kb() { awk -v key="$2:" '$1 == key { print $2; exit }' "/proc/$1/status" 2>/dev/null; }
kb_to_mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

result() {   # result METRICS... : prints the RESULT line (peak_kb, checksum set by the caller)
    echo "RESULT bench=$program $* peak_rss_kb=${peak_kb:-0} malloc_from=$(malloc_from) checksum=${checksum:-0} check=$([ $check_ok = 1 ] && echo ok || echo fail)"
}

# ---- redis -------------------------------------------------------------------
redis_cli() { timeout 30 redis-cli -p "$port" "$@"; }

# Starts redis-server (the measured process) on a free port; sets
# server_pid and port.  Extra arguments go to the server.
start_redis() {
    local try libc
    local env=("${measured_env[@]}")
    if [ -z "$preload" ]; then
        # Debian's redis-server is linked with jemalloc: preload libc so
        # that glibc's malloc is the one it calls
        libc=$(ldd /bin/true | awk '/libc\.so\.6/ { print $3 }')
        env+=(LD_PRELOAD="$libc")
    fi
    for try in 1 2 3 4 5; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        env "${env[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$work" --logfile "$work/redis.log" --daemonize no "$@" &
        server_pid=$!
        local i
        for ((i = 0; i < 200; i++)); do
            kill -0 "$server_pid" 2>/dev/null || break
            [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
            sleep 0.02
        done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=""
        grep -q 'Address already in use' "$work/redis.log" 2>/dev/null || break
    done
    fail "redis-server did not start (log: $(tail -n 2 "$work/redis.log" 2>/dev/null | tr '\n' ' '))"
    return 1
}

# Stops the server by its PID; it must exit 0.
stop_redis() {
    local rc
    kill -TERM "$server_pid"
    wait "$server_pid"
    rc=$?
    server_pid=""
    [ $rc -eq 0 ] || fail "redis-server exited with status $rc"
}

run_redis() {
    local n
    case "$mode" in tiny) n=2000 ;; quick) n=20000 ;; full) n=200000 ;; esac
    start_redis || { result; exit 1; }
    local marker="check-$RANDOM-$$"
    [ "$(redis_cli set bench:check "$marker")" = OK ] || fail "SET failed"
    local start; start=$(now)
    timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -q -n "$n" -c 20 -P 4 -r 10000 -d 64 \
        -t set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100 --csv >"$work/bench.csv" 2>"$work/bench.err" ||
        fail "redis-benchmark failed: $(tail -n 1 "$work/bench.err")"
    local seconds; seconds=$(seconds_since "$start")
    [ "$(redis_cli get bench:check)" = "$marker" ] || fail "the key written before the load reads back wrong"
    local keys; keys=$(redis_cli dbsize)
    [[ "$keys" =~ ^[0-9]+$ ]] && [ "$keys" -gt 1 ] || fail "DBSIZE after the load is '$keys'"
    local kinds; kinds=$(grep -c '^"' "$work/bench.csv")
    [ "$kinds" -ge 9 ] || fail "redis-benchmark reported $kinds tests, not 9"
    peak_kb=$(proc_kb "$server_pid" VmHWM)
    checksum=$keys
    stop_redis
    result "seconds=$seconds kreq_per_s=$(awk -v n="$n" -v s="$seconds" -v k="$kinds" 'BEGIN { printf "%.1f", n * k / s / 1000 }')"
}

run_redis_idle() {
    local small big idle_ms delay
    case "$mode" in tiny) small=5000 big=500 ;; quick) small=150000 big=15000 ;; full) small=600000 big=60000 ;; esac
    delay=$(sed -n 's/^ *\.purge_delay_ms *= *\([0-9]*\),.*/\1/p' "$root/src/options.c" 2>/dev/null | head -n 1)
    [ -n "$delay" ] || delay=1000
    idle_ms=$((delay + 1000))
    [ "$mode" = tiny ] && idle_ms=200
    start_redis --enable-debug-command local || { result; exit 1; }
    local empty loaded after keys t start
    empty=$(proc_kb "$server_pid" VmRSS)
    [ "$(redis_cli debug populate "$small" small 200)" = OK ] || fail "DEBUG POPULATE failed"
    [ "$(redis_cli debug populate "$big" big 4096)" = OK ] || fail "DEBUG POPULATE failed"
    keys=$(redis_cli dbsize)
    [ "$keys" = $((small + big)) ] || fail "DBSIZE after DEBUG POPULATE is '$keys', not $((small + big))"
    loaded=$(proc_kb "$server_pid" VmRSS)
    [ "$(redis_cli flushall)" = OK ] || fail "FLUSHALL failed"
    keys=$(redis_cli dbsize)
    [ "$keys" = 0 ] || fail "DBSIZE after FLUSHALL is '$keys'"
    # idle: no request, only /proc read from here
    start=$(now)
    while :; do
        t=$(( ($(now) - start) / 1000 ))
        after=$(proc_kb "$server_pid" VmRSS)
        echo "TRACE ms=$t rss_mib=$(kb_to_mib "$after")"
        [ "$t" -ge "$idle_ms" ] && break
        sleep 0.1
    done
    peak_kb=$(proc_kb "$server_pid" VmHWM)
    checksum=$((small + big))
    stop_redis
    result "rss_after_flush_mib=$(kb_to_mib "$after") rss_loaded_mib=$(kb_to_mib "$loaded")" \
        "rss_empty_start_mib=$(kb_to_mib "$empty") idle_ms=$idle_ms"
}

# ---- short programs: timed, with their maximum RSS -----------------------------
# measure OUT COMMAND...: runs the command (under the allocator) with its
# stdout to OUT; sets seconds and peak_kb; fails the run on a non-zero exit.
measure() {
    local out="$1" start rc; shift
    start=$(now)
    /usr/bin/time -f '%M' -o "$work/maxrss" env "${measured_env[@]}" "$@" >"$out" 2>"$work/stderr"
    rc=$?
    seconds=$(seconds_since "$start")
    peak_kb=$(tail -n 1 "$work/maxrss")
    cat "$work/stderr" >&2
    [ $rc -eq 0 ] || fail "$1 exited with status $rc"
}

run_sqlite() {
    local n
    case "$mode" in tiny) n=5000 ;; quick) n=100000 ;; full) n=400000 ;; esac
    cat >"$work/script.sql" <<EOF
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, v REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $n)
INSERT INTO t SELECT i, (i * 7919) % 1009, printf('name-%09d-%s', (i * 2654435761) % 100000007, hex(i)), i * 0.5 FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);
CREATE TABLE g AS SELECT k, count(*) AS n, sum(v) AS s, group_concat(substr(name, 6, 4)) AS names FROM t GROUP BY k;
SELECT 'rows', count(*), sum(k) FROM t;
SELECT 'joined', count(*) FROM t JOIN g USING (k) WHERE g.n > 0;
UPDATE t SET name = upper(name) || '-updated' WHERE k % 3 = 0;
DELETE FROM t WHERE k % 7 = 0;
SELECT 'left', count(*), sum(k) FROM t;
SELECT 'updated', count(*) FROM t WHERE name LIKE '%-updated';
SELECT 'sorted', count(*) FROM (SELECT name FROM t ORDER BY name DESC LIMIT 1000);
SELECT 'groups', count(*), sum(n) FROM g;
EOF
    # the expected answers, computed independently
    awk -v n="$n" 'BEGIN {
        for (i = 1; i <= n; i++) { k = (i * 7919) % 1009; sum += k; seen[k] = 1
            if (k % 7 != 0) { left++; lsum += k; if (k % 3 == 0) upd++ } }
        for (k in seen) groups++
        print "rows|" n "|" sum; print "joined|" n; print "left|" left "|" lsum
        print "updated|" upd; print "sorted|" (left < 1000 ? left : 1000); print "groups|" groups "|" n
    }' >"$work/expected"
    measure "$work/out" sqlite3 :memory: ".read $work/script.sql"
    cmp -s "$work/out" "$work/expected" || fail "query results differ from the expected ones: $(diff "$work/out" "$work/expected" | head -n 3 | tr '\n' ' ')"
    checksum=$(cksum <"$work/out" | awk '{ print $1 }')
    result "seconds=$seconds"
}

run_python() {
    local n
    case "$mode" in tiny) n=20000 ;; quick) n=200000 ;; full) n=1500000 ;; esac
    cat >"$work/work.py" <<'EOF'
import sys
n = int(sys.argv[1])
# strings: build, split, join, format
words = ["w%07d_%s" % ((i * 2654435761) % 10000019, "x" * (i % 17)) for i in range(n)]
text = " ".join(words)
assert text.split(" ") == words
# dicts: build, look up, update, delete
d = {w: i for i, w in enumerate(words)}
assert len(d) == len(set(words))
for i in range(0, n, 3):
    d[words[i]] += 1
total = sum(d[w] for w in words[::7])
for i in range(0, n, 2):
    d.pop(words[i], None)
# lists of tuples: sort, group
rows = [((i * 7919) % 1009, i, words[i]) for i in range(n)]
rows.sort()
assert all(rows[i] <= rows[i + 1] for i in range(len(rows) - 1))
groups = {}
for k, i, w in rows:
    groups.setdefault(k, []).append(i)
assert sum(len(v) for v in groups.values()) == n
assert all(v == sorted(v) for v in groups.values())
# many small objects freed as they go
acc = 0
for i in range(n):
    t = (i, str(i), [i] * (i % 5))
    acc += len(t[1]) + len(t[2])
expect = sum(len(str(i)) + i % 5 for i in range(n))
assert acc == expect, (acc, expect)
print("ok", len(d), total % 1000003, acc)
EOF
    measure "$work/out" /usr/bin/python3 "$work/work.py" "$n"
    grep -q '^ok ' "$work/out" || fail "the script's checks did not pass"
    checksum=$(awk '{ print $4 }' "$work/out")
    result "seconds=$seconds"
}

run_compiler() {
    local cc="$1" n
    case "$mode" in tiny) n=20 ;; quick) n=80 ;; full) n=600 ;; esac
    # a generated C file: n functions with loops, switches and a struct;
    # main prints the sum of f_i(i + 1), which awk computes as well
    awk -v n="$n" 'BEGIN {
        print "#include <stdio.h>"
        for (f = 0; f < n; f++) {
            a = f % 13 + 2; k = f * 31 % 1000
            printf "struct s%d { long a[24]; long b; };\n", f
            printf "static long f%d(long x)\n{\n    struct s%d s;\n    long acc = %d;\n", f, f, k
            printf "    for (int j = 0; j < 24; j++)\n        s.a[j] = x * (j + %d) %% 97;\n", a
            printf "    for (int j = 0; j < 24; j++) {\n        switch ((s.a[j] + j) %% 6) {\n"
            printf "        case 0: acc += s.a[j]; break;\n        case 1: acc += s.a[j] * 3 + %d; break;\n", f % 7
            printf "        case 2: acc -= j; break;\n        case 3: acc = acc * 3 %% 1000003; break;\n"
            printf "        case 4: for (int m = 0; m < j; m++) acc += m * %d %% 5; break;\n", a
            printf "        default: acc += 7;\n        }\n    }\n    s.b = acc;\n    return s.b;\n}\n"
        }
        print "int main(void)\n{\n    long sum = 0;"
        for (f = 0; f < n; f++) printf "    sum += f%d(%d);\n", f, f + 1
        print "    printf(\"%ld\\n\", sum);\n    return 0;\n}"
    }' >"$work/gen.c"
    local expected
    expected=$(awk -v n="$n" 'function tr(v) { return v < 0 ? -int(-v) : int(v) }
        function cmod(v, m) { return v - m * tr(v / m) }
        BEGIN {
        for (f = 0; f < n; f++) {
            a = f % 13 + 2; acc = f * 31 % 1000; x = f + 1
            for (j = 0; j < 24; j++) s[j] = cmod(x * (j + a), 97)
            for (j = 0; j < 24; j++) {
                c = (s[j] + j) % 6
                if (c == 0) acc += s[j]
                else if (c == 1) acc += s[j] * 3 + f % 7
                else if (c == 2) acc -= j
                else if (c == 3) acc = cmod(acc * 3, 1000003)
                else if (c == 4) { for (m = 0; m < j; m++) acc += cmod(m * a, 5) }
                else acc += 7
            }
            sum += acc
        }
        printf "%d\n", sum }')
    measure "$work/cc.out" "$cc" -O2 -c "$work/gen.c" -o "$work/gen.o"
    if [ $check_ok = 1 ]; then
        "$cc" "$work/gen.o" -o "$work/gen" && "$work/gen" >"$work/gen.out" ||
            fail "linking or running the compiled program failed"
        [ "$(cat "$work/gen.out")" = "$expected" ] ||
            fail "the compiled program printed $(cat "$work/gen.out"), not $expected"
    fi
    checksum=$expected
    result "seconds=$seconds"
}

case "$program" in
    redis) run_redis ;;
    redis_idle) run_redis_idle ;;
    sqlite) run_sqlite ;;
    python) run_python ;;
    gcc|clang) run_compiler "$program" ;;
esac
[ $check_ok = 1 ]
