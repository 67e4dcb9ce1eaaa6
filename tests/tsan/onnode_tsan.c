/* onnode_tsan.c — under ThreadSanitizer: threads allocate from their local
 * heaps, their node heaps (nm_malloc_onnode) and their part of a shared
 * heap with a policy (nm_heap_new), hand blocks to each other
 * through a shared array of slots, and free what they take; short-lived
 * threads join in.  Every block carries its size and is checked on free. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"
#include "numamalloc.h"

#define SLOTS 1024
static _Atomic(uint64_t *) slots[SLOTS];
static int node;
static nm_heap_t *shared;

static void check_and_free(uint64_t *b)
{
    if (!b) return;
    uint64_t size = b[0];
    CHECK(b[size / 8 - 1] == (size ^ 0x5a5a), "block %p of %llu bytes corrupted", (void *)b,
          (unsigned long long)size);
    nm_free(b);
}

static void *worker(void *arg)
{
    uint64_t x = (uintptr_t)arg * 2654435761u + 1;
    int rounds = (uintptr_t)arg < 4 ? 40000 : 500;
    for (int i = 0; i < rounds; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = 16 + ((x >> 20) % 4000) / 8 * 8;
        if ((x >> 40) % 97 == 0) size = 300 * 1024;
        unsigned how = (unsigned)((x >> 33) % 3);
        uint64_t *b = how == 0 ? nm_malloc_onnode(size, node)
                    : how == 1 ? nm_heap_malloc(shared, size) : nm_malloc(size);
        REQUIRE(b != NULL);
        b[0] = size;
        b[size / 8 - 1] = size ^ 0x5a5a;
        check_and_free(atomic_exchange(&slots[(x >> 8) % SLOTS], b));
    }
    return NULL;
}

int main(void)
{
    node = nm_current_node();
    nm_policy p = nm_policy_preferred(node);
    shared = nm_heap_new(&p);
    REQUIRE(shared != NULL);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) REQUIRE(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
    for (uintptr_t i = 4; i < 100; i++) {
        pthread_t c;
        REQUIRE(pthread_create(&c, NULL, worker, (void *)i) == 0);
        pthread_join(c, NULL);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++) check_and_free(atomic_exchange(&slots[i], NULL));
    nm_heap_destroy(shared);
    return nm_test_done();
}
