/* thread_churn.c — 10,000 short-lived threads, four at a time, each
 * allocating about 100 blocks of mixed sizes (one of 1 MiB), freeing most and
 * leaving a few for the main thread to free after the thread has exited,
 * and allocating again from a thread-specific-data destructor at exit.
 * The memory of dead threads must be reused: RSS (after malloc_trim) and the
 * allocator's mapped address space at the end may exceed what they were
 * after the first 500 threads by at most a small, fixed amount. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numamalloc.h"
#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define TOTAL_THREADS 10000
#define WARMUP_THREADS 500
#define WAVE 4                  /* threads running at once */
#define BLOCKS_PER_THREAD 100
#define LEFT_PER_THREAD 5       /* blocks each thread leaves to the main thread */
#define PENDING_WAVES 2         /* waves whose leftovers are still live */

/* Growth allowed between the warm-up and the end.  The live set is the same
 * at both points (every leftover freed, trimmed), so what may differ is
 * page-granular noise: partly used pages of small-block runs, allocator
 * metadata pages touched for the first time, and libc's own bits.  A leak
 * per thread is multiplied by the 9,500 threads after the warm-up: one
 * forgotten 4 KiB page each is 37 MiB, a leaked 1 MiB block each is 9 GiB.
 * 16 MiB catches any per-thread leak of 1.7 KiB or more while leaving
 * 4,000 pages for noise. */
#define GROWTH_BOUND (16 * MiB)

struct block { unsigned char *p; size_t size; unsigned char tag; };

struct thread_job {
    int index;
    struct block left[LEFT_PER_THREAD];
};

static struct thread_job jobs[PENDING_WAVES + 1][WAVE];

/* Write one byte in every page and the last byte, so each page is resident. */
static void touch(const struct block *b)
{
    for (size_t i = 0; i < b->size; i += 4096) b->p[i] = b->tag;
    b->p[b->size - 1] = b->tag;
}

static int touched_ok(const struct block *b)
{
    for (size_t i = 0; i < b->size; i += 4096)
        if (b->p[i] != b->tag) return 0;
    return b->p[b->size - 1] == b->tag;
}

/* A thread-specific value whose destructor frees it and allocates again,
 * after the allocator's own thread-exit work may already have run. */
static pthread_key_t late_key;

static void late_destructor(void *value)
{
    unsigned char *p = value;
    CHECK(p[0] == 0x5c && p[99] == 0x5c, "thread-specific block %p changed", (void *)p);
    free(p);
    unsigned char *q = malloc(200);
    REQUIRE(q != NULL, "malloc in a thread-specific destructor");
    memset(q, 1, 200);
    free(q);
}

static void *thread_main(void *arg)
{
    struct thread_job *job = arg;
    unsigned char *late = malloc(100);
    REQUIRE(late != NULL, "malloc(100)");
    memset(late, 0x5c, 100);
    pthread_setspecific(late_key, late);
    uint64_t rng = (uint64_t)job->index * 0x9e3779b97f4a7c15ull + 7;
    struct block b[BLOCKS_PER_THREAD];
    for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
        size_t size;
        if (i == BLOCKS_PER_THREAD / 2) {
            size = 1 * MiB;
        } else {
            uint64_t r = nm_test_random(&rng);
            size_t base = (size_t)16 << (r % 11); /* 16 B .. 16 KiB */
            size = base + (size_t)((r >> 8) % base);
            if (r % 50 == 0) size = 100 * KiB + (size_t)(r >> 32) % (150 * KiB);
        }
        b[i] = (struct block){malloc(size), size, (unsigned char)(job->index + i)};
        REQUIRE(b[i].p != NULL, "thread %d: malloc(%zu)", job->index, size);
        touch(&b[i]);
    }
    /* Leave LEFT_PER_THREAD blocks (spread over the sizes, the 1 MiB one
     * included every few threads) and free the rest in a scrambled order. */
    int left = 0;
    for (int k = 0; k < BLOCKS_PER_THREAD; k++) {
        int i = (int)((k * 37 + job->index) % BLOCKS_PER_THREAD);
        CHECK(touched_ok(&b[i]), "thread %d: block %p (%zu bytes) changed", job->index,
              (void *)b[i].p, b[i].size);
        if (left < LEFT_PER_THREAD && k % 20 == 0) job->left[left++] = b[i];
        else free(b[i].p);
    }
    return NULL;
}

