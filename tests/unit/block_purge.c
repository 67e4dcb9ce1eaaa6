/* block_purge.c — the inside of free medium blocks goes back to the OS
 * (page.h: nm_page_take_due_blocks), and only when it should.
 *
 * The pattern: a thread fills a 512 KiB page with eight 64 KiB buffers,
 * keeps the fourth (long-lived) and frees the other seven, so the page is
 * never free as a whole.  Calls to the page's purge stand for the owner's
 * maintenance passes, with clock values chosen by the test:
 *
 *   first pass      marks the seven free blocks, gives back nothing, and
 *                   says memory waits
 *   a delay less 1 ms later: nothing yet
 *   a delay later   gives back every free block's pages but its first
 *                   (7 x 60 KiB; mincore: not resident), not the live
 *                   block's, whose bytes stay intact (it has free
 *                   neighbours on both sides)
 *   again           nothing: a purged block is not advised again
 *   reuse           the seven blocks are handed out again (the free list
 *                   is intact); two are freed: the next pass, however late,
 *                   only marks them, whether the program wrote their third
 *                   word or not (allocation clears the mark); a third freed
 *                   after that pass is first on the list and not due at the
 *                   next, so the two due ones are taken from the middle of
 *                   the list, which still hands out all three after
 *   due now         (nm_trim's) gives back every free block at once, marked
 *                   or not, also when a batch holds fewer than are due */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "../testutil.h"
#include "numamalloc.h"
#include "options.h"   /* nm_opt.purge_delay_ms */
#include "page.h"

enum { BLOCK = 64 * 1024, PER_PAGE = 8, OS_PAGE = 4096 };

/* OS pages of [p, p + len) that are resident. */
static size_t resident_pages(const void *p, size_t len)
{
    unsigned char vec[BLOCK / OS_PAGE];
    REQUIRE(len <= sizeof vec * OS_PAGE);
    REQUIRE(mincore((void *)p, len, vec) == 0);
    size_t n = 0;
    for (size_t i = 0; i < len / OS_PAGE; i++) n += vec[i] & 1;
    return n;
}

/* A purge pass over page `pg` at `now_ms`, as the heap makes one (heap.c:
 * segment_take_due_blocks, block_batch_finish), taking at most `max`
 * blocks: the due blocks are taken off the list (and counted in use
 * meanwhile), their inside given back, and put back.  Returns the bytes
 * given back. */
static size_t purge_some(struct nm_page *pg, uint64_t now_ms, bool due_now, bool *waiting,
                         uint32_t max)
{
    *waiting = false;
    uint32_t used = pg->used;
    struct nm_block *taken[PER_PAGE];
    REQUIRE(max <= PER_PAGE);
    uint32_t n = nm_page_take_due_blocks(pg, now_ms, due_now, waiting, taken, max);
    CHECK(pg->used == used + n, "taken blocks count as in use: %u, want %u", pg->used, used + n);
    size_t given = 0;
    for (uint32_t i = 0; i < n; i++) given += nm_block_purge_inside(taken[i], pg->block_size);
    for (uint32_t i = 0; i < n; i++) nm_page_put_back(pg, taken[i]);
    CHECK(pg->used == used, "and put back: %u in use, want %u", pg->used, used);
    return given;
}

static size_t purge(struct nm_page *pg, uint64_t now_ms, bool due_now, bool *waiting)
{
    return purge_some(pg, now_ms, due_now, waiting, PER_PAGE);
}

/* Whether every byte of `p` (`len` bytes) is `byte`. */
static bool all_bytes(const unsigned char *p, size_t len, unsigned char byte)
{
    for (size_t k = 0; k < len; k++)
        if (p[k] != byte) return false;
    return true;
}

enum { LIVE = 3 };   /* the long-lived block: free neighbours on both sides */

