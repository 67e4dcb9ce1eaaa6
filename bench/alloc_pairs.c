/* alloc_pairs: what one malloc+free pair of a small block costs, at T threads
 * (seed 000's table: nanoseconds per allocation by thread count).
 *
 * Models the bread and butter of most programs: short-lived small objects
 * allocated and freed by the thread that made them.
 *
 * Sizes: a random mix from 16 B to 2 KiB in which every power-of-two band
 * (16-31, 32-63, ... 1024-2047, 2048) is equally likely and sizes are uniform
 * inside a band.  Each thread draws its sizes from a fixed seed, so every
 * allocator serves exactly the same requests.
 *
 * pattern=batch  each round allocates a window of 256 blocks, writes a tag at
 *                both ends of each, then checks the tags and frees the window
 *                in a shuffled order (many live blocks, scattered frees).
 * pattern=pair   malloc, tag, check, free, one block at a time: the fast path
 *                alone, with the block reused at once.
 *
 * Before timing, each thread checks that 4096 live blocks are non-NULL,
 * pairwise disjoint and writable end to end.  Then all threads run for a
 * warm-up and a measured interval of fixed length (set by mode=); the main
 * thread reads the per-thread pair counters at both ends of the interval,
 * which it stretches, if need be, until every thread has done a round.
 *
 * pairs=N (for profiling, e.g. under valgrind: bench/profile.sh) makes the
 * work fixed instead: each thread does N pairs after a warm-up of N/4, and
 * the interval runs from the start until every thread is done; the RESULT
 * line then also gives warmup_pairs (all threads), which run_pair or
 * run_batch made too.
 *
 * Usage:  alloc_pairs threads=N pattern=batch|pair mode=tiny|quick|full [pairs=N]
 * Prints: RESULT bench=alloc_pairs ... ns_per_pair=X mops_per_s=Y ...
 *   ns_per_pair  thread-seconds per pair: interval * threads / pairs
 *                (above the core count it includes waiting for a core)
 *   mops_per_s   pairs per second by all threads together, in millions */
#include "bench.h"

#include <pthread.h>

enum pattern { PATTERN_BATCH, PATTERN_PAIR };

#define SIZE_MIN 16
#define SIZE_MAX_BYTES 2048
#define SIZE_TABLE 4096        /* sizes drawn per thread, used in a cycle */
#define WINDOW 256             /* blocks alive at once in pattern=batch */
#define PAIR_ROUND 1024        /* pairs between two looks at the stop flag */
#define MAX_INTERVAL_S 30.0    /* the most the measured interval may be stretched to */

struct mode_params {
    double warm_s, run_s;
    int verify_blocks;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.02, 512 },
    [MODE_QUICK] = { 0.05, 0.25, 4096 },
    [MODE_FULL]  = { 0.2, 1.0, 4096 },
};

struct worker {
    struct bench_counter pairs;   /* first: keeps it on its own cache line */
    pthread_t thread;
    int index;
    int check_ok;
    uint64_t checksum;
    uint64_t warmup_pairs;        /* pairs=N: the warm-up's pairs */
};

static enum pattern pattern;
static struct mode_params params;
static uint64_t fixed_pairs;          /* pairs=N: pairs per thread, or 0: timed (read only) */
static pthread_barrier_t start_barrier;
static _Atomic int stop_flag;

static _Atomic int any_failure;

static void fail(struct worker *w, const char *what)
{
    bench_fail("alloc_pairs", "thread", w->index, &w->check_ok, &any_failure, what);
}

