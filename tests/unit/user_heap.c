/* user_heap.c — heaps with a policy (nm_heap_new): every block sits in
 * memory the kernel reports with the heap's policy; several threads allocate
 * from one heap and free each other's blocks; a thread uses more heaps than
 * its table has slots; threads that exit hand their part back (memory stays
 * flat over many of them); realloc moves a block into the heap; destroy
 * releases everything at once; bad policies are refused; a strict heap's
 * blocks are resident before they are written, and a request its node
 * cannot hold fails with ENOMEM. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../testutil.h"
#include "numamalloc.h"

#define MiB ((size_t)1 << 20)
static const size_t sizes[] = { 16, 200, 4000, 50000, 200000, 600000, 5 * MiB };
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Every block of `heap` carries `mode` and `mask`, is writable and usable. */
static void check_heap_blocks(nm_heap_t *heap, int mode, unsigned long mask, const char *what)
{
    for (size_t i = 0; i < NSIZES; i++) {
        unsigned char *p = nm_heap_malloc(heap, sizes[i]);
        REQUIRE(p != NULL, "%s: nm_heap_malloc(%zu)", what, sizes[i]);
        memset(p, 0x77, sizes[i]);
        CHECK(nm_usable_size(p) >= sizes[i]);
        unsigned long m = 0;
        int got = nm_test_policy_of(p, &m);
        CHECK(got == mode && m == mask, "%s: %zu B block has policy %d mask %#lx, expected %d %#lx",
              what, sizes[i], got, m, mode, mask);
        free(p);
    }
}

struct worker_arg {
    nm_heap_t *heap;
    void *_Atomic *slots;
    int rounds;
};

static void *worker(void *argp)
{
    struct worker_arg *a = argp;
    uint64_t x = (uintptr_t)pthread_self();
    for (int i = 0; i < a->rounds; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = sizes[(x >> 33) % (NSIZES - 1)];   /* no 5 MiB blocks here */
        uint64_t *b = nm_heap_malloc(a->heap, size);
        REQUIRE(b != NULL);
        b[0] = size;
        b[size / 8 - 1] = ~size;
        uint64_t *old = atomic_exchange(&a->slots[(x >> 12) % 256], b);
        if (old) {
            CHECK(old[old[0] / 8 - 1] == ~old[0], "block of %llu bytes corrupted",
                  (unsigned long long)old[0]);
            free(old);
        }
    }
    return NULL;
}

static uint64_t mapped(void)
{
    struct nm_stats st;
    nm_stats_get(&st);
    uint64_t m = 0;
    for (int i = 0; i < st.node_count; i++) m += st.node[i].mapped;
    return m;
}

/* NM_HEAP_STRICT: blocks are resident before they are written (nm_where
 * counts their pages), also when calloc'ed and reused; a bind heap asked
 * for more than its node has free fails with ENOMEM at once (checked
 * before anything is faulted in, so this is safe on any machine); an
 * unknown flag is EINVAL. */
static void strict_heap(const nm_policy *bind)
{
    errno = 0;
    CHECK(nm_heap_new_flags(bind, 1u << 7) == NULL && errno == EINVAL, "an unknown heap flag was accepted");
    nm_heap_t *h = nm_heap_new_flags(bind, NM_HEAP_STRICT);
    REQUIRE(h != NULL, "nm_heap_new_flags(NM_HEAP_STRICT): %s", strerror(errno));
    const size_t sizes[] = { 3000, 120000, 6 * MiB };
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char *p = round ? nm_heap_calloc(h, 1, sizes[i]) : nm_heap_malloc(h, sizes[i]);
            REQUIRE(p != NULL);
            long pages = (long)((sizes[i] + 4095) / 4096);
            long resident = nm_where(p, sizes[i], NULL, 0);
            CHECK(resident >= pages, "strict heap: %zu-byte block has %ld of %ld pages resident before a write",
                  sizes[i], resident, pages);
            for (size_t k = 0; round && k < sizes[i]; k += 512)
                if (p[k] != 0) { CHECK(p[k] == 0, "strict calloc: byte %zu not zero", k); break; }
            memset(p, 0x11, sizes[i]);
            free(p);
        }
    }
    uint64_t total = 0, free_bytes = 0;
    REQUIRE(nm_node_memory(nm_current_node(), &total, &free_bytes) == 0);
    errno = 0;
    void *big = nm_heap_malloc(h, (size_t)free_bytes + total);
    CHECK(big == NULL && errno == ENOMEM, "strict heap: %llu MiB on a node with %llu MiB free: %p, errno %d",
          (unsigned long long)((free_bytes + total) / MiB), (unsigned long long)(free_bytes / MiB), big, errno);
    nm_heap_destroy(h);
}

