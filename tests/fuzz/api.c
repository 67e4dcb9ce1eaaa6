/* api.c — fuzz target driving the allocation API with a shadow map.
 *
 * The input bytes are decoded into a sequence of operations: the paths
 * malloc, calloc, free, realloc, aligned_alloc and posix_memalign take
 * (alloc.h's inline functions, which override.c's symbols are: ASan owns
 * the libc names in this process), the nm_ functions (nm_malloc, nm_calloc,
 * nm_realloc, nm_aligned_alloc, nm_free, on-node blocks, heaps with
 * policies, regions, nm_where, nm_usable_size, nm_trim, nm_reserve,
 * nm_thread_rebind, statistics), frees from another thread, blocks of a
 * thread that exits, and calls that must fail.  A shadow table keeps every
 * live block with its requested size, its usable size and the seed of
 * the pattern it was filled with (all of its usable bytes).  Checked:
 *   - after every operation, the first and last bytes of every live block
 *     and the whole of the blocks it made or changed (all of them every
 *     64 operations, before each free, and at the end);
 *   - a new block overlaps no live block or region, is aligned (16, the
 *     largest power of two dividing its usable size up to 4096, or the
 *     alignment asked), and its usable size is at least the request;
 *   - realloc keeps the prefix; calloc's block reads as zero; a failed
 *     call returns NULL with the documented errno and leaves the old block;
 *     successful calls and frees keep errno;
 *   - nm_where counts every page of a filled block, regions keep their
 *     policy's promises (size, alignment, pages resident after prefault).
 * Everything is freed at the end of the input. */
#define _GNU_SOURCE
#include "alloc.h"
#include "numamalloc.h"

#include "fuzz.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#define MAX_BLOCKS 64
#define MAX_HEAPS 4
#define MAX_REGIONS 3
#define MAX_LIVE (16u << 20)       /* bytes in live blocks and regions */
#define MAX_OPS 400

enum kind { KIND_PLAIN, KIND_ONNODE, KIND_HEAP };

struct block {
    char *p;                 /* NULL: slot free */
    size_t size, usable;
    uint64_t seed;
    enum kind kind;
    int heap;                /* KIND_HEAP: the heap slot */
    bool dirty;              /* made or changed by this operation: check whole */
};

static struct block blocks[MAX_BLOCKS];
static nm_heap_t *heaps[MAX_HEAPS];
static struct { nm_region *r; size_t size; uint64_t seed; } regions[MAX_REGIONS];
static size_t live_bytes;
static int node_ids[64], node_count;

/* ---- the fill pattern ---------------------------------------------------------- */

#define PATTERN 65536
static uint8_t pattern[2 * PATTERN];

static void fill(char *p, size_t n, uint64_t seed)
{
    size_t off = seed % PATTERN;
    for (size_t done = 0; done < n;) {
        size_t step = n - done < PATTERN ? n - done : PATTERN;
        memcpy(p + done, pattern + off, step);
        done += step;
    }
}

/* The first byte of [p, p + n) that is not the pattern, or n. */
static size_t first_bad(const char *p, size_t n, uint64_t seed)
{
    size_t off = seed % PATTERN;
    for (size_t done = 0; done < n;) {
        size_t step = n - done < PATTERN ? n - done : PATTERN;
        if (memcmp(p + done, pattern + off, step) != 0) {
            for (size_t i = 0; i < step; i++)
                if ((uint8_t)p[done + i] != pattern[off + i]) return done + i;
        }
        done += step;
    }
    return n;
}

static void check_range(const char *what, int slot, const char *p, size_t from, size_t to, uint64_t seed)
{
    if (from >= to) return;
    /* first_bad compares from the pattern's start: shift the seed */
    size_t bad = first_bad(p + from, to - from, seed + from);
    FUZZ_CHECK(bad == to - from, "%s %d at %p: byte %zu of %zu changed", what, slot, (void *)p,
               from + bad, to);
}