static void free_leftovers(struct thread_job *wave)
{
    for (int t = 0; t < WAVE; t++) {
        for (int i = 0; i < LEFT_PER_THREAD; i++) {
            struct block *b = &wave[t].left[i];
            if (!b->p) continue;
            CHECK(touched_ok(b), "main: block %p left by thread %d changed", (void *)b->p,
                  wave[t].index);
            free(b->p);
            b->p = NULL;
        }
    }
}

/* Bytes of address space the allocator holds (0 without nm_stats_get). */
static uint64_t allocator_mapped(void)
{
    void (*get)(struct nm_stats *) = (void (*)(struct nm_stats *))dlsym(RTLD_DEFAULT, "nm_stats_get");
    if (!get) return 0;
    static struct nm_stats s;
    get(&s);
    uint64_t total = 0;
    for (int i = 0; i < s.node_count && i < NM_STATS_MAX_NODES; i++) total += s.node[i].mapped;
    return total;
}

int main(void)
{
    nm_test_require_numamalloc();
    REQUIRE(pthread_key_create(&late_key, late_destructor) == 0, "pthread_key_create");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * KiB);

    size_t warm_rss = 0;
    uint64_t warm_mapped = 0;
    int waves = TOTAL_THREADS / WAVE;
    for (int w = 0; w < waves; w++) {
        struct thread_job *wave = jobs[w % (PENDING_WAVES + 1)];
        pthread_t tid[WAVE];
        for (int t = 0; t < WAVE; t++) {
            wave[t].index = w * WAVE + t;
            int rc = pthread_create(&tid[t], &attr, thread_main, &wave[t]);
            REQUIRE(rc == 0, "pthread_create (thread %d): error %d", w * WAVE + t, rc);
        }
        for (int t = 0; t < WAVE; t++) pthread_join(tid[t], NULL);
        /* Free what the threads of an earlier wave left: remote frees into
         * the heaps of threads that have exited. */
        if (w >= PENDING_WAVES) free_leftovers(jobs[(w - PENDING_WAVES) % (PENDING_WAVES + 1)]);

        if ((w + 1) * WAVE == WARMUP_THREADS || w + 1 == waves) {
            for (int k = 0; k <= PENDING_WAVES; k++) free_leftovers(jobs[k]);
            malloc_trim(0);
            size_t rss = nm_test_rss();
            uint64_t mapped = allocator_mapped();
            if (w + 1 != waves) {
                warm_rss = rss;
                warm_mapped = mapped;
                printf("after %d threads: RSS %zu KiB, allocator mapped %llu KiB\n",
                       WARMUP_THREADS, rss / 1024, (unsigned long long)mapped / 1024);
            } else {
                printf("after %d threads: RSS %zu KiB, allocator mapped %llu KiB\n",
                       TOTAL_THREADS, rss / 1024, (unsigned long long)mapped / 1024);
                CHECK(rss <= warm_rss + GROWTH_BOUND,
                      "RSS grew from %zu KiB after %d threads to %zu KiB after %d threads",
                      warm_rss / 1024, WARMUP_THREADS, rss / 1024, TOTAL_THREADS);
                CHECK(mapped <= warm_mapped + GROWTH_BOUND,
                      "allocator's mapped memory grew from %llu KiB to %llu KiB",
                      (unsigned long long)warm_mapped / 1024, (unsigned long long)mapped / 1024);
            }
        }
    }
    pthread_attr_destroy(&attr);
    return nm_test_done();
}
