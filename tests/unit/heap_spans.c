/* heap_spans.c — large blocks of one heap with a policy, allocated and
 * freed by several threads at once: no span may be handed out twice.
 * Each thread keeps a few live blocks, fills each with its own pattern and
 * checks it before freeing; a span given to two threads at once shows up as
 * a pattern overwritten (or zeroed when the other owner frees it).  (A span
 * once could be: a new span was listed before it was marked live.  That
 * window is a few instructions wide; this test did not hit it here, the
 * slower multi-node guest did, in tests/unit/user_heap.c.) */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"
#include "numamalloc.h"

static nm_heap_t *heap;

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t x = id * 0x9E3779B97F4A7C15ull + 1;
    enum { LIVE = 4 };
    uint64_t *live[LIVE] = { 0 };
    size_t sizes[LIVE] = { 0 };
    for (int i = 0; i < 3000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 40) % LIVE);
        if (live[k]) {
            size_t words = sizes[k] / 8;
            for (size_t w = 0; w < words; w += 512)
                if (live[k][w] != (id << 48 | w)) {
                    CHECK(0, "thread %lu: block %p of %zu bytes overwritten at word %zu",
                          (unsigned long)id, (void *)live[k], sizes[k], w);
                    break;
                }
            nm_free(live[k]);
        }
        /* 300 KiB .. 1.2 MiB and 2 .. 3 MiB: spans of both layouts. */
        sizes[k] = (x >> 20) & 1 ? (300 + (x >> 50) % 900) * 1024 : (2048 + (x >> 50) % 1024) * 1024;
        live[k] = nm_heap_malloc(heap, sizes[k]);
        REQUIRE(live[k] != NULL);
        for (size_t w = 0; w < sizes[k] / 8; w += 512) live[k][w] = id << 48 | w;
    }
    for (int k = 0; k < LIVE; k++) nm_free(live[k]);
    return NULL;
}

int main(void)
{
    nm_policy p = nm_policy_preferred(nm_current_node());
    heap = nm_heap_new(&p);
    REQUIRE(heap != NULL);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(i + 1)) == 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    nm_heap_destroy(heap);
    return nm_test_done();
}
