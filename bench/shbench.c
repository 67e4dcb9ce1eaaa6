/* shbench: many sizes allocated in runs and freed in LIFO and FIFO order,
 * by the allocating thread (pattern=sh6) or partly by another thread
 * (pattern=sh8) -- in the spirit of MicroQuill's SmartHeap benchmarks
 * sh6bench and sh8bench.
 *
 * Models code that builds a structure and tears it down again: parsers,
 * per-request arenas built by hand, lists and trees freed in the order
 * they were built (FIFO) or in the reverse (LIFO, a stack unwinding).
 *
 * threads=T workers.  Each does iterations of: allocate a run of 100 - 1000
 * blocks (a random count; 20 - 200 in mode=tiny) of 16 B - 4 KiB (every
 * power-of-two band equally likely), free the newest half newest first
 * (LIFO), allocate as many again, then free the whole run oldest first
 * (FIFO).  With pattern=sh8 the FIFO part goes instead, in batches of 64,
 * to the next thread (in a ring; a thread alone sends to itself), which
 * frees them oldest first between its own iterations.  Seeds are fixed per
 * thread: every allocator serves the same requests.
 *
 * Check: every block holds its size in its first word and a tag naming its
 * address and size in its last, checked before it is freed; each run's
 * blocks must be non-NULL and disjoint (checked on every 16th run).  The
 * run lasts a fixed time (set by mode=) after a warm-up.
 *
 * Usage:  shbench pattern=sh6|sh8 threads=T mode=tiny|quick|full
 * Prints: RESULT bench=shbench pattern=P mops_per_s=X peak_rss_mib=R ...
 *   mops_per_s   blocks allocated (and freed) per second, all threads, in
 *                millions */
#include "bench.h"

#define SIZE_MAX_BYTES 4096
#define RUN_MAX 2000   /* blocks in a run: up to 1000, then as many again */

struct mode_params {
    double warm_s, run_s;
    int run_min, run_span;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03, 20, 181 },
    [MODE_QUICK] = { 0.05, 0.25, 100, 901 },
    [MODE_FULL]  = { 0.2, 1.0, 100, 901 },
};

struct worker {
    struct bench_queue inbox;
    pthread_t thread;
    int index;
    int check_ok;
    uint64_t seed;
    uint64_t checksum;
    void *run[RUN_MAX];
    struct bench_range ranges[RUN_MAX];
};

static struct mode_params params;
static struct bench_counter *counters;
static struct worker *workers;
static struct bench_queue batch_pool;
static int n_threads, remote;
static _Atomic int stop_flag, any_failure;

static void fail(struct worker *w, const char *what)
{
    bench_fail("shbench", "thread", w->index, &w->check_ok, &any_failure, what);
}

static void drop(struct worker *w, void *p)
{
    size_t size = bench_block_check(p, SIZE_MAX_BYTES);
    if (!size) {
        fail(w, "a block was overwritten while it was live");
        return;
    }
    w->checksum += size;
    free(p);
}

static int fill(struct worker *w, int from, int to)
{
    for (int i = from; i < to; i++) {
        size_t size = bench_size_log_uniform(&w->seed, 16, SIZE_MAX_BYTES);
        void *p = malloc(size);
        if (!p) {
            fail(w, "malloc returned NULL");
            return i;
        }
        bench_block_write(p, size);
        w->run[i] = p;
        w->ranges[i] = (struct bench_range){ (uintptr_t)p, size };
    }
    return to;
}

/* Frees the blocks in the batches waiting in w's inbox, oldest first. */
static void drain(struct worker *w)
{
    struct bench_batch *b;
    while ((b = bench_queue_pop(&w->inbox)) != NULL) {
        for (int i = 0; i < b->count; i++)
            drop(w, b->blocks[i]);
        bench_queue_push(&batch_pool, b);
    }
}

/* Hands blocks [from, to) of the run to the next thread, oldest first. */
static void send_on(struct worker *w, int from, int to)
{
    struct worker *next = &workers[(w->index + 1) % n_threads];
    while (from < to) {
        struct bench_batch *b = bench_queue_pop(&batch_pool);
        if (!b) {   /* every batch in flight: free these here */
            while (from < to)
                drop(w, w->run[from++]);
            return;
        }
        b->count = 0;
        while (from < to && b->count < BENCH_BATCH)
            b->blocks[b->count++] = w->run[from++];
        bench_queue_push(&next->inbox, b);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t runs = 0;
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) && w->check_ok) {
        int n = params.run_min + (int)(bench_rand(&w->seed) % (uint64_t)params.run_span);
        int got = fill(w, 0, n);
        if (got == n && runs % 16 == 0 && !bench_ranges_disjoint(w->ranges, (size_t)n))
            fail(w, "two live blocks overlap");
        int half = got / 2;
        for (int i = got; i-- > half;)          /* LIFO: newest first */
            drop(w, w->run[i]);
        got = fill(w, half, got);
        if (remote) {
            send_on(w, 0, got);
        } else {
            for (int i = 0; i < got; i++)       /* FIFO: oldest first */
                drop(w, w->run[i]);
        }
        if (remote)
            drain(w);
        runs++;
        bench_count(&counters[w->index], (uint64_t)(n + n - n / 2));
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    const char *pattern = bench_arg_str(&args, "pattern", "sh6");
    int n = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);
    if (strcmp(pattern, "sh6") != 0 && strcmp(pattern, "sh8") != 0)
        bench_usage_exit(argv[0], "pattern must be sh6 or sh8, not", pattern);
    remote = strcmp(pattern, "sh8") == 0;
    n_threads = n;

    workers = bench_map((size_t)n * sizeof *workers);
    counters = bench_map((size_t)n * sizeof *counters);
    bench_batch_pool(&batch_pool, 64 * n);
    for (int i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].check_ok = 1;
        workers[i].seed = 0x5b6e7c + 104729 * (uint64_t)i;
        bench_queue_init(&workers[i].inbox);
    }
    for (int i = 0; i < n; i++) {
        bench_thread_start("shbench", &workers[i].thread, worker_main, &workers[i]);
    }
    uint64_t ops;
    double seconds = bench_timed_interval(counters, n, params.warm_s, params.run_s, &stop_flag,
                                          &any_failure, &ops);
    int check_ok = 1;
    uint64_t checksum = 0;
    for (int i = 0; i < n; i++)
        pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < n; i++) {
        drain(&workers[i]);   /* what was sent last and not yet freed */
        check_ok &= workers[i].check_ok;
        checksum += workers[i].checksum;
    }
    if (ops == 0) {
        fprintf(stderr, "shbench: no operations completed in the measured interval\n");
        check_ok = 0;
    }
    printf("RESULT bench=shbench pattern=%s threads=%d mops_per_s=%.3f peak_rss_mib=%.1f ops=%llu"
           " seconds=%.3f",
           pattern, n, (double)ops / seconds / 1e6, (double)bench_peak_rss_kb() / 1024.0,
           (unsigned long long)ops, seconds);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
