/* own_heap.c — while a thread has a heap set (nm_thread_set_heap), the
 * calls about "the calling thread's heap" still act on its own heap:
 * nm_reserve faults in the free pages of the own heap's segments (which
 * that heap takes before any reserved segment), so that the thread's plain
 * blocks after nm_thread_set_heap(NULL) take (almost) no page faults.
 * (tests/vm/guest/api_place.c checks nm_thread_rebind the same way on two
 * nodes.) */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "../testutil.h"
#include "numamalloc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* 1 MiB of 1 KiB blocks: all from the own heap's first 4 MiB segment. */
enum { BLOCKS = 1024 };
static char *cold[BLOCKS], *warm[BLOCKS];

/* Allocate and write BLOCKS blocks of 1 KiB into `b`; the page faults taken. */
static long allocate_and_touch(char **b)
{
    long before = nm_test_minor_faults();
    for (int i = 0; i < BLOCKS; i++) {
        b[i] = nm_malloc(KiB);
        REQUIRE(b[i] != NULL);
        memset(b[i], i, KiB);
    }
    return nm_test_minor_faults() - before;
}

int main(void)
{
    int node = nm_current_node();
    REQUIRE(node >= 0, "nm_current_node: %s", strerror(errno));
    /* The own heap's first segment: 1 MiB of new blocks faults in ~256
     * pages.  They stay in use, so the next MiB comes from the same
     * segment's free pages. */
    long cold_faults = allocate_and_touch(cold);
    CHECK(cold_faults > 128, "only %ld faults for a new MiB: the comparison below proves nothing",
          cold_faults);

    char err[200], text[32];
    nm_policy bind;
    snprintf(text, sizeof text, "bind:%d", node);
    REQUIRE(nm_policy_parse(text, &bind, err, sizeof err) == 0, "%s", err);
    nm_heap_t *h = nm_heap_new(&bind);
    REQUIRE(h != NULL, "nm_heap_new: %s", strerror(errno));
    errno = 0;
    REQUIRE(nm_thread_set_heap(h) == NULL && errno == 0, "nm_thread_set_heap: %s", strerror(errno));
    void *in_set = nm_malloc(KiB);   /* the set heap has a segment of its own */
    REQUIRE(in_set != NULL);
    REQUIRE(nm_reserve(node, 8 * MiB) == 0, "nm_reserve: %s", strerror(errno));
    REQUIRE(nm_thread_set_heap(NULL) == h);

    long warm_faults = allocate_and_touch(warm);
    printf("1 MiB of 1 KiB blocks from the own heap: %ld page faults cold, %ld after nm_reserve "
           "with a heap set\n", cold_faults, warm_faults);
    CHECK(warm_faults < cold_faults / 8,
          "nm_reserve with a heap set left the own heap's pages out: %ld faults, %ld without",
          warm_faults, cold_faults);

    for (int i = 0; i < BLOCKS; i++) {
        nm_free(cold[i]);
        nm_free(warm[i]);
    }
    nm_free(in_set);
    nm_heap_destroy(h);
    return nm_test_done();
}
