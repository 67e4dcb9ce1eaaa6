/* mstress: bursts of allocation in threads that come and go, with big
 * blocks among the small ones (in the spirit of mimalloc's mstress).
 *
 * Models a program working in phases -- a request, a compile unit, a
 * query -- that each allocate a lot, keep a little, and free the rest,
 * run by a pool of threads that are retired and replaced; what one phase
 * kept, a later phase (often on another thread) frees.
 *
 * threads=T runs T lineages at once.  A lineage works in rounds; a round
 * allocates 2000 blocks (200 in mode=tiny): 89% of 16 B - 1 KiB, 10% of
 * 1 - 64 KiB, 1% of 64 KiB - 2 MiB (every power-of-two band equally likely
 * inside each range), writes a word in every 4 KiB page of each, keeps
 * one block in 8 and frees the others in shuffled order.  A kept block
 * goes into the lineage's ring of 1000 blocks (the block it displaces is
 * freed) or, one time in 4, into a random slot of a ring shared by all
 * lineages (the block it displaces, usually another lineage's, is freed).
 * After every second round the lineage's thread starts a new thread to
 * carry on and exits.  Seeds are fixed: every allocator serves the same
 * requests.
 *
 * Check: every block holds its size in its first word and a tag naming its
 * address and size in its last, checked before it is freed; each round's
 * blocks must be non-NULL and disjoint.  The speed is measured over a
 * fixed time (set by mode=) after a warm-up.
 *
 * Peak RSS is measured at a fixed amount of work: the process's peak when
 * the T lineages have made T * rss_rounds rounds in all (rss_rounds: 4, 50
 * and 200 in mode=tiny, quick and full), the run going on past the timed
 * interval until they have.  The live set grows with the rounds made (the
 * rings fill, and the longer the run, the bigger the largest burst met so
 * far), and allocators differ here by up to 50x in rounds per second: a
 * peak taken at the end of the interval compares a slow allocator's first
 * rounds with a fast one's hundredth.  (glibc's peak at 1 thread: 52 MiB
 * after 50 rounds, 61 after 300, 67 after 2000.)
 *
 * Usage:  mstress threads=T mode=tiny|quick|full
 * Prints: RESULT bench=mstress mops_per_s=X peak_rss_mib=R ...
 *   mops_per_s    blocks allocated (and freed) per second, all threads, in
 *                 millions
 *   peak_rss_mib  the process's peak resident memory (VmHWM) when the
 *                 lineages had made T * rss_rounds rounds in all (also
 *                 the peak_rss_kb of the line)
 *   rss_rounds    that number of rounds divided by T
 *   end_rss_mib   the process's peak at the end of the run, for
 *                 information (it depends on the rounds made) */
#include "bench.h"

#define SIZE_MAX_BYTES (2u << 20)
#define RING 1000
#define SHARED_PER_THREAD 256

#define RSS_WAIT_MAX_S 120.0   /* the longest the run goes on to reach rss_rounds */

struct mode_params {
    double warm_s, run_s;
    int round_blocks;
    int rss_rounds;             /* peak RSS is read after T times this many rounds */
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03, 200, 4 },
    [MODE_QUICK] = { 0.05, 0.25, 2000, 50 },
    [MODE_FULL]  = { 0.2, 1.0, 2000, 200 },
};

struct lineage {
    void *ring[RING];
    void **burst;               /* this round's blocks (from mmap) */
    struct bench_range *ranges; /* for the overlap check (from mmap) */
    uint64_t seed;
    uint64_t checksum;
    uint64_t rounds;
    pthread_t thread, previous;
    int has_previous;
    int index;
    int check_ok;
    _Atomic int done;
};

static struct mode_params params;
static struct bench_counter *counters;
static _Atomic(void *) *shared;
static size_t shared_size;
static _Atomic int stop_flag, any_failure;
/* Rounds made by all lineages; the peak RSS when they reached rss_target
 * (0 until then). */
static _Atomic uint64_t rounds_done;
static uint64_t rss_target;
static _Atomic long rss_at_target_kb;

static void fail(struct lineage *l, const char *what)
{
    bench_fail("mstress", "lineage", l->index, &l->check_ok, &any_failure, what);
}

static const struct bench_size_band size_mix[] = {
    { 89, 16, 1024 },
    { 10, 1024, 65536 },
    { 1, 65536, SIZE_MAX_BYTES },
};

static size_t next_size(uint64_t *seed)
{
    return bench_size_mix(seed, size_mix, (int)(sizeof size_mix / sizeof size_mix[0]));
}

static void drop(struct lineage *l, void *p)
{
    if (!p)
        return;
    size_t size = bench_block_check(p, SIZE_MAX_BYTES);
    if (!size) {
        fail(l, "a block was overwritten while it was live");
        return;
    }
    l->checksum += size;
    free(p);
}

