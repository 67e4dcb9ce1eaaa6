/* stress_tsan.c — the allocator's concurrent paths under ThreadSanitizer,
 * through the nm_ API: four long-lived workers allocate, resize and free
 * random blocks (small to 3 MiB, aligned and zeroed ones too) and hand
 * blocks to each other, so frees are often remote; meanwhile 300 short-lived
 * threads come and go, each leaving blocks for the workers and for the main
 * thread to free after it has exited (frees into abandoned heaps, segments
 * reclaimed by others).  Meanwhile the background purge runs with a 2 ms
 * delay and another thread calls nm_trim() in a loop, so free pages,
 * pages other threads freed whole, parked and abandoned heaps are given
 * back while their owners work.  Every block carries a pattern checked
 * before it is freed.  TSan reports any data race; the checks catch lost
 * or shared blocks. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "numamalloc.h"
#include "purge.h"
#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define WORKERS 4
#define WORKER_OPS 25000
#define LIVE_MAX 400
#define MAILBOX_CAP 256
#define CHURN_THREADS 300
#define CHURN_AT_ONCE 3
#define CHURN_BLOCKS 150
#define ORPHANS_PER_THREAD 10

struct block { unsigned char *p; size_t size; uint32_t tag; };

/* The pattern covers the first and last 64 bytes (the middle of a big block
 * is the same memory as far as races go). */
static unsigned char pattern(const struct block *b, size_t i)
{
    return (unsigned char)(b->tag * 131u + (unsigned)i * 7u + 1u);
}

static void fill(const struct block *b)
{
    for (size_t i = 0; i < b->size && i < 64; i++) b->p[i] = pattern(b, i);
    for (size_t i = b->size > 64 ? b->size - 64 : 64; i < b->size; i++) b->p[i] = pattern(b, i);
}

static int intact(const struct block *b)
{
    for (size_t i = 0; i < b->size && i < 64; i++)
        if (b->p[i] != pattern(b, i)) return 0;
    for (size_t i = b->size > 64 ? b->size - 64 : 64; i < b->size; i++)
        if (b->p[i] != pattern(b, i)) return 0;
    return 1;
}

static void free_checked(const struct block *b, const char *who)
{
    CHECK(intact(b), "%s: block %p (%zu bytes, tag %u) changed", who, (void *)b->p, b->size,
          b->tag);
    CHECK(nm_usable_size(b->p) >= b->size, "%s: usable size %zu < %zu", who,
          nm_usable_size(b->p), b->size);
    nm_free(b->p);
}

static atomic_uint next_tag;

static size_t random_size(uint64_t *rng)
{
    uint64_t r = nm_test_random(rng);
    if (r % 100 < 93) {
        size_t base = (size_t)16 << ((r >> 8) % 12);
        return base + (size_t)((r >> 16) % base);
    }
    if (r % 100 < 99) return 300 * KiB + (size_t)((r >> 16) % (64 * KiB));
    return 3 * MiB;
}

static struct block new_block(uint64_t *rng)
{
    size_t size = random_size(rng);
    struct block b = {NULL, size, atomic_fetch_add(&next_tag, 1)};
    switch (nm_test_random(rng) % 10) {
    case 0:
        b.p = nm_calloc(1, size);
        if (b.p)
            for (size_t i = 0; i < size && i < 256; i++)
                if (b.p[i]) { CHECK(0, "nm_calloc(1, %zu): byte %zu not zero", size, i); break; }
        break;
    case 1: {
        size_t align = (size_t)32 << (nm_test_random(rng) % 10);
        b.p = nm_aligned_alloc(align, size);
        CHECK(b.p == NULL || (uintptr_t)b.p % align == 0, "nm_aligned_alloc(%zu) = %p", align,
              (void *)b.p);
        break;
    }
    default:
        b.p = nm_malloc(size);
    }
    REQUIRE(b.p != NULL, "allocation of %zu bytes failed: errno %d", size, errno);
    fill(&b);
    return b;
}

/* ---- mailboxes of the workers ---- */

struct mailbox {
    pthread_mutex_t lock;
    struct block slot[MAILBOX_CAP];
    int count;
};

static struct mailbox mailbox[WORKERS];

/* Post b to worker `to`; false (and b untouched) if its mailbox is full. */
static int post(int to, struct block b)
{
    struct mailbox *m = &mailbox[to];
    pthread_mutex_lock(&m->lock);
    int ok = m->count < MAILBOX_CAP;
    if (ok) m->slot[m->count++] = b;
    pthread_mutex_unlock(&m->lock);
    return ok;
}

