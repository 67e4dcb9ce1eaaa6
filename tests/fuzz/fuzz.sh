#!/usr/bin/env bash
# make fuzz: run each libFuzzer target for SECONDS seconds, one after the
# other (one process each), starting from its seed corpus
# (tests/fuzz/corpus/NAME/, read only) and what earlier runs kept
# ($NM_BUILD/fuzz/corpus/NAME/, where new inputs go).  A crash or failed
# check is saved in $NM_BUILD/fuzz/crashes/ (add it to the seed corpus with
# the fix).  Prints each target's last coverage line (cov: edges, ft:
# features, corp: inputs kept) and ends with the failures, if any.
#   usage: tests/fuzz/fuzz.sh SECONDS build/tests/fuzz/NAME...
set -u
seconds=$1; shift
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${NM_BUILD:-$root/build}
export NM_ROOT="$root"
mkdir -p "$build/fuzz/crashes" "$build/fuzz/logs"
failed=()
for bin in "$@"; do
    name=$(basename "$bin")
    "$bin" -help=1 >/dev/null 2>&1
    if [ $? -eq 77 ]; then echo "SKIP  $name: $("$bin" | tail -n 1)"; continue; fi
    mkdir -p "$build/fuzz/corpus/$name"
    log="$build/fuzz/logs/$name.log"
    echo "fuzzing $name for ${seconds}s (log: ${log#"$root/"})"
    "$bin" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 \
        -error_exitcode=1 -timeout_exitcode=1 \
        -artifact_prefix="$build/fuzz/crashes/$name-" \
        "$build/fuzz/corpus/$name" "$root/tests/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "PASS  $name: $last"
    else
        failed+=("$name")
        echo "FAIL  $name (exit status $rc): $last"
        grep -E 'FUZZ_CHECK|ERROR: |SUMMARY|Test unit written|runtime error' "$log" | head -n 8 | sed 's/^/      | /'
    fi
done
[ ${#failed[@]} -gt 0 ] && { echo "failed: ${failed[*]}"; exit 1; }
exit 0
