/* rptest: threads that allocate and free at their own random rates, with
 * about half the blocks freed by a thread other than the one that
 * allocated them (in the spirit of rpmalloc's benchmark, rptest).
 *
 * Models a program whose objects travel: workers create objects of sizes
 * from 16 B to 64 KiB (75% up to 256 B, 20% up to 4 KiB, 5% up to 64 KiB;
 * every power-of-two band equally likely inside each range), keep some for
 * a while, and publish others to a shared structure where any worker may
 * pick them up and free them.
 *
 * threads=T workers each have an inbox of 1024 slots (256 in mode=tiny),
 * filled by the main thread at the start, and a local stack of up to 256
 * blocks.  Each worker draws its own rates (from its fixed seed; publishing
 * the most likely, freeing locally the least) for three actions, each on
 * a random count of 1 - 16 blocks: allocate blocks onto its stack, free
 * blocks from the top of its stack, or publish blocks from its stack into
 * empty slots of other workers' inboxes (a block that finds
 * no empty slot in 4 tries is freed by its own thread).  After every
 * action the worker frees as many blocks from its own inbox -- blocks
 * other threads allocated.  Seeds are fixed, so the sizes requested are
 * the same for every allocator (which thread frees which block depends on
 * timing).
 *
 * Check: each block holds its size in its first word and a tag naming its
 * address and size in its last, checked before it is freed, whoever frees
 * it; every block left at the end is checked and freed by the main thread.
 * Before timing, the inboxes' blocks must be non-NULL, disjoint and writable
 * end to end.  The run lasts a fixed time (set by mode=) after a warm-up.
 *
 * Usage:  rptest threads=T mode=tiny|quick|full
 * Prints: RESULT bench=rptest mops_per_s=X peak_rss_mib=R remote_pct=P ...
 *   mops_per_s   blocks allocated and freed per second, all threads, in
 *                millions
 *   remote_pct   the share of frees of a block another thread allocated
 *                (0 with one thread, whose inbox is its own; about half
 *                with more) */
#include "bench.h"

#define SIZE_MAX_BYTES 65536
#define STACK 256
#define BURST 16

struct mode_params {
    double warm_s, run_s;
    int pool_per_thread;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03, 256 },
    [MODE_QUICK] = { 0.05, 0.25, 1024 },
    [MODE_FULL]  = { 0.2, 1.0, 1024 },
};

struct worker {
    pthread_t thread;
    int index;
    int check_ok;
    uint64_t seed;
    uint64_t checksum;
    uint64_t frees, remote_frees;
};

static struct mode_params params;
static struct bench_counter *counters;
static _Atomic(void *) *pool;      /* the inboxes, one after the other */
static size_t pool_size;
static int n_threads;
static _Atomic int stop_flag, any_failure;

static void fail(struct worker *w, const char *what)
{
    bench_fail("rptest", "thread", w->index, &w->check_ok, &any_failure, what);
}

static const struct bench_size_band size_mix[] = {
    { 75, 16, 256 },
    { 20, 256, 4096 },
    { 5, 4096, SIZE_MAX_BYTES },
};

static size_t next_size(uint64_t *seed)
{
    return bench_size_mix(seed, size_mix, (int)(sizeof size_mix / sizeof size_mix[0]));
}

/* Blocks carry their allocating thread's index in the word after the size
 * (blocks of 24 B and more), to count remote frees. */
static void *make_block(uint64_t *seed, int owner)
{
    size_t size = next_size(seed);
    char *p = malloc(size);
    if (!p)
        return NULL;
    bench_block_write(p, size);
    if (size >= 24) {
        uint64_t o = (uint64_t)owner;
        memcpy(p + 8, &o, 8);
    }
    return p;
}

static void drop_block(struct worker *w, void *p)
{
    size_t size = bench_block_check(p, SIZE_MAX_BYTES);
    if (!size) {
        fail(w, "a block was overwritten while it was live");
        return;   /* leaked, not freed: the run has failed anyway */
    }
    if (size >= 24) {
        uint64_t o;
        memcpy(&o, (char *)p + 8, 8);
        w->remote_frees += o != (uint64_t)w->index;
    }
    w->frees++;
    w->checksum += size;
    free(p);
}

/* Puts a block into an empty slot of another thread's inbox (one's own
 * with one thread); false if 4 tries found none empty. */
