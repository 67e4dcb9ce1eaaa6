/* dropin_tsan.c — the drop-in path (malloc, free, calloc, realloc,
 * posix_memalign, aligned_alloc, memalign, valloc, malloc_usable_size,
 * malloc_trim, mallinfo2, C++ operator new and delete: src/override.c under
 * the names of tests/tsan/dropin.h) under ThreadSanitizer, driven the way
 * real programs drive it, all at once:
 *   - four workers allocate with every entry point and free their own
 *     blocks, grow and shrink them with realloc, and pass blocks to the next
 *     worker (a producer/consumer mailbox under a mutex), which reallocs and
 *     later frees them: remote frees, and reallocs of other threads' blocks;
 *   - the main thread starts and joins short-lived threads in a loop (heaps
 *     parked and handed over); each frees blocks the main thread made and
 *     leaves blocks behind for the main thread to free after it is gone;
 *   - another thread calls malloc_trim and mallinfo2 every 2 ms, and the
 *     purge thread (started by the library's constructor, as under
 *     LD_PRELOAD) runs with a 2 ms delay;
 *   - another thread forks every few milliseconds; each child allocates,
 *     reallocs and frees (up to 3 MiB) and exits 0 within 20 s.
 * Every block carries a pattern checked before it is freed or moved, and
 * malloc_usable_size is checked against its size.  TSan reports any data
 * race (halt_on_error); the checks catch lost, shared or corrupt blocks. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"
#include "dropin.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define WORKERS 4
#define WORKER_OPS 40000
#define SLOTS 128
#define MAILBOX_CAP 64
#define CHURN_THREADS 150
#define CHURN_AT_ONCE 2
#define CHURN_BLOCKS 60
#define FORKS 30
#define CHILD_TIMEOUT_S 20

/* How a block was made says how it is freed: free() for every libc entry
 * point, the matching operator delete for operator new. */
enum block_kind { BY_LIBC, BY_NEW, BY_NEW_ALIGNED };

struct block {
    unsigned char *p;
    size_t size;
    size_t align;         /* BY_NEW_ALIGNED: the alignment given to new[] */
    uint32_t tag;
    enum block_kind kind;
};

static atomic_uint next_tag = 1;

/* The pattern covers the first and last 64 bytes. */
static unsigned char pattern(uint32_t tag, size_t i)
{
    return (unsigned char)(tag * 131u + (unsigned)i * 7u + 1u);
}

static void fill(const struct block *b)
{
    for (size_t i = 0; i < b->size && i < 64; i++) b->p[i] = pattern(b->tag, i);
    for (size_t i = b->size > 64 ? b->size - 64 : 64; i < b->size; i++) b->p[i] = pattern(b->tag, i);
}

static int intact_upto(const struct block *b, size_t len)
{
    for (size_t i = 0; i < len && i < 64; i++)
        if (b->p[i] != pattern(b->tag, i)) return 0;
    for (size_t i = b->size > 64 ? b->size - 64 : 64; i < len; i++)
        if (b->p[i] != pattern(b->tag, i)) return 0;
    return 1;
}

static size_t random_size(uint64_t *rng)
{
    uint64_t r = nm_test_random(rng);
    if (r % 200 == 0) return 1 * MiB + (size_t)(r >> 20) % (2 * MiB);   /* large */
    if (r % 16 == 1) return 4 * KiB + (size_t)(r >> 20) % (252 * KiB);  /* medium */
    return 1 + (size_t)(r >> 20) % 2048;                                /* small */
}

/* A new block of about `size` bytes from one of the entry points. */
static struct block make_block(uint64_t *rng, size_t size)
{
    struct block b = { .size = size, .kind = BY_LIBC, .tag = atomic_fetch_add(&next_tag, 1) };
    size_t align = (size_t)16 << (nm_test_random(rng) % 9);   /* 16 .. 4096 */
    size_t want = align;                                   /* the alignment promised */
    switch (nm_test_random(rng) % 9) {
    case 0: b.p = malloc(size); want = 16; break;
    case 1:
        b.p = calloc(1, size);
        want = 16;
        if (b.p) {
            for (size_t i = 0; i < size && i < 64; i++)
                CHECK(b.p[i] == 0, "calloc(%zu): byte %zu is %d", size, i, b.p[i]);
            CHECK(b.p[size - 1] == 0, "calloc(%zu): last byte is %d", size, b.p[size - 1]);
        }
        break;
    case 2: b.p = realloc(NULL, size); want = 16; break;
    case 3: {
        void *p = NULL;
        int rc = posix_memalign(&p, align, size);
        CHECK(rc == 0, "posix_memalign(%zu, %zu): %d", align, size, rc);
        b.p = p;
        break;
    }
    case 4: b.p = aligned_alloc(align, size); break;
    case 5: b.p = memalign(align, size); break;
    case 6: b.p = valloc(size); want = 4096; break;
    case 7: b.p = tsan__Znwm(size); b.kind = BY_NEW; want = 16; break;
    default:
        b.p = tsan__ZnamSt11align_val_t(size, align);
        b.kind = BY_NEW_ALIGNED;
        b.align = align;
        break;
    }
    REQUIRE(b.p != NULL, "allocation of %zu bytes failed", size);
    CHECK(((uintptr_t)b.p & (want - 1)) == 0, "block %p of %zu bytes not aligned to %zu",
          (void *)b.p, size, want);
    CHECK(malloc_usable_size(b.p) >= size, "malloc_usable_size(%p) = %zu < %zu", (void *)b.p,
          malloc_usable_size(b.p), size);
    fill(&b);
    return b;
}