static void check_block(int i, bool whole)
{
    struct block *b = &blocks[i];
    if (whole || b->usable <= 128) {
        check_range("block", i, b->p, 0, b->usable, b->seed);
    } else {
        check_range("block", i, b->p, 0, 64, b->seed);
        check_range("block", i, b->p, b->usable - 64, b->usable, b->seed);
    }
}

static void check_all(bool whole)
{
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p) check_block(i, whole || blocks[i].dirty);
    for (int i = 0; i < MAX_REGIONS; i++)
        if (regions[i].r && whole)
            check_range("region", i, nm_region_addr(regions[i].r), 0, regions[i].size, regions[i].seed);
}

/* ---- placing a new block in the shadow ---------------------------------------------- */

static bool overlaps(const char *a, size_t an, const char *b, size_t bn)
{
    return a < b + bn && b < a + an;
}

static void check_no_overlap(const char *p, size_t n, int self)
{
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (i != self && blocks[i].p)
            FUZZ_CHECK(!overlaps(p, n, blocks[i].p, blocks[i].usable), "[%p, +%zu) overlaps block %d [%p, +%zu)",
                       (void *)p, n, i, (void *)blocks[i].p, blocks[i].usable);
    for (int i = 0; i < MAX_REGIONS; i++)
        if (regions[i].r)
            FUZZ_CHECK(!overlaps(p, n, nm_region_addr(regions[i].r), regions[i].size), "[%p, +%zu) overlaps region %d",
                       (void *)p, n, i);
}

static uint64_t next_seed;

/* A block just returned for `size` bytes with `align` (0: natural).
 * Checks it and records it in slot i, filled. */
/* NUMAMALLOC_SECURE=1 (tests/fuzz/corpus.sh runs the corpus both ways). */
static bool secure_mode;

static void record(int i, void *p, size_t size, size_t align, enum kind kind, int heap)
{
    struct block *b = &blocks[i];
    size_t usable = nm_usable_size(p);
    FUZZ_CHECK(usable >= size, "usable %zu < %zu", usable, size);
    FUZZ_CHECK((uintptr_t)p % 16 == 0, "%p not 16-aligned", p);
    if (align) {
        FUZZ_CHECK((uintptr_t)p % align == 0, "%p not aligned to %zu", p, align);
    } else if (!secure_mode) {   /* secure mode: 16 bytes only (and usable = size) */
        size_t natural = usable & -usable;
        if (natural > 4096) natural = 4096;
        FUZZ_CHECK((uintptr_t)p % natural == 0, "%p (usable %zu) not aligned to %zu", p, usable, natural);
    }
    check_no_overlap(p, usable, i);
    b->p = p;
    b->size = size;
    b->usable = usable;
    b->seed = next_seed++ * 7919;
    b->kind = kind;
    b->heap = heap;
    b->dirty = true;
    live_bytes += usable;
    fill(p, usable, b->seed);
}

static void forget(int i)
{
    live_bytes -= blocks[i].usable;
    blocks[i].p = NULL;
}

/* ---- decoding --------------------------------------------------------------------------- */

static size_t decode_size(struct fuzz_input *in)
{
    uint8_t c = fuzz_u8(in);
    uint32_t v = fuzz_u16(in);
    switch (c >> 6) {
    case 0: return v % 257;
    case 1: return v % (8 * 1024 + 1);
    case 2: return 8 * 1024 + (v * 5) % (264 * 1024);     /* across the 256 KiB line */
    default: return 256 * 1024 + (size_t)v * 40;          /* large, up to 2.75 MiB */
    }
}

static size_t decode_align(struct fuzz_input *in)
{
    return (size_t)1 << (fuzz_u8(in) % 22);   /* 1 .. 2 MiB */
}

static int decode_node(struct fuzz_input *in)
{
    return node_ids[fuzz_u8(in) % node_count];
}

