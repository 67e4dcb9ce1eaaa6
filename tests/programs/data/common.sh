# shellcheck shell=bash
# common.sh — shared by tests/programs/*.sh: run a real program once without
# and once with LD_PRELOAD=$NM_LIB, require identical output, and prove from
# the dynamic loader's own trace that the preload took effect.
#
# Source it, then call nm_init NAME.  Each run of nm_run_pair happens in a fresh
# directory $NM_WORK (the same absolute path both times, so paths printed by
# the program match); afterwards that directory is kept as $NM_TMP/<run>.base
# or $NM_TMP/<run>.pre.  Reasons for failing are collected with nm_fail and the
# script ends with nm_finish.  NM_KEEP_TMP=1 keeps $NM_TMP for inspection.
# A script may also source it only for its helpers (nm_need,
# nm_nodes_with_memory), without nm_init.

NM_ROOT="${NM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
NM_BUILD="${NM_BUILD:-$NM_ROOT/build}"
NM_LIB="${NM_LIB:-$NM_BUILD/libnumamalloc.so}"
NM_DATA="$NM_ROOT/tests/programs/data"
export LC_ALL=C TZ=UTC
nm_failures=0

nm_fail() { echo "FAIL: $*" >&2; nm_failures=$((nm_failures + 1)); }

nm_skip() { echo "$*"; exit 77; }

# nm_nodes_with_memory: the ids of the NUMA nodes with memory (MemTotal > 0
# in sysfs), ascending, on one line separated by single spaces ("0 1 3");
# "0" where sysfs lists no node with memory (a kernel without NUMA has one
# node 0).  Use: nodes=$(nm_nodes_with_memory)
nm_nodes_with_memory() {
    local d nodes=""
    for d in /sys/devices/system/node/node[0-9]*; do
        [ -d "$d" ] || continue
        awk '/MemTotal/ { exit !($4 > 0) }' "$d/meminfo" && nodes+="${d##*node} "
    done
    nodes=$(echo "$nodes" | tr ' ' '\n' | sed '/^$/d' | sort -n | tr '\n' ' ' | sed 's/ $//')
    echo "${nodes:-0}"
}

# nm_fortran_ready BUILD: exit 77 without gfortran, exit 1 when BUILD lacks
# the library or the Fortran module (make builds them); then sets
# nm_fflags (gfortran's flags: strict, the module's directory) and nm_flink
# (what a program using the module links with), as arrays.
nm_fortran_ready() {
    local build=$1 f
    command -v gfortran >/dev/null || { echo "gfortran not installed (make deps)"; exit 77; }
    for f in "$build/libnumamalloc.so" "$build/libnumamalloc_fortran.a" "$build/fortran/numamalloc.mod"; do
        [ -f "$f" ] || { echo "FAIL: no $f (run make)"; exit 1; }
    done
    nm_fflags=(-std=f2008 -Wall -Wextra -Werror -O2 -I"$build/fortran")
    # shellcheck disable=SC2054  # the commas belong to -Wl
    nm_flink=("$build/libnumamalloc_fortran.a" -L"$build" -lnumamalloc -Wl,-rpath,"$build")
}

# Exit 77 naming the first of the given commands that is not installed.
nm_need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || nm_skip "$tool not installed"
    done
}

nm_init() {
    NM_NAME=$1
    if [ ! -f "$NM_LIB" ]; then
        echo "FAIL: NM_LIB=$NM_LIB does not exist (build it with make)" >&2
        exit 1
    fi
    # The loader reports the preloaded object under the name given in
    # LD_PRELOAD, so make that name absolute (but keep symlinks as they are).
    NM_LIB="$(cd "$(dirname "$NM_LIB")" && pwd)/$(basename "$NM_LIB")"
    NM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/nm-$NM_NAME.XXXXXX") || exit 1
    # NM_KEEP_TMP=1 keeps the runs' directories and outputs for a look.
    if [ "${NM_KEEP_TMP:-0}" = 1 ]; then
        trap 'echo "kept $NM_TMP"' EXIT
    else
        trap 'rm -rf "$NM_TMP"' EXIT
    fi
    trap 'exit 130' INT TERM
    NM_WORK="$NM_TMP/work"
    echo "$NM_NAME: NM_LIB=$NM_LIB"
}

# nm_run_pair RUN CMD...: run CMD in a fresh $NM_WORK, first plainly, then with
# LD_PRELOAD=$NM_LIB and LD_DEBUG=libs (the loader writes one trace file per
# process under $NM_TMP/<RUN>.ld/).  Stdout, stderr and exit status land in
# $NM_TMP/<RUN>.{base,pre}.{out,err,rc}; RUN.time holds both wall times.
nm_run_pair() {
    local run=$1; shift
    local mode t0 t1 rc
    mkdir -p "$NM_TMP/$run.ld"
    for mode in base pre; do
        rm -rf "$NM_WORK"; mkdir -p "$NM_WORK"
        t0=$(date +%s%N)
        if [ $mode = base ]; then
            (cd "$NM_WORK" && "$@") >"$NM_TMP/$run.$mode.out" 2>"$NM_TMP/$run.$mode.err"
        else
            (cd "$NM_WORK" && env LD_PRELOAD="$NM_LIB" LD_DEBUG=libs \
                LD_DEBUG_OUTPUT="$NM_TMP/$run.ld/trace" "$@") \
                >"$NM_TMP/$run.$mode.out" 2>"$NM_TMP/$run.$mode.err"
        fi
        rc=$?
        t1=$(date +%s%N)
        echo $rc >"$NM_TMP/$run.$mode.rc"
        printf '%s %d ms\n' $mode $(( (t1 - t0) / 1000000 )) >>"$NM_TMP/$run.time"
        mv "$NM_WORK" "$NM_TMP/$run.$mode"
    done
    echo "$run: $(tr '\n' ' ' <"$NM_TMP/$run.time")(plain, preloaded)"
}

