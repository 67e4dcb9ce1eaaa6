#!/usr/bin/env bash
# tests/vm/first_touch.sh — make check: the OpenMP first-touch idiom in the
# 4-node guest (tests/vm/guest/first_touch.c): the master allocates arrays
# of 16 MiB .. 1 GiB with malloc, calloc, again after free, and doubled with
# realloc; a team of threads pinned one per node writes them with a static
# schedule; every chunk must be at least 99% on its writer's node.  Run with
# numamalloc preloaded (default options, and with a 1 GiB cache so that the
# freed 16 and 64 MiB arrays are really reused), then on glibc's malloc as a
# report (up to 256 MiB, to keep the guest's time in bounds).
# Exit 0 = passed; 77 = no guest can be had here.
set -u
. "$(dirname "$0")/lib.bash"
vm_need_lib
vm_build first_touch -fopenmp

guest="LD_PRELOAD=$preload /first_touch; rc=\$?"
guest+="; echo '=== with NUMAMALLOC_CACHE_MB=1024 (freed arrays are cached and reused)'"
guest+="; LD_PRELOAD=$preload NUMAMALLOC_CACHE_MB=1024 /first_touch --sizes 16,64 || rc=1"
guest+="; echo '=== the same on glibc malloc (report only, nothing judged)'; /first_touch --report --sizes 16,64,256"
guest+="; exit \$rc"
vm_run 4node 300 "$out/first_touch $lib" "$guest"
vm_record 4node "$(grep '^summary' "$vm_log" | head -n 2 | tr '\n' ' ')"
vm_finish
