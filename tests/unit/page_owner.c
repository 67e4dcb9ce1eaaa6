/* page_owner.c — the word free compares with its thread (segment.h:
 * struct nm_page, local_owner):
 *
 *   local_owner == (state == NM_PAGE_QUEUED && !secure mode ? segment's thread : 0)
 *
 * free takes its one-compare path only when the word names the calling
 * thread; a word left naming a thread after its page filled, or after its
 * segment went to another thread, would send a free past the full list or
 * into another thread's page.  The pattern is a server's: a worker fills
 * pages of a class, frees some itself and hands the rest to another thread,
 * exits; a new worker takes its heap over and frees the old worker's
 * blocks; nm_trim gives parked heaps' segments to their arena and a later
 * thread adopts them; a thread that uses more nm_heap_new heaps than it
 * keeps caches for gives up the cache of one while it lives, with blocks
 * still in it, and frees them later.  After each step every page of every
 * heap, and the page of every block still live, must satisfy the equation
 * (and the steps must have made full pages, abandoned segments and
 * adopted ones); every block frees and comes back intact.  The same again in secure mode, where
 * no page names a thread (its frees all go through the quarantine). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"
#include "heap.h"

enum { SIZE = 512, BLOCKS = 4096 };   /* 32 pages of 64 KiB, most of them full */

static void *blocks[BLOCKS];
static unsigned char tags[BLOCKS];   /* what block i was filled with */
static int checked_pages, full_pages, ownerless_pages;   /* in the last check_all */

static uintptr_t expected_owner(const struct nm_page *pg)
{
    const struct nm_segment *s = nm_segment_of(pg);
    if (pg->state != NM_PAGE_QUEUED || nm_proc.secure) return 0;
    return atomic_load_explicit(&s->thread, memory_order_relaxed);
}

static void check_page(const struct nm_page *pg, const char *when)
{
    uintptr_t have = atomic_load_explicit(&pg->local_owner, memory_order_relaxed);
    CHECK(have == expected_owner(pg), "%s: page %p (state %d, segment thread %lu) names thread %lu",
          when, (const void *)pg, pg->state,
          (unsigned long)atomic_load(&nm_segment_of(pg)->thread), (unsigned long)have);
    checked_pages++;
    if (pg->state == NM_PAGE_FULL) full_pages++;
    if (pg->state != NM_PAGE_FREE && atomic_load(&nm_segment_of(pg)->thread) == 0) ownerless_pages++;
}

/* Every page of every heap's segments, and the page of every live block
 * (also in abandoned segments, which no heap lists). */
static void check_all(const char *when)
{
    checked_pages = full_pages = ownerless_pages = 0;
    for (struct nm_heap *h = atomic_load(&nm_proc.heaps); h; h = h->all_next)
        for (int kind = 0; kind < 2; kind++)
            for (struct nm_segment *s = h->segments[kind]; s; s = s->heap_next)
                for (size_t i = 0; i < s->page_count; i++) check_page(&s->pages[i], when);
    for (int i = 0; i < BLOCKS; i++)
        if (blocks[i]) check_page(nm_page_of(nm_segment_of(blocks[i]), blocks[i]), when);
    CHECK(checked_pages > 0, "%s: no page looked at", when);
}

/* Fill the empty slots in [from, to) with new blocks written with `tag`. */
static void fill(int from, int to, unsigned char tag)
{
    for (int i = from; i < to; i++) {
        if (blocks[i]) continue;
        blocks[i] = malloc(SIZE);
        REQUIRE(blocks[i], "malloc(%d)", SIZE);
        memset(blocks[i], tag, SIZE);
        tags[i] = tag;
    }
}

/* Free the blocks of every `step`th slot from `from`, checked intact. */
static void drop(int from, int to, int step)
{
    for (int i = from; i < to; i += step) {
        if (!blocks[i]) continue;
        const unsigned char *b = blocks[i];
        CHECK(b[0] == tags[i] && b[SIZE - 1] == tags[i], "block %d at %p: %#x..%#x, not %#x", i,
              blocks[i], b[0], b[SIZE - 1], tags[i]);
        free(blocks[i]);
        blocks[i] = NULL;
    }
}

/* A worker: fills every slot, checks, frees every fourth block itself
 * (pages leave the full list), checks again, and exits with the rest live. */
static void *first_worker(void *arg)
{
    (void)arg;
    fill(0, BLOCKS, 0x11);
    check_all("worker filled its pages");
    REQUIRE(full_pages > 0, "no page of the worker is full: the test misses its point");
    drop(0, BLOCKS, 4);
    check_all("worker freed a quarter of its blocks itself");
    return NULL;
}

/* Another thread frees every other block left: remote frees. */
static void *remote_freer(void *arg)
{
    (void)arg;
    drop(1, BLOCKS, 4);
    return NULL;
}

/* The next worker takes the parked heap over: frees old blocks (its own now),
 * refills the slots, and exits. */
