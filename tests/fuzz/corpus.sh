#!/usr/bin/env bash
# Run a libFuzzer target once over every input of its seed corpus,
# tests/fuzz/corpus/NAME/ (the inputs are named on the command line, so
# libFuzzer runs each once and writes nothing).  What make check does for
# each target in tests/fuzz/ (through tests/run.sh); exit status 0 when
# every input passes, 77 when the target could not be built (a stub that
# says why), anything else a failure with the input named in the output.
#   usage: tests/fuzz/corpus.sh build/tests/fuzz/NAME
set -u
bin=$1
name=$(basename "$bin")
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
corpus="$root/tests/fuzz/corpus/$name"
[ -x "$bin" ] || { echo "$bin is not built (make fuzz-targets)"; exit 1; }
shopt -s nullglob
inputs=("$corpus"/*)
# A stub (no clang) exits 77 with its reason whatever it is given; a real
# target given no inputs would start fuzzing, so an empty corpus fails.
if [ ${#inputs[@]} -eq 0 ]; then
    "$bin" -help=1 >/dev/null 2>&1; [ $? -eq 77 ] && exec "$bin"
    echo "no seed inputs in $corpus"
    exit 1
fi
echo "$name: ${#inputs[@]} inputs from ${corpus#"$root/"}"
# libFuzzer exits with 77 on a crash unless told otherwise: 77 means skipped here.
run() { "$bin" -error_exitcode=1 -timeout_exitcode=1 -rss_limit_mb=4096 "${inputs[@]}"; }
# The API target runs the corpus in secure mode too (NUMAMALLOC_SECURE=1).
if [ "$name" = api ]; then
    run || exit
    echo "$name: the same inputs with NUMAMALLOC_SECURE=1"
    NUMAMALLOC_SECURE=1 run
    exit
fi
run
