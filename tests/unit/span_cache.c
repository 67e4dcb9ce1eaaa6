/* span_cache.c — how much of the freed large blocks (spans) the node cache
 * keeps (large.c: the demand budget), in a fresh process (what earlier
 * blocks of the same process did raises the budget).
 *
 *   growth   a hash table or a vector that doubles: each block is bigger
 *            than every one freed before, so no freed span is ever reused;
 *            the cache keeps its floor (4 MiB) of them, not all.
 *   rounds   the same big blocks allocated and freed every step (a
 *            solver's work arrays): once they come back, they are cached
 *            although together they are more than the floor, and the third
 *            round takes (almost) no page fault.
 *   expired  a single-threaded program (no background purge): spans that
 *            waited the purge delay in the cache make room for the next
 *            freed span, which is cached and reused without page faults.
 *   fit      a block takes the cached span whose committed pages cover it
 *            (a 1.9 MiB one for a 768 KiB block) rather than the one
 *            closest in size that does not (a 512 KiB one): no page fault.
 * They measure the kernel's counters (RSS, minor faults), not times; the
 * expired case runs first, before the others raise the budget. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "numamalloc.h"
#include "../testutil.h"

#define MiB ((size_t)1 << 20)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4096) p[i] = (unsigned char)(seed + i / 4096);
}

enum { SPAN_BLOCK = 1900 * 1024 };   /* below 2 MiB: no huge pages */

int main(void)
{
    /* expired: 3.7 MiB cached, then older than the delay (1 s) when the
     * next 1.9 MiB block is freed; over the 4 MiB floor if they counted. */
    unsigned char *old1 = nm_malloc(SPAN_BLOCK), *old2 = nm_malloc(SPAN_BLOCK);
    unsigned char *next = nm_malloc(SPAN_BLOCK);
    REQUIRE(old1 && old2 && next);
    fill(old1, SPAN_BLOCK, 1);
    fill(old2, SPAN_BLOCK, 2);
    fill(next, SPAN_BLOCK, 3);
    nm_free(old1);
    nm_free(old2);
    struct timespec delay = { 1, 200 * 1000 * 1000 };
    nanosleep(&delay, NULL);
    nm_free(next);
    long faults = nm_test_minor_faults();
    unsigned char *again = nm_malloc(SPAN_BLOCK);
    REQUIRE(again != NULL);
    fill(again, SPAN_BLOCK, 4);
    faults = nm_test_minor_faults() - faults;
    printf("expired: %ld page faults refilling a 1.9 MiB block freed after the cache's spans expired\n",
           faults);
    CHECK(faults < 100, "%ld page faults: the freed span was not cached", faults);
    nm_free(again);
    nm_trim();

    /* growth: RSS stays within the live block plus the floor (and slack),
     * where caching every freed span held 1 + 2 + 4 + 8 MiB more. */
    size_t rss_start = nm_test_rss();
    unsigned char *table = NULL;
    size_t table_size = 0;
    for (size_t size = 1 * MiB; size <= 16 * MiB; size *= 2) {
        unsigned char *bigger = nm_malloc(size);
        REQUIRE(bigger != NULL);
        if (table) memcpy(bigger, table, table_size);
        fill(bigger + table_size, size - table_size, 8);
        nm_free(table);   /* NULL the first time */
        table = bigger;
        table_size = size;
    }
    size_t rss_grown = nm_test_rss();
    CHECK(rss_grown <= rss_start + (16 + 4 + 3) * MiB,
          "RSS grew by %zu KiB for a 16 MiB table (freed 1 - 8 MiB tables kept)",
          (rss_grown - rss_start) / 1024);
    printf("growth: RSS grew by %zu KiB for a 16 MiB table\n", (rss_grown - rss_start) / 1024);
    nm_free(table);

    /* rounds: 8 blocks of 1.06 MiB, 8.5 MiB in all. */
    enum { ROUND_BLOCKS = 8 };
    long round_faults[3];
    for (int round = 0; round < 3; round++) {
        long faults = nm_test_minor_faults();
        unsigned char *work[ROUND_BLOCKS];
        for (int i = 0; i < ROUND_BLOCKS; i++) {
            work[i] = nm_malloc(MiB + 64 * 1024);
            REQUIRE(work[i] != NULL);
            fill(work[i], MiB + 64 * 1024, 9);
        }
        for (int i = 0; i < ROUND_BLOCKS; i++) nm_free(work[i]);
        round_faults[round] = nm_test_minor_faults() - faults;
    }
    printf("rounds: page faults %ld, %ld, %ld\n", round_faults[0], round_faults[1], round_faults[2]);
    CHECK(round_faults[2] * 8 < round_faults[0],
          "page faults by round: %ld, %ld, %ld (the third should reuse cached spans)",
          round_faults[0], round_faults[1], round_faults[2]);

    /* fit: both spans cached (2.4 MiB, within the floor), then 768 KiB. */
    nm_trim();
    unsigned char *covering = nm_malloc(SPAN_BLOCK), *short_one = nm_malloc(512 * 1024);
    REQUIRE(covering && short_one);
    fill(covering, SPAN_BLOCK, 10);
    fill(short_one, 512 * 1024, 11);
    nm_free(covering);
    nm_free(short_one);
    faults = nm_test_minor_faults();
    unsigned char *mid = nm_malloc(768 * 1024);
    REQUIRE(mid != NULL);
    fill(mid, 768 * 1024, 12);
    faults = nm_test_minor_faults() - faults;
    printf("fit: %ld page faults filling a 768 KiB block (cached: 1.9 MiB and 512 KiB spans)\n",
           faults);
    CHECK(faults < 16, "%ld page faults: the block took the span that did not cover it", faults);
    nm_free(mid);

    return nm_test_done();
}
