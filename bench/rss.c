/* rss: memory footprint -- how much the allocator holds at a peak, after
 * most of the peak is freed, and after a pause (memory given back to the OS).
 *
 * Models a program that builds a large working set (a cache, a parse tree, a
 * batch of requests), drops most of it, and keeps running lightly.
 *
 * Phases (one thread):
 *   1. alloc  allocate blocks until the requested bytes reach the peak
 *             (256 MiB in mode=quick): 70% of blocks 16-256 B, 25% 256 B-4 KiB,
 *             5% 4-64 KiB (log-uniform inside each range), plus one 1 MiB
 *             block after every 7 MiB of smaller ones; every byte is written.
 *   2. free   free about 90% of the blocks, chosen at random (a fixed seed),
 *             so the 10% left are scattered over the whole heap.
 *   3. pause  sleep (0.5 s in mode=quick), then a little work: 1000 small
 *             blocks allocated and freed, which lets allocators that return
 *             memory lazily, on a later call, do so.
 *   Finally every surviving block's contents are verified and it is freed.
 *
 * RSS comes from /proc/self/statm, the peak from VmHWM in /proc/self/status.
 * The harness's own arrays come from mmap (a few MiB, the same for every
 * allocator).  Check: all blocks live at the peak are non-NULL and disjoint,
 * and every block keeps the contents written into it until it is freed.
 *
 * Usage:  rss mode=tiny|quick|full
 * Prints: TRACE ms=T rss_mib=R phase=P   (RSS over time, for the plot)
 *         RESULT bench=rss rss_peak_mib=.. rss_after_free_mib=.. rss_after_pause_mib=..
 *                live_mib=.. hwm_mib=.. ... */
#include "bench.h"

#define BIG_BLOCK ((size_t)1 << 20)
#define BIG_EVERY ((size_t)7 << 20)   /* one 1 MiB block after this many bytes */
#define KEEP_PERCENT 10
#define AFTER_PAUSE_BLOCKS 1000
#define TRACE_POINTS 32

struct mode_params {
    size_t peak_bytes;
    double pause_s;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { (size_t)16 << 20, 0.05 },
    [MODE_QUICK] = { (size_t)256 << 20, 0.5 },
    [MODE_FULL]  = { (size_t)1024 << 20, 1.0 },
};

static double t_origin;

static double mib(long kb)
{
    return (double)kb / 1024.0;
}

static void trace(const char *phase)
{
    printf("TRACE ms=%.1f rss_mib=%.2f phase=%s\n", (bench_now() - t_origin) * 1e3,
           mib(bench_rss_kb()), phase);
}

/* The size of the next small/medium block: 70% 16-256 B, 25% 256 B-4 KiB,
 * 5% 4-64 KiB. */
static const struct bench_size_band size_mix[] = {
    { 70, 16, 256 },
    { 25, 256, 4096 },
    { 5, 4096, 65536 },
};

