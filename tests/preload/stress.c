/* stress.c — six threads allocate, resize and free random blocks (16 B to
 * 64 KiB mostly, some ~300 KiB and ~3 MiB) and hand blocks to each other
 * through mailboxes, so many frees are remote.  Every block carries a pattern
 * derived from (pointer, size, writer), checked before each free, realloc
 * and hand-over.  Each thread checks now and then that its live blocks do
 * not overlap; between phases all threads stop and one checks every live
 * block in the process (patterns and overlaps).  A thread holds at most
 * 40 MiB and its mailbox 8 MiB (and up to 8 MiB more while it frees a
 * mailbox it emptied, which senders refill meanwhile), so the blocks alive
 * stay under 336 MiB, near 250 in practice (the peak, counting a realloc's
 * old and new block, is printed at the end beside the peak RSS). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define THREADS 6
#define PHASES 4
#define OPS_PER_PHASE 60000
#define LIVE_MAX 2000                 /* blocks a thread holds at most */
#define LIVE_BYTES_MAX (40 * MiB)     /* bytes a thread holds at most */
#define MAILBOX_CAP 512
#define MAILBOX_BYTES_MAX (8 * MiB)   /* bytes waiting in a mailbox at most */

struct block {
    uint64_t *p;
    size_t size;      /* bytes asked for */
    uint32_t writer;  /* thread that wrote the pattern */
};

struct mailbox {
    pthread_mutex_t lock;
    struct block slot[MAILBOX_CAP];
    int count;
    size_t bytes;     /* sum of the slots' sizes */
};

struct thread_state {
    int id;
    uint64_t rng;
    struct block live[LIVE_MAX];
    int live_count;
    size_t live_bytes;
    uint64_t remote_frees, reallocs, handed;
};

static struct thread_state threads[THREADS];
/* Bytes asked for by the blocks alive in the whole process, and their peak. */
static _Atomic size_t live_total, live_peak;
static struct mailbox mailboxes[THREADS];
static pthread_barrier_t barrier;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

/* Word `word` of the pattern of a block at `addr` of `size` bytes written
 * by thread `writer`. */
static uint64_t pattern_at(uintptr_t addr, size_t size, uint32_t writer, size_t word)
{
    return mix(addr ^ (uint64_t)size * 0x9e3779b97f4a7c15ull ^ (uint64_t)writer << 56 ^
               word * 0xc2b2ae3d27d4eb4full);
}

static uint64_t pattern_word(const struct block *b, size_t word)
{
    return pattern_at((uintptr_t)b->p, b->size, b->writer, word);
}

/* The words of a block that carry the pattern: all of them up to 8 KiB;
 * beyond that the first and last KiB and one word in every 512 bytes (so a
 * 3 MiB block costs little but every page of it is still checked). */
static size_t next_word(size_t word, size_t words)
{
    word++;
    if (words > 1024 && word >= 128 && word < words - 128) {
        word = (word + 63) & ~(size_t)63;
        if (word > words - 128) word = words - 128;
    }
    return word;
}

static void fill(const struct block *b)
{
    size_t words = b->size / 8;
    for (size_t w = 0; w < words; w = next_word(w, words)) b->p[w] = pattern_word(b, w);
    unsigned char *tail = (unsigned char *)b->p + words * 8;
    for (size_t i = 0; i < b->size % 8; i++) tail[i] = (unsigned char)pattern_word(b, words + i);
}

/* Check the pattern of b in its first `limit` bytes; report and return 0 on
 * a mismatch. */
static int verify_prefix(const struct block *b, size_t limit, const char *when)
{
    size_t words = b->size / 8;
    for (size_t w = 0; w < words && (w + 1) * 8 <= limit; w = next_word(w, words)) {
        if (b->p[w] != pattern_word(b, w)) {
            CHECK(0, "%s: block %p (%zu bytes, written by thread %u): word %zu is %#llx, expected %#llx",
                  when, (void *)b->p, b->size, b->writer, w, (unsigned long long)b->p[w],
                  (unsigned long long)pattern_word(b, w));
            return 0;
        }
    }
    const unsigned char *tail = (const unsigned char *)b->p + words * 8;
    for (size_t i = 0; i < b->size % 8 && words * 8 + i < limit; i++) {
        if (tail[i] != (unsigned char)pattern_word(b, words + i)) {
            CHECK(0, "%s: block %p (%zu bytes): tail byte %zu changed", when, (void *)b->p,
                  b->size, i);
            return 0;
        }
    }
    return 1;
}

