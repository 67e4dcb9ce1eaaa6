#!/usr/bin/env bash
# Test runner for `make check`: runs each test given on the command line and
# ends with one line "N passed, N failed, N skipped".
#
# How a test is run depends on where it lives (see tests/README.md):
#   build/tests/unit/*     linked with libnumamalloc.a, run as is
#   build/tests/preload/*  plain programs, run with LD_PRELOAD=build/libnumamalloc.so
#   build/tests/tsan/*     linked with the ThreadSanitizer build, run as is
#   build/tests/fuzz/*     libFuzzer targets, run once over their seed corpus
#                          (tests/fuzz/corpus.sh)
#   tests/**/*.sh          scripts, run with bash
# Exit status 0 is a pass, 77 a skip (the last line of output is the reason),
# anything else a failure (the output's tail is shown).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
export NM_ROOT="$root"
export NM_BUILD="${NM_BUILD:-$root/build}"
export NM_LIB="${NM_LIB:-$NM_BUILD/libnumamalloc.so}"
timeout_s="${NM_TEST_TIMEOUT:-600}"
log_dir="$NM_BUILD/test-logs"
mkdir -p "$log_dir"

passed=0 failed=0 skipped=0
failures=()
for t in "$@"; do
    name=${t#"$root/"}; name=${name#build/tests/}; name=${name#tests/}
    log="$log_dir/$(echo "$name" | tr '/' '_').log"
    start=$(date +%s%N)
    case "$t" in
        *.sh)                 cmd=(bash "$t") ;;
        *build/tests/preload/*) cmd=(env LD_PRELOAD="$NM_LIB" "$t") ;;
        *build/tests/fuzz/*)  cmd=(bash "$root/tests/fuzz/corpus.sh" "$t") ;;
        *)                    cmd=("$t") ;;
    esac
    timeout -k 10 "$timeout_s" "${cmd[@]}" >"$log" 2>&1 </dev/null
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 )); secs=$((ms / 1000)).$(( (ms % 1000) / 100 ))
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); printf 'PASS  %-40s %6ss\n' "$name" "$secs"
    elif [ $rc -eq 77 ]; then
        skipped=$((skipped + 1))
        printf 'SKIP  %-40s %s\n' "$name" "$(grep -v '^$' "$log" | tail -n 1)"
    else
        failed=$((failed + 1)); failures+=("$name")
        [ $rc -eq 124 ] && why="timed out after ${timeout_s}s" || why="exit status $rc"
        printf 'FAIL  %-40s %s\n' "$name" "$why"
        tail -n 25 "$log" | sed 's/^/      | /'
    fi
done
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ $failed -eq 0 ]