static int publish(struct worker *w, void *p)
{
    size_t per = (size_t)params.pool_per_thread;
    for (int tries = 0; tries < 4; tries++) {
        uint64_t r = bench_rand(&w->seed);
        int to = n_threads == 1 ? 0 : (w->index + 1 + (int)(r % (uint64_t)(n_threads - 1))) % n_threads;
        size_t slot = (size_t)to * per + (size_t)((r >> 32) % per);
        void *expected = NULL;
        if (atomic_load_explicit(&pool[slot], memory_order_relaxed) == NULL &&
            atomic_compare_exchange_strong(&pool[slot], &expected, p))
            return 1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    void *stack[STACK];
    int top = 0;
    size_t per = (size_t)params.pool_per_thread, cursor = 0;
    _Atomic(void *) *inbox = pool + (size_t)w->index * per;
    /* this thread's rates of allocating, freeing and publishing */
    static const unsigned rate_lo[3] = { 4, 1, 8 }, rate_span[3] = { 8, 3, 8 };
    unsigned rate[3], total = 0;
    for (int i = 0; i < 3; i++)
        total += rate[i] = rate_lo[i] + (unsigned)(bench_rand(&w->seed) % rate_span[i]);
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) && w->check_ok) {
        uint64_t done = 0;
        for (int step = 0; step < 64; step++) {
            unsigned pick = (unsigned)(bench_rand(&w->seed) % total);
            int count = 1 + (int)(bench_rand(&w->seed) % BURST);
            if (pick < rate[0] || top == 0) {                 /* allocate */
                for (int i = 0; i < count && top < STACK; i++) {
                    void *p = make_block(&w->seed, w->index);
                    if (!p) {
                        fail(w, "malloc returned NULL");
                        break;
                    }
                    stack[top++] = p;
                    done++;
                }
            } else if (pick < rate[0] + rate[1]) {            /* free */
                for (int i = 0; i < count && top > 0; i++)
                    drop_block(w, stack[--top]);
            } else {                                          /* publish */
                for (int i = 0; i < count && top > 0; i++) {
                    void *p = stack[--top];
                    if (!publish(w, p))
                        drop_block(w, p);
                }
            }
            /* as many blocks from the inbox (a bounded scan) */
            for (int i = 0, found = 0; i < 4 * BURST && found < count; i++) {
                void *p = atomic_exchange_explicit(&inbox[cursor], NULL, memory_order_acquire);
                cursor = cursor + 1 == per ? 0 : cursor + 1;
                if (p) {
                    drop_block(w, p);
                    found++;
                }
            }
        }
        bench_count(&counters[w->index], done);
    }
    while (top > 0)
        drop_block(w, stack[--top]);
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    int n = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);

    struct worker *workers = bench_map((size_t)n * sizeof *workers);
    counters = bench_map((size_t)n * sizeof *counters);
    n_threads = n;
    pool_size = (size_t)n * (size_t)params.pool_per_thread;
    pool = bench_map(pool_size * sizeof *pool);
    struct bench_range *ranges = bench_map(pool_size * sizeof *ranges);
    int check_ok = 1;
    uint64_t seed = 0x5e1ec7;
    for (size_t i = 0; i < pool_size; i++) {
        void *p = make_block(&seed, -1);
        if (!p) {
            fprintf(stderr, "rptest: malloc returned NULL\n");
            check_ok = 0;
            break;
        }
        size_t size = bench_block_check(p, SIZE_MAX_BYTES);
        memset((char *)p + 16, 0x5a, size >= 24 ? size - 24 : 0);
        atomic_store(&pool[i], p);
        ranges[i] = (struct bench_range){ (uintptr_t)p, size };
    }
    if (check_ok && !bench_ranges_disjoint(ranges, pool_size)) {
        fprintf(stderr, "rptest: two live blocks overlap\n");
        check_ok = 0;
    }
    bench_unmap(ranges, pool_size * sizeof *ranges);
    if (!check_ok) {
        printf("RESULT bench=rptest threads=%d", n);
        bench_result_end(0, 0);
        return 1;
    }

    for (int i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].check_ok = 1;
        workers[i].seed = 0x4e7e57 + 977 * (uint64_t)i;
        bench_thread_start("rptest", &workers[i].thread, worker_main, &workers[i]);
    }
    uint64_t ops;
    double seconds = bench_timed_interval(counters, n, params.warm_s, params.run_s, &stop_flag,
                                          &any_failure, &ops);
    struct worker last = { .index = -1, .check_ok = 1 };
    uint64_t checksum = 0, frees = 0, remote = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(workers[i].thread, NULL);
        check_ok &= workers[i].check_ok;
        checksum += workers[i].checksum;
        frees += workers[i].frees;
        remote += workers[i].remote_frees;
    }
    for (size_t i = 0; i < pool_size; i++)
        if (atomic_load(&pool[i]))
            drop_block(&last, atomic_load(&pool[i]));
    check_ok &= last.check_ok;
    if (ops == 0) {
        fprintf(stderr, "rptest: no operations completed in the measured interval\n");
        check_ok = 0;
    }
    printf("RESULT bench=rptest threads=%d mops_per_s=%.3f peak_rss_mib=%.1f remote_pct=%.1f"
           " ops=%llu seconds=%.3f",
           n, (double)ops / seconds / 1e6, (double)bench_peak_rss_kb() / 1024.0,
           frees ? 100.0 * (double)remote / (double)frees : 0.0, (unsigned long long)ops, seconds);
    bench_result_end(check_ok, checksum + last.checksum);
    return check_ok ? 0 : 1;
}