static void *next_worker(void *arg)
{
    (void)arg;
    check_all("worker took the parked heap over");
    drop(2, BLOCKS, 4);
    fill(0, BLOCKS, 0x22);
    check_all("worker collected remote frees and refilled");
    return NULL;
}

/* A thread after nm_trim: adopts the abandoned segments as it allocates. */
static void *adopter(void *arg)
{
    (void)arg;
    void *mine[BLOCKS / 4];
    for (int i = 0; i < BLOCKS / 4; i++) {
        mine[i] = malloc(SIZE);
        REQUIRE(mine[i]);
        memset(mine[i], 0x33, SIZE);
    }
    check_all("thread adopted abandoned segments");
    drop(0, BLOCKS, 1);   /* every block of the earlier workers */
    check_all("adopting thread freed the earlier workers' blocks");
    for (int i = 0; i < BLOCKS / 4; i++) free(mine[i]);
    return NULL;
}

/* More user heaps than a thread keeps caches for (heap.h: NM_USER_SLOTS):
 * using a heap whose slot another one holds abandons that one's segments
 * while the thread runs on, its blocks live.  Their pages name no thread;
 * the thread frees them later as another thread's blocks. */
enum { USER_HEAPS = 2 * NM_USER_SLOTS + 1, USER_BLOCKS = 200 };
static void *user_blocks[USER_HEAPS][USER_BLOCKS];

static void check_user_blocks(const char *when)
{
    for (int k = 0; k < USER_HEAPS; k++)
        for (int i = 0; i < USER_BLOCKS; i++)
            if (user_blocks[k][i])
                check_page(nm_page_of(nm_segment_of(user_blocks[k][i]), user_blocks[k][i]), when);
}

static void *user_heaps(void *arg)
{
    (void)arg;
    nm_heap_t *heaps[USER_HEAPS];
    for (int k = 0; k < USER_HEAPS; k++) {
        heaps[k] = nm_heap_new(NULL);
        REQUIRE(heaps[k], "nm_heap_new");
        for (int i = 0; i < USER_BLOCKS; i++) {
            user_blocks[k][i] = nm_heap_malloc(heaps[k], SIZE);
            REQUIRE(user_blocks[k][i]);
            memset(user_blocks[k][i], 0x40 + k, SIZE);
        }
        check_user_blocks("user heaps taking each other's caches");
    }
    for (int k = 0; k < USER_HEAPS; k++)
        for (int i = 0; i < USER_BLOCKS; i++) {
            const unsigned char *b = user_blocks[k][i];
            CHECK(b[0] == 0x40 + k && b[SIZE - 1] == 0x40 + k, "user block %d/%d at %p changed", k,
                  i, user_blocks[k][i]);
            free(user_blocks[k][i]);
            user_blocks[k][i] = NULL;
            if (i % 50 == 0) check_user_blocks("user heaps' blocks freed");
        }
    for (int k = 0; k < USER_HEAPS; k++) nm_heap_destroy(heaps[k]);
    return NULL;
}

static void run(void *(*fn)(void *))
{
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, fn, NULL) == 0);
    REQUIRE(pthread_join(t, NULL) == 0);
}

int main(int argc, char **argv)
{
    /* The checks read other heaps' lists without their locks: with no
     * purge thread, only the thread that checks changes any heap (the
     * others are joined or waiting in pthread_join). */
    if (!getenv("NUMAMALLOC_PURGE_THREAD")) {
        setenv("NUMAMALLOC_PURGE_THREAD", "0", 1);
        execv("/proc/self/exe", argv);
        REQUIRE(false, "exec /proc/self/exe");
    }
    if (argc == 1) {   /* the secure-mode run, in a child that reads its options anew */
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            setenv("NUMAMALLOC_SECURE", "1", 1);
            execl("/proc/self/exe", argv[0], "--secure", (char *)NULL);
            _exit(127);
        }
        int status;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "secure mode: status %#x", status);
    }
    free(malloc(16));   /* the main thread's heap first */
    if (argc == 2) REQUIRE(nm_proc.secure, "NUMAMALLOC_SECURE=1 did not take");
    run(first_worker);
    check_all("worker exited (heap parked)");
    run(remote_freer);
    check_all("remote frees while the heap is parked");
    run(next_worker);
    check_all("second worker exited");
    uint64_t abandoned = atomic_load(&nm_proc.counters.abandoned);
    nm_trim();   /* parked heaps give their segments to the arena */
    check_all("nm_trim");
    REQUIRE(atomic_load(&nm_proc.counters.abandoned) > abandoned && ownerless_pages > 0,
            "nm_trim abandoned no segment with blocks in use");
    uint64_t adopted = atomic_load(&nm_proc.counters.reclaimed);
    run(adopter);
    check_all("adopting thread exited");
    REQUIRE(atomic_load(&nm_proc.counters.reclaimed) > adopted, "no segment was adopted");
    abandoned = atomic_load(&nm_proc.counters.abandoned);
    run(user_heaps);
    check_all("end");
    REQUIRE(atomic_load(&nm_proc.counters.abandoned) > abandoned,
            "no user heap's segment was abandoned by its living thread");
    return nm_test_done();
}