static void run_round(struct lineage *l)
{
    int n = params.round_blocks;
    for (int i = 0; i < n; i++) {
        size_t size = next_size(&l->seed);
        char *p = malloc(size);
        if (!p) {
            fail(l, "malloc returned NULL");
            n = i;
            break;
        }
        for (size_t off = 4096; off + 16 <= size; off += 4096)
            p[off] = (char)off;
        bench_block_write(p, size);
        l->burst[i] = p;
        l->ranges[i] = (struct bench_range){ (uintptr_t)p, size };
    }
    if (!bench_ranges_disjoint(l->ranges, (size_t)n))
        fail(l, "two live blocks overlap");
    /* shuffle, then keep one in 8 and free the rest */
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(bench_rand(&l->seed) % (uint64_t)(i + 1));
        void *t = l->burst[i];
        l->burst[i] = l->burst[j];
        l->burst[j] = t;
    }
    for (int i = 0; i < n; i++) {
        void *p = l->burst[i];
        uint64_t r = bench_rand(&l->seed);
        if (r % 8 != 0) {
            drop(l, p);
        } else if ((r >> 3) % 4 == 0) {
            drop(l, atomic_exchange(&shared[(r >> 5) % shared_size], p));
        } else {
            int slot = (int)((r >> 5) % RING);
            drop(l, l->ring[slot]);
            l->ring[slot] = p;
        }
    }
    bench_count(&counters[l->index], (uint64_t)n);
    if (atomic_fetch_add(&rounds_done, 1) + 1 == rss_target)
        atomic_store(&rss_at_target_kb, bench_peak_rss_kb());
}

static void *worker(void *arg)
{
    struct lineage *l = arg;
    if (l->has_previous)
        pthread_join(l->previous, NULL);
    for (int r = 0; r < 2 && l->check_ok && !atomic_load(&stop_flag); r++)
        run_round(l);
    if (!atomic_load(&stop_flag) && l->check_ok) {
        pthread_t next;
        l->previous = pthread_self();
        l->has_previous = 1;
        if (pthread_create(&next, NULL, worker, l) == 0) {
            l->thread = next;   /* read by main only after the last thread joined us */
            return NULL;
        }
        fail(l, "pthread_create failed");
    }
    atomic_store_explicit(&l->done, 1, memory_order_release);
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    int n = (int)bench_arg_long(&args, "threads", 1, 1, 1024);
    params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);
    rss_target = (uint64_t)n * (uint64_t)params.rss_rounds;

    struct lineage *lineages = bench_map((size_t)n * sizeof *lineages);
    counters = bench_map((size_t)n * sizeof *counters);
    shared_size = (size_t)n * SHARED_PER_THREAD;
    shared = bench_map(shared_size * sizeof *shared);
    for (int i = 0; i < n; i++) {
        struct lineage *l = &lineages[i];
        l->index = i;
        l->check_ok = 1;
        l->seed = 0x357e55 + 7919 * (uint64_t)i;
        l->burst = bench_map((size_t)params.round_blocks * sizeof(void *));
        l->ranges = bench_map((size_t)params.round_blocks * sizeof(struct bench_range));
        bench_thread_start("mstress", &l->thread, worker, l);
    }
    uint64_t ops;
    _Atomic int interval_over = 0;
    double seconds = bench_timed_interval(counters, n, params.warm_s, params.run_s, &interval_over,
                                          &any_failure, &ops);
    /* On until the work at which peak RSS is compared is done. */
    double wait_start = bench_now();
    while (atomic_load(&rss_at_target_kb) == 0 && !atomic_load(&any_failure) &&
           bench_now() - wait_start < RSS_WAIT_MAX_S)
        bench_sleep(0.001);
    atomic_store(&stop_flag, 1);
    int check_ok = 1;
    uint64_t checksum = 0;
    struct lineage *last = &lineages[0];
    for (int i = 0; i < n; i++) {
        struct lineage *l = &lineages[i];
        while (!atomic_load_explicit(&l->done, memory_order_acquire))
            bench_sleep(0.0005);
        pthread_join(l->thread, NULL);
        for (int s = 0; s < RING; s++)
            drop(l, l->ring[s]);
    }
    for (size_t s = 0; s < shared_size; s++)
        drop(last, atomic_load(&shared[s]));
    for (int i = 0; i < n; i++) {
        check_ok &= lineages[i].check_ok;
        checksum += lineages[i].checksum;
    }
    if (ops == 0) {
        fprintf(stderr, "mstress: no operations completed in the measured interval\n");
        check_ok = 0;
    }
    long rss_kb = atomic_load(&rss_at_target_kb);
    if (rss_kb < 0) {
        fprintf(stderr, "mstress: could not read VmHWM from /proc/self/status\n");
        check_ok = 0;
    } else if (rss_kb == 0 && check_ok) {
        fprintf(stderr, "mstress: %d lineages made fewer than %llu rounds in %.0f s\n", n,
                (unsigned long long)rss_target, RSS_WAIT_MAX_S);
        check_ok = 0;
    }
    printf("RESULT bench=mstress threads=%d mops_per_s=%.3f peak_rss_mib=%.1f rss_rounds=%d"
           " end_rss_mib=%.1f ops=%llu seconds=%.3f",
           n, (double)ops / seconds / 1e6, (double)rss_kb / 1024.0, params.rss_rounds,
           (double)bench_peak_rss_kb() / 1024.0, (unsigned long long)ops, seconds);
    bench_result_end_rss(check_ok, checksum, rss_kb);
    return check_ok ? 0 : 1;
}