static int take_all(int id, struct block *out)
{
    struct mailbox *m = &mailbox[id];
    pthread_mutex_lock(&m->lock);
    int n = m->count;
    memcpy(out, m->slot, (size_t)n * sizeof *out);
    m->count = 0;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* ---- long-lived workers ---- */

static atomic_int churn_done;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    static _Thread_local struct block live[LIVE_MAX];
    static _Thread_local struct block got[MAILBOX_CAP];
    int n = 0;
    for (int op = 0; op < WORKER_OPS || !atomic_load(&churn_done); op++) {
        unsigned r = (unsigned)(nm_test_random(&rng) % 100);
        if (r < 40 && n < LIVE_MAX) {
            live[n++] = new_block(&rng);
        } else if (r < 70 && n > 0) {
            int i = (int)(nm_test_random(&rng) % (uint64_t)n);
            free_checked(&live[i], "worker free");
            live[i] = live[--n];
        } else if (r < 82 && n > 0) {
            int i = (int)(nm_test_random(&rng) % (uint64_t)n);
            struct block *b = &live[i];
            CHECK(intact(b), "worker: block %p changed before realloc", (void *)b->p);
            size_t size = random_size(&rng);
            unsigned char *q = nm_realloc(b->p, size);
            REQUIRE(q != NULL, "nm_realloc(.., %zu)", size);
            b->p = q;
            b->size = size;
            b->tag = atomic_fetch_add(&next_tag, 1);
            fill(b);
        } else if (n > 0) {
            int i = (int)(nm_test_random(&rng) % (uint64_t)n);
            int to = (int)(nm_test_random(&rng) % WORKERS);
            if (to != id && post(to, live[i])) live[i] = live[--n];
        }
        if (op % 8 == 0) {
            int k = take_all(id, got);
            for (int i = 0; i < k; i++) free_checked(&got[i], "remote free");
        }
        if (op > 20 * WORKER_OPS) break; /* the churn stalled: stop anyway */
    }
    while (n > 0) free_checked(&live[--n], "worker cleanup");
    return NULL;
}

/* ---- short-lived threads ---- */

struct churn_job {
    int index;
    struct block orphan[ORPHANS_PER_THREAD];
};

static void *churn_thread(void *arg)
{
    struct churn_job *job = arg;
    uint64_t rng = (uint64_t)job->index * 0x2545f4914f6cdd1dull + 3;
    struct block b[CHURN_BLOCKS];
    for (int i = 0; i < CHURN_BLOCKS; i++) b[i] = new_block(&rng);
    for (int i = 0; i < CHURN_BLOCKS; i++) {
        if (i < ORPHANS_PER_THREAD) {
            job->orphan[i] = b[i];            /* the main thread frees these later */
        } else if (i % 5 == 0 && post(i % WORKERS, b[i])) {
            /* a worker frees this one, maybe after this thread exited */
        } else {
            free_checked(&b[i], "churn free");
        }
    }
    return NULL;
}

static void free_orphans(struct churn_job *job, int count)
{
    for (int k = 0; k < count; k++)
        for (int i = 0; i < ORPHANS_PER_THREAD; i++) {
            if (!job[k].orphan[i].p) continue;
            free_checked(&job[k].orphan[i], "orphan free");
            job[k].orphan[i].p = NULL;
        }
}

static atomic_int trim_done;

static void *trimmer(void *arg)
{
    (void)arg;
    while (!atomic_load(&trim_done)) {
        nm_trim();
        struct timespec ts = { 0, 3 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(void)
{
    /* Read at the first allocation; the library's constructor is not part
     * of this build (TSan owns malloc), so the purge thread is let start
     * here. */
    setenv("NUMAMALLOC_PURGE_DELAY_MS", "2", 1);
    nm_free(nm_malloc(16));
    nm_purge_init();
    pthread_t trim_thread;
    REQUIRE(pthread_create(&trim_thread, NULL, trimmer, NULL) == 0);
    for (int i = 0; i < WORKERS; i++) pthread_mutex_init(&mailbox[i].lock, NULL);
    pthread_t workers[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        int rc = pthread_create(&workers[i], NULL, worker, (void *)(intptr_t)i);
        REQUIRE(rc == 0, "pthread_create: error %d", rc);
    }

    static struct churn_job jobs[CHURN_THREADS];
    for (int start = 0; start < CHURN_THREADS; start += CHURN_AT_ONCE) {
        pthread_t t[CHURN_AT_ONCE];
        int count = 0;
        for (int k = 0; k < CHURN_AT_ONCE && start + k < CHURN_THREADS; k++) {
            jobs[start + k].index = start + k;
            int rc = pthread_create(&t[count], NULL, churn_thread, &jobs[start + k]);
            REQUIRE(rc == 0, "pthread_create: error %d", rc);
            count++;
        }
        for (int k = 0; k < count; k++) pthread_join(t[k], NULL);
        /* Free the orphans of the wave before last: their threads are gone. */
        if (start >= CHURN_AT_ONCE) free_orphans(&jobs[start - CHURN_AT_ONCE], CHURN_AT_ONCE);
    }
    free_orphans(jobs, CHURN_THREADS);
    atomic_store(&churn_done, 1);
    for (int i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
    atomic_store(&trim_done, 1);
    pthread_join(trim_thread, NULL);
    /* Blocks still in a mailbox after their worker finished. */
    for (int i = 0; i < WORKERS; i++) {
        static struct block rest[MAILBOX_CAP];
        int k = take_all(i, rest);
        for (int j = 0; j < k; j++) free_checked(&rest[j], "late remote free");
    }

    struct nm_stats s;
    nm_stats_get(&s);
    CHECK(s.threads >= CHURN_THREADS + WORKERS, "only %llu thread heaps for %d threads",
          (unsigned long long)s.threads, CHURN_THREADS + WORKERS);
    printf("threads %llu, remote frees %llu, abandoned %llu, reclaimed %llu\n",
           (unsigned long long)s.threads, (unsigned long long)s.remote_frees,
           (unsigned long long)s.abandoned, (unsigned long long)s.reclaimed);
    return nm_test_done();
}
