/* server_mix: a server-like mix of sizes and lifetimes, with objects handed
 * from thread to thread (in the spirit of the larson benchmark).
 *
 * Models a server: each connection or request owns a set of objects of all
 * sizes (a few bytes to 64 KiB: headers, strings, buffers); most die soon,
 * some live long (sessions, cached entries); the work moves between threads
 * (a worker pool), so blocks allocated on one thread are freed on another,
 * and threads come and go.
 *
 * threads=T runs T "lineages".  A lineage owns an array of 4096 slots (256
 * in mode=tiny), each holding a live block, filled by the main thread at the
 * start (so the first frees are remote ones).  One thread at a time works
 * for the lineage, in rounds of 8192 operations; an operation picks a slot,
 * checks and frees its block, and puts a newly allocated one there.  Slots
 * have two lifetimes: 7 operations in 8 go to the first eighth of the slots
 * (short-lived objects, replaced every few hundred operations), 1 in 8 to
 * the rest (long-lived ones, surviving tens of thousands of operations and
 * many threads).  After each round the thread starts a new thread to carry
 * on with the lineage's array and exits (as larson does): the new thread
 * frees blocks the old one allocated, and the allocator sees threads end
 * with blocks still live.
 *
 * Sizes: 80% 8-512 B, 15% 512 B-8 KiB, 5% 8-64 KiB, every power-of-two band
 * equally likely inside each range, from each lineage's fixed seed, so every
 * allocator serves the same requests.
 *
 * Check: every block carries a tag naming its address and size at both ends
 * (at the start only for blocks under 16 B), verified before it is freed;
 * before timing, all the blocks of all lineages must be non-NULL, disjoint
 * and writable end to end.  The run lasts a fixed time (set by mode=) after
 * a warm-up, stretched until every lineage has finished a round.
 *
 * Usage:  server_mix threads=T mode=tiny|quick|full
 * Prints: RESULT bench=server_mix mops_per_s=X peak_rss_mib=R ...
 *   mops_per_s    operations (one free + one malloc) per second, all
 *                 threads together, in millions
 *   peak_rss_mib  the process's peak resident memory (VmHWM) */
#include "bench.h"

#include <pthread.h>

#define SIZE_MIN 8
#define SIZE_MAX_BYTES 65536
#define MAX_INTERVAL_S 30.0    /* the most the measured interval may be stretched to */

struct mode_params {
    double warm_s, run_s;
    int slots, round_ops;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03, 256, 1024 },
    [MODE_QUICK] = { 0.05, 0.25, 4096, 8192 },
    [MODE_FULL]  = { 0.2, 1.0, 4096, 8192 },
};

struct lineage {
    struct bench_counter ops;   /* first: keeps it on its own cache line */
    void **blocks;              /* from mmap, like sizes */
    uint32_t *sizes;
    uint64_t seed;
    uint64_t checksum;
    pthread_t first;            /* the lineage's first thread, started by main */
    pthread_t thread;           /* a later thread, set by the thread that started it */
    pthread_t previous;         /* the thread that worked before it, to join */
    int handed_off;             /* 1 once a thread has handed the lineage on */
    int index;
    int check_ok;
    _Atomic int done;
};

static struct mode_params params;
static _Atomic int stop_flag;
static _Atomic int any_failure;

static void fail(struct lineage *l, const char *what)
{
    bench_fail("server_mix", "lineage", l->index, &l->check_ok, &any_failure, what);
}

/* 80% 8-512 B, 15% 512 B-8 KiB, 5% 8-64 KiB. */
static const struct bench_size_band size_mix[] = {
    { 80, SIZE_MIN, 512 },
    { 15, 512, 8192 },
    { 5, 8192, SIZE_MAX_BYTES },
};

static size_t next_size(uint64_t *seed)
{
    return bench_size_mix(seed, size_mix, (int)(sizeof size_mix / sizeof size_mix[0]));
}

/* Tags for blocks of any size from 8 B: both ends from 16 B, else the start. */
static void tag_write(void *p, size_t size)
{
    if (size >= 16) {
        bench_tag_write(p, size);
    } else {
        uint64_t tag = bench_tag_of(p, size);
        memcpy(p, &tag, 8);
    }
}

static uint64_t tag_read(const void *p, size_t size)
{
    if (size >= 16)
        return bench_tag_read(p, size);
    uint64_t tag;
    memcpy(&tag, p, 8);
    return tag == bench_tag_of(p, size) ? tag : 0;
}

/* The slot of the next operation: 7 in 8 among the short-lived eighth. */
static int next_slot(uint64_t *seed)
{
    uint64_t r = bench_rand(seed);
    int short_slots = params.slots / 8;
    if (r & 7)
        return (int)((r >> 3) % (uint64_t)short_slots);
    return short_slots + (int)((r >> 3) % (uint64_t)(params.slots - short_slots));
}

static void *lineage_thread(void *arg);

/* One round of operations on the lineage's array. */
static void run_round(struct lineage *l)
{
    uint64_t sum = 0;
    for (int i = 0; i < params.round_ops; i++) {
        int slot = next_slot(&l->seed);
        uint64_t tag = tag_read(l->blocks[slot], l->sizes[slot]);
        if (!tag)
            fail(l, "a block's tag was overwritten while it was live");
        sum += tag;
        free(l->blocks[slot]);
        size_t size = next_size(&l->seed);
        void *p = malloc(size);
        if (!p) {
            fail(l, "malloc returned NULL");
            l->blocks[slot] = NULL;   /* the slot stays empty: nothing more runs */
            return;
        }
        tag_write(p, size);
        l->blocks[slot] = p;
        l->sizes[slot] = (uint32_t)size;
    }
    l->checksum += sum;
    atomic_store_explicit(&l->ops.value, atomic_load_explicit(&l->ops.value, memory_order_relaxed) +
                                             (uint64_t)params.round_ops,
                          memory_order_relaxed);
}