int main(void)
{
    int node = nm_current_node();
    char err[200];
    nm_policy bind, inter;
    char text[32];
    snprintf(text, sizeof text, "bind:%d", node);
    REQUIRE(nm_policy_parse(text, &bind, err, sizeof err) == 0, "%s", err);
    REQUIRE(nm_policy_parse("interleave:all", &inter, err, sizeof err) == 0, "%s", err);

    strict_heap(&bind);

    uint64_t mapped_before = mapped();
    nm_heap_t *hb = nm_heap_new(&bind);
    nm_heap_t *hi = nm_heap_new(&inter);
    REQUIRE(hb && hi);
    CHECK(nm_heap_policy(hb).mode == NM_POLICY_BIND);
    check_heap_blocks(hb, 2 /* MPOL_BIND */, 1ul << node, "bind heap");
    nm_nodeset all = inter.nodes;
    check_heap_blocks(hi, 3 /* MPOL_INTERLEAVE */, (unsigned long)all.bits[0], "interleave heap");

    /* Several threads allocate from one heap and free each other's blocks. */
    static void *_Atomic slots[256];
    struct worker_arg wa = { hb, slots, 20000 };
    pthread_t t[3];
    for (int i = 0; i < 3; i++) REQUIRE(pthread_create(&t[i], NULL, worker, &wa) == 0);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    /* Short-lived threads: each leaves its part to the heap; memory stays flat. */
    wa.rounds = 300;
    uint64_t mapped_mid = 0;
    for (int i = 0; i < 400; i++) {
        pthread_t c;
        REQUIRE(pthread_create(&c, NULL, worker, &wa) == 0);
        pthread_join(c, NULL);
        if (i == 100) mapped_mid = mapped();
    }
    CHECK(mapped() <= mapped_mid + 16 * MiB, "mapped grew from %llu to %llu over 300 threads",
          (unsigned long long)mapped_mid, (unsigned long long)mapped());
    for (int i = 0; i < 256; i++) {
        uint64_t *b = atomic_exchange(&slots[i], NULL);
        if (b) {
            CHECK(b[b[0] / 8 - 1] == ~b[0]);
            free(b);
        }
    }

    /* More heaps than a thread's table has slots, used in turns. */
    enum { MANY = 20 };
    nm_heap_t *many[MANY];
    void *kept[MANY][50];
    for (int i = 0; i < MANY; i++) REQUIRE((many[i] = nm_heap_new(&bind)) != NULL);
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < MANY; i++) {
            kept[i][round] = nm_heap_malloc(many[i], 64 + (size_t)i);
            REQUIRE(kept[i][round] != NULL);
            memset(kept[i][round], i, 64 + (size_t)i);
        }
    }
    for (int i = 0; i < MANY; i++) {
        for (int round = 0; round < 50; round++) {
            unsigned char *p = kept[i][round];
            CHECK(p[0] == i && p[63 + i] == i, "heap %d block %d corrupted", i, round);
        }
        nm_heap_destroy(many[i]);
    }

    /* realloc: a malloc block that must grow moves into the heap. */
    char *plain = malloc(100);
    strcpy(plain, "moved into the heap");
    char *moved = nm_heap_realloc(hb, plain, 100000);
    REQUIRE(moved != NULL);
    CHECK(strcmp(moved, "moved into the heap") == 0);
    unsigned long m = 0;
    CHECK(nm_test_policy_of(moved, &m) == 2 && m == 1ul << node, "the moved block is not in the heap");
    free(moved);
    unsigned char *z = nm_heap_calloc(hb, 1000, 1000);
    REQUIRE(z != NULL);
    size_t nonzero = 0;
    for (size_t i = 0; i < 1000 * 1000; i++) nonzero += z[i] != 0;
    CHECK(nonzero == 0);
    free(z);
    void *al = nm_heap_aligned_alloc(hb, 4096, 100);
    CHECK(al && ((uintptr_t)al & 4095) == 0);
    CHECK(nm_test_policy_of(al, &m) == 2);
    free(al);
    errno = 0;
    CHECK(nm_heap_aligned_alloc(hb, 48, 100) == NULL && errno == EINVAL);

    /* Destroy releases everything at once: blocks still live are gone too. */
    void *live_small = nm_heap_malloc(hb, 100), *live_large = nm_heap_malloc(hb, 3 * MiB);
    REQUIRE(live_small && live_large);
    nm_heap_destroy(hb);
    nm_heap_destroy(hi);
    CHECK(nm_usable_size(live_small) == 0 && nm_usable_size(live_large) == 0,
          "blocks of a destroyed heap are still known");
    /* What the heaps had is gone.  Other memory freed meanwhile (the
     * threads' own heaps, waiting for the purge delay) goes with nm_trim,
     * which cannot reach a destroyed heap's. */
    nm_trim();
    CHECK(mapped() <= mapped_before + 8 * MiB, "mapped %llu after destroying, %llu before",
          (unsigned long long)mapped(), (unsigned long long)mapped_before);

    /* Bad policies. */
    nm_policy bad = nm_policy_preferred(999);
    errno = 0;
    CHECK(nm_heap_new(&bad) == NULL && errno == EINVAL);
    nm_nodeset none;
    nm_nodeset_clear(&none);
    bad = nm_policy_interleave(&none);
    errno = 0;
    CHECK(nm_heap_new(&bad) == NULL && errno == EINVAL);
    nm_heap_t *local = nm_heap_new(NULL);
    REQUIRE(local != NULL);
    void *lp = nm_heap_malloc(local, 1000);
    CHECK(lp != NULL && nm_test_policy_of(lp, &m) == 4 /* MPOL_LOCAL */, "local heap policy %d",
          nm_test_policy_of(lp, &m));
    nm_heap_destroy(local);
    return nm_test_done();
}
