#!/usr/bin/env bash
# bench/run.sh (`make bench`): runs the benchmark programs in bench/ against
# glibc, numamalloc and every peer allocator installed, and writes
# bench/results/results.md (tables), runs.csv (every run) and PNG plots.
#
# Each workload is one program, built once; every allocator runs that same
# binary, through LD_PRELOAD (glibc: no preload).  Runs interleave the
# allocators (A B C A B C ...) and repeat; a run counts only if it exits 0,
# prints its RESULT line with check=ok, and its malloc really came from the
# allocator's library.  Anything else is shown as FAIL, never as a number.
#
# Environment:
#   BENCH=quick|full|tiny     size of the runs (default quick; tiny = seconds, for the harness test)
#   BENCH_REPEATS=3           runs per allocator and configuration
#   BENCH_THREADS="1 2 4"     thread counts (default: powers of two up to twice the CPUs)
#   BENCH_ALLOCATORS="glibc numamalloc jemalloc mimalloc tcmalloc tbbmalloc"
#   BENCH_WORKLOADS="..."     a subset of the workloads below (default all)
#   BENCH_OUT=bench/results   where results go (logs in BENCH_OUT/tmp)
#   BENCH_EXTRA_ALLOCATORS="name=/path/lib.so ..."   more allocators to preload
#   NM_LIB=build/libnumamalloc.so, CC=cc, BENCH_CFLAGS="-O2 -g"
#
#   bench/run.sh --list        the workloads: name, whether it takes threads, its
#                              optional metrics (or -), and the allocators that run it
#   bench/run.sh --allocators  the allocators: name, found|missing, library or apt package
#   bench/run.sh --build       only build the programs (into build/bench/)
#
# Exit status: 0 when every run passed, 1 when a run failed or the build did
# (the report is written either way), 2 for a bad setting.
set -u
unset LD_PRELOAD   # the harness itself runs on the system malloc

root=$(cd "$(dirname "$0")/.." && pwd)
bench_dir="$root/bench"

