/* segment_header.c — a fresh segment's header costs the pages its program
 * uses, not the whole header (segment.h: nm_segment_format, `fresh`).
 *
 * A small segment's header is its fields and 64 page records of 128 bytes:
 * three 4 KiB pages, the third shared with page 0's first blocks.  A thread
 * that uses a few pages writes the fields and the first records (the
 * header's first page) and page 0's blocks (its third); the second page
 * holds the records of pages 28 - 59, which nothing needs while those pages
 * are free.  Formatting a fresh segment used to clear all three, and the
 * walks that collect other threads' frees read every record: the second
 * page was resident in every thread's segment.
 *
 * The pattern is a server's worker: a thread allocates blocks of a few
 * classes, another thread frees half of them (remote frees, collected by
 * the owner on its next allocations), the owner allocates again.  Then the
 * header's second page must not be resident (/proc/self/pagemap), and it
 * must be once the thread takes more than 28 pages, so that the check can
 * tell. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"
#include "heap.h"

enum { BLOCKS = 3000, MANY = 40 * 16 };   /* MANY blocks of 4 KiB: 40 pages of 64 KiB */

static void *blocks[BLOCKS];
static void *many[MANY];
static struct nm_segment *segment;
static pthread_barrier_t step;

static bool resident(const void *p)
{
    int present = nm_test_page_present(p);
    REQUIRE(present >= 0, "/proc/self/pagemap");
    return present;
}

static const void *second_header_page(void) { return (const char *)segment + 4096; }

static void *owner(void *arg)
{
    (void)arg;
    static const size_t sizes[] = { 24, 64, 160, 512 };
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(sizes[i % 4]);
        REQUIRE(blocks[i], "malloc");
        memset(blocks[i], 0x5a, sizes[i % 4]);
    }
    segment = nm_segment_of(blocks[0]);
    pthread_barrier_wait(&step);   /* the other thread frees half */
    pthread_barrier_wait(&step);
    for (int i = 0; i < BLOCKS; i += 2) {   /* collects the remote frees */
        blocks[i] = malloc(sizes[i % 4]);
        REQUIRE(blocks[i], "malloc");
    }
    pthread_barrier_wait(&step);   /* checked */
    pthread_barrier_wait(&step);
    for (int i = 0; i < MANY; i++) {
        many[i] = malloc(4096);
        REQUIRE(many[i], "malloc");
        memset(many[i], 1, 4096);
    }
    pthread_barrier_wait(&step);   /* checked */
    pthread_barrier_wait(&step);
    for (int i = 0; i < MANY; i++) free(many[i]);
    for (int i = 0; i < BLOCKS; i += 2) free(blocks[i]);   /* the odd ones went */
    return NULL;
}

int main(void)
{
    pthread_t t;
    REQUIRE(pthread_barrier_init(&step, NULL, 2) == 0, "barrier");
    REQUIRE(pthread_create(&t, NULL, owner, NULL) == 0, "pthread_create");
    pthread_barrier_wait(&step);
    REQUIRE(segment && segment->kind == NM_SEGMENT_SMALL, "the blocks are in a small segment");
    REQUIRE(nm_segment_header_max() == 3 * 4096, "the header is 3 pages (%zu bytes)",
            nm_segment_header_max());
    for (int i = 1; i < BLOCKS; i += 2) free(blocks[i]);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);

    int used = __builtin_popcountll(nm_segment_pages_in_use(segment));
    CHECK(used >= 2 && used < 28, "the thread uses %d pages of its segment", used);
    CHECK(resident(segment), "the header's first page is resident");
    CHECK(!resident(second_header_page()),
          "the records of pages 28 - 59 are resident while %d pages are used", used);

    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    used = __builtin_popcountll(nm_segment_pages_in_use(segment));
    CHECK(used > 30, "the thread uses %d pages of its segment", used);
    CHECK(resident(second_header_page()),
          "the records of pages 28 - 59 are not resident with %d pages used", used);
    pthread_barrier_wait(&step);
    REQUIRE(pthread_join(t, NULL) == 0, "pthread_join");
    printf("segment header: records of unused pages left untouched\n");
    return nm_test_done();
}
