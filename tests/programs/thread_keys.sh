#!/usr/bin/env bash
# A program that has created 100 pthread keys before numamalloc starts (its
# key then has an index above 32, where glibc's pthread_setspecific itself
# calls calloc) starts threads whose first call is malloc, nm_malloc_onnode,
# a heap with a policy, or a large calloc: every thread's set-up completes,
# preloaded and linked.
set -eu
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
lib=${NM_LIB:-$root/build/libnumamalloc.so}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
src=$root/tests/programs/data/thread_keys.c
cc -std=gnu11 -Wall -Wextra -Werror -O1 "$src" -o "$tmp/keys" -pthread -ldl
out=$(LD_PRELOAD="$lib" timeout 60 "$tmp/keys" 2>&1) || { echo "preloaded (exit $?): $out"; exit 1; }
[ "$out" = ok ] || { echo "preloaded: unexpected output: $out"; exit 1; }
cc -std=gnu11 -Wall -Wextra -Werror -O1 "$src" -o "$tmp/keys_linked" -pthread -ldl \
   "$lib" -Wl,-rpath,"$(dirname "$lib")"
out=$(timeout 60 "$tmp/keys_linked" 2>&1) || { echo "linked (exit $?): $out"; exit 1; }
[ "$out" = ok ] || { echo "linked: unexpected output: $out"; exit 1; }
echo "threads start and allocate with numamalloc's key above index 32, preloaded and linked"