int main(void)
{
    const size_t inside = BLOCK - OS_PAGE;   /* 64 KiB blocks are 64 KiB-aligned */
    /* Blocks until one page is full of them: the first page of a segment
     * holds fewer (the header), so the page may be the second. */
    unsigned char *all[4 * PER_PAGE], *b[PER_PAGE];
    struct nm_page *pg = NULL;
    int n = 0;
    while (!pg) {
        REQUIRE(n < 4 * PER_PAGE, "no page holds %d blocks of %d bytes", PER_PAGE, BLOCK);
        all[n] = nm_malloc(BLOCK);
        REQUIRE(all[n] && (uintptr_t)all[n] % BLOCK == 0);
        memset(all[n], 0x40, BLOCK);
        struct nm_page *p = nm_page_of(nm_segment_of(all[n]), all[n]);
        int in_page = 0;
        for (int k = 0; k <= n; k++)
            if (nm_page_of(nm_segment_of(all[k]), all[k]) == p) b[in_page++] = all[k];
        if (in_page == PER_PAGE) pg = p;
        n++;
    }
    REQUIRE(pg->reserved == PER_PAGE);
    const uint64_t delay = nm_opt.purge_delay_ms;   /* read at the first allocation */
    if (delay == 0 || nm_proc.secure)
        nm_test_skip("needs a purge delay and no secure mode (NUMAMALLOC_PURGE_DELAY_MS=0 or "
                     "NUMAMALLOC_SECURE is set)");
    /* Blocks are in address order in the page: the live one has free
     * neighbours on both sides. */
    for (int i = 1; i < PER_PAGE; i++) REQUIRE(b[i] == b[i - 1] + BLOCK);
    for (int i = 0; i < PER_PAGE; i++)
        if (i != LIVE) nm_free(b[i]);

    bool waiting;
    uint64_t t0 = 1000000;
    CHECK(purge(pg, t0, false, &waiting) == 0 && waiting, "first pass: marks only, and waits");
    for (int i = 0; i < PER_PAGE; i++)
        CHECK(resident_pages(b[i], BLOCK) == BLOCK / OS_PAGE, "block %d resident after marking", i);
    CHECK(purge(pg, t0 + delay - 1, false, &waiting) == 0 && waiting, "nothing before the delay");
    size_t given = purge(pg, t0 + delay, false, &waiting);
    CHECK(given == (PER_PAGE - 1) * inside && !waiting, "a delay later: gave %zu bytes, want %zu",
          given, (PER_PAGE - 1) * inside);
    for (int i = 0; i < PER_PAGE; i++)
        if (i != LIVE)
            CHECK(resident_pages(b[i], BLOCK) == 1, "block %d: %zu pages resident, want its first",
                  i, resident_pages(b[i], BLOCK));
    CHECK(resident_pages(b[LIVE], BLOCK) == BLOCK / OS_PAGE, "the live block stays resident");
    CHECK(all_bytes(b[LIVE], BLOCK, 0x40), "the live block's bytes are intact");
    CHECK(purge(pg, t0 + 10 * delay, false, &waiting) == 0 && !waiting, "purged once only");

    /* Reuse: the free list hands out the seven blocks again, writable.
     * One gets only its first word and last byte written: its third word
     * stays as allocation left it. */
    unsigned char *again[PER_PAGE - 1];
    for (int i = 0; i < PER_PAGE - 1; i++) {
        again[i] = nm_malloc(BLOCK);
        CHECK(nm_page_of(nm_segment_of(again[i]), again[i]) == pg, "block %d from the page", i);
        if (i == 0) {
            memset(again[i], 0x11, 8);
            again[i][BLOCK - 1] = 0x11;
        } else {
            memset(again[i], 0x33, BLOCK);
        }
    }
    unsigned char *untouched = again[0], *written = again[1], *later = again[2];
    nm_free(untouched);
    nm_free(written);
    uint64_t t1 = t0 + 20 * delay;
    CHECK(purge(pg, t1, false, &waiting) == 0 && waiting,
          "blocks freed again are only marked, however late the pass");
    CHECK(resident_pages(written, BLOCK) == BLOCK / OS_PAGE, "and stay resident");
    nm_free(later);   /* first on the list now, and not due at the next pass */
    given = purge(pg, t1 + delay, false, &waiting);
    CHECK(given == 2 * inside && waiting, "a delay later the two go, from the middle of the list: "
          "gave %zu bytes, want %zu", given, 2 * inside);
    CHECK(resident_pages(later, BLOCK) == BLOCK / OS_PAGE, "the block freed later stays resident");
    unsigned char *back[3];
    for (int i = 0; i < 3; i++) {
        back[i] = nm_malloc(BLOCK);
        REQUIRE(back[i] != NULL);
        memset(back[i], 0x22, BLOCK);
    }
    int found = 0;
    for (int i = 0; i < 3; i++)
        found += back[i] == untouched || back[i] == written || back[i] == later;
    CHECK(found == 3 && back[0] != back[1] && back[1] != back[2] && back[0] != back[2],
          "the list still hands out the three blocks");

    /* Due now: every free block at once, marked or not, a batch of 2 at a
     * time. */
    for (int i = 0; i < 3; i++) nm_free(back[i]);
    for (int i = 3; i < PER_PAGE - 1; i++) nm_free(again[i]);
    given = 0;
    for (int pass = 0; pass < PER_PAGE; pass++) given += purge_some(pg, t1, true, &waiting, 2);
    CHECK(given == (PER_PAGE - 1) * inside, "due now: gave %zu bytes, want %zu", given,
          (PER_PAGE - 1) * inside);
    for (int i = 0; i < PER_PAGE; i++)
        if (i != LIVE)
            CHECK(resident_pages(b[i], BLOCK) == 1, "due now: block %d keeps its first page", i);
    CHECK(all_bytes(b[LIVE], BLOCK, 0x40), "the live block's bytes are still intact");
    for (int k = 0; k < n; k++)
        if (nm_page_of(nm_segment_of(all[k]), all[k]) != pg) nm_free(all[k]);
    nm_free(b[LIVE]);
    return nm_test_done();
}