static int verify(const struct block *b, const char *when)
{
    return verify_prefix(b, b->size, when);
}

static size_t random_size(uint64_t *rng)
{
    uint64_t r = nm_test_random(rng);
    unsigned pick = (unsigned)(r % 100);
    if (pick < 90) {
        size_t base = (size_t)16 << ((r >> 8) % 12); /* 16 B .. 32 KiB */
        return base + (size_t)((r >> 16) % base);   /* .. 64 KiB */
    }
    if (pick < 98) return 300 * KiB + (size_t)((r >> 16) % (64 * KiB));
    return 3 * MiB + (size_t)((r >> 16) % MiB);
}

static uint64_t *allocate(struct thread_state *t, size_t size)
{
    uint64_t r = nm_test_random(&t->rng) % 100;
    uint64_t *p;
    const char *call = "malloc";
    int err;
    if (r < 4) {
        call = "calloc";
        p = calloc(1, size);
        err = errno;
        if (p) {
            const unsigned char *c = (const unsigned char *)p;
            size_t step = size > 8 * KiB ? 509 : 1;
            for (size_t i = 0; i < size; i += step)
                if (c[i]) { CHECK(0, "calloc(1, %zu): byte %zu is not zero", size, i); break; }
        }
    } else if (r < 7) {
        size_t align = (size_t)64 << (nm_test_random(&t->rng) % 8);
        void *q = NULL;
        int rc = posix_memalign(&q, align, size);
        call = "posix_memalign";
        err = rc;
        p = rc == 0 ? q : NULL;
        CHECK(p == NULL || (uintptr_t)p % align == 0, "posix_memalign(.., %zu, ..) = %p", align,
              (void *)p);
    } else {
        p = malloc(size);
        err = errno;
    }
    REQUIRE(p != NULL, "%s of %zu bytes failed: %s", call, size, strerror(err));
    CHECK((uintptr_t)p % 16 == 0, "block %p is not 16-byte aligned", (void *)p);
    return p;
}

static void count_live(size_t grown, size_t shrunk)
{
    size_t now = atomic_fetch_add(&live_total, grown) + grown;
    atomic_fetch_sub(&live_total, shrunk);
    size_t peak = atomic_load(&live_peak);
    while (now > peak && !atomic_compare_exchange_weak(&live_peak, &peak, now)) {}
}

static void add_live(struct thread_state *t, struct block b)
{
    t->live[t->live_count++] = b;
    t->live_bytes += b.size;
}

static struct block take_live(struct thread_state *t, int i)
{
    struct block b = t->live[i];
    t->live[i] = t->live[--t->live_count];
    t->live_bytes -= b.size;
    return b;
}

static void free_checked(const struct block *b, const char *when)
{
    verify(b, when);
    free(b->p);
    count_live(0, b->size);
}

static void op_free(struct thread_state *t)
{
    if (t->live_count == 0) return;
    struct block b = take_live(t, (int)(nm_test_random(&t->rng) % (uint64_t)t->live_count));
    free_checked(&b, "local free");
}

static void op_alloc(struct thread_state *t)
{
    size_t size = random_size(&t->rng);
    while (t->live_count > 0 && (t->live_count == LIVE_MAX || t->live_bytes + size > LIVE_BYTES_MAX))
        op_free(t);
    struct block b = {allocate(t, size), size, (uint32_t)t->id};
    count_live(size, 0);
    fill(&b);
    add_live(t, b);
}

