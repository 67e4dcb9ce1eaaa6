/* api.c — the nm_ API of include/numamalloc.h: nm_malloc, nm_calloc,
 * nm_realloc, nm_aligned_alloc, nm_free and nm_usable_size keep the libc
 * contracts (errors, NULL and zero sizes) and mix with malloc/free; the
 * statistics from nm_stats_get move with allocations, frees, large blocks,
 * remote frees and threads; nm_stats_print writes text without allocating;
 * nm_thread_rebind names the node the thread runs on. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "numamalloc.h"
#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static void basics(void)
{
    CHECK(nm_usable_size(NULL) == 0, "nm_usable_size(NULL) = %zu", nm_usable_size(NULL));
    nm_free(NULL);

    const size_t sizes[] = {0, 1, 16, 100, 4096, 100000, 300 * KiB, 3 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = nm_malloc(n);
        REQUIRE(p != NULL, "nm_malloc(%zu)", n);
        CHECK((uintptr_t)p % 16 == 0, "nm_malloc(%zu) = %p not 16-byte aligned", n, (void *)p);
        size_t usable = nm_usable_size(p);
        CHECK(usable >= n, "nm_malloc(%zu): nm_usable_size %zu", n, usable);
        CHECK(malloc_usable_size(p) == usable, "malloc_usable_size %zu != nm_usable_size %zu",
              malloc_usable_size(p), usable);
        memset(p, 0xAA, usable);
        errno = 4242;
        nm_free(p);
        CHECK(errno == 4242, "nm_free changed errno to %d", errno);
    }
    void *a = nm_malloc(0), *b = nm_malloc(0);
    CHECK(a && b && a != b, "nm_malloc(0) twice: %p, %p", a, b);
    nm_free(a);
    nm_free(b);

    volatile size_t huge = SIZE_MAX, half = SIZE_MAX / 2 + 1;
    errno = 0;
    void *p = nm_malloc(huge);
    CHECK(p == NULL && errno == ENOMEM, "nm_malloc(SIZE_MAX) = %p, errno %d", p, errno);
    errno = 0;
    p = nm_calloc(half, 2);
    CHECK(p == NULL && errno == ENOMEM, "nm_calloc(SIZE_MAX/2+1, 2) = %p, errno %d", p, errno);
}

static void calloc_zeroes(void)
{
    const size_t sizes[] = {8, 1000, 50000, 1 * MiB, 3 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int round = 0; round < 10; round++) {
            unsigned char *d = nm_malloc(sizes[i]);
            REQUIRE(d != NULL, "nm_malloc(%zu)", sizes[i]);
            memset(d, 0xAA, sizes[i]);
            nm_free(d);
            unsigned char *z = nm_calloc(1, sizes[i]);
            REQUIRE(z != NULL, "nm_calloc(1, %zu)", sizes[i]);
            size_t j = 0;
            while (j < sizes[i] && z[j] == 0) j++;
            CHECK(j == sizes[i], "nm_calloc(1, %zu): byte %zu is not zero", sizes[i], j);
            nm_free(z);
        }
    }
}

static void realloc_contract(void)
{
    unsigned char *p = nm_realloc(NULL, 100);
    REQUIRE(p != NULL, "nm_realloc(NULL, 100)");
    for (int i = 0; i < 100; i++) p[i] = (unsigned char)i;
    const size_t steps[] = {1000, 200 * KiB, 2 * MiB + 1, 16 * MiB, 50, 100};
    size_t cur = 100;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        p = nm_realloc(p, steps[s]);
        REQUIRE(p != NULL, "nm_realloc(.., %zu)", steps[s]);
        size_t keep = cur < 100 ? cur : 100;
        keep = keep < steps[s] ? keep : steps[s];
        for (size_t i = 0; i < keep; i++)
            if (p[i] != (unsigned char)i) {
                CHECK(0, "nm_realloc to %zu lost byte %zu", steps[s], i);
                break;
            }
        cur = steps[s];
    }
    p = nm_realloc(p, 100);
    REQUIRE(p != NULL, "nm_realloc(.., 100)");
    for (int i = 0; i < 100; i++) p[i] = (unsigned char)i;
    volatile size_t huge = SIZE_MAX;
    errno = 0;
    void *q = nm_realloc(p, huge);
    CHECK(q == NULL && errno == ENOMEM, "nm_realloc(p, SIZE_MAX) = %p, errno %d", q, errno);
    for (int i = 0; i < 100; i++)
        if (p[i] != (unsigned char)i) {
            CHECK(0, "failed nm_realloc changed byte %d", i);
            break;
        }
    errno = 4242;
    q = nm_realloc(p, 0);
    CHECK(q == NULL, "nm_realloc(p, 0) = %p, expected NULL", q);
    CHECK(errno == 4242, "nm_realloc(p, 0) changed errno to %d", errno);
    nm_free(q);
}

static void aligned(void)
{
    for (size_t align = 1; align <= 256 * MiB; align *= 2) {
        const size_t sizes[] = {1, align, 3 * align + 5};
        for (size_t s = 0; s < 3; s++) {
            if (sizes[s] > 512 * MiB) continue;
            unsigned char *p = nm_aligned_alloc(align, sizes[s]);
            REQUIRE(p != NULL, "nm_aligned_alloc(%zu, %zu)", align, sizes[s]);
            size_t want = align < 16 ? 16 : align;
            CHECK((uintptr_t)p % want == 0, "nm_aligned_alloc(%zu, %zu) = %p", align, sizes[s],
                  (void *)p);
            CHECK(nm_usable_size(p) >= sizes[s], "nm_aligned_alloc(%zu, %zu): usable %zu", align,
                  sizes[s], nm_usable_size(p));
            p[0] = p[sizes[s] - 1] = 1;
            if (s == 1) free(p); /* a block from nm_ may go to free() */
            else nm_free(p);
        }
    }
    const size_t bad[] = {0, 3, 24, 100, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = nm_aligned_alloc(bad[i], 64);
        CHECK(p == NULL && errno == EINVAL, "nm_aligned_alloc(%zu, 64) = %p, errno %d", bad[i], p,
              errno);
        nm_free(p);
    }
}