/* Live blocks must be non-NULL, disjoint and writable end to end. */
static void verify_blocks(struct worker *w, const uint16_t *sizes)
{
    int n = params.verify_blocks;
    void **blocks = bench_map((size_t)n * sizeof *blocks);
    struct bench_range *ranges = bench_map((size_t)n * sizeof *ranges);
    for (int i = 0; i < n; i++) {
        size_t size = sizes[i % SIZE_TABLE];
        blocks[i] = malloc(size);
        if (!blocks[i]) {
            fail(w, "malloc returned NULL");
            n = i;
            break;
        }
        bench_fill(blocks[i], size, (uint64_t)i);
        ranges[i] = (struct bench_range){ (uintptr_t)blocks[i], size };
    }
    for (int i = 0; i < n; i++)
        if (!bench_fill_ok(blocks[i], sizes[i % SIZE_TABLE], (uint64_t)i))
            fail(w, "a block's contents changed while it was live");
    if (!bench_ranges_disjoint(ranges, (size_t)n))
        fail(w, "two live blocks overlap");
    for (int i = 0; i < n; i++)
        free(blocks[i]);
    bench_unmap(blocks, (size_t)params.verify_blocks * sizeof *blocks);
    bench_unmap(ranges, (size_t)params.verify_blocks * sizeof *ranges);
}

/* Both patterns run until the stop flag, or until `limit` pairs if not 0. */
static void run_batch(struct worker *w, const uint16_t *sizes, uint64_t limit)
{
    void *blocks[WINDOW];
    uint16_t block_size[WINDOW], free_order[WINDOW];
    uint64_t seed = 1000 + (uint64_t)w->index, pairs = 0, sum = 0;
    unsigned next = 0;

    for (int i = 0; i < WINDOW; i++)
        free_order[i] = (uint16_t)i;
    for (int i = WINDOW - 1; i > 0; i--) {
        int j = (int)(bench_rand(&seed) % (uint64_t)(i + 1));
        uint16_t t = free_order[i];
        free_order[i] = free_order[j];
        free_order[j] = t;
    }

    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) &&
           (!limit || pairs < limit)) {
        for (int i = 0; i < WINDOW; i++) {
            size_t size = sizes[next++ % SIZE_TABLE];
            void *p = malloc(size);
            if (!p) {
                fail(w, "malloc returned NULL");
                return;
            }
            bench_tag_write(p, size);
            blocks[i] = p;
            block_size[i] = (uint16_t)size;
        }
        for (int i = 0; i < WINDOW; i++) {
            int j = free_order[i];
            uint64_t tag = bench_tag_read(blocks[j], block_size[j]);
            if (!tag)
                fail(w, "a block's tag was overwritten while it was live");
            sum += tag;
            free(blocks[j]);
        }
        pairs += WINDOW;
        atomic_store_explicit(&w->pairs.value, pairs, memory_order_relaxed);
    }
    w->checksum = sum;
}

static void run_pair(struct worker *w, const uint16_t *sizes, uint64_t limit)
{
    uint64_t pairs = 0, sum = 0;
    unsigned next = 0;

    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) &&
           (!limit || pairs < limit)) {
        for (int i = 0; i < PAIR_ROUND; i++) {
            size_t size = sizes[next++ % SIZE_TABLE];
            void *p = malloc(size);
            if (!p) {
                fail(w, "malloc returned NULL");
                return;
            }
            bench_tag_write(p, size);
            uint64_t tag = bench_tag_read(p, size);
            if (!tag)
                fail(w, "a block's tag was overwritten while it was live");
            sum += tag;
            free(p);
        }
        pairs += PAIR_ROUND;
        atomic_store_explicit(&w->pairs.value, pairs, memory_order_relaxed);
    }
    w->checksum = sum;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint16_t sizes[SIZE_TABLE];
    uint64_t seed = 1 + (uint64_t)w->index;
    for (int i = 0; i < SIZE_TABLE; i++)
        sizes[i] = (uint16_t)bench_size_log_uniform(&seed, SIZE_MIN, SIZE_MAX_BYTES);

    verify_blocks(w, sizes);
    if (fixed_pairs) {   /* the warm-up, not counted */
        if (pattern == PATTERN_BATCH)
            run_batch(w, sizes, fixed_pairs / 4);
        else
            run_pair(w, sizes, fixed_pairs / 4);
        w->warmup_pairs = atomic_load(&w->pairs.value);
        atomic_store(&w->pairs.value, 0);
    }
    pthread_barrier_wait(&start_barrier);
    if (pattern == PATTERN_BATCH)
        run_batch(w, sizes, fixed_pairs);
    else
        run_pair(w, sizes, fixed_pairs);
    return NULL;
}