# ---- the workloads ---------------------------------------------------------
# Adding a workload: one C file in bench/ (it prints one RESULT line, see
# bench/bench.h) and one line here.  A program that is a shell script
# (bench/NAME.sh, no NAME.c) runs a real program: it gets the library to
# preload in BENCH_PRELOAD (empty for glibc) and applies it to the process
# it measures; with check=1 it exits 0 if it can run, else 77 with the
# reason (the apt-get command), and the workload is skipped.
#   name | program | arguments (- for none) | takes threads= (yes/no) |
#   metrics shown, key:better:unit[:optional] (comma-separated) | what it measures
#   [| the only allocators it runs for, when it measures an API of theirs]
# An optional metric may be a word instead of a number where the machine
# cannot measure it: "unsupported" (no such hardware counter) or "one_node"
# (needs two NUMA nodes); the report says so instead of showing a number.
workload_table=(
  "alloc_batch | alloc_pairs | pattern=batch | yes | ns_per_pair:lower:ns | malloc+free pairs, 16 B - 2 KiB, each thread allocating a window of 256 blocks, then freeing it shuffled"
  "alloc_pair  | alloc_pairs | pattern=pair  | yes | ns_per_pair:lower:ns | malloc+free pairs, 16 B - 2 KiB, one block at a time (the fast path alone)"
  "prodcons    | prodcons    | -             | yes | mops_per_s:higher:Mops/s | blocks of 16 B - 1 KiB allocated by a producer thread, freed by a consumer thread (threads = pairs)"
  "server_mix  | server_mix  | -             | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | a server-like mix (larson-style): each thread replaces blocks of 8 B - 64 KiB, short- and long-lived, in an array it inherited from the thread before it; every round a new thread takes over (threads = arrays worked on at once); Mops/s = free+malloc operations"
  "larson      | larson      | -             | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | larson: worker threads each own 1000 slots of 16 - 1000 B blocks (filled by the main thread), replace a random one at a time, and after 10000 replacements hand their slots to a new thread and exit; Mops/s = free+malloc operations"
  "rptest      | rptest      | -             | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | rptest-style: threads allocate 16 B - 64 KiB (skewed small) and free at their own random rates, publishing blocks into other threads' inboxes, which free them (about half the frees remote); Mops/s = blocks allocated and freed"
  "mstress     | mstress     | -             | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | mstress-style bursts: rounds of 2000 blocks of 16 B - 2 MiB, every page written, 1 in 8 kept (in a per-thread ring or a ring shared by all threads), the rest freed shuffled; threads replaced every 2 rounds; Mops/s = blocks allocated and freed; peak RSS at equal work: when the T thread chains have made T x 50 rounds in all (T x 200 with BENCH=full)"
  "sh6bench    | shbench     | pattern=sh6   | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | sh6bench-style: runs of 100 - 1000 blocks of 16 B - 4 KiB, the newest half freed LIFO, refilled, then all freed FIFO, by the allocating thread; Mops/s = blocks allocated and freed"
  "sh8bench    | shbench     | pattern=sh8   | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | sh8bench-style: as sh6bench, but each run's FIFO part is freed by the next thread in a ring"
  "xmalloc     | xmalloc     | -             | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | xmalloc-test-style: a ring of threads, each allocating 16 - 128 B blocks in batches of 64 for the next thread, which frees them (every free remote); Mops/s = blocks allocated and freed"
  "cache_thrash | cache      | pattern=thrash  | yes | seconds:lower:s | cache-thrash (active false sharing): each thread allocates an 8-byte object, writes each byte 2000 times, frees it, again (60000 objects split among the threads); seconds for all of them"
  "cache_scratch | cache     | pattern=scratch | yes | seconds:lower:s | cache-scratch (passive false sharing): as cache_thrash, but each thread first frees and then writes in turn an object the main thread allocated next to the others' objects"
  "alloc_test  | alloc_test  | -             | yes | mops_per_s:higher:Mops/s,peak_rss_mib:lower:MiB | alloc-test-style: random malloc / realloc / free of 16 B - 256 KiB over 4096 slots per thread (each thread its own); Mops/s = calls"
  "rss         | rss         | -             | no  | rss_peak_mib:lower:MiB,rss_after_free_mib:lower:MiB,rss_after_pause_mib:lower:MiB | RSS at a 256 MiB peak (quick) of mixed 16 B - 64 KiB and 1 MiB blocks, after freeing 90% scattered, and after a 0.5 s pause"
  "large       | large       | -             | no  | kops_per_s:higher:kops/s,us_per_cycle:lower:us | big blocks: malloc 64 KiB - 1 MiB, grow with realloc (1.25x - 2x a step) up to 64 MiB, free; 4 live at once; every page written once; thousands of malloc/realloc/free calls per second"
  "hugepages   | hugepages   | -             | no  | ns_per_read:lower:ns,huge_pct:higher:%,fill_ms:lower:ms,dtlb_misses_per_read:lower:misses:optional | dependent random reads over a 1 GiB array (quick; 4 GiB full) from one malloc: ns per read, share of the array on huge pages, time to write it once, dTLB misses per read (hardware counter)"
  "triad       | triad       | -             | no  | local_gbs:higher:GB/s,shared_gbs:higher:GB/s,remote_gbs:higher:GB/s:optional,interleave_gbs:higher:GB/s:optional | STREAM triad, one pinned thread per CPU, each on 3 x 32 MiB arrays (quick): its own, allocated and first written by it; its static chunk of 3 arrays the main thread allocated with malloc, first written by it (master allocates, workers touch); memory of another node; memory interleaved over all nodes"
  "redis       | programs    | program=redis      | no | seconds:lower:s,kreq_per_s:higher:kreq/s | redis-server (the allocator preloaded into the server only) under redis-benchmark on 127.0.0.1: 20000 requests (quick) of each of 9 kinds (SET, GET, INCR, LPUSH, RPOP, SADD, HSET, ZADD, LRANGE_100), 20 clients, 4 pipelined; seconds for them all; peak RSS is the server's"
  "redis_idle  | programs    | program=redis_idle | no | rss_after_flush_mib:lower:MiB,rss_loaded_mib:lower:MiB,rss_empty_start_mib:lower:MiB | redis-server's memory: RSS when fresh, after DEBUG POPULATE of 150000 keys of 200 B and 15000 of 4 KiB (quick), and after FLUSHALL and numamalloc's purge delay + 1 s of idle time with no request (RSS read from /proc)"
  "sqlite      | programs    | program=sqlite     | no | seconds:lower:s | sqlite3 on an in-memory database: 100000 rows inserted (quick), two indexes, GROUP BY into a table, a join, UPDATE, DELETE, sorted queries; answers checked"
  "python      | programs    | program=python     | no | seconds:lower:s | python3 building, sorting and dropping lists, dicts and strings of 200000 items (quick); results checked by the script"
  "gcc         | programs    | program=gcc        | no | seconds:lower:s | gcc -O2 -c (driver and cc1 under the allocator) of a generated C file of 80 functions (quick); the object is linked and run, and its output checked"
  "clang       | programs    | program=clang      | no | seconds:lower:s | the same with clang"
  "place_pair  | placement   | pattern=pair  | no  | onnode_ratio:lower:x,heap_ratio:lower:x,xnode_ratio:lower:x,xalign_ratio:lower:x,malloc_ns:lower:ns,onnode_ns:lower:ns,heap_ns:lower:ns,xnode_ns:lower:ns,xalign_ns:lower:ns | numamalloc's nm_malloc_onnode(size, this node), nm_heap_malloc(bind:this node heap), nm_mallocx(size, NM_NODE(this node)) and nm_mallocx(size, NM_ALIGN(64)) against its malloc: ns per pair of 16 B - 1 KiB, one block at a time; ratio = time / malloc's time | numamalloc"
  "place_batch | placement   | pattern=batch | no  | onnode_ratio:lower:x,heap_ratio:lower:x,xnode_ratio:lower:x,xalign_ratio:lower:x,malloc_ns:lower:ns,onnode_ns:lower:ns,heap_ns:lower:ns,xnode_ns:lower:ns,xalign_ns:lower:ns | the same with a window of 256 blocks freed shuffled | numamalloc"
)