static nm_policy decode_policy(struct fuzz_input *in)
{
    nm_nodeset all = nm_nodeset_all(), one;
    nm_nodeset_clear(&one);
    nm_nodeset_add(&one, decode_node(in));
    switch (fuzz_u8(in) % 6) {
    case 0: return nm_policy_local();
    case 1: return nm_policy_bind(&one);
    case 2: return nm_policy_preferred(decode_node(in));
    case 3: return nm_policy_interleave(&all);
    case 4: return nm_policy_preferred_many(&all);
    default: return nm_policy_weighted_interleave(&all);
    }
}

static int free_slot(struct fuzz_input *in)
{
    int start = fuzz_u8(in) % MAX_BLOCKS;
    for (int k = 0; k < MAX_BLOCKS; k++)
        if (!blocks[(start + k) % MAX_BLOCKS].p) return (start + k) % MAX_BLOCKS;
    return -1;
}

static int live_slot(struct fuzz_input *in)
{
    int start = fuzz_u8(in) % MAX_BLOCKS;
    for (int k = 0; k < MAX_BLOCKS; k++)
        if (blocks[(start + k) % MAX_BLOCKS].p) return (start + k) % MAX_BLOCKS;
    return -1;
}

/* ---- threads ------------------------------------------------------------------------------- */

struct thread_job {
    void *p;
    size_t size;
};

static void *free_job(void *arg)
{
    nm_free(((struct thread_job *)arg)->p);
    return NULL;
}

static void *alloc_job(void *arg)
{
    struct thread_job *job = arg;
    job->p = nm_malloc(job->size);
    return NULL;
}

static void run_thread(void *(*fn)(void *), struct thread_job *job)
{
    pthread_t t;
    FUZZ_CHECK(pthread_create(&t, NULL, fn, job) == 0);
    FUZZ_CHECK(pthread_join(t, NULL) == 0);
}

/* ---- operations ---------------------------------------------------------------------------- */

#define ERRNO_MARK 4242

/* A call that allocated (or not): NULL is allowed only as `allowed_errno`. */
#define EXPECT_BLOCK(p, what)                                                                  \
    do {                                                                                       \
        FUZZ_CHECK((p) != NULL, "%s failed: errno %d", what, errno);                           \
        FUZZ_CHECK(errno == ERRNO_MARK, "%s changed errno to %d", what, errno);                \
    } while (0)

static void op_alloc(struct fuzz_input *in, int which)
{
    int i = free_slot(in);
    size_t size = decode_size(in);
    if (i < 0 || live_bytes + size > MAX_LIVE) return;
    errno = ERRNO_MARK;
    void *p;
    size_t align = 0;
    bool zero = false;
    switch (which) {
    case 0: p = nm_alloc_inline(size); break;                          /* malloc */
    case 1: p = nm_malloc(size); break;
    case 2: {                                                           /* calloc, nm_calloc */
        size_t count = 1 + fuzz_u8(in) % 4;
        size /= count;
        p = fuzz_u8(in) & 1 ? nm_calloc_inline(count, size) : nm_calloc(count, size);
        size *= count;
        zero = true;
        break;
    }
    case 3: align = decode_align(in); p = nm_aligned_inline(align < 16 ? 16 : align, size); break;
    case 4: align = decode_align(in); p = nm_aligned_alloc(align, size); break;
    default: {                                                          /* posix_memalign's path */
        align = decode_align(in);
        if (align < sizeof(void *)) align = sizeof(void *);
        p = nm_aligned_inline(align, size);
        break;
    }
    }
    EXPECT_BLOCK(p, "allocation");
    if (zero) {
        size_t nonzero = 0;
        while (nonzero < size && ((char *)p)[nonzero] == 0) nonzero++;
        FUZZ_CHECK(nonzero == size, "calloc'd block of %zu: byte %zu not zero", size, nonzero);
    }
    record(i, p, size, align, KIND_PLAIN, -1);
}