static void drop_block(struct block *b, const char *who)
{
    CHECK(intact_upto(b, b->size), "%s: block %p (%zu bytes, tag %u) changed", who,
          (void *)b->p, b->size, b->tag);
    CHECK(malloc_usable_size(b->p) >= b->size, "%s: malloc_usable_size %zu < %zu", who,
          malloc_usable_size(b->p), b->size);
    switch (b->kind) {
    case BY_LIBC: free(b->p); break;
    case BY_NEW: tsan__ZdlPvm(b->p, b->size); break;
    case BY_NEW_ALIGNED: tsan__ZdaPvSt11align_val_t(b->p, b->align); break;
    }
    b->p = NULL;
}

/* Grow or shrink a block with realloc (operator new's blocks are freed and
 * made again: realloc is not theirs); the kept bytes must survive. */
static void resize_block(struct block *b, uint64_t *rng, const char *who)
{
    if (b->kind != BY_LIBC) {
        drop_block(b, who);
        *b = make_block(rng, random_size(rng));
        return;
    }
    size_t old = b->size;
    size_t size = (nm_test_random(rng) % 2) ? old * 2 + (nm_test_random(rng) % 4096)   /* grow */
                                         : old / 3 + 1;                           /* shrink */
    if (size > 8 * MiB) size = old / 3 + 1;
    CHECK(intact_upto(b, old), "%s: block %p changed before realloc", who, (void *)b->p);
    unsigned char *q = realloc(b->p, size);
    REQUIRE(q != NULL, "%s: realloc(%zu -> %zu) failed", who, old, size);
    b->p = q;
    CHECK(intact_upto(b, old < size ? old : size), "%s: realloc(%zu -> %zu) lost contents", who,
          old, size);
    b->size = size;
    fill(b);
    CHECK(malloc_usable_size(q) >= size, "%s: malloc_usable_size after realloc %zu < %zu", who,
          malloc_usable_size(q), size);
}

/* ---- producer/consumer mailboxes ---- */

struct mailbox {
    pthread_mutex_t lock;
    struct block slot[MAILBOX_CAP];
    int count;
};
static struct mailbox mailbox[WORKERS];

static int post(int to, const struct block *b)
{
    struct mailbox *m = &mailbox[to];
    pthread_mutex_lock(&m->lock);
    int ok = m->count < MAILBOX_CAP;
    if (ok) m->slot[m->count++] = *b;
    pthread_mutex_unlock(&m->lock);
    return ok;
}