static void op_realloc(struct thread_state *t)
{
    if (t->live_count == 0) return;
    int i = (int)(nm_test_random(&t->rng) % (uint64_t)t->live_count);
    struct block old = t->live[i];
    size_t size = (nm_test_random(&t->rng) % 4 == 0) ? old.size / 2 + 1 : random_size(&t->rng);
    if (t->live_bytes - old.size + size > LIVE_BYTES_MAX) return;
    if (!verify(&old, "before realloc")) return;
    uintptr_t old_addr = (uintptr_t)old.p;
    uint64_t *q = realloc(old.p, size);
    REQUIRE(q != NULL, "realloc(.., %zu) failed: %s", size, strerror(errno));
    count_live(size, old.size);
    /* The kept prefix still holds the old pattern, keyed on the old
     * pointer, now at the new address. */
    size_t keep = old.size < size ? old.size : size;
    size_t words = old.size / 8;
    for (size_t w = 0; w < words && (w + 1) * 8 <= keep; w = next_word(w, words)) {
        if (q[w] != pattern_at(old_addr, old.size, old.writer, w)) {
            CHECK(0, "realloc %zu -> %zu bytes (%#lx -> %p): word %zu not kept", old.size, size,
                  (unsigned long)old_addr, (void *)q, w);
            break;
        }
    }
    struct block b = {q, size, (uint32_t)t->id};
    fill(&b);
    t->live_bytes = t->live_bytes - old.size + size;
    t->live[i] = b;
    t->reallocs++;
}

/* Give a block to another thread; if its mailbox is full (in blocks or in
 * bytes), free it here. */
static void op_hand_over(struct thread_state *t)
{
    if (t->live_count == 0) return;
    int to = (int)(nm_test_random(&t->rng) % (THREADS - 1));
    if (to >= t->id) to++;
    struct block b = take_live(t, (int)(nm_test_random(&t->rng) % (uint64_t)t->live_count));
    if (!verify(&b, "before hand-over")) return;
    struct mailbox *m = &mailboxes[to];
    pthread_mutex_lock(&m->lock);
    int sent = m->count < MAILBOX_CAP && m->bytes + b.size <= MAILBOX_BYTES_MAX;
    if (sent) {
        m->slot[m->count++] = b;
        m->bytes += b.size;
    }
    pthread_mutex_unlock(&m->lock);
    if (sent) t->handed++;
    else free_checked(&b, "hand-over refused");
}

/* Take everything in this thread's mailbox: free most of it (remote frees),
 * keep some as this thread's own blocks. */
static void drain_mailbox(struct thread_state *t, int keep_some)
{
    struct block got[MAILBOX_CAP];
    struct mailbox *m = &mailboxes[t->id];
    pthread_mutex_lock(&m->lock);
    int n = m->count;
    memcpy(got, m->slot, (size_t)n * sizeof got[0]);
    m->count = 0;
    m->bytes = 0;
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < n; i++) {
        if (keep_some && nm_test_random(&t->rng) % 4 == 0 && t->live_count < LIVE_MAX &&
            t->live_bytes + got[i].size <= LIVE_BYTES_MAX) {
            if (verify(&got[i], "received block")) add_live(t, got[i]);
        } else {
            free_checked(&got[i], "remote free");
            t->remote_frees++;
        }
    }
}

struct range { uintptr_t start, end; };

static int by_start(const void *a, const void *b)
{
    uintptr_t x = ((const struct range *)a)->start, y = ((const struct range *)b)->start;
    return x < y ? -1 : x > y;
}

/* No two of the n blocks share a byte of their usable areas. */
static void check_no_overlap(const struct block *blocks, size_t n, const char *scope)
{
    struct range *r = malloc((n ? n : 1) * sizeof *r);
    REQUIRE(r != NULL, "malloc for the range table");
    for (size_t i = 0; i < n; i++) {
        size_t usable = malloc_usable_size(blocks[i].p);
        CHECK(usable >= blocks[i].size, "block %p: usable size %zu < %zu", (void *)blocks[i].p,
              usable, blocks[i].size);
        r[i] = (struct range){(uintptr_t)blocks[i].p, (uintptr_t)blocks[i].p + usable};
    }
    qsort(r, n, sizeof *r, by_start);
    for (size_t i = 1; i < n; i++)
        CHECK(r[i - 1].end <= r[i].start, "%s: live blocks overlap: [%#lx, %#lx) and [%#lx, %#lx)",
              scope, (unsigned long)r[i - 1].start, (unsigned long)r[i - 1].end,
              (unsigned long)r[i].start, (unsigned long)r[i].end);
    free(r);
}