# ---- the allocators ----------------------------------------------------------
#   name | library to preload (- for none; a soname is looked up) | Debian package
#   [| environment it runs with (VAR=value ..., - for none)
#    | the only workloads it runs in (space-separated; empty: all)]
# A name starting with "numamalloc_" is a variant of numamalloc (other
# settings): it is never counted as a peer, and the tables compare numamalloc
# with it.  numamalloc_nothp measures what huge pages bring: numamalloc asks
# for transparent huge pages on blocks of 2 MiB and more by default.
# numamalloc_secure measures what secure mode costs, in every workload, and
# numamalloc_prof what the heap profiler costs at its default rate (its
# profiles go to /dev/null; with the profiler off, numamalloc itself is the
# same library with nothing counted).
nm_lib="${NM_LIB:-$root/build/libnumamalloc.so}"
allocator_table=(
  "glibc            | -                        | libc6"
  "numamalloc       | $nm_lib                  | -"
  "jemalloc         | libjemalloc.so.2         | libjemalloc2"
  "mimalloc         | libmimalloc.so.2         | libmimalloc2.0"
  "tcmalloc         | libtcmalloc_minimal.so.4 | libtcmalloc-minimal4"
  "tbbmalloc        | libtbbmalloc_proxy.so.2  | libtbbmalloc2"
  "numamalloc_nothp | $nm_lib                  | -  | NUMAMALLOC_HUGEPAGES=off | large hugepages triad"
  "numamalloc_secure | $nm_lib                 | -  | NUMAMALLOC_SECURE=1 |"
  "numamalloc_prof  | $nm_lib                  | -  | NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_FILE=/dev/null |"
)

trim() { local s="$1"; s="${s#"${s%%[![:space:]]*}"}"; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

die() { echo "bench: $*" >&2; exit 2; }

# ---- settings ----------------------------------------------------------------
mode="${BENCH:-quick}"
case "$mode" in tiny|quick|full) ;; *) die "BENCH must be tiny, quick or full, not '$mode'" ;; esac
repeats="${BENCH_REPEATS:-3}"
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEATS must be a positive number, not '$repeats'"
cpus=$(nproc 2>/dev/null || echo 1)
if [ -n "${BENCH_THREADS:-}" ]; then
    thread_counts="$BENCH_THREADS"
    for t in $thread_counts; do
        [[ "$t" =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must list positive numbers, not '$t'"
    done
else
    # 1, 2, 4 ... up to twice the CPUs, and twice the CPUs itself
    thread_counts=""
    for ((t = 1; t <= 2 * cpus; t *= 2)); do thread_counts+="$t "; done
    [ $((t / 2)) -eq $((2 * cpus)) ] || thread_counts+="$((2 * cpus)) "
    thread_counts="${thread_counts% }"
fi
out="${BENCH_OUT:-$bench_dir/results}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
tmp="$out/tmp"
bench_build="${BENCH_BUILD:-$root/build/bench}"
cc="${CC:-cc}"
cflags="${BENCH_CFLAGS:--O2 -g}"
case "$mode" in tiny) run_limit=60 ;; quick) run_limit=180 ;; full) run_limit=600 ;; esac

# ---- workload table -> arrays --------------------------------------------------
declare -A w_program w_args w_threaded w_metrics w_about w_only
workloads=()
for line in "${workload_table[@]}"; do
    IFS='|' read -r name program wargs threaded metrics about only <<<"$line"
    name=$(trim "$name")
    workloads+=("$name")
    w_program[$name]=$(trim "$program")
    w_args[$name]=$(trim "$wargs")
    w_threaded[$name]=$(trim "$threaded")
    w_metrics[$name]=$(trim "$metrics")
    w_about[$name]=$(trim "$about")
    w_only[$name]=$(trim "$only")
done
# Whether workload $1 runs for allocator $2: the workload may name the only
# allocators it is for, and the allocator the only workloads it runs in.
runs_for() {
    { [ -z "${w_only[$1]}" ] || [[ " ${w_only[$1]} " == *" $2 "* ]]; } &&
    { [ -z "${a_only[$2]:-}" ] || [[ " ${a_only[$2]} " == *" $1 "* ]]; }
}
# The optional metrics of workload $1, comma-separated, or "-".
optional_metrics() {
    local spec list=""
    IFS=',' read -r -a specs <<<"${w_metrics[$1]}"
    for spec in "${specs[@]}"; do
        [[ "$spec" == *:optional ]] && list+="${list:+,}${spec%%:*}"
    done
    echo "${list:--}"
}
if [ -n "${BENCH_WORKLOADS:-}" ]; then
    for w in $BENCH_WORKLOADS; do
        [ -n "${w_program[$w]:-}" ] || die "unknown workload '$w' (known: ${workloads[*]})"
    done
    read -r -a workloads <<<"$BENCH_WORKLOADS"
fi