static void op_onnode(struct fuzz_input *in)
{
    int i = free_slot(in);
    size_t size = decode_size(in);
    int node = decode_node(in);
    bool zero = fuzz_u8(in) & 1;
    if (i < 0 || live_bytes + size > MAX_LIVE) return;
    errno = ERRNO_MARK;
    void *p = zero ? nm_calloc_onnode(1, size, node) : nm_malloc_onnode(size, node);
    EXPECT_BLOCK(p, "nm_malloc_onnode");
    if (zero) for (size_t k = 0; k < size; k++) FUZZ_CHECK(((char *)p)[k] == 0);
    record(i, p, size, 0, KIND_ONNODE, -1);
}

static void op_free(struct fuzz_input *in, int which)
{
    int i = live_slot(in);
    if (i < 0) return;
    check_block(i, true);
    errno = ERRNO_MARK;
    if (which == 0) nm_free_inline(blocks[i].p);
    else if (which == 1) nm_free(blocks[i].p);
    else {
        struct thread_job job = { blocks[i].p, 0 };
        run_thread(free_job, &job);
    }
    FUZZ_CHECK(errno == ERRNO_MARK, "free changed errno to %d", errno);
    forget(i);
}

static void op_realloc(struct fuzz_input *in, int which)
{
    int i = live_slot(in);
    size_t size = decode_size(in);
    int h = fuzz_u8(in) % MAX_HEAPS;
    if (i < 0) return;
    struct block old = blocks[i];
    if (live_bytes + size > MAX_LIVE) return;
    check_block(i, true);
    if (which == 2 && !heaps[h]) return;
    errno = ERRNO_MARK;
    void *p = which == 0 ? nm_realloc_named(old.p, size, "realloc")
              : which == 1 ? nm_realloc(old.p, size) : nm_heap_realloc(heaps[h], old.p, size);
    if (size == 0) {   /* realloc(p, 0) frees p (nm_heap_realloc too: "as nm_realloc does") */
        FUZZ_CHECK(p == NULL, "realloc(p, 0) returned %p", p);
        forget(i);
        return;
    }
    EXPECT_BLOCK(p, "realloc");
    forget(i);
    size_t keep = old.size < size ? old.size : size;
    check_range("realloc'd block", i, p, 0, keep, old.seed);
    enum kind kind = which == 2 ? KIND_HEAP : old.kind;
    record(i, p, size, 0, kind, which == 2 ? h : old.heap);
    /* A block kept in its class may keep its natural alignment only up to
     * its old usable size: record() checked it. */
}

static void op_heap_new(struct fuzz_input *in)
{
    int h = fuzz_u8(in) % MAX_HEAPS;
    nm_policy policy = decode_policy(in);
    unsigned flags = fuzz_u8(in) & 1 ? NM_HEAP_STRICT : 0;
    if (heaps[h]) return;
    errno = 0;
    heaps[h] = nm_heap_new_flags(&policy, flags);
    FUZZ_CHECK(heaps[h] != NULL || errno == ENOSYS, "nm_heap_new: errno %d", errno);
    if (heaps[h]) {
        nm_policy back = nm_heap_policy(heaps[h]);
        FUZZ_CHECK(!memcmp(&back, &policy, sizeof policy), "nm_heap_policy is not the heap's policy");
    }
}

static void op_heap_alloc(struct fuzz_input *in)
{
    int i = free_slot(in);
    int h = fuzz_u8(in) % MAX_HEAPS;
    size_t size = decode_size(in);
    uint8_t how = fuzz_u8(in) % 3;
    size_t align = how == 2 ? decode_align(in) : 0;
    if (i < 0 || !heaps[h] || live_bytes + size > MAX_LIVE) return;
    errno = ERRNO_MARK;
    void *p = how == 0 ? nm_heap_malloc(heaps[h], size)
              : how == 1 ? nm_heap_calloc(heaps[h], 1, size) : nm_heap_aligned_alloc(heaps[h], align, size);
    EXPECT_BLOCK(p, "heap allocation");
    if (how == 1) for (size_t k = 0; k < size; k++) FUZZ_CHECK(((char *)p)[k] == 0);
    record(i, p, size, align, KIND_HEAP, h);
}

