/* onnode.c — nm_malloc_onnode / nm_calloc_onnode: blocks of every size come
 * from memory the kernel reports bound to the node (get_mempolicy on the
 * block's address) and resident there (move_pages); they are freed from any
 * thread; a freed block is reused by the node's allocations only, never by
 * plain malloc; bad nodes are refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

#define MPOL_BIND_MODE 2

static void *free_it(void *p)
{
    free(p);
    return NULL;
}

/* A thread whose first numamalloc call is one on-node call with `node`. */
enum { FIRST_MALLOC, FIRST_CALLOC, FIRST_CALLOC_LARGE, FIRST_CALLS };
struct first_call {
    int call, node;
    void *result;
    int err;
};

static void *first_call_thread(void *arg)
{
    struct first_call *fc = arg;
    errno = 0;
    switch (fc->call) {
    case FIRST_MALLOC: fc->result = nm_malloc_onnode(16, fc->node); break;
    case FIRST_CALLOC: fc->result = nm_calloc_onnode(2, 8, fc->node); break;
    case FIRST_CALLOC_LARGE: fc->result = nm_calloc_onnode(1, 4 << 20, fc->node); break;
    }
    fc->err = errno;
    return NULL;
}

int main(void)
{
    int ids[64];
    int count = nm_node_ids(ids, 64);
    static const size_t sizes[] = { 16, 100, 1024, 5000, 100000, 300 * 1024, 3 << 20 };
    for (int n = 0; n < count && n < 64; n++) {
        int node = ids[n];
        uint64_t total = 0;
        nm_node_memory(node, &total, NULL);
        if (total == 0) {
            errno = 0;
            CHECK(nm_malloc_onnode(64, node) == NULL && errno == EINVAL,
                  "node %d has no memory but served a block", node);
            continue;
        }
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = nm_malloc_onnode(sizes[i], node);
            REQUIRE(p != NULL, "nm_malloc_onnode(%zu, %d)", sizes[i], node);
            CHECK(nm_usable_size(p) >= sizes[i]);
            memset(p, 0x3c, sizes[i]);
            unsigned long mask0 = 0;
            int mode = nm_test_policy_of(p, &mask0);
            CHECK(mode == MPOL_BIND_MODE && mask0 == 1ul << node,
                  "%zu B on node %d: policy %d mask %#lx", sizes[i], node, mode, mask0);
            CHECK(nm_test_node_of(p) == node, "%zu B: page on node %d, asked %d", sizes[i], nm_test_node_of(p), node);
            CHECK(nm_test_node_of(p + sizes[i] - 1) == node);
            nm_free(p);
        }
        unsigned char *z = nm_calloc_onnode(1000, 1000, node);
        REQUIRE(z != NULL);
        size_t nonzero = 0;
        for (size_t i = 0; i < 1000 * 1000; i++) nonzero += z[i] != 0;
        CHECK(nonzero == 0, "calloc_onnode left %zu bytes", nonzero);
        free(z);
    }
    printf("checked %d node(s)\n", count);

    /* A block freed by another thread is reused by the node's allocations,
     * and never handed to plain malloc. */
    void *block = nm_malloc_onnode(48, ids[0]);
    REQUIRE(block != NULL);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, free_it, block) == 0);
    pthread_join(t, NULL);
    void *plain[2000];
    int reused_by_malloc = 0;
    for (int i = 0; i < 2000; i++) {
        plain[i] = malloc(48);
        reused_by_malloc += plain[i] == block;
    }
    CHECK(reused_by_malloc == 0, "plain malloc got the node block back");
    int reused_by_node = 0;
    void *mine[2000];
    for (int i = 0; i < 2000; i++) {
        mine[i] = nm_malloc_onnode(48, ids[0]);
        reused_by_node += mine[i] == block;
    }
    CHECK(reused_by_node == 1, "the node's allocations reused the block %d times", reused_by_node);
    for (int i = 0; i < 2000; i++) {
        free(plain[i]);
        nm_free(mine[i]);
    }

    /* Bad nodes. */
    static const int bad[] = { -1, 1023, 1024, 1 << 30 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i] >= 0 && bad[i] < 1024 && nm_node_has_cpus(bad[i]) >= 0) continue;
        errno = 0;
        CHECK(nm_malloc_onnode(64, bad[i]) == NULL && errno == EINVAL, "node %d accepted", bad[i]);
        errno = 0;
        CHECK(nm_calloc_onnode(8, 8, bad[i]) == NULL && errno == EINVAL);
        CHECK(nm_calloc_onnode(1 << 20, 1 << 20, bad[i]) == NULL && errno == EINVAL);
    }
    /* The same bad nodes as the very first on-node call of a fresh thread
     * (nothing cached yet for the thread to compare against). */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i] >= 0 && bad[i] < 1024 && nm_node_has_cpus(bad[i]) >= 0) continue;
        for (int call = 0; call < FIRST_CALLS; call++) {
            struct first_call fc = { .call = call, .node = bad[i] };
            pthread_t t;
            REQUIRE(pthread_create(&t, NULL, first_call_thread, &fc) == 0);
            pthread_join(t, NULL);
            CHECK(fc.result == NULL && fc.err == EINVAL,
                  "first call %d of a thread with node %d: %p, errno %d", call, bad[i],
                  fc.result, fc.err);
        }
    }
    /* Sizes that cannot be met, through a volatile size so the compiler
     * neither warns nor folds the calls away. */
    volatile size_t huge = SIZE_MAX;
    errno = 0;
    CHECK(nm_calloc_onnode(huge / 2, 3, ids[0]) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(nm_malloc_onnode(huge, ids[0]) == NULL && errno == ENOMEM);
    return nm_test_done();
}
