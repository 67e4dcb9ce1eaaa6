#!/usr/bin/env bash
# sort_50mb.sh — GNU sort over a generated ~50 MB text file, plainly and with
# LD_PRELOAD=$NM_LIB: plain, numeric, unique, keyed, and a small buffer that
# forces an external merge through temporary files.  The outputs' checksums
# must be identical.
set -u
. "$(dirname "$0")/data/common.sh"
nm_need sort awk sha256sum
nm_init sort_50mb

# ~1.7 million lines; a third repeat an earlier line so sort -u has work to do.
input="$NM_TMP/input.txt"
awk 'BEGIN {
    srand(20240611)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for (i = 0; i < 1700000; i++) {
        if (i > 1000 && rand() < 0.33) { print pool[int(rand() * 1000)]; continue }
        w = ""; n = 1 + int(rand() * 12)
        for (j = 0; j < n; j++) w = w substr(letters, 1 + int(rand() * 26), 1)
        line = sprintf("%d %s %d.%06d", int(rand() * 1e9) - 5e8, w, i % 7919, int(rand() * 1e6))
        pool[i % 1000] = line
        print line
    }
}' >"$input"
size=$(stat -c %s "$input")
echo "input: $size bytes, $(wc -l <"$input") lines"
[ "$size" -gt 40000000 ] || { echo "FAIL: generated input is only $size bytes" >&2; exit 1; }

# Each variant prints the checksum of sort's output and sort's exit status.
for name in plain numeric unique keyed reverse_numeric_unique external_merge; do
    case $name in
        plain)                  args=() ;;
        numeric)                args=(-n) ;;
        unique)                 args=(-u) ;;
        keyed)                  args=(-t ' ' -k2,2 -k3,3n) ;;
        reverse_numeric_unique) args=(-rnu) ;;
        external_merge)         args=(-S 4M --parallel=2 -T .) ;;   # temporary files, merged
    esac
    # shellcheck disable=SC2016  # $@ and PIPESTATUS belong to the inner bash
    nm_run_pair "$name" bash -c 'sort "$@" | sha256sum; echo "sort status ${PIPESTATUS[0]}"' \
        sort "${args[@]}" "$input"
    # A checksum of nothing would make the comparison meaningless.
    grep -q '^e3b0c44298fc1c149afbf4c8996fb924' "$NM_TMP/$name.base.out" &&
        nm_fail "$name: sort produced no output"
    nm_compare "$name"
    nm_check_loaded "$name" sort sha256sum
done
nm_check_binding "sort libc.so.6" sort --version

# The external merge through temporary files sorts like the in-memory sort,
# and the other variants really differ (else their options were not applied).
cmp -s "$NM_TMP/plain.pre.out" "$NM_TMP/external_merge.pre.out" ||
    nm_fail "external_merge: output differs from the in-memory sort"
distinct=$(cat "$NM_TMP"/{plain,numeric,unique,keyed,reverse_numeric_unique}.base.out | sort -u | grep -c -- ' -$')
[ "$distinct" -eq 5 ] || nm_fail "only $distinct distinct results from 5 different sort orders"

nm_finish
