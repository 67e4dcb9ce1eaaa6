/* transfer.c — lists of small blocks handed between threads through their
 * arena (arena.h: nm_transfer), first as the slots themselves, then as a
 * producer/consumer program meets them.
 *
 *   slots     a list goes into a free slot whole and comes out whole, with
 *             its length; the eight slots of a class fill, and a ninth list
 *             is refused (its owner keeps it); a list of no block, of more
 *             than a slot can count, or at an address a slot cannot hold is
 *             refused; one class's lists never come out of another.
 *   idle      the retention rule: a class whose lists are put or taken is
 *             not given back, and sets `waiting`; once a whole purge delay
 *             passes with no put and no take it is; forced, at once; a
 *             class with no list is never named.
 *   handoff   a producer (main) allocates 64-byte blocks, a consumer thread
 *             frees them all: every time its own list of the class is full
 *             (16 KiB of blocks), the list and the block being freed go to
 *             the arena, and the consumer keeps nothing of them.  A third
 *             thread, new, then gets exactly the blocks of one such list
 *             for its first allocations of 64 bytes, without a page of its
 *             own.  Finally nm_trim gives the lists still in the arena back
 *             to their pages: the arena holds none, and the producer's
 *             pages hold no block in use.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "heap.h"
#include "numamalloc.h"

static struct nm_arena arena;   /* zeroed: the slots need nothing else */

static struct nm_block *fake_block(unsigned i)
{
    return (struct nm_block *)(uintptr_t)(0x7f0000000000ull + 0x1000ull * i);
}

static void check_slots(void)
{
    const unsigned cls = 5;
    uint32_t count = 0;
    CHECK(nm_arena_transfer_take(&arena, cls, &count) == NULL, "an empty class gave a list");
    CHECK(!nm_arena_transfer_put(&arena, cls, fake_block(1), 0), "a list of no block was put");
    CHECK(!nm_arena_transfer_put(&arena, cls, fake_block(1), NM_TRANSFER_MAX_BLOCKS + 1),
          "a list longer than a slot counts was put");
    CHECK(!nm_arena_transfer_put(&arena, cls, (struct nm_block *)(uintptr_t)(1ull << 52), 1),
          "a list at an address above 52 bits was put");
    CHECK(!nm_arena_transfer_put(&arena, cls, (struct nm_block *)(uintptr_t)0x7f0000000008ull, 1),
          "a list at an address not 16-byte aligned was put");

    bool seen[NM_TRANSFER_SLOTS + 1] = { false };
    for (unsigned i = 1; i <= NM_TRANSFER_SLOTS; i++)
        CHECK(nm_arena_transfer_put(&arena, cls, fake_block(i), i == 1 ? NM_TRANSFER_MAX_BLOCKS : i),
              "list %u of %d refused", i, NM_TRANSFER_SLOTS);
    CHECK(!nm_arena_transfer_put(&arena, cls, fake_block(99), 3), "a ninth list was put");
    CHECK(nm_arena_transfer_take(&arena, cls + 1, &count) == NULL,
          "a list of class %u came out of class %u", cls, cls + 1);
    for (unsigned n = 0; n < NM_TRANSFER_SLOTS; n++) {
        struct nm_block *head = nm_arena_transfer_take(&arena, cls, &count);
        REQUIRE(head != NULL, "list %u of %d did not come out", n + 1, NM_TRANSFER_SLOTS);
        unsigned i = (unsigned)(((uintptr_t)head - 0x7f0000000000ull) / 0x1000);
        REQUIRE(i >= 1 && i <= NM_TRANSFER_SLOTS && fake_block(i) == head,
                "a list came out at %p, put nowhere", (void *)head);
        CHECK(!seen[i], "list %u came out twice", i);
        seen[i] = true;
        CHECK(count == (i == 1 ? NM_TRANSFER_MAX_BLOCKS : i), "list %u came out with %u blocks",
              i, count);
    }
    CHECK(nm_arena_transfer_take(&arena, cls, &count) == NULL, "a list came out of empty slots");
    printf("slots: %d lists in and out whole, a ninth refused, bad lists refused\n",
           NM_TRANSFER_SLOTS);
}

static void check_idle(void)
{
    const uint64_t delay = 1000, t0 = 50000;
    nm_opt.purge_delay_ms = delay;
    bool waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, t0, true, &waiting) == 0 && !waiting,
          "with no list a class was named or waited");
    REQUIRE(nm_arena_transfer_put(&arena, 7, fake_block(1), 4));
    CHECK(nm_arena_transfer_idle(&arena, t0, false, &waiting) == 0 && waiting,
          "a class just put was given back, or did not wait");
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, t0 + delay - 1, false, &waiting) == 0 && waiting,
          "a class untouched 1 ms short of the delay was given back");
    /* A take and a put again: touched, so the delay starts over. */
    uint32_t count;
    REQUIRE(nm_arena_transfer_take(&arena, 7, &count) == fake_block(1));
    REQUIRE(nm_arena_transfer_put(&arena, 7, fake_block(1), 4));
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, t0 + delay, false, &waiting) == 0 && waiting,
          "a class touched within the delay was given back");
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, t0 + 2 * delay - 1, false, &waiting) == 0 && waiting,
          "given back 1 ms short of a delay after its last touch");
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, t0 + 2 * delay, false, &waiting) == 1ull << 7 && !waiting,
          "a class untouched for the delay was not given back alone");
    REQUIRE(nm_arena_transfer_put(&arena, 9, fake_block(2), 4));
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, t0 + 2 * delay, true, &waiting) == ((1ull << 7) | (1ull << 9)),
          "forced, not every class with a list was named");
    while (nm_arena_transfer_take(&arena, 7, &count)) {}
    while (nm_arena_transfer_take(&arena, 9, &count)) {}
    printf("idle: given back a delay after the last put or take, at once when forced\n");
}