/* A thread of a lineage: joins the thread before it, works one round, then
 * hands the lineage to a new thread -- or, once the run is over, says the
 * lineage is done. */
static void *lineage_thread(void *arg)
{
    struct lineage *l = arg;
    if (l->handed_off)
        pthread_join(l->previous, NULL);
    run_round(l);
    if (!atomic_load(&stop_flag) && l->check_ok) {
        pthread_t next;
        int handed_off = l->handed_off;
        l->previous = pthread_self();
        l->handed_off = 1;
        if (pthread_create(&next, NULL, lineage_thread, l) == 0) {
            l->thread = next;   /* read by main only after the last thread joined us */
            return NULL;
        }
        l->handed_off = handed_off;
        fail(l, "pthread_create failed");
    }
    atomic_store_explicit(&l->done, 1, memory_order_release);
    return NULL;
}

/* The blocks of every lineage, filled by the main thread: non-NULL,
 * disjoint, writable end to end; then tagged for the run. */
static int fill_lineages(struct lineage *lineages, int n)
{
    size_t total = (size_t)n * (size_t)params.slots;
    struct bench_range *ranges = bench_map(total * sizeof *ranges);
    int ok = 1;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        struct lineage *l = &lineages[i];
        for (int s = 0; s < params.slots; s++) {
            size_t size = next_size(&l->seed);
            void *p = malloc(size);
            if (!p) {
                fprintf(stderr, "server_mix: malloc(%zu) returned NULL\n", size);
                ok = 0;
                break;
            }
            bench_fill(p, size, k);
            l->blocks[s] = p;
            l->sizes[s] = (uint32_t)size;
            ranges[k++] = (struct bench_range){ (uintptr_t)p, size };
        }
    }
    if (ok) {
        k = 0;
        for (int i = 0; i < n; i++) {
            for (int s = 0; s < params.slots; s++, k++) {
                struct lineage *l = &lineages[i];
                if (!bench_fill_ok(l->blocks[s], l->sizes[s], k)) {
                    fprintf(stderr, "server_mix: a block's contents changed while it was live\n");
                    ok = 0;
                }
                tag_write(l->blocks[s], l->sizes[s]);
            }
        }
        if (!bench_ranges_disjoint(ranges, k)) {
            fprintf(stderr, "server_mix: two live blocks overlap\n");
            ok = 0;
        }
    }
    bench_unmap(ranges, total * sizeof *ranges);
    return ok;
}

static uint64_t read_ops(const struct lineage *lineages, int n, uint64_t *seen)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        seen[i] = atomic_load_explicit(&lineages[i].ops.value, memory_order_relaxed);
        sum += seen[i];
    }
    return sum;
}

static int all_advanced(const struct lineage *lineages, int n, const uint64_t *seen)
{
    for (int i = 0; i < n; i++)
        if (atomic_load_explicit(&lineages[i].ops.value, memory_order_relaxed) == seen[i])
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    int n = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);

    struct lineage *lineages = bench_map((size_t)n * sizeof *lineages);
    for (int i = 0; i < n; i++) {
        lineages[i].index = i;
        lineages[i].check_ok = 1;
        lineages[i].seed = 1 + (uint64_t)i;
        lineages[i].blocks = bench_map((size_t)params.slots * sizeof(void *));
        lineages[i].sizes = bench_map((size_t)params.slots * sizeof(uint32_t));
    }
    int check_ok = fill_lineages(lineages, n);
    if (!check_ok) {
        printf("RESULT bench=server_mix threads=%d", n);
        bench_result_end(0, 0);
        return 1;
    }

    for (int i = 0; i < n; i++) {
        bench_thread_start("server_mix", &lineages[i].first, lineage_thread, &lineages[i]);
    }
    bench_sleep(params.warm_s);
    uint64_t *seen = bench_map((size_t)n * sizeof *seen);
    uint64_t ops_start = read_ops(lineages, n, seen);
    double t_start = bench_now();
    bench_sleep(params.run_s);
    while (!all_advanced(lineages, n, seen) && !atomic_load(&any_failure) &&
           bench_now() - t_start < MAX_INTERVAL_S)
        bench_sleep(0.001);
    uint64_t ops_end = read_ops(lineages, n, seen);
    double t_end = bench_now();
    atomic_store(&stop_flag, 1);

    uint64_t checksum = 0;
    for (int i = 0; i < n; i++) {
        struct lineage *l = &lineages[i];
        while (!atomic_load_explicit(&l->done, memory_order_acquire))
            bench_sleep(0.0005);
        pthread_join(l->handed_off ? l->thread : l->first, NULL);
        check_ok &= l->check_ok;
        checksum += l->checksum;
        /* The survivors, freed by the main thread. */
        for (int s = 0; s < params.slots; s++) {
            if (!l->blocks[s])
                continue;
            if (!tag_read(l->blocks[s], l->sizes[s])) {
                fprintf(stderr, "server_mix: lineage %d: a surviving block's tag was overwritten\n", i);
                check_ok = 0;
            }
            free(l->blocks[s]);
        }
    }
    uint64_t ops = ops_end - ops_start;
    double seconds = t_end - t_start;
    if (ops == 0) {
        fprintf(stderr, "server_mix: no operations completed in the measured interval\n");
        check_ok = 0;
    }
    printf("RESULT bench=server_mix threads=%d mops_per_s=%.3f peak_rss_mib=%.1f ops=%llu"
           " seconds=%.3f",
           n, (double)ops / seconds / 1e6, (double)bench_peak_rss_kb() / 1024.0,
           (unsigned long long)ops, seconds);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
