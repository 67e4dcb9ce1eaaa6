#!/usr/bin/env bash
# The preload stress program (six threads handing blocks to each other, every
# block's pattern and overlaps checked) with a purge delay of 1 ms: the
# background purge then makes a pass every 10 ms while the threads run, takes
# back the foreign lists (blocks a thread kept from other threads' pages) of
# every class a thread has not used for a millisecond, in the middle of its
# frees and allocations, and gives back free pages as they empty.  Any block
# lost, handed out twice or overwritten shows as a pattern or overlap failure.
set -u
root=${NM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
lib=${NM_LIB:-$root/build/libnumamalloc.so}
prog=${NM_BUILD:-$root/build}/tests/preload/stress
[ -x "$prog" ] || { echo "skip: $prog is not built"; exit 77; }
NUMAMALLOC_PURGE_DELAY_MS=1 LD_PRELOAD="$lib" "$prog"
