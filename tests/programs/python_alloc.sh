#!/usr/bin/env bash
# python_alloc.sh — Python under LD_PRELOAD=$NM_LIB.  data/python_alloc.py (dicts,
# lists, strings, cycles, a big bytearray, json/pickle, threads handing objects
# to each other) must print the same digests as without the preload, with
# PYTHONMALLOC=malloc (every object straight from malloc) and with the default
# pymalloc, on python3 from PATH and on /usr/bin/python3 where that is another
# interpreter, and once more in secure mode (NUMAMALLOC_SECURE=1).  Then a set of CPython's own regression tests must pass under
# the preload (a test case that fails the same way without it, because of the
# environment, is reported, not counted).
set -u
. "$(dirname "$0")/data/common.sh"
nm_need python3
nm_init python_alloc
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1

# The interpreter itself, not a launcher script such as pyenv's shim.
python=$(python3 -c 'import sys; print(sys.executable)')
[ -x "$python" ] || { echo "FAIL: python3 reports no executable ($python)" >&2; exit 1; }
pythons=("$python")
if [ -x /usr/bin/python3 ] && [ "$(readlink -f /usr/bin/python3)" != "$(readlink -f "$python")" ]; then
    pythons+=(/usr/bin/python3)
fi

n=0
for py in "${pythons[@]}"; do
    modes=(malloc pymalloc)
    [ $n -gt 0 ] && modes=(malloc)      # the second interpreter: malloc only, to save time
    for mode in "${modes[@]}"; do
        run="alloc$n-$mode"
        echo "$run: $py"
        nm_run_pair "$run" env PYTHONMALLOC="$mode" "$py" -s "$NM_DATA/python_alloc.py"
        nm_compare "$run"
        nm_check_loaded "$run" "$(basename "$py")"
        grep -q '^all ' "$NM_TMP/$run.base.out" || nm_fail "$run: the script did not reach its end"
        sed 's/^/    /' "$NM_TMP/$run.pre.out"
    done
    n=$((n + 1))
done
# Secure mode (NUMAMALLOC_SECURE=1) under a real program: every object
# from malloc, each small block with its canary checked at free, every free
# through the quarantine; the same digests, no report.
run="alloc-secure"
echo "$run: $python, NUMAMALLOC_SECURE=1"
nm_run_pair "$run" env NUMAMALLOC_SECURE=1 PYTHONMALLOC=malloc "$python" -s "$NM_DATA/python_alloc.py"
nm_compare "$run"
nm_check_loaded "$run" "$(basename "$python")"
grep -q '^all ' "$NM_TMP/$run.pre.out" || nm_fail "$run: the script did not reach its end"

libpython=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("INSTSONAME") or "")')
objs="libc.so.6"
# libpython only where this python3 loads it (Debian's python3 has it built
# in, though sysconfig names the shared library it ships for embedding).
[ -n "$libpython" ] && ldd "$python" 2>/dev/null | grep -qF "$libpython" && objs="$objs $libpython"
nm_check_binding "$objs" "$python" -c pass

# CPython's regression tests, run under the preload (worker processes
# inherit it).  Modules that are missing in this Python are left out.
tests=(test_dict test_list test_set test_tuple test_json test_threading test_thread
       test_threading_local test_bytes test_unicode test_memoryview test_array test_gc
       test_mmap test_re test_zlib test_hashlib test_deque test_collections test_sort
       test_struct test_functools)
if ! "$python" -c 'import test.libregrtest, test.test_dict' 2>/dev/null; then
    echo "note: $python has no test suite (test.libregrtest, test.test_dict): the regression tests are left out"
    nm_finish
fi
present=()
for t in "${tests[@]}"; do
    "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('test.$t') is None)" &&
        present+=("$t")
done
[ ${#present[@]} -ge 10 ] || nm_fail "only ${#present[@]} of ${#tests[@]} regression test modules exist"

# Failing test cases of a junit file, one "module.class.method" a line.
failed_cases() {
    "$python" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        print(case.get("name"))
EOF
}

mkdir -p "$NM_TMP/regr.ld" "$NM_TMP/regr"
start=$(date +%s)
(cd "$NM_TMP/regr" && env LD_PRELOAD="$NM_LIB" LD_DEBUG=libs LD_DEBUG_OUTPUT="$NM_TMP/regr.ld/trace" \
    "$python" -s -m test -j0 --timeout 300 --junit-xml "$NM_TMP/regr.xml" "${present[@]}") \
    >"$NM_TMP/regr.out" 2>&1
rc=$?
echo "regression tests: ${#present[@]} modules, exit status $rc, $(( $(date +%s) - start )) s"
nm_check_loaded regr "$(basename "$python")"
tail -n 6 "$NM_TMP/regr.out" | sed 's/^/    /'
if [ $rc -ne 0 ]; then
    if [ ! -s "$NM_TMP/regr.xml" ]; then
        nm_fail "the regression tests failed without writing their results"
        tail -n 30 "$NM_TMP/regr.out" >&2
    else
        # Rerun just the failing cases without the preload: the failures count
        # unless they are exactly the same there.
        failed_cases "$NM_TMP/regr.xml" | sort -u >"$NM_TMP/regr.failed"
        if [ ! -s "$NM_TMP/regr.failed" ]; then
            nm_fail "the regression tests exited with status $rc but no test case failed"
            tail -n 30 "$NM_TMP/regr.out" >&2
        else
            match=()
            while read -r c; do match+=(-m "$c"); done <"$NM_TMP/regr.failed"
            (cd "$NM_TMP/regr" && "$python" -s -m test -j0 --junit-xml "$NM_TMP/plain.xml" \
                "${match[@]}" "${present[@]}") >"$NM_TMP/plain.out" 2>&1
            failed_cases "$NM_TMP/plain.xml" 2>/dev/null | sort -u >"$NM_TMP/plain.failed"
            if cmp -s "$NM_TMP/regr.failed" "$NM_TMP/plain.failed"; then
                echo "note: these test cases fail identically without the preload (environment):"
                sed 's/^/    /' "$NM_TMP/regr.failed"
            else
                nm_fail "regression test cases fail only with LD_PRELOAD=$NM_LIB:"
                comm -23 "$NM_TMP/regr.failed" "$NM_TMP/plain.failed" | sed 's/^/    /' >&2
                grep -E -A 25 '^(FAIL|ERROR):' "$NM_TMP/regr.out" | head -n 60 >&2
            fi
        fi
    fi
fi

nm_finish
