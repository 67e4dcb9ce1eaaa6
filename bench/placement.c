/* placement: what allocating on a chosen node costs next to plain malloc, in
 * numamalloc (nm_malloc_onnode and heap allocation within 1.3x of malloc's
 * time for small sizes; nm_mallocx with a node or NM_ALIGN(64) within
 * 1.15x).
 *
 * Models code that places its small objects explicitly: a per-node buffer
 * pool, a heap bound to one node.  One thread makes malloc+free pairs of
 * 16 B - 1 KiB (every power-of-two band equally likely, as in alloc_pairs)
 * three ways, taking turns in rounds so that a burst of background load
 * hits them alike, each way serving exactly the same sizes:
 *   malloc   malloc + free
 *   onnode   nm_malloc_onnode(size, the thread's node) + free
 *   heap     nm_heap_malloc(a bind:<the thread's node> heap) + free
 *   xnode    nm_mallocx(size, NM_NODE(the thread's node)) + free
 *   xalign   nm_mallocx(size, NM_ALIGN(64)) + free
 * The nm_ functions are looked up with dlsym: the program runs under
 * numamalloc only (bench/run.sh runs this workload for numamalloc alone), and
 * says so and fails without it.
 *
 * pattern=pair   allocate, tag, check, free, one block at a time (the fast
 *                path with the block reused at once)
 * pattern=batch  a window of 256 blocks, then freed in shuffled order
 *
 * Before timing, each way allocates 4096 live blocks that must be non-NULL,
 * pairwise disjoint and writable end to end; every block's tags are checked
 * before it is freed.
 *
 * Usage:  placement pattern=pair|batch mode=tiny|quick|full
 * Prints: RESULT bench=placement ... malloc_ns=X onnode_ns=Y heap_ns=Z
 *         xnode_ns=.. xalign_ns=.. onnode_ratio=Y/X heap_ratio=Z/X
 *         xnode_ratio=.. xalign_ratio=.. ...   (ns per malloc+free pair) */
#include "bench.h"

#include "../include/numamalloc.h"

#define SIZE_MIN 16
#define SIZE_MAX_BYTES 1024
#define SIZE_TABLE 4096        /* sizes drawn, used in a cycle */
#define WINDOW 256             /* blocks alive at once in pattern=batch */
#define ROUND 4096             /* pairs per timed round of one way */
#define VERIFY_BLOCKS 4096

enum way { WAY_MALLOC, WAY_ONNODE, WAY_HEAP, WAY_XNODE, WAY_XALIGN, WAYS };
static const char *const way_names[WAYS] = { "malloc", "onnode", "heap", "xnode", "xalign" };

struct mode_params {
    double warm_s, run_s;
};

static const struct mode_params mode_table[] = {
    [MODE_TINY]  = { 0.005, 0.03 },
    [MODE_QUICK] = { 0.05, 0.3 },
    [MODE_FULL]  = { 0.2, 1.5 },
};

/* numamalloc's API, found at run time. */
static void *(*onnode_malloc)(size_t, int);
static void *(*heap_malloc)(nm_heap_t *, size_t);
static void *(*mallocx)(size_t, int);
static int node, node_flags;
static nm_heap_t *heap;
static int check_ok = 1;

static void fail(const char *what)
{
    if (check_ok)
        fprintf(stderr, "placement: %s\n", what);
    check_ok = 0;
}

static void *allocate(enum way way, size_t size)
{
    switch (way) {
    case WAY_ONNODE: return onnode_malloc(size, node);
    case WAY_HEAP: return heap_malloc(heap, size);
    case WAY_XNODE: return mallocx(size, node_flags);
    case WAY_XALIGN: return mallocx(size, NM_ALIGN(64));
    default: return malloc(size);
    }
}

/* Live blocks of each way: non-NULL, disjoint, writable end to end. */
static void verify_blocks(enum way way, const uint16_t *sizes)
{
    void **blocks = bench_map(VERIFY_BLOCKS * sizeof *blocks);
    struct bench_range *ranges = bench_map(VERIFY_BLOCKS * sizeof *ranges);
    int n = VERIFY_BLOCKS;
    for (int i = 0; i < n; i++) {
        size_t size = sizes[i % SIZE_TABLE];
        blocks[i] = allocate(way, size);
        if (!blocks[i]) {
            fail("an allocation returned NULL");
            n = i;
            break;
        }
        bench_fill(blocks[i], size, (uint64_t)i);
        ranges[i] = (struct bench_range){ (uintptr_t)blocks[i], size };
    }
    for (int i = 0; i < n; i++)
        if (!bench_fill_ok(blocks[i], sizes[i % SIZE_TABLE], (uint64_t)i))
            fail("a block's contents changed while it was live");
    if (!bench_ranges_disjoint(ranges, (size_t)n))
        fail("two live blocks overlap");
    for (int i = 0; i < n; i++)
        free(blocks[i]);
    bench_unmap(blocks, VERIFY_BLOCKS * sizeof *blocks);
    bench_unmap(ranges, VERIFY_BLOCKS * sizeof *ranges);
}

/* One round of ROUND pairs; returns the tags' sum. */
static uint64_t round_pair(enum way way, const uint16_t *sizes)
{
    uint64_t sum = 0;
    for (int i = 0; i < ROUND; i++) {
        size_t size = sizes[i % SIZE_TABLE];
        void *p = allocate(way, size);
        if (!p) {
            fail("an allocation returned NULL");
            return sum;
        }
        bench_tag_write(p, size);
        uint64_t tag = bench_tag_read(p, size);
        if (!tag)
            fail("a block's tag was overwritten while it was live");
        sum += tag;
        free(p);
    }
    return sum;
}