/* malloc and nm_ blocks are interchangeable (this binary's malloc is ours). */
static void interop(void)
{
    for (int i = 0; i < 1000; i++) {
        size_t n = (size_t)(i * 37 % 5000) + (i % 100 == 0 ? 1 * MiB : 0);
        void *a = malloc(n), *b = nm_malloc(n);
        REQUIRE(a && b, "malloc/nm_malloc(%zu)", n);
        CHECK(nm_usable_size(a) >= n && malloc_usable_size(b) >= n, "usable sizes of %zu", n);
        memset(a, 1, n);
        memset(b, 2, n);
        nm_free(a);
        free(b);
    }
}

/* ---- statistics ---- */

/* Small and medium blocks handed out so far, over all classes. */
static uint64_t class_allocs(const struct nm_stats *s)
{
    uint64_t total = 0;
    for (int i = 0; i < s->class_count && i < NM_STATS_MAX_CLASSES; i++)
        total += s->size_class[i].allocs;
    return total;
}

static uint64_t in_use(const struct nm_stats *s)
{
    uint64_t total = 0;
    for (int i = 0; i < s->node_count && i < NM_STATS_MAX_NODES; i++) total += s->node[i].in_use;
    return total;
}

static struct nm_stats s0, s1, s2;

struct handoff {
    void *blocks[200];
    pthread_barrier_t allocated, freed;
};

static void *allocating_thread(void *arg)
{
    struct handoff *h = arg;
    for (int i = 0; i < 200; i++) {
        h->blocks[i] = nm_malloc(64);
        REQUIRE(h->blocks[i] != NULL, "nm_malloc(64) in a thread");
    }
    pthread_barrier_wait(&h->allocated);
    pthread_barrier_wait(&h->freed); /* stay alive while the main thread frees */
    return NULL;
}

