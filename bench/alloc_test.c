/* alloc_test: malloc, realloc and free mixed at random over a live set of
 * fixed size (in the spirit of the alloc-test benchmark in mimalloc-bench).
 *
 * Models a long-running program in a steady state: strings and buffers
 * created, grown or shrunk, and dropped, with the number of live objects
 * about constant.  Run with threads=1 for the single-threaded cost and
 * with more for the same work in each of several threads at once (each
 * thread has its own live set: nothing is shared).
 *
 * Each thread has 4096 slots (512 in mode=tiny).  It first fills all of
 * them, checks the blocks, frees half, then repeats: pick a random slot;
 * if it is empty, malloc a block there; else realloc the block to a new
 * size (one time in 3) or free it.  Sizes: 60% 16 - 128 B, 30% 128 B -
 * 2 KiB, 9% 2 - 32 KiB, 1% 32 - 256 KiB (every power-of-two band equally
 * likely inside each range), from each thread's fixed seed.
 *
 * Check: every block holds its size in its first word and a tag naming its
 * address and size in its last, checked before each realloc and free;
 * after a realloc that grew the block, the old first and last words must
 * still be there (after one that shrank it, the first).  After the first
 * fill, the thread's blocks must be non-NULL, disjoint and writable end
 * to end.  The run lasts a fixed time (set by mode=) after a warm-up.
 *
 * Usage:  alloc_test threads=T mode=tiny|quick|full
 * Prints: RESULT bench=alloc_test mops_per_s=X peak_rss_mib=R ...
 *   mops_per_s   malloc, realloc and free calls per second, all threads,
 *                in millions */
#include "bench.h"

#define SIZE_MAX_BYTES (256u << 10)

struct mode_params {
    double warm_s, run_s;
    int slots;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03, 512 },
    [MODE_QUICK] = { 0.05, 0.25, 4096 },
    [MODE_FULL]  = { 0.2, 1.0, 4096 },
};

struct worker {
    pthread_t thread;
    int index;
    int check_ok;
    uint64_t seed;
    uint64_t checksum;
    void **slots;   /* from mmap */
};

static struct mode_params params;
static struct bench_counter *counters;
static _Atomic int stop_flag, any_failure;

static void fail(struct worker *w, const char *what)
{
    bench_fail("alloc_test", "thread", w->index, &w->check_ok, &any_failure, what);
}

static const struct bench_size_band size_mix[] = {
    { 60, 16, 128 },
    { 30, 128, 2048 },
    { 9, 2048, 32768 },
    { 1, 32768, SIZE_MAX_BYTES },
};

static size_t next_size(uint64_t *seed)
{
    return bench_size_mix(seed, size_mix, (int)(sizeof size_mix / sizeof size_mix[0]));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int n = params.slots;
    struct bench_range *ranges = bench_map((size_t)n * sizeof *ranges);
    for (int i = 0; i < n && w->check_ok; i++) {
        size_t size = next_size(&w->seed);
        void *p = malloc(size);
        if (!p) {
            fail(w, "malloc returned NULL");
            break;
        }
        memset(p, 0x77, size);
        bench_block_write(p, size);
        w->slots[i] = p;
        ranges[i] = (struct bench_range){ (uintptr_t)p, size };
    }
    if (w->check_ok && !bench_ranges_disjoint(ranges, (size_t)n))
        fail(w, "two live blocks overlap");
    bench_unmap(ranges, (size_t)n * sizeof *ranges);
    for (int i = 0; i < n && w->check_ok; i += 2) {
        free(w->slots[i]);
        w->slots[i] = NULL;
    }

    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed) && w->check_ok) {
        for (int step = 0; step < 256; step++) {
            uint64_t r = bench_rand(&w->seed);
            int slot = (int)(r % (uint64_t)n);
            char *p = w->slots[slot];
            if (!p) {
                size_t size = next_size(&w->seed);
                p = malloc(size);
                if (!p) {
                    fail(w, "malloc returned NULL");
                    break;
                }
                bench_block_write(p, size);
                w->slots[slot] = p;
                continue;
            }
            size_t old = bench_block_check(p, SIZE_MAX_BYTES);
            if (!old) {
                fail(w, "a block was overwritten while it was live");
                break;
            }
            w->checksum += old;
            if ((r >> 32) % 3 != 0) {
                free(p);
                w->slots[slot] = NULL;
                continue;
            }
            uint64_t old_end = bench_tag_of(p, old), word;
            size_t size = next_size(&w->seed);
            char *q = realloc(p, size);
            if (!q) {
                fail(w, "realloc returned NULL");
                break;
            }
            memcpy(&word, q, 8);
            if (word != old)
                fail(w, "realloc lost the start of a block");
            if (size >= old) {
                memcpy(&word, q + old - 8, 8);
                if (word != old_end)
                    fail(w, "realloc lost the end of a block");
            }
            bench_block_write(q, size);
            w->slots[slot] = q;
        }
        bench_count(&counters[w->index], 256);
    }
    for (int i = 0; i < n; i++) {
        if (!w->slots[i])
            continue;
        if (!bench_block_check(w->slots[i], SIZE_MAX_BYTES))
            fail(w, "a surviving block was overwritten");
        free(w->slots[i]);
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

    struct worker *workers = bench_map((size_t)n * sizeof *workers);
    counters = bench_map((size_t)n * sizeof *counters);
    for (int i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].check_ok = 1;
        workers[i].seed = 0xa110c7e5 + 65537 * (uint64_t)i;
        workers[i].slots = bench_map((size_t)params.slots * sizeof(void *));
        bench_thread_start("alloc_test", &workers[i].thread, worker_main, &workers[i]);
    }
    uint64_t ops;
    double seconds = bench_timed_interval(counters, n, params.warm_s, params.run_s, &stop_flag,
                                          &any_failure, &ops);
    int check_ok = 1;
    uint64_t checksum = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(workers[i].thread, NULL);
        check_ok &= workers[i].check_ok;
        checksum += workers[i].checksum;
    }
    if (ops == 0) {
        fprintf(stderr, "alloc_test: no operations completed in the measured interval\n");
        check_ok = 0;
    }
    printf("RESULT bench=alloc_test threads=%d mops_per_s=%.3f peak_rss_mib=%.1f ops=%llu seconds=%.3f",
           n, (double)ops / seconds / 1e6, (double)bench_peak_rss_kb() / 1024.0,
           (unsigned long long)ops, seconds);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