static uint64_t round_batch(enum way way, const uint16_t *sizes, const uint16_t *free_order)
{
    void *blocks[WINDOW];
    uint64_t sum = 0;
    for (int done = 0; done < ROUND; done += WINDOW) {
        for (int i = 0; i < WINDOW; i++) {
            size_t size = sizes[(done + i) % SIZE_TABLE];
            blocks[i] = allocate(way, size);
            if (!blocks[i]) {
                fail("an allocation returned NULL");
                for (int k = 0; k < i; k++)
                    free(blocks[k]);
                return sum;
            }
            bench_tag_write(blocks[i], size);
        }
        for (int i = 0; i < WINDOW; i++) {
            int j = free_order[i];
            uint64_t tag = bench_tag_read(blocks[j], sizes[(done + j) % SIZE_TABLE]);
            if (!tag)
                fail("a block's tag was overwritten while it was live");
            sum += tag;
            free(blocks[j]);
        }
    }
    return sum;
}

int main(int argc, char **argv)
{
    struct bench_args args;
    bench_args_parse(&args, argc, argv);
    const char *pattern = bench_arg_str(&args, "pattern", "pair");
    struct mode_params params = mode_table[bench_arg_mode(&args)];
    bench_args_done(&args, argv[0]);
    int batch = strcmp(pattern, "batch") == 0;
    if (!batch && strcmp(pattern, "pair") != 0)
        bench_usage_exit(argv[0], "pattern must be pair or batch, not", pattern);

    int (*current_node)(void) = (int (*)(void))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_current_node");
    int (*policy_parse)(const char *, nm_policy *, char *, size_t) =
        (int (*)(const char *, nm_policy *, char *, size_t))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_policy_parse");
    nm_heap_t *(*heap_new)(const nm_policy *) =
        (nm_heap_t * (*)(const nm_policy *))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_heap_new");
    onnode_malloc = (void *(*)(size_t, int))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_malloc_onnode");
    heap_malloc = (void *(*)(nm_heap_t *, size_t))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_heap_malloc");
    mallocx = (void *(*)(size_t, int))(uintptr_t)dlsym(RTLD_DEFAULT, "nm_mallocx");
    if (!current_node || !policy_parse || !heap_new || !onnode_malloc || !heap_malloc || !mallocx) {
        fprintf(stderr, "placement: numamalloc's nm_ functions are not loaded (run with "
                        "LD_PRELOAD=libnumamalloc.so); malloc comes from %s\n", bench_malloc_from());
        return 1;
    }
    node = current_node();
    node_flags = NM_NODE(node);
    char text[32], err[200] = "";
    nm_policy bind;
    snprintf(text, sizeof text, "bind:%d", node);
    if (policy_parse(text, &bind, err, sizeof err) != 0 || !(heap = heap_new(&bind))) {
        fprintf(stderr, "placement: cannot make a %s heap: %s\n", text, err[0] ? err : strerror(errno));
        return 1;
    }

    uint16_t sizes[SIZE_TABLE], free_order[WINDOW];
    uint64_t seed = 1;
    for (int i = 0; i < SIZE_TABLE; i++)
        sizes[i] = (uint16_t)bench_size_log_uniform(&seed, SIZE_MIN, SIZE_MAX_BYTES);
    for (int i = 0; i < WINDOW; i++)
        free_order[i] = (uint16_t)i;
    for (int i = WINDOW - 1; i > 0; i--) {
        int j = (int)(bench_rand(&seed) % (uint64_t)(i + 1));
        uint16_t t = free_order[i];
        free_order[i] = free_order[j];
        free_order[j] = t;
    }
    for (int w = 0; w < WAYS; w++)
        verify_blocks((enum way)w, sizes);

    /* Rounds take turns; only those after the warm-up are counted, and the
     * run goes on until every way has a counted round. */
    double seconds[WAYS] = { 0 }, start = bench_now();
    uint64_t pairs[WAYS] = { 0 }, checksum = 0;
    for (int r = 0; check_ok; r++) {
        enum way way = (enum way)(r % WAYS);
        double t0 = bench_now();
        checksum += batch ? round_batch(way, sizes, free_order) : round_pair(way, sizes);
        double t1 = bench_now();
        if (t0 - start >= params.warm_s) {
            seconds[way] += t1 - t0;
            pairs[way] += ROUND;
        }
        if (way == WAYS - 1 && t1 - start >= params.warm_s + params.run_s && pairs[WAY_MALLOC])
            break;
    }
    double ns[WAYS];
    for (int w = 0; w < WAYS; w++)
        ns[w] = pairs[w] ? seconds[w] * 1e9 / (double)pairs[w] : 0;
    printf("RESULT bench=placement pattern=%s node=%d", pattern, node);
    for (int w = 0; w < WAYS; w++)
        printf(" %s_ns=%.3f", way_names[w], ns[w]);
    printf(" onnode_ratio=%.3f heap_ratio=%.3f xnode_ratio=%.3f xalign_ratio=%.3f pairs=%llu",
           ns[WAY_ONNODE] / ns[WAY_MALLOC], ns[WAY_HEAP] / ns[WAY_MALLOC],
           ns[WAY_XNODE] / ns[WAY_MALLOC], ns[WAY_XALIGN] / ns[WAY_MALLOC],
           (unsigned long long)pairs[WAY_MALLOC]);
    bench_result_end(check_ok, checksum);
    return check_ok ? 0 : 1;
}