/* Reads every worker's pair counter into seen[] and returns their sum. */
static uint64_t read_pairs(const struct worker *workers, int n, uint64_t *seen)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        seen[i] = atomic_load_explicit(&workers[i].pairs.value, memory_order_relaxed);
        sum += seen[i];
    }
    return sum;
}

/* 1 when every worker has completed a round since seen[] was read. */
static int all_advanced(const struct worker *workers, int n, const uint64_t *seen)
{
    for (int i = 0; i < n; i++)
        if (atomic_load_explicit(&workers[i].pairs.value, memory_order_relaxed) == seen[i])
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    int threads = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    const char *pattern_name = bench_arg_str(&args, "pattern", "batch");
    fixed_pairs = (uint64_t)bench_arg_long(&args, "pairs", 0, 0, 1L << 40);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);
    if (strcmp(pattern_name, "batch") == 0)
        pattern = PATTERN_BATCH;
    else if (strcmp(pattern_name, "pair") == 0)
        pattern = PATTERN_PAIR;
    else
        bench_usage_exit(argv[0], "pattern must be batch or pair, not", pattern_name);

    struct worker *workers = bench_map((size_t)threads * sizeof *workers);
    pthread_barrier_init(&start_barrier, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        workers[i].index = i;
        workers[i].check_ok = 1;
        bench_thread_start("alloc_pairs", &workers[i].thread, worker_main, &workers[i]);
    }
    pthread_barrier_wait(&start_barrier);
    uint64_t *seen = bench_map((size_t)threads * sizeof *seen);
    uint64_t pairs_start = 0, pairs_end;
    double t_start, t_end;
    if (fixed_pairs) {
        t_start = bench_now();
        for (int i = 0; i < threads; i++)
            pthread_join(workers[i].thread, NULL);
        t_end = bench_now();
        pairs_end = read_pairs(workers, threads, seen);
    } else {
        bench_sleep(params.warm_s);
        pairs_start = read_pairs(workers, threads, seen);
        t_start = bench_now();
        bench_sleep(params.run_s);
        /* On a crowded machine a thread may not get a CPU during a short
         * interval; extend the interval until every thread has done a round. */
        while (!all_advanced(workers, threads, seen) && !atomic_load(&any_failure) &&
               bench_now() - t_start < MAX_INTERVAL_S)
            bench_sleep(0.001);
        pairs_end = read_pairs(workers, threads, seen);
        t_end = bench_now();
        atomic_store(&stop_flag, 1);
        for (int i = 0; i < threads; i++)
            pthread_join(workers[i].thread, NULL);
    }

    int check_ok = 1;
    uint64_t checksum = 0, warmup_pairs = 0;
    for (int i = 0; i < threads; i++) {
        warmup_pairs += workers[i].warmup_pairs;
        check_ok &= workers[i].check_ok;
        checksum += workers[i].checksum;
    }
    uint64_t pairs = pairs_end - pairs_start;
    double seconds = t_end - t_start;
    if (pairs == 0) {
        fprintf(stderr, "alloc_pairs: no pairs completed in the measured interval\n");
        check_ok = 0;
        pairs = 1;
    }
    printf("RESULT bench=alloc_pairs pattern=%s threads=%d ns_per_pair=%.3f mops_per_s=%.3f"
           " pairs=%llu seconds=%.3f",
           pattern_name, threads, seconds * 1e9 * threads / (double)pairs,
           (double)pairs / seconds / 1e6, (unsigned long long)pairs, seconds);
    if (fixed_pairs)
        printf(" warmup_pairs=%llu", (unsigned long long)warmup_pairs);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
