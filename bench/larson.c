/* larson: a server whose worker threads come and go, in the spirit of the
 * larson benchmark (Larson and Krishnan, "Memory allocation for
 * long-running server applications").
 *
 * Models a server in which every worker thread owns a set of objects,
 * replaces them at random (free one, allocate another of a random size),
 * and is now and then retired: it hands its objects to a newly started
 * thread and exits, so the new thread frees blocks another thread
 * allocated, and the allocator sees threads end with blocks live.
 *
 * threads=T runs T slot arrays at once.  Each array has 1000 slots (200 in
 * mode=tiny), filled by the main thread before the workers start (so the
 * first frees are remote ones).  A worker thread does rounds of 10000
 * operations (1000 tiny); an operation picks a random slot, checks and
 * frees its block, and allocates a new one of 16 - 1000 bytes (uniform, as
 * in larson).  After each round the thread starts its successor, hands it
 * the array and exits.  Seeds are fixed per array: every allocator serves
 * the same requests.
 *
 * Check: every block holds its size in its first word and a tag naming its
 * address and size in its last, checked before it is freed; before the
 * workers start, all blocks must be non-NULL, disjoint and writable end to
 * end.  The run lasts a fixed time (set by mode=) after a warm-up.
 *
 * Usage:  larson threads=T mode=tiny|quick|full
 * Prints: RESULT bench=larson mops_per_s=X peak_rss_mib=R ...
 *   mops_per_s    operations (one free + one malloc) per second, all
 *                 threads together, in millions */
#include "bench.h"

#define SIZE_MIN 16
#define SIZE_MAX_BYTES 1000

struct mode_params {
    double warm_s, run_s;
    int slots, round_ops;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03, 200, 1000 },
    [MODE_QUICK] = { 0.05, 0.25, 1000, 10000 },
    [MODE_FULL]  = { 0.2, 1.0, 1000, 10000 },
};

struct array {
    void **blocks;              /* from mmap */
    uint64_t seed;
    uint64_t checksum;
    pthread_t thread;           /* the thread now working on it */
    pthread_t previous;         /* the one before, joined by its successor */
    int has_previous;
    int index;
    int check_ok;
    _Atomic int done;
};

static struct mode_params params;
static struct bench_counter *counters;
static _Atomic int stop_flag, any_failure;

static void fail(struct array *a, const char *what)
{
    bench_fail("larson", "array", a->index, &a->check_ok, &any_failure, what);
}

static size_t next_size(uint64_t *seed)
{
    return SIZE_MIN + (size_t)(bench_rand(seed) % (SIZE_MAX_BYTES - SIZE_MIN + 1));
}

static void *worker(void *arg)
{
    struct array *a = arg;
    if (a->has_previous)
        pthread_join(a->previous, NULL);
    uint64_t sum = 0;
    for (int i = 0; i < params.round_ops && a->check_ok; i++) {
        uint64_t r = bench_rand(&a->seed);
        int slot = (int)(r % (uint64_t)params.slots);
        size_t old = bench_block_check(a->blocks[slot], SIZE_MAX_BYTES);
        if (!old)
            fail(a, "a block was overwritten while it was live");
        sum += old;
        free(a->blocks[slot]);
        size_t size = next_size(&a->seed);
        void *p = malloc(size);
        a->blocks[slot] = p;
        if (!p) {
            fail(a, "malloc returned NULL");
            break;
        }
        bench_block_write(p, size);
    }
    a->checksum += sum;
    bench_count(&counters[a->index], (uint64_t)params.round_ops);
    if (!atomic_load(&stop_flag) && a->check_ok) {
        pthread_t next;
        a->previous = pthread_self();
        a->has_previous = 1;
        if (pthread_create(&next, NULL, worker, a) == 0) {
            a->thread = next;   /* read by main only after the last thread joined us */
            return NULL;
        }
        fail(a, "pthread_create failed");
    }
    atomic_store_explicit(&a->done, 1, memory_order_release);
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    int n = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);

    struct array *arrays = bench_map((size_t)n * sizeof *arrays);
    counters = bench_map((size_t)n * sizeof *counters);
    size_t total = (size_t)n * (size_t)params.slots;
    struct bench_range *ranges = bench_map(total * sizeof *ranges);
    int check_ok = 1;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        struct array *a = &arrays[i];
        a->index = i;
        a->check_ok = 1;
        a->seed = 0x1a750 + (uint64_t)i;
        a->blocks = bench_map((size_t)params.slots * sizeof(void *));
        for (int s = 0; s < params.slots && check_ok; s++) {
            size_t size = next_size(&a->seed);
            void *p = malloc(size);
            if (!p) {
                fprintf(stderr, "larson: malloc(%zu) returned NULL\n", size);
                check_ok = 0;
                break;
            }
            memset(p, 0xa5, size);
            bench_block_write(p, size);
            a->blocks[s] = p;
            ranges[k++] = (struct bench_range){ (uintptr_t)p, size };
        }
    }
    if (check_ok && !bench_ranges_disjoint(ranges, k)) {
        fprintf(stderr, "larson: two live blocks overlap\n");
        check_ok = 0;
    }
    bench_unmap(ranges, total * sizeof *ranges);
    if (!check_ok) {
        printf("RESULT bench=larson threads=%d", n);
        bench_result_end(0, 0);
        return 1;
    }

    for (int i = 0; i < n; i++) {
        bench_thread_start("larson", &arrays[i].thread, worker, &arrays[i]);
    }
    uint64_t ops;
    double seconds = bench_timed_interval(counters, n, params.warm_s, params.run_s, &stop_flag,
                                          &any_failure, &ops);
    uint64_t checksum = 0;
    for (int i = 0; i < n; i++) {
        struct array *a = &arrays[i];
        while (!atomic_load_explicit(&a->done, memory_order_acquire))
            bench_sleep(0.0005);
        pthread_join(a->thread, NULL);
        check_ok &= a->check_ok;
        checksum += a->checksum;
        for (int s = 0; s < params.slots; s++) {
            if (!a->blocks[s])
                continue;
            if (!bench_block_check(a->blocks[s], SIZE_MAX_BYTES)) {
                fprintf(stderr, "larson: array %d: a surviving block was overwritten\n", i);
                check_ok = 0;
            }
            free(a->blocks[s]);
        }
    }
    if (ops == 0) {
        fprintf(stderr, "larson: no operations completed in the measured interval\n");
        check_ok = 0;
    }
    printf("RESULT bench=larson threads=%d mops_per_s=%.3f peak_rss_mib=%.1f ops=%llu seconds=%.3f",
           n, (double)ops / seconds / 1e6, (double)bench_peak_rss_kb() / 1024.0,
           (unsigned long long)ops, seconds);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
