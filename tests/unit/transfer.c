/* transfer.c — lists of small blocks handed between threads through their
 * arena (arena.h: nm_transfer), first as the slots themselves, then as a
 * producer/consumer program meets them.
 *
 *   slots     a list goes into a free slot whole and comes out whole, with
 *             its length; the eight slots of a class fill, and a ninth list
 *             is refused (its owner keeps it); a list of no block, of more
 *             than a slot can count, or at an address a slot cannot hold is
 *             refused; one class's lists never come out of another.
 *   idle      the rule: a class whose lists were put or taken since the
 *             last pass is not given back, and sets `waiting`; at the first
 *             pass that finds it untouched it is; forced, at once; a class
 *             with no list is never named; a purge's drain is no touch.
 *   handoff   a producer (main) allocates 64-byte blocks, a consumer thread
 *             frees them all: every time its own list of the class is full
 *             (16 KiB of blocks), the list goes to the arena and the block
 *             being freed starts a new one, so the consumer never keeps
 *             more than one list.  A third thread, new, then gets exactly
 *             the blocks of one such list for its first allocations of 64
 *             bytes, without a page of its own.  Finally nm_trim gives the
 *             lists still in the arena back to their pages: the arena holds
 *             none, and the producer's pages hold no block in use.  All
 *             threads run on main's CPU, so on one node: a thread on
 *             another node keeps nothing of main's blocks.
 *   set_heap  the same with two threads set to a heap of their own
 *             (nm_heap_new, nm_thread_set_heap): one allocates, the other
 *             frees, so the lists go to the heap's arena; once both have
 *             exited, the arena holds none (no purge reaches an arena no
 *             thread is set to: the last to leave gives them back).
 *   passes    (in a process of its own, without the purge thread) the same
 *             two threads, alive: a class touched before a purge pass keeps
 *             its lists through the pass, though the pass reaches the
 *             arena through both threads' heaps; the next pass, with no
 *             touch between, gives them back.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"
#include "heap.h"
#include "numamalloc.h"
#include "purge.h"

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
    bool waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, true, &waiting) == 0 && !waiting,
          "with no list a class was named or waited");
    REQUIRE(nm_arena_transfer_put(&arena, 7, fake_block(1), 4));
    CHECK(nm_arena_transfer_idle(&arena, false, &waiting) == 0 && waiting,
          "a class just put was given back, or did not wait");
    /* A take and a put again between two passes: still in use. */
    uint32_t count;
    REQUIRE(nm_arena_transfer_take(&arena, 7, &count) == fake_block(1));
    REQUIRE(nm_arena_transfer_put(&arena, 7, fake_block(1), 4));
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, false, &waiting) == 0 && waiting,
          "a class touched since the last pass was given back");
    REQUIRE(nm_arena_transfer_put(&arena, 9, fake_block(2), 4));
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, false, &waiting) == 1ull << 7 && waiting,
          "a class untouched since the last pass was not given back alone");
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, true, &waiting) == ((1ull << 7) | (1ull << 9)) && !waiting,
          "forced, not every class with a list was named");
    /* A purge takes lists without touching their class. */
    while (nm_arena_transfer_drain(&arena, 7, &count)) {}
    while (nm_arena_transfer_drain(&arena, 9, &count)) {}
    REQUIRE(nm_arena_transfer_put(&arena, 9, fake_block(2), 4));
    REQUIRE(nm_arena_transfer_put(&arena, 9, fake_block(3), 4));
    (void)nm_arena_transfer_idle(&arena, false, &waiting);
    CHECK(nm_arena_transfer_drain(&arena, 9, &count) != NULL, "a purge's drain found no list");
    waiting = false;
    CHECK(nm_arena_transfer_idle(&arena, false, &waiting) == 1ull << 9,
          "a purge's drain counted as a thread's take");
    while (nm_arena_transfer_drain(&arena, 9, &count)) {}
    printf("idle: a class untouched since the last pass goes back, at once when forced\n");
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
    cpu_set_t one;
    CPU_ZERO(&one);
    int cpu = sched_getcpu();
    CPU_SET(cpu < 0 ? 0 : cpu, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0, "pinning to CPU %d", cpu);
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
    CHECK(consumer_kept <= 16384 / BLOCK, "the consumer kept %u blocks, more than one list",
          consumer_kept);

    /* The list a newcomer will take: the first full slot's. */
    uint32_t count = 0;
    struct nm_block *head = nm_arena_transfer_take(a, cls, &count);
    REQUIRE(head != NULL);
    list_blocks = malloc(count * sizeof *list_blocks);
    newcomer_got = malloc(count * sizeof *newcomer_got);
    REQUIRE(list_blocks && newcomer_got);
    uint32_t n = 0;
    struct nm_block *b = head;
    for (; b && n < count; b = nm_block_next(b)) list_blocks[n++] = b;
    CHECK(n == count && b == NULL, "the list holds %s%u blocks, its slot said %u",
          b ? "more than " : "", n, count);
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