/* Run by one thread while all others wait at the barrier. */
static void check_whole_process(void)
{
    size_t n = 0;
    for (int t = 0; t < THREADS; t++) n += (size_t)threads[t].live_count + (size_t)mailboxes[t].count;
    struct block *all = malloc((n ? n : 1) * sizeof *all);
    REQUIRE(all != NULL, "malloc for the global block table");
    size_t k = 0;
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < threads[t].live_count; i++) all[k++] = threads[t].live[i];
        for (int i = 0; i < mailboxes[t].count; i++) all[k++] = mailboxes[t].slot[i];
    }
    for (size_t i = 0; i < n; i++) verify(&all[i], "global check");
    check_no_overlap(all, n, "global check");
    free(all);
}

static void *worker(void *arg)
{
    struct thread_state *t = arg;
    for (int phase = 0; phase < PHASES; phase++) {
        for (int op = 0; op < OPS_PER_PHASE; op++) {
            unsigned r = (unsigned)(nm_test_random(&t->rng) % 100);
            if (r < 45) op_alloc(t);
            else if (r < 77) op_free(t);
            else if (r < 87) op_realloc(t);
            else op_hand_over(t);
            if (op % 16 == 0) drain_mailbox(t, 1);
            if (op % 8192 == 0) check_no_overlap(t->live, (size_t)t->live_count, "own blocks");
        }
        pthread_barrier_wait(&barrier);
        if (t->id == 0) check_whole_process();
        pthread_barrier_wait(&barrier);
    }
    /* Nobody sends any more once everyone passed this barrier. */
    pthread_barrier_wait(&barrier);
    drain_mailbox(t, 0);
    while (t->live_count > 0) op_free(t);
    return NULL;
}

int main(void)
{
    nm_test_require_numamalloc();
    pthread_barrier_init(&barrier, NULL, THREADS);
    pthread_t tid[THREADS];
    for (int i = 0; i < THREADS; i++) {
        threads[i].id = i;
        threads[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        pthread_mutex_init(&mailboxes[i].lock, NULL);
        int rc = pthread_create(&tid[i], NULL, worker, &threads[i]);
        REQUIRE(rc == 0, "pthread_create: error %d", rc);
    }
    uint64_t remote = 0, reallocs = 0, handed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        remote += threads[i].remote_frees;
        reallocs += threads[i].reallocs;
        handed += threads[i].handed;
    }
    /* The run must have exercised what it is about. */
    CHECK(remote > 10000, "only %llu remote frees", (unsigned long long)remote);
    CHECK(reallocs > 10000, "only %llu reallocs", (unsigned long long)reallocs);
    printf("%llu blocks handed over, %llu remote frees, %llu reallocs\n",
           (unsigned long long)handed, (unsigned long long)remote, (unsigned long long)reallocs);
    /* What the blocks asked for at most, beside the process's peak RSS (the
     * guest test tests/vm/overcommit.sh sets these beside CommitLimit). */
    char line[256];
    long hwm_kib = -1;
    FILE *status = fopen("/proc/self/status", "r");
    while (status && fgets(line, sizeof line, status))
        if (sscanf(line, "VmHWM: %ld kB", &hwm_kib) == 1) break;
    if (status) fclose(status);
    printf("peak of live bytes asked for: %.1f MiB; peak RSS (VmHWM): %.1f MiB\n",
           (double)atomic_load(&live_peak) / (double)MiB, (double)hwm_kib / 1024.0);
    return nm_test_done();
}