static void op_heap_destroy(struct fuzz_input *in)
{
    int h = fuzz_u8(in) % MAX_HEAPS;
    if (!heaps[h]) return;
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p && blocks[i].kind == KIND_HEAP && blocks[i].heap == h) forget(i);
    nm_heap_destroy(heaps[h]);
    heaps[h] = NULL;
    check_all(true);
}

static void op_region_map(struct fuzz_input *in)
{
    int i = fuzz_u8(in) % MAX_REGIONS;
    size_t size = 1 + (size_t)fuzz_u16(in) * 40;   /* up to 2.5 MiB */
    enum nm_prefault prefault = (enum nm_prefault)(fuzz_u8(in) % 3);
    static const unsigned flag_choices[] = { 0, NM_REGION_HUGEPAGES, NM_REGION_NOHUGEPAGES, NM_REGION_HUGETLB };
    unsigned flags = flag_choices[fuzz_u8(in) % 4];
    bool with_policy = fuzz_u8(in) & 1;
    nm_policy policy = decode_policy(in);
    if (regions[i].r || live_bytes + size + (2u << 20) > MAX_LIVE) return;
    errno = 0;
    nm_region *r = nm_region_map(size, with_policy ? &policy : NULL, prefault, flags);
    if (!r) {   /* an empty hugetlb pool, a mode the kernel lacks */
        FUZZ_CHECK((flags == NM_REGION_HUGETLB && errno == ENOMEM) || errno == ENOSYS,
                   "nm_region_map(%zu, prefault %d, flags %u): errno %d", size, prefault, flags, errno);
        return;
    }
    char *addr = nm_region_addr(r);
    size_t got = nm_region_size(r);
    size_t unit = flags == NM_REGION_HUGETLB ? (2u << 20) : 4096;
    FUZZ_CHECK(got >= size && got % unit == 0 && got - size < unit, "region of %zu for %zu", got, size);
    if (flags & (NM_REGION_HUGEPAGES | NM_REGION_HUGETLB)) FUZZ_CHECK((uintptr_t)addr % (2u << 20) == 0);
    else FUZZ_CHECK((uintptr_t)addr % 4096 == 0);
    check_no_overlap(addr, got, -1);
    if (prefault != NM_PREFAULT_NONE) {
        long resident = nm_where(addr, got, NULL, 0);
        FUZZ_CHECK(resident == (long)(got / 4096), "prefaulted region: %ld of %zu pages resident", resident, got / 4096);
    }
    regions[i].r = r;
    regions[i].size = got;
    regions[i].seed = next_seed++ * 7919;
    live_bytes += got;
    fill(addr, got, regions[i].seed);
}

static void op_region_other(struct fuzz_input *in)
{
    int i = fuzz_u8(in) % MAX_REGIONS;
    uint8_t what = fuzz_u8(in) % 3;
    nm_policy policy = decode_policy(in);
    nm_region *r = regions[i].r;
    if (!r) return;
    check_range("region", i, nm_region_addr(r), 0, regions[i].size, regions[i].seed);
    if (what == 0) {
        FUZZ_CHECK(nm_region_unmap(r) == 0);
        live_bytes -= regions[i].size;
        regions[i].r = NULL;
    } else if (what == 1) {
        errno = 0;
        int rc = nm_region_migrate(r, &policy);
        FUZZ_CHECK(rc == 0 || errno == EIO || errno == ENOSYS, "nm_region_migrate: errno %d", errno);
        check_range("migrated region", i, nm_region_addr(r), 0, regions[i].size, regions[i].seed);
    } else {
        struct nm_enforcement e;
        FUZZ_CHECK(nm_region_enforcement(r, &e) == 0);
        FUZZ_CHECK(e.pages == regions[i].size / 4096 && e.resident == e.pages && e.on_allowed <= e.resident,
                   "enforcement: %llu pages, %llu resident, %llu allowed", (unsigned long long)e.pages,
                   (unsigned long long)e.resident, (unsigned long long)e.on_allowed);
    }
}