# ---- real programs (shell scripts): which can run on this machine -------------
declare -A is_script skipped_why
runnable=()
for w in "${workloads[@]}"; do
    p="${w_program[$w]}"
    if [ ! -f "$bench_dir/$p.c" ] && [ -f "$bench_dir/$p.sh" ]; then
        is_script[$p]=1
        check_args=()
        [ "${w_args[$w]}" != "-" ] && read -r -a check_args <<<"${w_args[$w]}"
        if ! why=$(bash "$bench_dir/$p.sh" "${check_args[@]}" check=1 2>&1); then
            skipped_why[$w]="${why##*$'\n'}"
            continue
        fi
    fi
    runnable+=("$w")
done
workloads=("${runnable[@]}")

# ---- allocator table -> what is installed ----------------------------------------
ldconfig_cache=$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null)
multiarch=$(gcc -print-multiarch 2>/dev/null || true)

# The path of a library given by soname (or a path), or nothing.
find_library() {
    local lib="$1" dir path
    case "$lib" in
        */*) [ -f "$lib" ] && echo "$lib"; return ;;
    esac
    path=$(awk -v so="$lib" '$1 == so { print $NF; exit }' <<<"$ldconfig_cache")
    if [ -n "$path" ] && [ -f "$path" ]; then echo "$path"; return; fi
    for dir in ${multiarch:+/usr/lib/$multiarch /lib/$multiarch} /usr/lib64 /usr/lib /usr/local/lib; do
        [ -f "$dir/$lib" ] && { echo "$dir/$lib"; return; }
    done
}

declare -A a_lib a_package a_status a_env a_only
known_allocators=()
for line in "${allocator_table[@]}"; do
    IFS='|' read -r name lib package env only <<<"$line"
    name=$(trim "$name"); lib=$(trim "$lib"); package=$(trim "$package")
    env=$(trim "$env"); only=$(trim "$only")
    known_allocators+=("$name")
    a_package[$name]="$package"
    [ "$env" = "-" ] && env=""
    a_env[$name]="$env"
    a_only[$name]="$only"
    if [ "$lib" = "-" ]; then
        a_lib[$name]="-"; a_status[$name]=found
    else
        a_lib[$name]=$(find_library "$lib")
        [ -n "${a_lib[$name]}" ] && a_status[$name]=found || a_status[$name]=missing
    fi
done
for spec in ${BENCH_EXTRA_ALLOCATORS:-}; do
    name="${spec%%=*}"; lib="${spec#*=}"
    [[ "$name" =~ ^[a-z0-9_]+$ && "$lib" != "$spec" ]] || die "BENCH_EXTRA_ALLOCATORS: use name=/path/lib.so, not '$spec'"
    known_allocators+=("$name")
    a_package[$name]="-"
    a_env[$name]="" a_only[$name]=""
    a_lib[$name]=$(find_library "$lib")
    [ -n "${a_lib[$name]}" ] && a_status[$name]=found || a_status[$name]=missing
done

requested_allocators="${BENCH_ALLOCATORS:-${known_allocators[*]}}"
allocators=() missing=()
for a in $requested_allocators; do
    [ -n "${a_status[$a]:-}" ] || die "unknown allocator '$a' (known: ${known_allocators[*]})"
    if [ "${a_status[$a]}" = found ]; then allocators+=("$a"); else missing+=("$a"); fi
done

# How to get a missing allocator.
how_to_add() {
    if [ "$1" = numamalloc ]; then echo "not built: run \`make\` (looked for $nm_lib)"
    elif [ "${a_package[$1]}" = "-" ]; then echo "library not found"
    else echo "not installed: \`sudo apt-get install ${a_package[$1]}\` (or \`make bench-deps\`)"
    fi
}

if [ "${1:-}" = "--allocators" ]; then
    for a in $requested_allocators; do
        if [ "${a_status[$a]}" = found ]; then echo "$a found ${a_lib[$a]}"
        else echo "$a missing ${a_package[$a]}"; fi
    done
    exit 0
fi
if [ "${1:-}" = "--list" ]; then
    # name, takes threads= (yes/no), kind (c: a C program in bench/;
    # script: a real program run by a script), optional metrics (or -), and
    # the allocators found that run it; workloads that cannot run here are
    # left out (run.sh says why when it runs)
    for w in "${workloads[@]}"; do
        kind=c; [ -n "${is_script[${w_program[$w]}]:-}" ] && kind=script
        line="$w ${w_threaded[$w]} $kind $(optional_metrics "$w")"
        for a in "${allocators[@]}"; do runs_for "$w" "$a" && line+=" $a"; done
        echo "$line"
    done
    exit 0
fi
[ $# -eq 0 ] || [ "$1" = --build ] ||
    die "usage: bench/run.sh [--list | --allocators | --build] (settings come from the environment)"

# ---- build the programs (once; every allocator runs the same binary) --------------
mkdir -p "$bench_build" || exit 1
build_flags="-std=gnu11 -Wall -Wextra -Werror $cflags -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc -pthread"
build_stamp="$bench_build/.flags"
flags_now="$cc $build_flags"
[ "$(cat "$build_stamp" 2>/dev/null)" = "$flags_now" ] || rm -f "$bench_build"/*
programs=()
for w in "${workloads[@]}"; do
    p="${w_program[$w]}"
    [[ " ${programs[*]} " == *" $p "* ]] || programs+=("$p")
done
for p in "${programs[@]}"; do
    src="$bench_dir/$p.c" bin="$bench_build/$p"
    [ -n "${is_script[$p]:-}" ] && continue   # a real program, run by a script: nothing to build
    [ -f "$src" ] || { echo "bench: no source $src for program $p" >&2; exit 1; }
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$bench_dir/bench.h" -nt "$bin" ]; then
        echo "build  $p"
        # shellcheck disable=SC2086
        $cc $build_flags "$src" -o "$bin" -ldl || { echo "bench: building $p failed" >&2; exit 1; }
    fi
done
echo "$flags_now" >"$build_stamp"
[ "${1:-}" = --build ] && exit 0

# ---- one run ---------------------------------------------------------------------
signal_name() { local n; n=$(kill -l "$1" 2>/dev/null) && echo "SIG$n" || echo "signal $1"; }

# run_one WORKLOAD THREADS ALLOCATOR MODE LOGBASE: runs the program and sets
# run_status ("ok" or "FAIL: why"), run_result (the RESULT line), run_wall.
run_one() {
    local w="$1" t="$2" a="$3" m="$4" log="$5" lib="${a_lib[$3]}" rc start extra line field
    local args=(mode="$m")
    [ "${w_args[$w]}" != "-" ] && read -r -a extra <<<"${w_args[$w]}" && args+=("${extra[@]}")
    [ "${w_threaded[$w]}" = yes ] && args+=(threads="$t")
    local cmd=("$bench_build/${w_program[$w]}" "${args[@]}") settings
    read -r -a settings <<<"${a_env[$a]}"
    if [ -n "${is_script[${w_program[$w]}]:-}" ]; then
        # the script preloads the library into the program it measures
        cmd=(bash "$bench_dir/${w_program[$w]}.sh" "${args[@]}")
        settings+=(BENCH_PRELOAD="${lib#-}")
    elif [ "$lib" != "-" ]; then
        settings+=(LD_PRELOAD="$lib")
    fi
    [ ${#settings[@]} -gt 0 ] && cmd=(env "${settings[@]}" "${cmd[@]}")
    echo "${cmd[*]}" >"$log.cmd"
    start=$EPOCHREALTIME
    timeout -k 5 "$run_limit" "${cmd[@]}" >"$log.out" 2>"$log.err" </dev/null
    rc=$?
    run_wall=$(( ${EPOCHREALTIME//[!0-9]/} - ${start//[!0-9]/} ))
    printf -v run_wall '%d.%03d' $((run_wall / 1000000)) $((run_wall / 1000 % 1000))
    run_result=""
    while IFS= read -r line; do
        [[ "$line" == "RESULT "* ]] && run_result="$line"
    done <"$log.out"
    result=()
    for field in $run_result; do
        [[ "$field" == [a-z_]*=* ]] && result[${field%%=*}]="${field#*=}"
    done
    local check="${result[check]:-}" from="${result[malloc_from]:-}" expected=libc.so.6
    [ "$lib" != "-" ] && expected="${lib##*/}"
    if [ "$check" = fail ]; then run_status="FAIL: self-check failed"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then run_status="FAIL: timed out after ${run_limit}s"
    elif [ $rc -gt 128 ]; then run_status="FAIL: killed by $(signal_name $((rc - 128)))"
    elif [ $rc -ne 0 ]; then run_status="FAIL: exit status $rc"
    elif [ -z "$run_result" ]; then run_status="FAIL: no RESULT line"
    elif [ "$check" != ok ]; then run_status="FAIL: no check=ok"
    elif [ "$from" != "$expected" ]; then run_status="FAIL: malloc came from $from instead of $expected (preload failed?)"
    else run_status=ok
    fi
}
declare -A result   # the fields of the last RESULT line, by key

