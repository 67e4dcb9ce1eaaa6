#!/usr/bin/env bash
# redis_idle.sh — a server that goes idle gives its memory back.  Debian's
# redis-server under LD_PRELOAD=$NM_LIB (on 127.0.0.1, a random port,
# stopped by its own PID: bench/programs.sh program=redis_idle) is loaded
# with 165,000 keys (about 110 MiB), then FLUSHALL, then gets no request
# for numamalloc's purge delay plus 1 s.  Its RSS at the end must be within
# 2x of the fresh server's, in the default and in secure mode
# (NUMAMALLOC_SECURE=1).  The same run under glibc's malloc is printed
# for comparison (not checked: glibc keeps most of it).
set -u
. "$(dirname "$0")/data/common.sh"
nm_need redis-server redis-cli awk
nm_init redis_idle

# The value of key=V in the RESULT line of run $1 (a file).
field() { sed -n "s/^RESULT .*[ ]$2=\([^ ]*\).*/\1/p" "$1" | head -n 1; }

for alloc in numamalloc numamalloc_secure glibc; do
    lib="" secure=0
    [ "$alloc" != glibc ] && lib="$NM_LIB"
    [ "$alloc" = numamalloc_secure ] && secure=1
    out="$NM_TMP/$alloc.out"
    NUMAMALLOC_SECURE=$secure BENCH_PRELOAD="$lib" bash "$NM_ROOT/bench/programs.sh" program=redis_idle mode=quick \
        >"$out" 2>"$NM_TMP/$alloc.err" || { nm_fail "$alloc: the run failed"; cat "$NM_TMP/$alloc.err" >&2; continue; }
    empty=$(field "$out" rss_empty_start_mib)
    loaded=$(field "$out" rss_loaded_mib)
    after=$(field "$out" rss_after_flush_mib)
    echo "$alloc: fresh $empty MiB, loaded $loaded MiB, after FLUSHALL and $(field "$out" idle_ms) ms idle $after MiB (malloc from $(field "$out" malloc_from))"
    [ "$(field "$out" check)" = ok ] || nm_fail "$alloc: the server's self-checks failed"
    [ "$alloc" = glibc ] && continue
    [ "$(field "$out" malloc_from)" = libnumamalloc.so ] || nm_fail "redis-server did not run with $NM_LIB"
    awk -v l="$loaded" -v e="$empty" 'BEGIN { exit !(l > 4 * e) }' ||
        nm_fail "the load did not take (loaded $loaded MiB, fresh $empty MiB)"
    awk -v a="$after" -v e="$empty" 'BEGIN { exit !(a <= 2 * e) }' ||
        nm_fail "RSS $after MiB after the idle time, more than twice the fresh server's $empty MiB"
done
nm_finish