# Show the first lines of a difference between the plain and preloaded file.
nm_show_diff() {
    diff -u --label "$2 (plain)" --label "$2 (LD_PRELOAD)" "$1" "$3" | head -n 40 >&2
}

# nm_compare RUN [what...]: the preloaded run must match the plain one.  The
# things compared default to "rc out err"; pass a subset to leave one out.
nm_compare() {
    local run=$1; shift
    local what=("$@") w
    [ ${#what[@]} -eq 0 ] && what=(rc out err)
    for w in "${what[@]}"; do
        if ! cmp -s "$NM_TMP/$run.base.$w" "$NM_TMP/$run.pre.$w"; then
            nm_fail "$run: $w differs with LD_PRELOAD=$NM_LIB"
            nm_show_diff "$NM_TMP/$run.base.$w" "$run.$w" "$NM_TMP/$run.pre.$w"
        fi
    done
    if [ "$(cat "$NM_TMP/$run.base.rc")" != 0 ]; then
        nm_fail "$run: exits with status $(cat "$NM_TMP/$run.base.rc") even without the preload"
        tail -n 20 "$NM_TMP/$run.base.err" >&2
    fi
}

# Every program image started during the preloaded run of RUN, as
# "<program> yes|no", yes when the loader ran $NM_LIB's initializers first.
nm_loaded_programs() {
    local f
    for f in "$NM_TMP/$1.ld"/trace.*; do
        [ -e "$f" ] || continue
        awk -v lib="$NM_LIB" '
            /calling init: / { if (substr($0, index($0, "calling init: ") + 14) == lib) seen = 1 }
            /initialize program: / {
                prog = substr($0, index($0, "initialize program: ") + 20)
                print prog, (seen ? "yes" : "no"); seen = 0
            }' "$f"
    done
}

# nm_check_loaded RUN PROG...: in the preloaded run of RUN every process image
# loaded $NM_LIB, and each named PROG (basename) was among them.
nm_check_loaded() {
    local run=$1; shift
    local list prog missing
    list=$(nm_loaded_programs "$run")
    if [ -z "$list" ]; then
        nm_fail "$run: the loader traced no process (LD_DEBUG ignored?): the preload is unproven"
        return
    fi
    missing=$(echo "$list" | awk '$2 == "no" { print $1 }' | sort -u | tr '\n' ' ')
    [ -n "$missing" ] && nm_fail "$run: started without $NM_LIB loaded: $missing"
    for prog in "$@"; do
        echo "$list" | awk -v p="$prog" '{ n = split($1, a, "/") } a[n] == p && $2 == "yes" { found = 1 }
                                      END { exit !found }' \
            || nm_fail "$run: no $prog process ran with $NM_LIB loaded"
    done
    echo "$run: $(echo "$list" | awk '$2 == "yes"' | wc -l) of $(echo "$list" | wc -l) process image(s) ran with $NM_LIB loaded"
}

# nm_check_binding "OBJ..." CMD...: run CMD preloaded with LD_DEBUG=bindings
# and require that the loader bound each named object's (basename) references
# to malloc and free to $NM_LIB.  LD_BIND_NOW makes it bind every reference at
# start-up, whether the short run CMD makes calls it or not.
# Whether $bindings binds OBJ's SYM to $NM_LIB, or to a file in $via (one
# whose own SYM is bound to $NM_LIB).
nm_bound() {
    local to
    for to in $(echo "$bindings" | grep -F ": normal symbol \`$2'" |
                grep "binding file \([^ ]*/\)\?$1 \[" |
                sed -n 's/.* to \([^ ]*\) \[0\]: normal symbol.*/\1/p' | sort -u); do
        [ "$to" = "$NM_LIB" ] && return 0
        echo "$via" | grep -qxF "$to" && return 0
    done
    return 1
}

nm_check_binding() {
    local objs=$1; shift
    local trace="$NM_TMP/bindings" sym obj
    rm -rf "$trace"; mkdir -p "$trace"
    (cd "$NM_TMP" && env LD_PRELOAD="$NM_LIB" LD_BIND_NOW=1 LD_DEBUG=bindings LD_DEBUG_OUTPUT="$trace/b" "$@") \
        >/dev/null 2>&1
    # A non-PIE executable that takes malloc's address (Debian's python3)
    # holds its canonical PLT entry: the loader binds the libraries' malloc
    # to the executable, and the executable's to $NM_LIB.  Either way the
    # calls reach numamalloc.
    local bindings via
    bindings=$(cat "$trace"/b.* 2>/dev/null)
    for sym in malloc free; do
        via=$(echo "$bindings" | grep -F "to $NM_LIB [0]: normal symbol \`$sym'" |
              sed -n 's/.*binding file \([^ ]*\) \[0\] to .*/\1/p' | sort -u)
        for obj in $objs; do
            nm_bound "$obj" "$sym" || nm_fail "$*: the loader did not bind $obj's $sym to $NM_LIB"
        done
    done
    rm -rf "$trace"
}

nm_finish() {
    if [ $nm_failures -ne 0 ]; then
        echo "$NM_NAME: $nm_failures failure(s)" >&2
        exit 1
    fi
    echo "$NM_NAME: ok"
    exit 0
}