static void op_where(struct fuzz_input *in)
{
    int i = live_slot(in);
    if (i < 0 || blocks[i].usable == 0) return;   /* secure mode: malloc(0) has none */
    static uint64_t counts[NM_NODE_ID_LIMIT];
    memset(counts, 0, sizeof counts);
    const char *p = blocks[i].p;
    size_t n = blocks[i].usable;
    long r = nm_where(p, n, counts, NM_NODE_ID_LIMIT);
    long pages = (long)(((uintptr_t)p + n - 1) / 4096 - (uintptr_t)p / 4096 + 1);
    FUZZ_CHECK(r == pages, "nm_where of a filled block of %zu at %p: %ld of %ld pages", n, (void *)p, r, pages);
    uint64_t sum = 0;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++) sum += counts[id];
    FUZZ_CHECK(sum == (uint64_t)r, "nm_where counted %llu pages by node, returned %ld", (unsigned long long)sum, r);
}

static void op_thread_alloc(struct fuzz_input *in)
{
    int i = free_slot(in);
    size_t size = decode_size(in);
    if (i < 0 || live_bytes + size > MAX_LIVE) return;
    struct thread_job job = { NULL, size };
    run_thread(alloc_job, &job);   /* the block outlives its thread */
    FUZZ_CHECK(job.p != NULL);
    record(i, job.p, size, 0, KIND_PLAIN, -1);
}

static int reserves;

static void op_misc(struct fuzz_input *in)
{
    switch (fuzz_u8(in) % 6) {
    case 0: nm_trim(); break;
    case 1: {
        int node = nm_thread_rebind();
        bool known = false;
        for (int k = 0; k < node_count; k++) known |= node == node_ids[k];
        FUZZ_CHECK(known, "nm_thread_rebind gave node %d", node);
        break;
    }
    case 2: {
        static struct nm_stats s;
        nm_stats_get(&s);
        FUZZ_CHECK(s.node_count >= 1 && s.node_count <= NM_STATS_MAX_NODES && s.class_count <= NM_STATS_MAX_CLASSES);
        break;
    }
    case 3:
        if (reserves++ < 1) FUZZ_CHECK(nm_reserve(decode_node(in), 1u << 20) == 0, "nm_reserve: errno %d", errno);
        break;
    case 4: {   /* usable sizes are stable */
        int i = live_slot(in);
        if (i >= 0) FUZZ_CHECK(nm_usable_size(blocks[i].p) == blocks[i].usable);
        FUZZ_CHECK(nm_usable_size(NULL) == 0);
        break;
    }
    default: check_all(true); break;
    }
}

/* Calls that must fail, and how. */
static void op_bad(struct fuzz_input *in)
{
    void *p;
    int h = fuzz_u8(in) % MAX_HEAPS;
    errno = 0;
    switch (fuzz_u8(in) % 9) {
    case 0: p = nm_malloc((size_t)PTRDIFF_MAX + 1 + fuzz_u8(in)); FUZZ_CHECK(!p && errno == ENOMEM); break;
    case 1: p = nm_calloc(SIZE_MAX / 2 + 1, 2 + fuzz_u8(in) % 8); FUZZ_CHECK(!p && errno == ENOMEM); break;
    case 2: p = nm_aligned_alloc(3 + 2 * (size_t)fuzz_u8(in), 16); FUZZ_CHECK(!p && errno == EINVAL); break;
    case 3: {
        static const int bad_nodes[] = { -1, NM_NODE_ID_LIMIT - 1, NM_NODE_ID_LIMIT, 1 << 20 };
        p = nm_malloc_onnode(16, bad_nodes[fuzz_u8(in) % 4]);
        FUZZ_CHECK(!p && errno == EINVAL, "onnode with a bad node: %p, errno %d", p, errno);
        break;
    }
    case 4: FUZZ_CHECK(!nm_region_map(0, NULL, NM_PREFAULT_NONE, 0) && errno == EINVAL); break;
    case 5:
        FUZZ_CHECK(!nm_region_map(4096, NULL, NM_PREFAULT_NONE, NM_REGION_HUGEPAGES | NM_REGION_NOHUGEPAGES) &&
                   errno == EINVAL);
        break;
    case 6: FUZZ_CHECK(!nm_heap_new_flags(NULL, 0x80) && errno == EINVAL); break;
    case 7: {   /* a failed realloc leaves the block as it was */
        int i = live_slot(in);
        if (i < 0) break;
        p = nm_realloc(blocks[i].p, (size_t)PTRDIFF_MAX + 1);
        FUZZ_CHECK(!p && errno == ENOMEM);
        check_block(i, true);
        break;
    }
    default:
        if (heaps[h]) {
            p = nm_heap_aligned_alloc(heaps[h], 24, 16);
            FUZZ_CHECK(!p && errno == EINVAL);
        }
        break;
    }
}