static int take(int me, struct block *out)
{
    struct mailbox *m = &mailbox[me];
    pthread_mutex_lock(&m->lock);
    int ok = m->count > 0;
    if (ok) *out = m->slot[--m->count];
    pthread_mutex_unlock(&m->lock);
    return ok;
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);
    static __thread struct block held[SLOTS];
    char who[32];
    snprintf(who, sizeof who, "worker %d", me);
    for (int op = 0; op < WORKER_OPS; op++) {
        struct block in;
        if (op % 4 == 0 && take(me, &in)) {
            /* A block another thread made: resize it, keep it or free it. */
            resize_block(&in, &rng, who);
            int i = (int)(nm_test_random(&rng) % SLOTS);
            if (held[i].p) drop_block(&held[i], who);
            held[i] = in;
            continue;
        }
        int i = (int)(nm_test_random(&rng) % SLOTS);
        uint64_t r = nm_test_random(&rng) % 8;
        if (!held[i].p) {
            held[i] = make_block(&rng, random_size(&rng));
        } else if (r < 4) {
            drop_block(&held[i], who);
        } else if (r < 6) {
            resize_block(&held[i], &rng, who);
        } else if (post((me + 1) % WORKERS, &held[i])) {
            held[i].p = NULL;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (held[i].p) drop_block(&held[i], who);
    return NULL;
}

/* ---- threads that come and go ---- */

struct churn_job {
    int index;
    struct block given[CHURN_BLOCKS / 2];   /* made by main, freed by the thread */
    struct block left[CHURN_BLOCKS / 2];    /* made by the thread, freed by main */
};

static void *churn_thread(void *arg)
{
    struct churn_job *job = arg;
    uint64_t rng = 0xabcdefull + (uint64_t)job->index * 7919;
    struct block own[CHURN_BLOCKS];
    for (int i = 0; i < CHURN_BLOCKS; i++) own[i] = make_block(&rng, random_size(&rng) % (64 * KiB) + 1);
    for (int i = 0; i < CHURN_BLOCKS / 2; i++) drop_block(&job->given[i], "churn thread (main's block)");
    for (int i = 0; i < CHURN_BLOCKS; i += 2) drop_block(&own[i], "churn thread");
    for (int i = 1; i < CHURN_BLOCKS; i += 2) job->left[i / 2] = own[i];
    return NULL;
}

static void churn_threads(void)
{
    static struct churn_job jobs[CHURN_AT_ONCE];
    uint64_t rng = 4242;
    for (int start = 0; start < CHURN_THREADS; start += CHURN_AT_ONCE) {
        pthread_t t[CHURN_AT_ONCE];
        for (int k = 0; k < CHURN_AT_ONCE; k++) {
            jobs[k].index = start + k;
            for (int i = 0; i < CHURN_BLOCKS / 2; i++)
                jobs[k].given[i] = make_block(&rng, random_size(&rng) % (64 * KiB) + 1);
            int rc = pthread_create(&t[k], NULL, churn_thread, &jobs[k]);
            REQUIRE(rc == 0, "pthread_create: error %d", rc);
        }
        for (int k = 0; k < CHURN_AT_ONCE; k++) {
            pthread_join(t[k], NULL);
            /* The thread is gone: its blocks are freed into a parked heap. */
            for (int i = 0; i < CHURN_BLOCKS / 2; i++) drop_block(&jobs[k].left[i], "main (orphan)");
        }
    }
}

/* ---- malloc_trim from another thread ---- */

static atomic_int stop;
static atomic_int forks_done;

static void *trimmer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        malloc_trim(0);
        struct mallinfo2 mi = mallinfo2();
        CHECK(mi.arena >= mi.uordblks || mi.arena == 0, "mallinfo2: %zu in use of %zu mapped",
              mi.uordblks, mi.arena);
        struct timespec ts = { 0, 2 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- fork while the others allocate ---- */

static void child_allocates(int round)
{
    uint64_t rng = 777 + (uint64_t)round;
    struct block b[16];
    for (int i = 0; i < 16; i++) b[i] = make_block(&rng, i == 0 ? 3 * MiB : random_size(&rng));
    for (int i = 0; i < 16; i += 2) resize_block(&b[i], &rng, "fork child");
    for (int i = 0; i < 16; i++) drop_block(&b[i], "fork child");
    _exit(nm_test_failures ? 1 : 0);
}

static void *forker(void *arg)
{
    (void)arg;
    for (int round = 0; round < FORKS && !atomic_load(&stop); round++) {
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) child_allocates(round);
        double deadline = nm_test_now() + CHILD_TIMEOUT_S;
        int status = 0;
        pid_t r;
        while ((r = waitpid(pid, &status, WNOHANG)) == 0 && nm_test_now() < deadline) {
            struct timespec pause = { 0, 2 * 1000 * 1000 };
            nanosleep(&pause, NULL);
        }
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECK(0, "fork child %d did not exit in %d s (deadlock after fork?)", round,
                  CHILD_TIMEOUT_S);
            continue;
        }
        CHECK(r == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "fork child %d ended with status %#x", round, status);
        atomic_fetch_add(&forks_done, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc;
    /* The options are read when the library starts (its constructor): run
     * again with a 2 ms purge delay, so the purge thread works throughout. */
    if (!getenv("NUMAMALLOC_PURGE_DELAY_MS")) {
        setenv("NUMAMALLOC_PURGE_DELAY_MS", "2", 1);
        execv("/proc/self/exe", argv);
        REQUIRE(0, "execv(/proc/self/exe): %s", strerror(errno));
    }
    for (int i = 0; i < WORKERS; i++) pthread_mutex_init(&mailbox[i].lock, NULL);
    pthread_t trim_thread, fork_thread, workers[WORKERS];
    REQUIRE(pthread_create(&trim_thread, NULL, trimmer, NULL) == 0);
    REQUIRE(pthread_create(&fork_thread, NULL, forker, NULL) == 0);
    for (int i = 0; i < WORKERS; i++) {
        int rc = pthread_create(&workers[i], NULL, worker, (void *)(intptr_t)i);
        REQUIRE(rc == 0, "pthread_create: error %d", rc);
    }
    churn_threads();
    for (int i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
    pthread_join(fork_thread, NULL);
    atomic_store(&stop, 1);
    pthread_join(trim_thread, NULL);
    /* Blocks still in a mailbox after their consumer finished. */
    for (int i = 0; i < WORKERS; i++) {
        struct block b;
        while (take(i, &b)) drop_block(&b, "main (mailbox)");
    }
    struct mallinfo2 mi = mallinfo2();
    printf("%d workers x %d operations, %d threads come and gone, %d fork children; "
           "in use at the end: %zu bytes of %zu mapped\n", WORKERS, WORKER_OPS, CHURN_THREADS,
           atomic_load(&forks_done), mi.uordblks, mi.arena);
    CHECK(atomic_load(&forks_done) == FORKS, "only %d of %d fork children ran",
          atomic_load(&forks_done), FORKS);
    return nm_test_done();
}