static size_t next_size(uint64_t *seed)
{
    return bench_size_mix(seed, size_mix, (int)(sizeof size_mix / sizeof size_mix[0]));
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    struct mode_params params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);

    t_origin = bench_now();
    int check_ok = 1;
    uint64_t checksum = 0, seed = 42;
    long rss_base = bench_rss_kb();
    trace("start");

    /* Bookkeeping from mmap: room for the most blocks the peak could need;
     * only the part used is ever touched. */
    size_t max_blocks = params.peak_bytes / 16 + 1;
    void **blocks = bench_map(max_blocks * sizeof *blocks);
    uint32_t *sizes = bench_map(max_blocks * sizeof *sizes);
    uint32_t *ids = bench_map(max_blocks * sizeof *ids);   /* survivors' fill ids */

    /* 1. alloc */
    size_t n = 0, requested = 0, since_big = 0, next_trace = params.peak_bytes / TRACE_POINTS;
    while (requested < params.peak_bytes) {
        size_t size = since_big >= BIG_EVERY ? BIG_BLOCK : next_size(&seed);
        since_big = size == BIG_BLOCK ? 0 : since_big + size;
        void *p = malloc(size);
        if (!p) {
            fprintf(stderr, "rss: malloc(%zu) returned NULL\n", size);
            check_ok = 0;
            break;
        }
        bench_fill(p, size, n);
        blocks[n] = p;
        sizes[n] = (uint32_t)size;
        n++;
        requested += size;
        if (requested >= next_trace) {
            trace("alloc");
            next_trace += params.peak_bytes / TRACE_POINTS;
        }
    }
    long rss_peak = bench_rss_kb();
    trace("peak");

    struct bench_range *ranges = bench_map(n * sizeof *ranges);
    for (size_t i = 0; i < n; i++)
        ranges[i] = (struct bench_range){ (uintptr_t)blocks[i], sizes[i] };
    if (!bench_ranges_disjoint(ranges, n)) {
        fprintf(stderr, "rss: two live blocks overlap\n");
        check_ok = 0;
    }
    bench_unmap(ranges, n * sizeof *ranges);

    /* 2. free ~90%, scattered */
    size_t live = 0, live_bytes = 0, trace_step = n / TRACE_POINTS + 1;
    for (size_t i = 0; i < n; i++) {
        if (bench_rand(&seed) % 100 < KEEP_PERCENT) {
            blocks[live] = blocks[i];
            sizes[live] = sizes[i];
            ids[live] = (uint32_t)i;
            live++;
            live_bytes += sizes[i];
            checksum += i;
        } else {
            if (!bench_fill_ok(blocks[i], sizes[i], i)) {
                fprintf(stderr, "rss: block %zu's contents changed while it was live\n", i);
                check_ok = 0;
            }
            free(blocks[i]);
        }
        if (i % trace_step == 0)
            trace("free");
    }
    long rss_after_free = bench_rss_kb();
    trace("freed");

    /* 3. pause, then a little work */
    for (int step = 0; step < 20; step++) {
        bench_sleep(params.pause_s / 20);
        trace("pause");
    }
    void *small[AFTER_PAUSE_BLOCKS];
    for (int i = 0; i < AFTER_PAUSE_BLOCKS; i++) {
        size_t size = bench_size_log_uniform(&seed, 16, 1024);
        small[i] = malloc(size);
        if (!small[i]) {
            fprintf(stderr, "rss: malloc(%zu) returned NULL\n", size);
            check_ok = 0;
            break;
        }
        bench_tag_write(small[i], size);
        checksum += bench_tag_read(small[i], size);
    }
    for (int i = 0; i < AFTER_PAUSE_BLOCKS && small[i]; i++)
        free(small[i]);
    long rss_after_pause = bench_rss_kb();
    trace("after_pause");

    /* The survivors still hold what was written into them. */
    for (size_t j = 0; j < live; j++) {
        if (!bench_fill_ok(blocks[j], sizes[j], ids[j])) {
            fprintf(stderr, "rss: surviving block %u's contents changed\n", ids[j]);
            check_ok = 0;
        }
        free(blocks[j]);
    }
    trace("end");

    bench_unmap(blocks, max_blocks * sizeof *blocks);
    bench_unmap(sizes, max_blocks * sizeof *sizes);
    bench_unmap(ids, max_blocks * sizeof *ids);
    printf("RESULT bench=rss peak_requested_mib=%.1f rss_base_mib=%.2f rss_peak_mib=%.2f"
           " rss_after_free_mib=%.2f rss_after_pause_mib=%.2f live_mib=%.2f hwm_mib=%.2f"
           " blocks=%zu kept=%zu",
           (double)requested / 1048576.0, mib(rss_base), mib(rss_peak), mib(rss_after_free),
           mib(rss_after_pause), (double)live_bytes / 1048576.0, mib(bench_peak_rss_kb()), n,
           live);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
