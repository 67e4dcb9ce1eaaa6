#!/usr/bin/env bash
# Write the topology fuzz target's seeds from the recorded sysfs trees:
# tests/fuzz/corpus/topology/<tree> for each tree in tests/sysfs, in the
# target's format ('>' and the file's path, then its contents).  Run after
# adding or changing a recorded tree.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/tests/fuzz/corpus/topology"
mkdir -p "$out"
for dir in "$root"/tests/sysfs/*/; do
    name=$(basename "$dir")
    (cd "$dir" && find . -type f | LC_ALL=C sort | while read -r f; do
        printf '>%s\n' "${f#./}"
        cat "$f"
    done) > "$out/$name"
done
ls "$out" | wc -l