/* ---- the target -------------------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *secure = getenv("NUMAMALLOC_SECURE");
    secure_mode = secure && strcmp(secure, "1") == 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < PATTERN; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        pattern[i] = (uint8_t)(x >> 24);
    }
    memcpy(pattern + PATTERN, pattern, PATTERN);
    /* The nodes whose memory this process may use. */
    int ids[64];
    int n = nm_node_ids(ids, 64);
    for (int k = 0; k < n && k < 64; k++) {
        uint64_t total;
        void *probe = nm_malloc_onnode(16, ids[k]);
        if (probe && nm_node_memory(ids[k], &total, NULL) == 0) node_ids[node_count++] = ids[k];
        nm_free(probe);
    }
    FUZZ_CHECK(node_count > 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = { data, size, 0 };
    reserves = 0;
    for (int ops = 0; fuzz_more(&in) && ops < MAX_OPS; ops++) {
        uint8_t op = fuzz_u8(&in);
        switch (op % 20) {
        case 0: case 1: op_alloc(&in, 0); break;           /* malloc */
        case 2: op_alloc(&in, 1); break;                   /* nm_malloc */
        case 3: op_alloc(&in, 2); break;                   /* calloc, nm_calloc */
        case 4: op_alloc(&in, 3 + fuzz_u8(&in) % 3); break; /* aligned_alloc, nm_aligned_alloc, posix_memalign */
        case 5: op_onnode(&in); break;
        case 6: case 7: op_free(&in, 0); break;            /* free */
        case 8: op_free(&in, 1); break;                    /* nm_free */
        case 9: op_free(&in, 2); break;                    /* from another thread */
        case 10: op_realloc(&in, 0); break;                /* realloc */
        case 11: op_realloc(&in, 1 + fuzz_u8(&in) % 2); break; /* nm_realloc, nm_heap_realloc */
        case 12: op_heap_new(&in); break;
        case 13: op_heap_alloc(&in); break;
        case 14: op_heap_destroy(&in); break;
        case 15: op_region_map(&in); break;
        case 16: op_region_other(&in); break;
        case 17: op_where(&in); break;
        case 18: op_thread_alloc(&in); break;
        default: if (op & 0x80) op_bad(&in); else op_misc(&in); break;
        }
        check_all(ops % 64 == 63);
        for (int i = 0; i < MAX_BLOCKS; i++) blocks[i].dirty = false;
    }
    check_all(true);
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].p) {
            nm_free(blocks[i].p);
            forget(i);
        }
    for (int h = 0; h < MAX_HEAPS; h++)
        if (heaps[h]) {
            nm_heap_destroy(heaps[h]);
            heaps[h] = NULL;
        }
    for (int i = 0; i < MAX_REGIONS; i++)
        if (regions[i].r) {
            FUZZ_CHECK(nm_region_unmap(regions[i].r) == 0);
            live_bytes -= regions[i].size;
            regions[i].r = NULL;
        }
    FUZZ_CHECK(live_bytes == 0);
    if (reserves) nm_trim();
    return 0;
}
