#!/usr/bin/env bash
# Allocations before numamalloc's constructor has run, from another library's
# constructor (malloc, calloc, realloc, dlerror's own allocation, a thread),
# in both preload orders; the program then frees those blocks.
set -eu
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
lib=${NM_LIB:-$root/build/libnumamalloc.so}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -std=gnu11 -Wall -Wextra -Werror -O1 -fPIC -shared "$root/tests/programs/data/early_lib.c" \
   -o "$tmp/libearly.so" -pthread
cc -std=gnu11 -Wall -Wextra -Werror -O1 "$root/tests/programs/data/early_main.c" \
   -o "$tmp/early_main" -L"$tmp" -learly -Wl,-rpath,"$tmp"
for order in "$tmp/libearly.so:$lib" "$lib:$tmp/libearly.so"; do
    out=$(LD_PRELOAD="$order" "$tmp/early_main" 2>&1) || { echo "LD_PRELOAD=$order: $out"; exit 1; }
    [ "$out" = ok ] || { echo "LD_PRELOAD=$order: unexpected output: $out"; exit 1; }
done
# Linked rather than preloaded: numamalloc is a dependency of the program.
cc -std=gnu11 -O1 "$root/tests/programs/data/early_main.c" -o "$tmp/early_linked" \
   -L"$tmp" -learly -Wl,-rpath,"$tmp" "$lib" -Wl,-rpath,"$(dirname "$lib")"
out=$("$tmp/early_linked" 2>&1) || { echo "linked: $out"; exit 1; }
[ "$out" = ok ] || { echo "linked: unexpected output: $out"; exit 1; }
echo "early start-up allocations served in both preload orders and when linked"