# ---- the runs ----------------------------------------------------------------------
mkdir -p "$tmp" || exit 1
rm -rf "$tmp/logs"
rm -f "$tmp"/*.scaling.* "$tmp"/*.trace.* "$tmp"/*.bars "$tmp/scaling.list" "$tmp/bars.list" "$tmp/summary.dat" "$tmp/gnuplot.log"
mkdir -p "$tmp/logs" || exit 1
csv="$tmp/runs.csv"
echo "workload,threads,allocator,run,status,metric,value,unit,better,peak_rss_kb,wall_s" >"$csv"
: >"$tmp/workloads.txt"
for w in "${workloads[@]}"; do echo "$w|${w_about[$w]}" >>"$tmp/workloads.txt"; done

echo "bench: mode $mode, $repeats runs each, threads: $thread_counts"
echo "bench: allocators: ${allocators[*]:-none}"
for a in "${missing[@]}"; do echo "bench: missing $a: $(how_to_add "$a")"; done
for w in "${!skipped_why[@]}"; do echo "bench: skipped workload $w: ${skipped_why[$w]}"; done
[ ${#allocators[@]} -gt 0 ] || { echo "bench: no allocator to run" >&2; exit 1; }

# The thread counts of workload $1.
workload_threads() { if [ "${w_threaded[$1]}" = yes ]; then echo "$thread_counts"; else echo 1; fi; }

# How many runs are planned, for the progress count.
planned_runs=0
for w in "${workloads[@]}"; do
    for t in $(workload_threads "$w"); do
        for a in "${allocators[@]}"; do
            runs_for "$w" "$a" && planned_runs=$((planned_runs + repeats))
        done
    done
done
echo "bench: $planned_runs runs planned (plus one warm-up per workload and allocator)"

suite_start=$(date +%s)
failed_runs=0 total_runs=0
declare -A last_ok_log
for w in "${workloads[@]}"; do
    w_threads=$(workload_threads "$w")
    if [ "$mode" != tiny ]; then
        # warm-up: one short run per allocator (page cache, binaries), not counted
        echo "[$w] warm-up"
        for a in "${allocators[@]}"; do
            runs_for "$w" "$a" || continue
            run_one "$w" "${w_threads%% *}" "$a" tiny "$tmp/logs/${w}_warmup_$a"
        done
    fi
    for t in $w_threads; do
        for ((r = 1; r <= repeats; r++)); do
            for a in "${allocators[@]}"; do
                runs_for "$w" "$a" || continue
                label="[$w"; [ "${w_threaded[$w]}" = yes ] && label+=" t=$t"; label+="]"
                log="$tmp/logs/${w}_t${t}_${a}_$r"
                run_one "$w" "$t" "$a" "$mode" "$log"
                total_runs=$((total_runs + 1))
                IFS=',' read -r -a metric_specs <<<"${w_metrics[$w]}"
                peak_kb="${result[peak_rss_kb]:-}"
                shown=""
                for spec in "${metric_specs[@]}"; do
                    IFS=':' read -r metric better unit optional <<<"$spec"
                    value="${result[$metric]:-}"
                    [[ "$value" =~ ^[0-9]+(\.[0-9]+)?$ ]] && continue
                    [ "$optional" = optional ] && [[ "$value" =~ ^(unsupported|one_node)$ ]] && continue
                    [ "$run_status" = ok ] && run_status="FAIL: no number for $metric in the RESULT line"
                done
                for spec in "${metric_specs[@]}"; do
                    IFS=':' read -r metric better unit optional <<<"$spec"
                    value="${result[$metric]:-}"
                    status="${run_status//,/;}"
                    if [ "$run_status" = ok ]; then
                        [ -z "$shown" ] && shown="$value $unit"
                    else
                        value="" peak_kb=""
                    fi
                    echo "$w,$t,$a,$r,$status,$metric,$value,$unit,$better,$peak_kb,$run_wall" >>"$csv"
                done
                progress="$total_runs/$planned_runs"
                if [ "$run_status" = ok ]; then
                    last_ok_log[$w|$a]="$log.out"
                    printf '%-9s %-18s %-16s run %d/%d  %s\n' "$progress" "$label" "$a" "$r" "$repeats" "$shown"
                else
                    failed_runs=$((failed_runs + 1))
                    printf '%-9s %-18s %-16s run %d/%d  %s (log: %s.*)\n' "$progress" "$label" "$a" "$r" "$repeats" "$run_status" "$log"
                    tail -n 3 "$log.err" | sed 's/^/      | /'
                fi
            done
        done
    done
done
suite_seconds=$(( $(date +%s) - suite_start ))

# ---- plots ---------------------------------------------------------------------------
plots=()
plot_note=""
# What each metric is, in words, for titles and axes (the metric's name
# otherwise, with spaces).
declare -A metric_label=(
    [mops_per_s]="throughput" [kops_per_s]="throughput" [kreq_per_s]="requests served"
    [ns_per_pair]="time per malloc/free pair" [ns_per_read]="time per read"
    [malloc_ns]="time per malloc" [heap_ns]="time per heap malloc" [onnode_ns]="time per on-node malloc"
    [heap_ratio]="heap malloc cost / malloc" [onnode_ratio]="on-node malloc cost / malloc"
    [peak_rss_mib]="peak RSS" [rss_peak_mib]="peak RSS" [seconds]="run time" [us_per_cycle]="time per cycle"
    [fill_ms]="time to fill" [local_gbs]="local bandwidth" [remote_gbs]="remote bandwidth"
    [interleave_gbs]="interleaved bandwidth" [shared_gbs]="shared-array bandwidth"
    [huge_pct]="share in huge pages" [dtlb_misses_per_read]="dTLB misses per read"
    [rss_after_flush_mib]="RSS after FLUSHALL" [rss_after_free_mib]="RSS after the frees"
    [rss_after_pause_mib]="RSS after the pause" [rss_empty_start_mib]="RSS at start" [rss_loaded_mib]="RSS loaded"
)
label_of() { local m=$1; echo "${metric_label[$m]:-${m//_/ }}"; }
# One colour and point type per allocator, all dark enough on white (no
# yellow), the same in every plot; numamalloc's line is the thick one.
declare -A alloc_color=(
    [numamalloc]="#d95f02" [numamalloc_secure]="#8c510a" [glibc]="#4d4d4d" [jemalloc]="#1b9e77"
    [mimalloc]="#7570b3" [tcmalloc]="#1f78b4" [tbbmalloc]="#c51b7d" [numamalloc_nothp]="#a6761d"
    [numamalloc_prof]="#e7298a"
)
declare -A alloc_point=(
    [numamalloc]=7 [numamalloc_secure]=5 [glibc]=1 [jemalloc]=2 [mimalloc]=4 [tcmalloc]=6 [tbbmalloc]=8
    [numamalloc_nothp]=9 [numamalloc_prof]=3
)
color_of() { echo "${alloc_color[$1]:-#000000}"; }
draw_plots() {
    local term="png size 800,500"
    gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 && term="pngcairo size 800,500"
    # thread scaling of each metric of the threaded workloads (the first
    # metric's plot is <workload>_scaling.png, the others' <workload>_<metric>_scaling.png):
    # the median of the runs, with a bar from the lowest to the highest run
    if [ -f "$tmp/scaling.list" ]; then
        while IFS='|' read -r w metric unit better allocs; do
            local png="$out/${w}_scaling.png" series="" a label
            [ -f "$png" ] && png="$out/${w}_${metric}_scaling.png"
            label=$(label_of "$metric")
            for a in $allocs; do
                local width=2; [ "$a" = numamalloc ] && width=4
                series+="${series:+, }'$tmp/$w.$metric.scaling.$a' using 1:2:3:4 with yerrorlines lw $width"
                series+=" lc rgb '$(color_of "$a")' pt ${alloc_point[$a]:-3} title '$a'"
            done
            gnuplot >"$tmp/gnuplot.log" 2>&1 <<EOF && plots+=("$png")
set terminal $term noenhanced
set output '$png'
set title "$w: $label ($unit) by thread count, $better is better\nmedian of the runs; bars from the lowest to the highest run"
set xlabel 'threads'
set ylabel '$label ($unit)'
set logscale x 2
set key outside right
set grid
set yrange [0:*]
set offsets graph 0.05, graph 0.05, 0, 0
plot $series
EOF
        done <"$tmp/scaling.list"
    fi
    # one bar per allocator for the first metric of the workloads run at one
    # thread count (medians from report.awk, bars to the lowest and highest run)
    if [ -f "$tmp/bars.list" ]; then
        while IFS='|' read -r w metric unit better data; do
            local png="$out/${w}_bars.png" label
            label=$(label_of "$metric")
            while read -r a med lo hi; do
                printf '%s %s %s %s %d\n' "$a" "$med" "$lo" "$hi" "$(( $(color_of "$a" | sed 's/#/0x/') ))"
            done <"$data" >"$data.colored"
            gnuplot >"$tmp/gnuplot.log" 2>&1 <<EOF && plots+=("$png")
set terminal $term noenhanced
set output '$png'
set title "$w: $label ($unit), $better is better\nmedian of the runs; bars from the lowest to the highest run"
set ylabel '$label ($unit)'
set style fill solid 0.7 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set xtics rotate by -30
unset key
plot '$data.colored' using 0:2:5:xtic(1) with boxes lc rgb variable, \
     '' using 0:2:3:4 with yerrorbars lc rgb '#000000' pt 0 lw 1.5, \
     '' using 0:4:(sprintf('%.3g', \$2)) with labels offset 0,0.8
EOF
        done <"$tmp/bars.list"
    fi
    # the summary: each allocator's geometric-mean time and peak RSS over glibc's
    if [ -f "$tmp/summary.dat" ]; then
        local png="$out/summary.png"
        gnuplot >"$tmp/gnuplot.log" 2>&1 <<EOF && plots+=("$png")
set terminal $term noenhanced
set output '$png'
set title "All workloads: geometric mean of time and of peak RSS relative to glibc's\n(1 = glibc; below 1 is better)"
set ylabel 'ratio to glibc (geometric mean)'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.7 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set xtics rotate by -30
set key outside right
plot '$tmp/summary.dat' using 2:xtic(1) title 'time' lc rgb '#1f78b4', '' using 3 title 'peak RSS' lc rgb '#d95f02', \
     1 with lines lc rgb '#4d4d4d' dt 2 notitle
EOF
    fi
    # RSS over time for workloads that print TRACE lines (last good run of each allocator)
    local w a series
    for w in "${workloads[@]}"; do
        series=""
        for a in "${allocators[@]}"; do
            local log="${last_ok_log[$w|$a]:-}"
            if [ -z "$log" ] || ! grep -q '^TRACE ' "$log"; then continue; fi
            awk '/^TRACE / { split($2, t, "="); split($3, r, "="); print t[2], r[2] }' "$log" >"$tmp/$w.trace.$a"
            series+="${series:+, }'$tmp/$w.trace.$a' using 1:2 with lines lw 2 lc rgb '$(color_of "$a")' title '$a'"
        done
        [ -n "$series" ] || continue
        local png="$out/${w}_trace.png"
        gnuplot >"$tmp/gnuplot.log" 2>&1 <<EOF && plots+=("$png")
set terminal $term noenhanced
set output '$png'
set title "$w: resident memory over time (last run of each allocator)"
set xlabel 'time (ms)'
set ylabel 'RSS (MiB)'
set key outside right
set grid
set yrange [0:*]
plot $series
EOF
    done
}

# ---- the report ------------------------------------------------------------------------
variants=""
for a in "${allocators[@]}"; do
    [[ "$a" == numamalloc_* ]] && variants+="${variants:+;}$a=${a_env[$a]}"
done
report_failed=0
awk -F, -v plot_dir="$tmp" -v variants="$variants" -f "$bench_dir/report.awk" \
    "$tmp/workloads.txt" "$csv" >"$tmp/tables.md" || report_failed=1
if command -v gnuplot >/dev/null 2>&1; then
    # only when they can be drawn again: the old plots stay otherwise
    rm -f "$out"/*_scaling.png "$out"/*_trace.png "$out"/*_bars.png "$out"/summary.png
    draw_plots
    [ ${#plots[@]} -gt 0 ] || plot_note="gnuplot failed: see $tmp/gnuplot.log"
else
    plot_note="no plots: gnuplot is not installed (\`sudo apt-get install gnuplot-nox\`, or \`make bench-deps\`)"
fi

machine_line() {
    local model mem nodes node kernel glibc
    model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
    nodes=0
    for node in /sys/devices/system/node/node[0-9]*; do [ -d "$node" ] && nodes=$((nodes + 1)); done
    [ "$nodes" -gt 0 ] || nodes=1
    kernel=$(uname -r)
    glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null)
    echo "${model:-unknown CPU}, $cpus CPUs, $mem RAM, $nodes NUMA node(s); Linux $kernel; $glibc"
}

allocator_line() {
    local a="$1" version="" notes=""
    if [ "$a" = glibc ]; then echo "glibc (no preload)"; return; fi
    [ "${a_package[$a]}" != "-" ] && version=$(dpkg-query -W -f='${Version}' "${a_package[$a]}" 2>/dev/null)
    [ -n "${a_env[$a]}" ] && notes+=" with \`${a_env[$a]}\`"
    [ -n "${a_only[$a]}" ] && notes+=", only in: ${a_only[$a]}"
    echo "$a${version:+ $version} (\`${a_lib[$a]#"$root/"}\`$notes)"
}

reproduce="make bench BENCH=$mode"
[ -n "${BENCH_REPEATS:-}" ] && reproduce+=" BENCH_REPEATS=$repeats"
[ -n "${BENCH_THREADS:-}" ] && reproduce+=" BENCH_THREADS=\"$thread_counts\""
[ -n "${BENCH_ALLOCATORS:-}" ] && reproduce+=" BENCH_ALLOCATORS=\"$BENCH_ALLOCATORS\""
[ -n "${BENCH_WORKLOADS:-}" ] && reproduce+=" BENCH_WORKLOADS=\"$BENCH_WORKLOADS\""

{
    echo "# numamalloc benchmark results"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(machine_line)"
    echo "- Command: \`$reproduce\` ($repeats runs per allocator and configuration, allocators interleaved; suite took ${suite_seconds}s)"
    echo "- Allocators:"
    for a in "${allocators[@]}"; do echo "  - $(allocator_line "$a")"; done
    for a in "${missing[@]}"; do echo "  - $a: $(how_to_add "$a")"; done
    for w in "${!skipped_why[@]}"; do echo "- Workload $w: ${skipped_why[$w]}"; done
    echo "- Runs: $total_runs, failed: $failed_runs"
    echo
    echo "How to read: each row is the median of the runs, with the lowest and highest run."
    echo "\"vs glibc\" and \"vs best peer\" compare costs (time per operation, 1/throughput,"
    echo "or memory): below 1.00 is better than the reference, above 1.00 worse.  The best"
    echo "peer is the best allocator other than numamalloc and its variants (numamalloc_*:"
    echo "the same library with other settings) at that thread count.  Peak RSS is the"
    echo "process's VmHWM (median); mstress reads it at equal work (when its thread chains"
    echo "have made a fixed number of rounds).  FAIL means a run crashed, timed out, failed its"
    echo "self-check or did not run the allocator it should have; its numbers are not shown."
    echo "Thread counts above the number of CPUs ($cpus) include time spent waiting for a CPU."
    echo
    cat "$tmp/tables.md"
    if [ ${#plots[@]} -gt 0 ]; then
        echo "### Plots"
        echo
        for png in "${plots[@]}"; do echo "![$(basename "$png" .png)]($(basename "$png"))"; echo; done
    else
        echo "$plot_note"
    fi
} >"$tmp/results.md"

mv "$tmp/results.md" "$out/results.md"
cp "$csv" "$out/runs.csv"
echo
cat "$out/results.md"
echo
echo "bench: wrote $out/results.md, $out/runs.csv${plots[*]:+ and ${#plots[@]} plots}; logs in $tmp/logs"
[ -n "$plot_note" ] && echo "bench: $plot_note"
if [ $report_failed -eq 1 ]; then
    echo "bench: making the tables FAILED (bench/report.awk)"
    exit 1
fi
if [ $failed_runs -gt 0 ]; then
    echo "bench: $failed_runs of $total_runs runs FAILED"
    exit 1
fi
exit 0
