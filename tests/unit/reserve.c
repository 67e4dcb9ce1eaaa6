/* reserve.c — nm_reserve faults memory in up front: allocations that follow
 * take (almost) no page faults, the reserve survives the purge, and nm_trim
 * gives it back.  Bad nodes are refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

#define MiB ((size_t)1 << 20)

enum { BLOCKS = 32 * 1024 };   /* 32 MiB in 1 KiB blocks */
static char *blocks[BLOCKS];

/* Allocate and write 32 MiB of 1 KiB blocks; return the page faults taken. */
static long allocate_and_touch(void)
{
    long before = nm_test_minor_faults();
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = nm_malloc(1024);
        REQUIRE(blocks[i] != NULL);
        memset(blocks[i], i, 1024);
    }
    return nm_test_minor_faults() - before;
}

static void free_all(void)
{
    for (int i = 0; i < BLOCKS; i++) nm_free(blocks[i]);
}

int main(void)
{
    int node = nm_current_node();
    /* Without a reserve, 32 MiB of new blocks fault in ~8192 pages. */
    long cold = allocate_and_touch();
    free_all();
    nm_trim();
    CHECK(cold > 4000, "only %ld faults without a reserve: the comparison below proves nothing",
          cold);

    size_t rss0 = nm_test_rss();
    REQUIRE(nm_reserve(node, 64 * MiB) == 0, "nm_reserve: %s", strerror(errno));
    size_t rss1 = nm_test_rss();
    CHECK(rss1 >= rss0 + 60 * MiB, "reserve made RSS grow by %zu KiB only", (rss1 - rss0) / 1024);

    long warm = allocate_and_touch();
    printf("32 MiB of 1 KiB blocks: %ld page faults cold, %ld after nm_reserve(64 MiB)\n", cold,
           warm);
    CHECK(warm < cold / 20, "%ld page faults after reserving, %ld without", warm, cold);
    free_all();

    /* The purge keeps the reserve: after twice the purge delay and a slow
     * path (a large block), RSS is still above it. */
    usleep(250 * 1000);
    free(nm_malloc(1 * MiB));
    size_t rss2 = nm_test_rss();
    CHECK(rss2 >= rss0 + 60 * MiB, "the purge returned the reserve: RSS %zu KiB, start %zu KiB",
          rss2 / 1024, rss0 / 1024);
    /* nm_trim gives everything back. */
    nm_trim();
    size_t rss3 = nm_test_rss();
    CHECK(rss3 < rss0 + 16 * MiB, "after nm_trim RSS is %zu KiB, start %zu KiB", rss3 / 1024,
          rss0 / 1024);

    errno = 0;
    CHECK(nm_reserve(999, MiB) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(nm_reserve(-1, MiB) == -1 && errno == EINVAL);
    volatile size_t huge = (size_t)-1;
    errno = 0;
    CHECK(nm_reserve(node, huge) == -1 && errno == ENOMEM);
    return nm_test_done();
}