/* ---- set_heap ------------------------------------------------------------------------ */

static nm_heap_t *set_heap;
static pthread_barrier_t set_step;
static struct nm_arena *set_arena;
static int set_lists;

/* Parties at the barrier: the two threads, and main in the passes case
 * (which looks while both are alive, between their last two steps). */
static unsigned set_parties = 2;

static void *set_producer(void *arg)
{
    (void)arg;
    REQUIRE(nm_thread_set_heap(set_heap) == NULL, "nm_thread_set_heap");
    for (int i = 0; i < HANDED; i++) {
        handed[i] = malloc(BLOCK);
        REQUIRE(handed[i] != NULL);
    }
    set_arena = nm_segment_of(handed[0])->arena;
    pthread_barrier_wait(&set_step);   /* allocated */
    pthread_barrier_wait(&set_step);   /* freed */
    if (set_parties == 3) pthread_barrier_wait(&set_step);   /* looked at: exit */
    return NULL;
}

static void *set_consumer(void *arg)
{
    (void)arg;
    REQUIRE(nm_thread_set_heap(set_heap) == NULL, "nm_thread_set_heap");
    void *volatile own = malloc(16);
    free(own);
    pthread_barrier_wait(&set_step);
    for (int i = 0; i < HANDED; i++) free(handed[i]);
    arena_blocks(set_arena, nm_size_class(BLOCK), &set_lists);
    pthread_barrier_wait(&set_step);
    if (set_parties == 3) pthread_barrier_wait(&set_step);
    return NULL;
}

static void set_heap_start(pthread_t *p, pthread_t *c)
{
    set_heap = nm_heap_new(NULL);
    REQUIRE(set_heap != NULL, "nm_heap_new");
    pthread_barrier_init(&set_step, NULL, set_parties);
    REQUIRE(pthread_create(p, NULL, set_producer, NULL) == 0);
    REQUIRE(pthread_create(c, NULL, set_consumer, NULL) == 0);
}

static void check_set_heap(void)
{
    pthread_t p, c;
    set_heap_start(&p, &c);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    pthread_barrier_destroy(&set_step);
    REQUIRE(set_arena && set_arena->owned, "the blocks came from an arena of no heap");
    int lists;
    uint32_t left = arena_blocks(set_arena, nm_size_class(BLOCK), &lists);
    printf("set_heap: the consumer's frees left %d lists in the heap's arena; after both threads"
           " exited, %d lists (%u blocks)\n", set_lists, lists, left);
    CHECK(set_lists >= 2, "the consumer's frees left %d lists in the heap's arena", set_lists);
    CHECK(lists == 0, "after its threads exited the heap's arena holds %d lists", lists);
    nm_heap_destroy(set_heap);
}

static void check_passes(void)
{
    set_parties = 3;
    pthread_t p, c;
    set_heap_start(&p, &c);
    pthread_barrier_wait(&set_step);   /* allocated */
    pthread_barrier_wait(&set_step);   /* freed */
    const unsigned cls = nm_size_class(BLOCK);
    int lists, before;
    arena_blocks(set_arena, cls, &before);
    REQUIRE(before >= 2, "the consumer's frees left %d lists in the heap's arena", before);
    /* A thread's take and put: the class is in use. */
    uint32_t count;
    struct nm_block *head = nm_arena_transfer_take(set_arena, cls, &count);
    REQUIRE(head != NULL && nm_arena_transfer_put(set_arena, cls, head, count));
    (void)nm_purge_pass(nm_os_now_ms(), false);
    arena_blocks(set_arena, cls, &lists);
    CHECK(lists == before, "a pass gave back lists of a class in use: %d of %d left", lists, before);
    (void)nm_purge_pass(nm_os_now_ms(), false);
    int after;
    arena_blocks(set_arena, cls, &after);
    CHECK(after == 0, "a pass after one with no touch left %d lists", after);
    printf("passes: a class in use kept its %d lists through a pass, the next pass gave back %d\n",
           lists, lists - after);
    pthread_barrier_wait(&set_step);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    pthread_barrier_destroy(&set_step);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "passes") == 0) {
        check_passes();
        return nm_test_done();
    }
    check_slots();
    check_idle();
    check_handoff();
    check_set_heap();
    /* Passes made here, without the purge thread (and without passes from
     * allocation paths: their delay is a minute), decide alone. */
    const char *const vars[] = { "NUMAMALLOC_PURGE_THREAD", "0",
                                 "NUMAMALLOC_PURGE_DELAY_MS", "60000", NULL };
    nm_test_run_self(argv[0], "passes", vars);
    return nm_test_done();
}