static void stats_move(void)
{
    /* in_use counts small blocks by the page; pages left empty by earlier
     * parts of this test would be released by the next maintenance pass,
     * at a moment we cannot choose.  Release them now, so that in_use can
     * only grow while this part only allocates. */
    nm_trim();
    nm_stats_get(&s0);
    CHECK(s0.node_count >= 1 && s0.node_count <= NM_STATS_MAX_NODES, "node_count %d",
          s0.node_count);
    CHECK(s0.class_count >= 1 && s0.class_count <= NM_STATS_MAX_CLASSES, "class_count %d",
          s0.class_count);
    for (int i = 1; i < s0.class_count && i < NM_STATS_MAX_CLASSES; i++)
        CHECK(s0.size_class[i].block_size > s0.size_class[i - 1].block_size,
              "size classes out of order: class %d is %llu bytes, class %d %llu", i - 1,
              (unsigned long long)s0.size_class[i - 1].block_size, i,
              (unsigned long long)s0.size_class[i].block_size);

    enum { SMALL = 1000, LARGE = 10 };
    void *small[SMALL], *large[LARGE];
    for (int i = 0; i < SMALL; i++) {
        small[i] = nm_malloc(48);
        REQUIRE(small[i] != NULL, "nm_malloc(48)");
    }
    for (int i = 0; i < LARGE; i++) {
        large[i] = nm_malloc(1 * MiB);
        REQUIRE(large[i] != NULL, "nm_malloc(1 MiB)");
        memset(large[i], 1, 1 * MiB);
    }
    nm_stats_get(&s1);
    CHECK(class_allocs(&s1) >= class_allocs(&s0) + SMALL,
          "small allocs went from %llu to %llu after %d nm_malloc",
          (unsigned long long)class_allocs(&s0), (unsigned long long)class_allocs(&s1), SMALL);
    CHECK(s1.large_allocs >= s0.large_allocs + LARGE,
          "large_allocs went from %llu to %llu after %d 1 MiB blocks",
          (unsigned long long)s0.large_allocs, (unsigned long long)s1.large_allocs, LARGE);
    CHECK(in_use(&s1) >= in_use(&s0) + LARGE * MiB, "in_use went from %llu to %llu",
          (unsigned long long)in_use(&s0), (unsigned long long)in_use(&s1));
    for (int i = 0; i < SMALL; i++) nm_free(small[i]);
    for (int i = 0; i < LARGE; i++) nm_free(large[i]);
    nm_stats_get(&s2);
    CHECK(s2.large_frees >= s1.large_frees + LARGE, "large_frees went from %llu to %llu",
          (unsigned long long)s1.large_frees, (unsigned long long)s2.large_frees);
    CHECK(in_use(&s2) + LARGE * MiB <= in_use(&s1), "in_use went from %llu only to %llu",
          (unsigned long long)in_use(&s1), (unsigned long long)in_use(&s2));

    /* Blocks of a live thread freed here are remote frees; the thread got a
     * heap.  The allocator may count a remote free only when the owner's heap
     * takes the block back, so the count is read when nothing runs any more:
     * the owner has exited and nm_trim() has tidied up after it. */
    static struct handoff h;
    pthread_barrier_init(&h.allocated, NULL, 2);
    pthread_barrier_init(&h.freed, NULL, 2);
    pthread_t t;
    int rc = pthread_create(&t, NULL, allocating_thread, &h);
    REQUIRE(rc == 0, "pthread_create: error %d", rc);
    pthread_barrier_wait(&h.allocated);
    nm_stats_get(&s1);
    for (int i = 0; i < 200; i++) nm_free(h.blocks[i]);
    pthread_barrier_wait(&h.freed);
    pthread_join(t, NULL);
    nm_trim();
    nm_stats_get(&s2);
    CHECK(s2.remote_frees >= s1.remote_frees + 200,
          "remote_frees went from %llu to %llu after freeing 200 blocks of another thread",
          (unsigned long long)s1.remote_frees, (unsigned long long)s2.remote_frees);
    CHECK(s1.threads >= s0.threads + 1 && s1.threads >= 2,
          "threads went from %llu to %llu with a second thread allocating",
          (unsigned long long)s0.threads, (unsigned long long)s1.threads);
}

static void stats_print(void)
{
    FILE *tmp = tmpfile();
    REQUIRE(tmp != NULL, "tmpfile: %s", strerror(errno));
    nm_stats_get(&s0);
    nm_stats_print(fileno(tmp));
    nm_stats_get(&s1);
    CHECK(class_allocs(&s1) == class_allocs(&s0) && s1.large_allocs == s0.large_allocs,
          "nm_stats_print allocated (%llu small, %llu large blocks)",
          (unsigned long long)(class_allocs(&s1) - class_allocs(&s0)),
          (unsigned long long)(s1.large_allocs - s0.large_allocs));
    struct stat st;
    REQUIRE(fstat(fileno(tmp), &st) == 0, "fstat: %s", strerror(errno));
    CHECK(st.st_size > 0, "nm_stats_print wrote nothing");
    rewind(tmp);
    int c, bad = 0, lines = 0;
    while ((c = fgetc(tmp)) != EOF) {
        if (c == '\n') lines++;
        else if (!(c == '\t' || (c >= 32 && c < 127))) bad++;
    }
    CHECK(bad == 0 && lines >= 1, "nm_stats_print output: %d lines, %d non-text bytes", lines,
          bad);
    fclose(tmp);
}

static void rebind_and_trim(void)
{
    /* Stay on one CPU so the node cannot change under the comparison. */
    unsigned cpu = 0, node = 0;
    REQUIRE(getcpu(&cpu, &node) == 0, "getcpu: %s", strerror(errno));
    cpu_set_t one, old;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    REQUIRE(sched_getaffinity(0, sizeof old, &old) == 0, "sched_getaffinity");
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity");
    REQUIRE(getcpu(&cpu, &node) == 0, "getcpu");
    int bound = nm_thread_rebind();
    CHECK(bound == (int)node, "nm_thread_rebind() = %d, the thread runs on node %u", bound, node);
    void *p = nm_malloc(1000);
    CHECK(p != NULL, "nm_malloc after nm_thread_rebind");
    nm_free(p);
    sched_setaffinity(0, sizeof old, &old);

    for (int i = 0; i < 64; i++) {
        void *q = nm_malloc(1 * MiB);
        REQUIRE(q != NULL, "nm_malloc(1 MiB)");
        memset(q, 1, 1 * MiB);
        nm_free(q);
    }
    nm_stats_get(&s0);
    nm_trim();
    nm_stats_get(&s1);
    uint64_t cached = 0;
    for (int i = 0; i < s1.node_count && i < NM_STATS_MAX_NODES; i++) cached += s1.node[i].cached;
    CHECK(cached == 0, "after nm_trim() %llu bytes are still cached",
          (unsigned long long)cached);
}

int main(void)
{
    basics();
    calloc_zeroes();
    realloc_contract();
    aligned();
    interop();
    stats_move();
    stats_print();
    rebind_and_trim();
    return nm_test_done();
}