/* ---- handoff ------------------------------------------------------------------------ */

#define BLOCK 64
#define HANDED 3000
static void *handed[HANDED];
static uint32_t consumer_kept;

static void *consumer(void *arg)
{
    (void)arg;
    void *volatile own = malloc(16);   /* a thread with a heap of its own */
    free(own);
    for (int i = 0; i < HANDED; i++) free(handed[i]);
    consumer_kept = nm_tls_heap->foreign[nm_size_class(BLOCK)].count;
    return NULL;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

static struct nm_block **list_blocks;   /* the list the newcomer should get */
static uint32_t list_count;
static void **newcomer_got;

static void *newcomer(void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < list_count; i++) newcomer_got[i] = malloc(BLOCK);
    return NULL;
}

/* How many lists and blocks class `cls` of `a` holds, peeking at its slots. */
static uint32_t arena_blocks(struct nm_arena *a, unsigned cls, int *lists)
{
    uint32_t blocks = 0;
    *lists = 0;
    for (int i = 0; i < NM_TRANSFER_SLOTS; i++) {
        uint64_t slot = atomic_load(&a->transfer[cls].slot[i]);
        if (!slot) continue;
        (*lists)++;
        blocks += (uint32_t)(slot & NM_TRANSFER_MAX_BLOCKS);
    }
    return blocks;
}

static void check_handoff(void)
{
    const unsigned cls = nm_size_class(BLOCK);
    for (int i = 0; i < HANDED; i++) {
        handed[i] = malloc(BLOCK);
        REQUIRE(handed[i] != NULL);
        memset(handed[i], 0x44, BLOCK);
    }
    struct nm_arena *a = nm_segment_of(handed[0])->arena;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, consumer, NULL) == 0);
    pthread_join(t, NULL);
    int lists;
    uint32_t in_arena = arena_blocks(a, cls, &lists);
    printf("handoff: the consumer freed %d blocks: %d lists of them (%u blocks) in the arena,"
           " %u kept on its own list\n", HANDED, lists, in_arena, consumer_kept);
    CHECK(lists >= 2 && in_arena >= 2 * (16384 / BLOCK), "the arena holds %d lists, %u blocks",
          lists, in_arena);

    /* The list a newcomer will take: the first full slot's. */
    uint32_t count = 0;
    struct nm_block *head = nm_arena_transfer_take(a, cls, &count);
    REQUIRE(head != NULL);
    list_blocks = malloc(count * sizeof *list_blocks);
    newcomer_got = malloc(count * sizeof *newcomer_got);
    REQUIRE(list_blocks && newcomer_got);
    uint32_t n = 0;
    for (struct nm_block *b = head; b && n <= count; b = nm_block_next(b)) list_blocks[n++] = b;
    CHECK(n == count, "the list holds %u blocks, its slot said %u", n, count);
    for (uint32_t i = 0; i < n; i++) {
        bool handed_out = false;
        for (int j = 0; j < HANDED && !handed_out; j++) handed_out = handed[j] == list_blocks[i];
        CHECK(handed_out, "block %p of the list was not one the consumer freed",
              (void *)list_blocks[i]);
    }
    /* Back in a slot, then taken by a thread with no page of the class. */
    REQUIRE(nm_arena_transfer_put(a, cls, head, count));
    int before_lists;
    uint32_t before = arena_blocks(a, cls, &before_lists);
    list_count = count;
    REQUIRE(pthread_create(&t, NULL, newcomer, NULL) == 0);
    pthread_join(t, NULL);
    uint32_t after = arena_blocks(a, cls, &lists);
    qsort(list_blocks, count, sizeof *list_blocks, by_address);
    qsort(newcomer_got, count, sizeof *newcomer_got, by_address);
    CHECK(before - after == count && lists == before_lists - 1,
          "the newcomer took %u blocks of the arena's, not one list of %u", before - after, count);
    bool same = true;
    for (uint32_t i = 0; i < count; i++) same &= (void *)list_blocks[i] == newcomer_got[i];
    printf("handoff: a new thread's first %u allocations of %d bytes: %s\n", count, BLOCK,
           same ? "the blocks of one list" : "NOT the list's blocks");
    CHECK(same, "a new thread's first allocations were not the blocks of a list the arena held");
    for (uint32_t i = 0; i < count; i++) free(newcomer_got[i]);

    /* nm_trim: what the arena still holds goes back to the producer's pages. */
    nm_trim();
    CHECK(arena_blocks(a, cls, &lists) == 0 && lists == 0, "after nm_trim the arena holds %d lists",
          lists);
    size_t in_use = 0;
    for (int i = 0; i < HANDED; i++) {
        struct nm_segment *s = nm_segment_of(handed[i]);
        struct nm_page *pg = nm_page_of(s, handed[i]);
        if (pg->state != NM_PAGE_FREE && pg->block_size == BLOCK && pg->used > in_use)
            in_use = pg->used;
    }
    CHECK(in_use == 0, "after nm_trim a page of the producer's still counts %zu blocks in use",
          in_use);
    printf("handoff: after nm_trim the arena holds no list, the producer's pages no block\n");
    free(list_blocks);
    free(newcomer_got);
}

int main(void)
{
    check_slots();
    check_idle();
    nm_opt.purge_delay_ms = 1000;
    check_handoff();
    return nm_test_done();
}
