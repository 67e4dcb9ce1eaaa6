/* xmalloc: a ring of threads where each thread's blocks are freed by the
 * next one (in the spirit of Lever and Boreham's xmalloc-test).
 *
 * Models a chain of pipeline stages or actors passing small messages on:
 * every thread both allocates messages for the next thread and frees the
 * ones the thread before it sent, so every free is a remote free and
 * every thread is at once a producer and a consumer.
 *
 * threads=T workers in a ring (a thread alone sends to itself).  Each
 * allocates blocks of 16 - 128 bytes (every size equally likely, from its
 * fixed seed) in batches of 64, sends each batch to the next thread's
 * queue, and frees the blocks of the batches in its own queue.  A thread
 * whose successor has 32 batches waiting yields the CPU instead of making
 * more.
 *
 * Check: every block holds its size in its first word and a tag naming its
 * address and size in its last, checked by the thread that frees it; every
 * block sent is freed (counts compared at the end).  Before timing, each
 * thread's first 4096 blocks must be non-NULL, disjoint and writable end
 * to end.  The run lasts a fixed time (set by mode=) after a warm-up.
 *
 * Usage:  xmalloc threads=T mode=tiny|quick|full
 * Prints: RESULT bench=xmalloc mops_per_s=X peak_rss_mib=R ...
 *   mops_per_s   blocks allocated by one thread and freed by the next per
 *                second, all threads together, in millions */
#include "bench.h"

#define SIZE_MIN 16
#define SIZE_MAX_BYTES 128
#define BACKLOG 32        /* batches waiting at the next thread before this one waits */
#define VERIFY 4096

struct mode_params {
    double warm_s, run_s;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03 },
    [MODE_QUICK] = { 0.05, 0.25 },
    [MODE_FULL]  = { 0.2, 1.0 },
};

struct worker {
    struct bench_queue inbox;
    pthread_t thread;
    int index;
    int check_ok;
    uint64_t seed;
    uint64_t checksum;
    uint64_t sent, freed;
};

static struct mode_params params;
static struct bench_counter *counters;
static struct worker *workers;
static struct bench_queue batch_pool;
static int n_threads;
static _Atomic int stop_flag, any_failure;

static void fail(struct worker *w, const char *what)
{
    if (w->check_ok)
        fprintf(stderr, "xmalloc: thread %d: %s\n", w->index, what);
    w->check_ok = 0;
    atomic_store(&any_failure, 1);
}

static void *make_block(struct worker *w)
{
    size_t size = SIZE_MIN + (size_t)(bench_rand(&w->seed) % (SIZE_MAX_BYTES - SIZE_MIN + 1));
    void *p = malloc(size);
    if (!p) {
        fail(w, "malloc returned NULL");
        return NULL;
    }
    bench_block_write(p, size);
    return p;
}

static void drop(struct worker *w, void *p)
{
    size_t size = bench_block_check(p, SIZE_MAX_BYTES);
    if (!size) {
        fail(w, "a block was overwritten while it was live");
        return;
    }
    w->checksum += size;
    w->freed++;
    free(p);
}

static void drain(struct worker *w)
{
    struct bench_batch *b;
    while ((b = bench_queue_pop(&w->inbox)) != NULL) {
        for (int i = 0; i < b->count; i++)
            drop(w, b->blocks[i]);
        bench_queue_push(&batch_pool, b);
    }
}

/* The thread's first blocks, kept live together: non-NULL, disjoint,
 * writable end to end; then freed. */
static void verify_first(struct worker *w)
{
    void **blocks = bench_map(VERIFY * sizeof *blocks);
    struct bench_range *ranges = bench_map(VERIFY * sizeof *ranges);
    int n = 0;
    for (; n < VERIFY; n++) {
        void *p = make_block(w);
        if (!p)
            break;
        size_t size = bench_block_check(p, SIZE_MAX_BYTES);
        memset((char *)p + 8, 0x3c, size - 16);
        blocks[n] = p;
        ranges[n] = (struct bench_range){ (uintptr_t)p, size };
    }
    if (!bench_ranges_disjoint(ranges, (size_t)n))
        fail(w, "two live blocks overlap");
    for (int i = 0; i < n; i++) {
        drop(w, blocks[i]);
        w->freed--;   /* not a sent block */
    }
    bench_unmap(blocks, VERIFY * sizeof *blocks);
    bench_unmap(ranges, VERIFY * sizeof *ranges);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct worker *next = &workers[(w->index + 1) % n_threads];
    verify_first(w);
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) && w->check_ok) {
        drain(w);
        struct bench_batch *b = NULL;
        if (atomic_load_explicit(&next->inbox.length, memory_order_relaxed) < BACKLOG)
            b = bench_queue_pop(&batch_pool);
        if (!b) {
            sched_yield();
            continue;
        }
        b->count = 0;
        while (b->count < BENCH_BATCH) {
            void *p = make_block(w);
            if (!p)
                break;
            b->blocks[b->count++] = p;
        }
        w->sent += (uint64_t)b->count;
        bench_queue_push(&next->inbox, b);
        bench_count(&counters[w->index], (uint64_t)b->count);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    int n = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);
    n_threads = n;

    workers = bench_map((size_t)n * sizeof *workers);
    counters = bench_map((size_t)n * sizeof *counters);
    bench_batch_pool(&batch_pool, (BACKLOG + 2) * n);
    for (int i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].check_ok = 1;
        workers[i].seed = 0x3a110c + 15485863 * (uint64_t)i;
        bench_queue_init(&workers[i].inbox);
    }
    for (int i = 0; i < n; i++) {
        bench_thread_start("xmalloc", &workers[i].thread, worker_main, &workers[i]);
    }
    uint64_t ops;
    double seconds = bench_timed_interval(counters, n, params.warm_s, params.run_s, &stop_flag,
                                          &any_failure, &ops);
    int check_ok = 1;
    uint64_t checksum = 0, sent = 0, freed = 0;
    for (int i = 0; i < n; i++)
        pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < n; i++) {
        drain(&workers[i]);
        check_ok &= workers[i].check_ok;
        checksum += workers[i].checksum;
        sent += workers[i].sent;
        freed += workers[i].freed;
    }
    if (sent != freed) {
        fprintf(stderr, "xmalloc: %llu blocks sent, %llu freed\n", (unsigned long long)sent,
                (unsigned long long)freed);
        check_ok = 0;
    }
    if (ops == 0) {
        fprintf(stderr, "xmalloc: no operations completed in the measured interval\n");
        check_ok = 0;
    }
    printf("RESULT bench=xmalloc threads=%d mops_per_s=%.3f peak_rss_mib=%.1f ops=%llu seconds=%.3f",
           n, (double)ops / seconds / 1e6, (double)bench_peak_rss_kb() / 1024.0,
           (unsigned long long)ops, seconds);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
