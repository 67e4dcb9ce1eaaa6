/*
 * api_place.c — runs inside the multi-node guests (tests/vm/api.sh), linked
 * with build/libnumamalloc.a (so plain malloc is numamalloc too), and proves
 * the explicit placement API page by page, with move_pages(2):
 *
 *   onnode       nm_malloc_onnode / nm_calloc_onnode(size, n), 16 B - 8 MiB,
 *                for every node n with memory (a memory-only node included),
 *                asked by a thread on another node: 100% of the pages on n
 *   heaps        the first small and medium blocks of new heaps cost no huge
 *                page; nm_heap_new(bind:n) and (preferred:n) for every node
 *                with memory: 100% on n; (interleave:all) and
 *                (interleave:0,2): interleaved over the set (below); a
 *                thread with a heap bound to another node set:
 *                nm_thread_rebind() answers the thread's node
 *   local        plain malloc and a local heap (nm_heap_new(NULL)), threads
 *                pinned one per node with CPUs: 100% on the thread's node, so
 *                a memory-only node is never used
 *   above        NUMAMALLOC_INTERLEAVE_ABOVE=1M: blocks of 1 MiB and more
 *                interleaved over the nodes with CPUs only; smaller ones local
 *   policy-*     NUMAMALLOC_POLICY=interleave:CPU-NODES, bind:N, preferred:N,
 *                bind:MEMORY-ONLY-NODE, threads on every node with CPUs
 *   numactl-*    under numactl --interleave=all and --membind=N: numamalloc
 *                binds nothing (each block's range keeps the default policy),
 *                so the process's policy places the pages; nm_malloc_onnode
 *                stays exact
 *   reserve      nm_reserve(n, 64 MiB) for every node with memory: numa_maps
 *                shows 64 MiB more on n and nothing more elsewhere; threads on
 *                n then allocate on n
 *   where        nm_where agrees with libnuma's numa_move_pages (dlopen'ed)
 *                and with /proc/self/numa_maps for onnode and heap blocks
 *   bad          unknown and offline nodes, empty node sets, bad policy text:
 *                NULL/-1 with EINVAL and the documented message, nothing
 *                mapped (/proc/self/maps keeps its line count)
 *   bad-env      NUMAMALLOC_POLICY naming a missing node: one line on stderr,
 *                local placement kept
 *   mallocx      nm_mallocx(size, NM_NODE(n) [| NM_ALIGN(4096) | NM_ZERO]) and
 *                nm_rallocx of a plain block to NM_NODE(n), 16 B - 8 MiB, for
 *                every node n with memory, from a thread on another node:
 *                100% on n, aligned, zeroed, contents kept; nm_rallocx
 *                without a node keeps n; NM_NODE(n) | NM_STRICT blocks are
 *                resident on n before they are written, and one larger than
 *                the node fails with ENOMEM
 *   strict       nm_heap_new_flags(bind:n, NM_HEAP_STRICT) on the smallest
 *                node: a block larger than the node fails with ENOMEM up
 *                front, nothing mapped, no OOM kill; blocks that fit are
 *                resident on n before they are written
 *
 * "Interleaved over a set" is judged as the kernel interleaves: by address,
 * one unit (a 4 KiB page; a 2 MiB huge page for blocks of 2 MiB and more)
 * per node in turn.  So every run of consecutive pages puts on each node of
 * the set its even share of the run, give or take less than one unit; over
 * R runs a node's pages are within R units of an even share of the total,
 * and no page is off the set.  Blocks above 256 KiB are judged one by one.
 *
 *   api_place [--numactl PATH] [CHECK...]     every check (or those named),
 *                                             each in a fresh process
 * Exit 0 = every check passed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>

#include "guest.h"
#include "numamalloc.h"

#define MPOL_DEFAULT_MODE 0
#define MPOL_F_ADDR_FLAG (1 << 1)

static int failures;
static char self_path[4096];

/* ---------------------------------------------------------------- the shape's nodes */

struct nodes { int n; int id[MAX_NODE]; };

static struct nodes cpu_set_nodes, mem_set_nodes;   /* nodes with CPUs, nodes with memory */
static int memory_only = -1;     /* the first node with memory and no CPUs, or -1 */
static int missing_node;         /* the lowest id above every online node */

static void load_nodes(void)
{
    load_topology();
    cpu_set_nodes.n = cpu_node_count;
    memcpy(cpu_set_nodes.id, cpu_nodes, sizeof cpu_nodes);
    mem_set_nodes.n = mem_node_count;
    memcpy(mem_set_nodes.id, mem_nodes, sizeof mem_nodes);
    for (int i = 0; i < mem_node_count && memory_only < 0; i++)
        if (CPU_COUNT(&node_cpus[mem_nodes[i]]) == 0) memory_only = mem_nodes[i];
    for (int n = 0; n < MAX_NODE; n++)
        if (node_online[n]) missing_node = n + 1;
}

/* The targets of the checks, the same in parent and child. */
static int bind_target(void) { return cpu_nodes[cpu_node_count > 2 ? 2 : 1]; }
static int preferred_target(void) { return cpu_nodes[cpu_node_count - 1]; }
static int membind_target(void) { return cpu_nodes[1]; }

/* Every other node with CPUs (0,2 of 0-3); both when there are only two. */
static struct nodes subset_nodes(void)
{
    struct nodes s = {0};
    for (int i = 0; i < cpu_node_count; i += cpu_node_count > 2 ? 2 : 1) s.id[s.n++] = cpu_nodes[i];
    return s;
}

/* A thread on another node with CPUs than `node` (the first such node after it). */
static int other_cpu_node(int node)
{
    for (int i = 0; i < cpu_node_count; i++)
        if (cpu_nodes[i] > node) return cpu_nodes[i];
    return cpu_nodes[0] != node ? cpu_nodes[0] : cpu_nodes[1];
}

static const char *list_text(const struct nodes *s, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < s->n; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? "," : "", s->id[i]);
    return buf;
}

static nm_policy interleave_over(const struct nodes *s)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    for (int i = 0; i < s->n; i++) nm_nodeset_add(&set, s->id[i]);
    return nm_policy_interleave(&set);
}

static struct nodes one_node(int node)
{
    struct nodes s = {.n = 1, .id = {node}};
    return s;
}

/* ---------------------------------------------------------------- judging */

/* What a list of blocks must show: all pages on one node, interleaved over a
 * set by the kernel's address rule (a VMA policy set by numamalloc), or
 * merely spread over a set (the process's policy interleaves by fault order,
 * which numamalloc does not control). */
enum want_kind { ON_NODE, INTERLEAVED, SPREAD };
struct want {
    enum want_kind kind;
    struct nodes set;        /* ON_NODE: one node */
};

static struct want want_on(int node) { return (struct want){ON_NODE, one_node(node)}; }
static struct want want_interleaved(struct nodes s) { return (struct want){INTERLEAVED, s}; }

static bool in_set(const struct nodes *s, int node)
{
    for (int i = 0; i < s->n; i++)
        if (s->id[i] == node) return true;
    return false;
}

static void where_text(const struct tally *t, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int n = 0; n < MAX_NODE && used < len - 24; n++)
        if (t->on[n]) used += (size_t)snprintf(buf + used, len - used, " n%d:%ld", n, t->on[n]);
    if (t->absent && used < len - 24) snprintf(buf + used, len - used, " absent:%ld", t->absent);
}

/* Whether a tally shows what `w` asks; `unit` is the interleave unit in
 * pages (1, or 512 for a huge block).  The verdict, for printing, in `why`. */
static bool verdict(const struct tally *t, const struct want *w, long unit, char *why, size_t len)
{
    long off_set = 0;
    for (int n = 0; n < MAX_NODE; n++)
        if (!in_set(&w->set, n)) off_set += t->on[n];
    if (t->pages == 0 || t->absent || off_set) {
        snprintf(why, len, "FAIL: %ld of %ld pages absent or off the set", t->absent + off_set, t->pages);
        return false;
    }
    if (w->kind == ON_NODE) {
        snprintf(why, len, "ok");
        return true;
    }
    double even = (double)t->pages / w->set.n, worst = 0;
    bool every = true;
    for (int i = 0; i < w->set.n; i++) {
        double d = (double)t->on[w->set.id[i]] - even;
        if (d < 0) d = -d;
        if (d > worst) worst = d;
        every &= t->on[w->set.id[i]] > 0;
    }
    if (w->kind == SPREAD) {
        snprintf(why, len, "%s: worst node %.1f pages off an even %.1f",
                 every ? "ok, every node used" : "FAIL: a node unused",
                 worst, even);
        return every;
    }
    double allowed = (double)(t->runs * unit);
    bool ok = worst < allowed;
    snprintf(why, len, "%s: worst node %.1f pages off an even %.1f, allowed < %.0f (%ld run%s x %ld)",
             ok ? "ok" : "FAIL",
             worst, even, allowed, t->runs, t->runs == 1 ? "" : "s", unit);
    return ok;
}

static bool judge_tally(const char *check, const char *what, const struct tally *t, const struct want *w, long unit)
{
    char where[512], why[160];
    bool ok = verdict(t, w, unit, why, sizeof why);
    where_text(t, where, sizeof where);
    printf("%-18s %-44s %6ld pages:%s [%s]\n", check, what, t->pages, where, why);
    if (!ok) failures++;
    return ok;
}

static bool judge(const char *check, const char *what, const struct blocks *bl, struct want w)
{
    struct tally t;
    tally_lists(bl, 1, &t);
    return judge_tally(check, what, &t, &w, 1);
}

/* Interleaved blocks above 256 KiB: each judged alone (one run each; unit
 * 2 MiB for huge blocks), printed only when it fails; then one line for the
 * list, which must use every node of the set. */
static void judge_each(const char *check, const char *what, const struct blocks *bl, struct want w)
{
    long bad = 0;
    for (long i = 0; i < bl->n; i++) {
        struct blocks one = {.b = &bl->b[i], .n = 1, .cap = 1};
        struct tally t;
        char why[160], label[96];
        tally_lists(&one, 1, &t);
        long unit = bl->b[i].size >= 2 * MiB ? HUGE_PAGES_PER_UNIT : 1;
        if (verdict(&t, &w, unit, why, sizeof why)) continue;
        snprintf(label, sizeof label, "%s: %zu B block", what, bl->b[i].size);
        judge_tally(check, label, &t, &w, unit);
        bad++;
    }
    /* Every node of the set must hold pages of the list when one block alone
     * spans as many units as the set has nodes. */
    bool must_cover = false;
    for (long i = 0; i < bl->n; i++) {
        long unit = bl->b[i].size >= 2 * MiB ? HUGE_PAGES_PER_UNIT : 1;
        must_cover |= pages_in(&bl->b[i]) / unit >= w.set.n;
    }
    struct tally all;
    char where[512], why[160] = "no block spans the whole set";
    tally_lists(bl, 1, &all);
    where_text(&all, where, sizeof where);
    struct want spread = {SPREAD, w.set};
    bool used = !must_cover || verdict(&all, &spread, 1, why, sizeof why);
    printf("%-18s %-44s %6ld pages:%s [%s: %ld of %ld blocks within one unit of even; %s]\n", check, what, all.pages,
           where, bad == 0 && used ? "ok" : "FAIL", bl->n - bad, bl->n, why);
    if (!used) failures++;
}

/* The kernel's policy for the page at `p` (MPOL_F_ADDR): its mode. */
static int range_policy(const void *p)
{
    int mode = -1;
    unsigned long mask[MAX_NODE / 64 + 16] = {0};
    REQUIRE(syscall(SYS_get_mempolicy, &mode, mask, (unsigned long)(sizeof mask * 8), p, MPOL_F_ADDR_FLAG) == 0,
            "get_mempolicy: %s", strerror(errno));
    return mode;
}

/* ---------------------------------------------------------------- allocating */

/* How a list is filled: plain malloc, nm_malloc_onnode, nm_calloc_onnode, a
 * heap, nm_mallocx(NM_NODE(node) | mallocx_flags), or a plain block moved
 * to the node by nm_rallocx(NM_NODE(node) | mallocx_flags). */
enum source { PLAIN, ONNODE, CALLOC_ONNODE, HEAP, MALLOCX, RALLOCX };
struct how {
    enum source source;
    int node;
    nm_heap_t *heap;
};
static int mallocx_flags;

static char *alloc_one(const struct how *h, size_t size)
{
    char *p = NULL;
    switch (h->source) {
    case PLAIN: p = malloc(size); break;
    case ONNODE: p = nm_malloc_onnode(size, h->node); break;
    case CALLOC_ONNODE: p = nm_calloc_onnode(1, size, h->node); break;
    case HEAP: p = nm_heap_malloc(h->heap, size); break;
    case MALLOCX: p = nm_mallocx(size, NM_NODE(h->node) | mallocx_flags); break;
    case RALLOCX: {
        char *q = malloc(size / 2 + 1);
        REQUIRE(q != NULL, "malloc(%zu)", size / 2 + 1);
        memset(q, 0x3c, size / 2 + 1);
        p = nm_rallocx(q, size, NM_NODE(h->node) | mallocx_flags);
        if (p) CHECK(p[0] == 0x3c && p[size / 2] == 0x3c, "nm_rallocx(%zu) lost the contents", size);
        break;
    }
    }
    REQUIRE(p != NULL, "allocating %zu bytes (source %d, node %d): %s", size, (int)h->source, h->node, strerror(errno));
    if (h->source == CALLOC_ONNODE || (h->source == MALLOCX && (mallocx_flags & NM_ZERO)))
        CHECK(p[0] == 0 && p[size / 2] == 0 && p[size - 1] == 0, "%s(%zu) not zeroed",
              h->source == MALLOCX ? "nm_mallocx" : "nm_calloc_onnode", size);
    if (h->source == MALLOCX || h->source == RALLOCX) {
        size_t align = (size_t)1 << (mallocx_flags & NM_ALIGN_LG_MASK);
        CHECK((uintptr_t)p % align == 0, "nm_%s(%zu, NM_ALIGN(%zu)) = %p", h->source == MALLOCX ? "mallocx" : "rallocx",
              size, align, (void *)p);
    }
    return p;
}

/* Allocate, write every byte (first touch) and remember `count` blocks. */
static void fill(struct blocks *bl, const struct how *h, size_t size, long count)
{
    for (long i = 0; i < count; i++) {
        char *p = alloc_one(h, size);
        memset(p, 0x5a, size);
        blocks_push(bl, (struct block){p, size});
    }
}

/* Blocks of random sizes in [min, max] until `bytes` are allocated. */
static void fill_random(struct blocks *bl, const struct how *h, size_t min, size_t max, size_t bytes, uint64_t seed)
{
    for (size_t total = 0; total < bytes;) {
        size_t size = guest_random_between(&seed, min, max);
        fill(bl, h, size, 1);
        total += size;
    }
}

/* The sizes of the onnode and heap checks, 16 B to 8 MiB; blocks of each so
 * that small ones fill more than one allocator page. */
static const size_t fixed_sizes[] = {16, 48, 200, 1000, 4000, 12 * KiB, 48 * KiB, 200 * KiB,
                                     300 * KiB, 1 * MiB, 3 * MiB, 8 * MiB};
#define NFIXED (int)(sizeof fixed_sizes / sizeof fixed_sizes[0])
#define SMALL_MAX (256 * KiB)     /* blocks above this are "large" spans */

static long count_for(size_t size, size_t budget)
{
    long n = (long)(budget / size) + 1;
    return n < 2 ? 2 : n;
}

/* Every fixed size, `budget` bytes' worth each (at least two blocks), small
 * ones into `small`, large ones into `large`. */
static void fill_fixed(struct blocks *small, struct blocks *large, const struct how *h, size_t budget)
{
    for (int i = 0; i < NFIXED; i++) {
        struct how one = *h;
        if (h->source == ONNODE && i % 2) one.source = CALLOC_ONNODE;   /* both functions */
        fill(fixed_sizes[i] <= SMALL_MAX ? small : large, &one, fixed_sizes[i], count_for(fixed_sizes[i], budget));
    }
}

static long fixed_capacity(size_t budget)
{
    long n = 0;
    for (int i = 0; i < NFIXED; i++) n += count_for(fixed_sizes[i], budget);
    return n;
}

/* Run fn(arg) on a thread pinned to `node`, and wait for it. */
struct pinned_call { int node; void (*fn)(void *); void *arg; };

static void *pinned_main(void *p)
{
    struct pinned_call *c = p;
    run_on_node(c->node);
    c->fn(c->arg);
    return NULL;
}

static void on_node(int node, void (*fn)(void *), void *arg)
{
    struct pinned_call c = {node, fn, arg};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, pinned_main, &c) == 0, "pthread_create");
    pthread_join(t, NULL);
}

/* ---------------------------------------------------------------- check onnode */

struct fixed_job { struct how how; struct blocks small, large; size_t budget; };

static void fixed_job_run(void *p)
{
    struct fixed_job *j = p;
    fill_fixed(&j->small, &j->large, &j->how, j->budget);
}

static void fixed_job_init(struct fixed_job *j, struct how how, size_t budget)
{
    memset(j, 0, sizeof *j);
    j->how = how;
    j->budget = budget;
    blocks_init(&j->small, fixed_capacity(budget));
    blocks_init(&j->large, fixed_capacity(budget));
}

static void fixed_job_release(struct fixed_job *j)
{
    free_all(&j->small);     /* freed by another thread than the one that allocated */
    free_all(&j->large);
    blocks_release(&j->small);
    blocks_release(&j->large);
}

static void check_onnode(void)
{
    for (int i = 0; i < mem_node_count; i++) {
        int node = mem_nodes[i], from = other_cpu_node(node);
        struct fixed_job j;
        fixed_job_init(&j, (struct how){ONNODE, node, NULL}, 64 * KiB);
        on_node(from, fixed_job_run, &j);
        char what[96];
        snprintf(what, sizeof what, "node %d%s, from node %d: 16 B-256 KiB", node,
                 node == memory_only ? " (memory only)" : "", from);
        judge("onnode", what, &j.small, want_on(node));
        snprintf(what, sizeof what, "node %d%s, from node %d: 300 KiB-8 MiB", node,
                 node == memory_only ? " (memory only)" : "", from);
        judge("onnode", what, &j.large, want_on(node));
        fixed_job_release(&j);
    }
}

/* ---------------------------------------------------------------- check mallocx */

static void resident_on(const void *p, size_t bytes, int node, long *on, long *total);

static void check_mallocx(void)
{
    static const struct { enum source source; int flags; const char *name; } ways[] = {
        {MALLOCX, 0, "nm_mallocx(NM_NODE)"},
        {MALLOCX, NM_ALIGN(4096) | NM_ZERO, "nm_mallocx(NM_NODE | NM_ALIGN(4096) | NM_ZERO)"},
        {RALLOCX, 0, "nm_rallocx(plain, NM_NODE)"},
        {RALLOCX, NM_ALIGN(4096), "nm_rallocx(plain, NM_NODE | NM_ALIGN(4096))"},
    };
    for (int i = 0; i < mem_node_count; i++) {
        int node = mem_nodes[i], from = other_cpu_node(node);
        for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
            struct fixed_job j;
            mallocx_flags = ways[w].flags;
            fixed_job_init(&j, (struct how){ways[w].source, node, NULL}, 32 * KiB);
            on_node(from, fixed_job_run, &j);
            char what[128];
            snprintf(what, sizeof what, "%s %d, from %d: 16 B-256 KiB", ways[w].name, node, from);
            judge("mallocx", what, &j.small, want_on(node));
            snprintf(what, sizeof what, "%s %d, from %d: 300 KiB-8 MiB", ways[w].name, node, from);
            judge("mallocx", what, &j.large, want_on(node));
            if (w == 0) {
                /* Grown without a node flag: they stay on the node. */
                struct blocks grown;
                blocks_init(&grown, j.small.n + j.large.n);
                struct blocks *lists[2] = {&j.small, &j.large};
                for (int l = 0; l < 2; l++) {
                    for (long k = 0; k < lists[l]->n; k++) {
                        struct block b = lists[l]->b[k];
                        char *q = nm_rallocx(b.p, b.size * 2, 0);
                        REQUIRE(q != NULL, "nm_rallocx(%zu)", b.size * 2);
                        CHECK(q[b.size - 1] == 0x5a, "nm_rallocx lost the contents");
                        memset(q, 0x5a, b.size * 2);
                        blocks_push(&grown, (struct block){q, b.size * 2});
                    }
                    lists[l]->n = 0;
                }
                snprintf(what, sizeof what, "nm_rallocx(x2, no node) of those on %d", node);
                judge("mallocx", what, &grown, want_on(node));
                free_all(&grown);
                blocks_release(&grown);
            }
            fixed_job_release(&j);
        }
        /* NM_STRICT: resident on the node before any write. */
        const size_t sizes[] = {1000, 100000, 3 * MiB};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            char *b = nm_mallocx(sizes[k], NM_NODE(node) | NM_STRICT | NM_ALIGN(4096));
            REQUIRE(b != NULL, "nm_mallocx(%zu, NM_NODE(%d) | NM_STRICT): %s", sizes[k], node, strerror(errno));
            long on, pages;
            resident_on(b, sizes[k], node, &on, &pages);
            bool good = on == pages && (uintptr_t)b % 4096 == 0;
            char what[128];
            snprintf(what, sizeof what, "nm_mallocx(%zu, NM_NODE(%d) | NM_STRICT) before any write", sizes[k], node);
            printf("%-18s %-60s %ld of %ld pages on %d [%s]\n", "mallocx", what, on, pages, node, good ? "ok" : "FAIL");
            if (!good) failures++;
            nm_free(b);
        }
        uint64_t total = 0;
        nm_node_memory(node, &total, NULL);
        errno = 0;
        void *p = nm_mallocx((size_t)total + 64 * MiB, NM_NODE(node) | NM_STRICT);
        int err = errno;
        bool ok = p == NULL && err == ENOMEM;
        char what[128];
        snprintf(what, sizeof what, "nm_mallocx(node %d's size + 64 MiB, NM_NODE | NM_STRICT)", node);
        printf("%-18s %-60s %s [%s]\n", "mallocx", what, p ? "succeeded" : strerror(err), ok ? "ok" : "FAIL");
        if (!ok) failures++;
        nm_free(p);
    }
}

/* ---------------------------------------------------------------- check heaps */

/* An interleaved heap: small and medium blocks judged together, larger ones
 * one by one. */
struct spread_job { struct how how; struct blocks small, medium, large; };

static void spread_job_run(void *p)
{
    struct spread_job *j = p;
    fill_random(&j->small, &j->how, 16, 1000, 1 * MiB, 11);
    fill_random(&j->medium, &j->how, 8 * KiB, 256 * KiB, 4 * MiB, 12);
    static const size_t large[] = {300 * KiB, 1 * MiB, 1536 * KiB, 2 * MiB, 3 * MiB, 8 * MiB, 32 * MiB};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) fill(&j->large, &j->how, large[i], 1);
}

static void heap_interleaved(const char *check, const struct nodes *set, const char *name)
{
    nm_policy p = interleave_over(set);
    nm_heap_t *heap = nm_heap_new(&p);
    REQUIRE(heap != NULL, "nm_heap_new(%s): %s", name, strerror(errno));
    struct spread_job j = {.how = {HEAP, -1, heap}};
    blocks_init(&j.small, 40000);
    blocks_init(&j.medium, 1000);
    blocks_init(&j.large, 16);
    on_node(cpu_nodes[1], spread_job_run, &j);
    char what[96];
    struct want w = want_interleaved(*set);
    snprintf(what, sizeof what, "%s heap: 16-1000 B", name);
    judge(check, what, &j.small, w);
    snprintf(what, sizeof what, "%s heap: 8-256 KiB", name);
    judge(check, what, &j.medium, w);
    snprintf(what, sizeof what, "%s heap: 300 KiB-32 MiB", name);
    judge_each(check, what, &j.large, w);
    nm_heap_destroy(heap);   /* releases every block at once */
    blocks_release(&j.small);
    blocks_release(&j.medium);
    blocks_release(&j.large);
}

/* Resident pages in the 4 MiB-aligned range holding `p` (its segment or
 * span), as move_pages sees them. */
static long range_resident(const void *p)
{
    enum { PAGES = 4 * MiB / OS_PAGE };
    static uintptr_t pages[PAGES];
    static int status[PAGES];
    uintptr_t base = (uintptr_t)p & ~(4 * MiB - 1);
    for (long i = 0; i < PAGES; i++) pages[i] = base + (uintptr_t)i * OS_PAGE;
    locate_pages(pages, PAGES, status);
    long resident = 0;
    for (long i = 0; i < PAGES; i++) resident += status[i] >= 0;
    return resident;
}

/* What the first blocks of a fresh heap cost.  Small segments and spans
 * below 2 MiB are NOHUGEPAGE and carved 4 KiB at a time (docs/design.md,
 * "Transparent huge pages"): a 64 B block costs its segment's header and a
 * page or two, a 300 KiB block its pages and a header page, as for plain
 * malloc; 16 pages (64 KiB) of slack, far below the 512 of a huge page
 * that a write before the madvise would fault in. */
static void heap_cost(const char *name, nm_heap_t *heap)
{
    const size_t sizes[] = {64, 300 * KiB};
    for (int i = 0; i < 2; i++) {
        char *p = heap ? nm_heap_malloc(heap, sizes[i]) : malloc(sizes[i]);
        REQUIRE(p != NULL, "%s: %zu B: %s", name, sizes[i], strerror(errno));
        memset(p, 1, sizes[i]);
        struct block b = {p, sizes[i]};
        long resident = range_resident(p), limit = pages_in(&b) + 16;
        bool ok = resident <= limit;
        char what[96];
        snprintf(what, sizeof what, "%s%s: first %zu B block", name, heap ? " heap" : "", sizes[i]);
        printf("%-18s %-44s %ld pages resident in its 4 MiB range, limit %ld [%s]\n", "heaps", what, resident, limit,
               ok ? "ok" : "FAIL: a huge page?");
        if (!ok) failures++;
        if (heap) nm_free(p);   /* plain malloc's stay: a new block must not reuse the range */
    }
}

/* A thread on node `node` sets a heap bound to another node: nm_thread_rebind
 * still answers with (and moves) the thread's own heap. */
struct rebind_job { int node; nm_heap_t *heap; int got, set_errno; };

static void rebind_job_run(void *p)
{
    struct rebind_job *j = p;
    free(malloc(64));   /* the thread's own heap, on its node */
    errno = 0;
    nm_heap_t *before = nm_thread_set_heap(j->heap);
    j->set_errno = before == NULL ? errno : -1;
    j->got = nm_thread_rebind();
    nm_thread_set_heap(NULL);
}

static void check_rebind_with_heap_set(void)
{
    for (int i = 0; i < cpu_node_count; i++) {
        int node = cpu_nodes[i], other = other_cpu_node(node);
        nm_nodeset one;
        nm_nodeset_clear(&one);
        nm_nodeset_add(&one, other);
        const nm_policy bind = nm_policy_bind(&one);
        nm_heap_t *heap = nm_heap_new(&bind);
        REQUIRE(heap != NULL, "nm_heap_new(bind:%d): %s", other, strerror(errno));
        struct rebind_job j = {node, heap, -2, 0};
        on_node(node, rebind_job_run, &j);
        CHECK(j.set_errno == 0, "nm_thread_set_heap: %s", strerror(j.set_errno));
        CHECK(j.got == node, "thread on node %d with a bind:%d heap set: nm_thread_rebind() = %d",
              node, other, j.got);
        nm_heap_destroy(heap);
    }
}

static void check_heaps(void)
{
    heap_cost("plain malloc", NULL);
    nm_nodeset one;
    nm_nodeset_clear(&one);
    nm_nodeset_add(&one, cpu_nodes[1]);
    const nm_policy cost_policies[] = {nm_policy_local(), nm_policy_bind(&one), interleave_over(&mem_set_nodes)};
    for (size_t i = 0; i < sizeof cost_policies / sizeof cost_policies[0]; i++) {
        char name[64];
        nm_policy_format(&cost_policies[i], name, sizeof name);
        nm_heap_t *heap = nm_heap_new(&cost_policies[i]);
        REQUIRE(heap != NULL, "nm_heap_new(%s): %s", name, strerror(errno));
        heap_cost(name, heap);
        nm_heap_destroy(heap);
    }
    for (int i = 0; i < mem_node_count; i++) {
        int node = mem_nodes[i], from = other_cpu_node(node);
        nm_nodeset one;
        nm_nodeset_clear(&one);
        nm_nodeset_add(&one, node);
        const nm_policy policies[] = {nm_policy_bind(&one), nm_policy_preferred(node)};
        for (int k = 0; k < 2; k++) {
            char name[64], what[128];
            nm_policy_format(&policies[k], name, sizeof name);
            nm_heap_t *heap = nm_heap_new(&policies[k]);
            REQUIRE(heap != NULL, "nm_heap_new(%s): %s", name, strerror(errno));
            struct fixed_job j;
            fixed_job_init(&j, (struct how){HEAP, node, heap}, 32 * KiB);
            on_node(from, fixed_job_run, &j);
            snprintf(what, sizeof what, "%s heap, from node %d: 16 B-256 KiB", name, from);
            judge("heaps", what, &j.small, want_on(node));
            snprintf(what, sizeof what, "%s heap, from node %d: 300 KiB-8 MiB", name, from);
            judge("heaps", what, &j.large, want_on(node));
            /* The bind heap's blocks are freed first; the preferred heap is
             * destroyed with every block live. */
            if (k == 0) {
                free_all(&j.small);
                free_all(&j.large);
            }
            nm_heap_destroy(heap);
            j.small.n = j.large.n = 0;
            fixed_job_release(&j);
        }
    }
    /* "all" is every node with memory, a memory-only node included (as in
     * numactl): the policy names it. */
    nm_policy all;
    char err[200], text[128];
    REQUIRE(nm_policy_parse("interleave:all", &all, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < mem_node_count; i++)
        CHECK(nm_nodeset_has(&all.nodes, mem_nodes[i]), "interleave:all lacks node %d", mem_nodes[i]);
    CHECK(nm_nodeset_count(&all.nodes) == mem_node_count, "interleave:all has %d nodes, %d have memory",
          nm_nodeset_count(&all.nodes), mem_node_count);
    heap_interleaved("heaps", &mem_set_nodes, "interleave:all");
    struct nodes sub = subset_nodes();
    snprintf(text, sizeof text, "interleave:");
    list_text(&sub, text + strlen(text), sizeof text - strlen(text));
    heap_interleaved("heaps", &sub, text);
    check_rebind_with_heap_set();
}

/* ---------------------------------------------------------------- threads per node */

/* One thread per node with CPUs, each allocating small, medium and large
 * blocks (and, for the local check, the same from a shared local heap). */
struct node_job {
    struct how how;
    uint64_t seed;
    struct blocks small, medium, large, below;   /* below: 300 KiB up to 1 MiB - 16 */
    bool with_below;
};

static void node_job_run(void *p)
{
    struct node_job *j = p;
    fill_random(&j->small, &j->how, 16, 1000, 512 * KiB, j->seed);
    fill_random(&j->medium, &j->how, 8 * KiB, 256 * KiB, 3 * MiB, j->seed + 1);
    if (j->with_below) {
        fill_random(&j->below, &j->how, 300 * KiB, MiB - 16, 3 * MiB, j->seed + 2);
        fill(&j->below, &j->how, MiB - 16, 1);
    }
    fill(&j->large, &j->how, 1 * MiB, 1);                       /* the threshold of check above */
    fill_random(&j->large, &j->how, 1 * MiB, 8 * MiB, 12 * MiB, j->seed + 3);
}

static void *node_job_thread(void *p)
{
    struct node_job *j = p;
    run_on_node(j->how.node);
    node_job_run(j);
    return NULL;
}

/* Start a job per node with CPUs, all at once, and wait for them. */
static struct node_job *node_jobs(struct how how, bool with_below)
{
    struct node_job *jobs = map_zeroed(sizeof *jobs * (size_t)cpu_node_count);
    pthread_t t[MAX_NODE];
    for (int i = 0; i < cpu_node_count; i++) {
        jobs[i].how = how;
        jobs[i].how.node = cpu_nodes[i];
        jobs[i].seed = 1000 + (uint64_t)i;
        jobs[i].with_below = with_below;
        blocks_init(&jobs[i].small, 20000);
        blocks_init(&jobs[i].medium, 1000);
        blocks_init(&jobs[i].large, 64);
        blocks_init(&jobs[i].below, 64);
        REQUIRE(pthread_create(&t[i], NULL, node_job_thread, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < cpu_node_count; i++) pthread_join(t[i], NULL);
    return jobs;
}

static void node_jobs_release(struct node_job *jobs, bool free_blocks)
{
    for (int i = 0; i < cpu_node_count; i++) {
        struct blocks *lists[] = {&jobs[i].small, &jobs[i].medium, &jobs[i].large, &jobs[i].below};
        for (int k = 0; k < 4; k++) {
            if (free_blocks) free_all(lists[k]);
            blocks_release(lists[k]);
        }
    }
    munmap(jobs, sizeof *jobs * (size_t)cpu_node_count);
}

/* Judge each thread's lists: all on `fixed` (or on the thread's node when
 * fixed < 0), or interleaved over `set` for the large ones when set != NULL. */
static void judge_jobs(const char *check, struct node_job *jobs, int fixed, const struct nodes *large_set)
{
    for (int i = 0; i < cpu_node_count; i++) {
        struct node_job *j = &jobs[i];
        int node = fixed >= 0 ? fixed : j->how.node;
        char what[96];
        snprintf(what, sizeof what, "thread on node %d: 16-1000 B", j->how.node);
        judge(check, what, &j->small, want_on(node));
        snprintf(what, sizeof what, "thread on node %d: 8-256 KiB", j->how.node);
        judge(check, what, &j->medium, want_on(node));
        if (j->with_below) {
            snprintf(what, sizeof what, "thread on node %d: 300 KiB-(1 MiB-16)", j->how.node);
            judge(check, what, &j->below, want_on(node));
        }
        snprintf(what, sizeof what, "thread on node %d: 1-8 MiB", j->how.node);
        if (large_set) judge_each(check, what, &j->large, want_interleaved(*large_set));
        else judge(check, what, &j->large, want_on(node));
    }
}

/* ---------------------------------------------------------------- local, above, policies */

static void check_local(void)
{
    struct node_job *jobs = node_jobs((struct how){PLAIN, -1, NULL}, false);
    judge_jobs("local malloc", jobs, -1, NULL);
    node_jobs_release(jobs, true);
    nm_heap_t *local = nm_heap_new(NULL);
    REQUIRE(local != NULL, "nm_heap_new(NULL): %s", strerror(errno));
    jobs = node_jobs((struct how){HEAP, -1, local}, false);
    judge_jobs("local heap", jobs, -1, NULL);
    node_jobs_release(jobs, true);
    nm_heap_destroy(local);
    if (memory_only >= 0)
        printf("%-18s memory-only node %d: no page of the lists above (all on their thread's node)\n", "local",
               memory_only);
}

/* NUMAMALLOC_INTERLEAVE_ABOVE=1M: 1 MiB and more interleaved over the nodes
 * with CPUs (a memory-only node is not named, so not used); less is local. */
static void check_above(void)
{
    struct node_job *jobs = node_jobs((struct how){PLAIN, -1, NULL}, true);
    judge_jobs("above", jobs, -1, &cpu_set_nodes);
    node_jobs_release(jobs, true);
}

static void check_policy_interleave(void)
{
    struct node_job *jobs = node_jobs((struct how){PLAIN, -1, NULL}, false);
    for (int i = 0; i < cpu_node_count; i++) {
        char what[96];
        struct want w = want_interleaved(cpu_set_nodes);
        snprintf(what, sizeof what, "thread on node %d: 16-1000 B", cpu_nodes[i]);
        judge("policy-interleave", what, &jobs[i].small, w);
        snprintf(what, sizeof what, "thread on node %d: 8-256 KiB", cpu_nodes[i]);
        judge("policy-interleave", what, &jobs[i].medium, w);
        snprintf(what, sizeof what, "thread on node %d: 1-8 MiB", cpu_nodes[i]);
        judge_each("policy-interleave", what, &jobs[i].large, w);
    }
    node_jobs_release(jobs, true);
}

static void policy_on(const char *check, int node)
{
    struct node_job *jobs = node_jobs((struct how){PLAIN, -1, NULL}, false);
    judge_jobs(check, jobs, node, NULL);
    node_jobs_release(jobs, true);
}

static void check_policy_bind(void) { policy_on("policy-bind", bind_target()); }
static void check_policy_preferred(void) { policy_on("policy-preferred", preferred_target()); }
static void check_policy_memonly(void) { policy_on("policy-memonly", memory_only); }

/* ---------------------------------------------------------------- numactl */

/* Under a process policy numamalloc binds nothing: every block's range has
 * the default policy, so the process's policy applies.  nm_malloc_onnode
 * still binds. */
static void unbound_and_onnode(const char *check, struct node_job *jobs)
{
    long blocks = 0, bound = 0;
    for (int i = 0; i < cpu_node_count; i++) {
        struct blocks *lists[] = {&jobs[i].small, &jobs[i].medium, &jobs[i].large};
        for (int k = 0; k < 3; k++)
            for (long b = 0; b < lists[k]->n; b++) {
                blocks++;
                bound += range_policy(lists[k]->b[b].p) != MPOL_DEFAULT_MODE;
            }
    }
    printf("%-18s %ld of %ld blocks in a range numamalloc gave a policy [%s]\n", check, bound, blocks,
           bound == 0 ? "ok" : "FAIL: need 0");
    if (bound) failures++;
    for (int i = 0; i < mem_node_count; i++) {
        struct blocks bl;
        blocks_init(&bl, 8);
        struct how h = {ONNODE, mem_nodes[i], NULL};
        fill(&bl, &h, 200, 1);
        fill(&bl, &h, 3 * MiB, 1);
        char what[96];
        snprintf(what, sizeof what, "nm_malloc_onnode(200 B, 3 MiB, node %d)", mem_nodes[i]);
        judge(check, what, &bl, want_on(mem_nodes[i]));
        free_all(&bl);
        blocks_release(&bl);
    }
}

static void check_numactl_interleave(void)
{
    struct node_job *jobs = node_jobs((struct how){PLAIN, -1, NULL}, false);
    struct want w = {SPREAD, mem_set_nodes};
    struct blocks lists[3 * MAX_NODE];
    int n = 0;
    for (int i = 0; i < cpu_node_count; i++) {
        lists[n++] = jobs[i].small;
        lists[n++] = jobs[i].medium;
        lists[n++] = jobs[i].large;
    }
    struct tally t;
    tally_lists(lists, n, &t);
    judge_tally("numactl-interleave", "all threads, 16 B-8 MiB", &t, &w, 1);
    unbound_and_onnode("numactl-interleave", jobs);
    node_jobs_release(jobs, true);
}

static void check_numactl_membind(void)
{
    struct node_job *jobs = node_jobs((struct how){PLAIN, -1, NULL}, false);
    judge_jobs("numactl-membind", jobs, membind_target(), NULL);
    unbound_and_onnode("numactl-membind", jobs);
    node_jobs_release(jobs, true);
}

/* ---------------------------------------------------------------- /proc, read without malloc */

static char proc_text[4 << 20];

static const char *read_proc(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0, "open %s: %s", path, strerror(errno));
    size_t len = 0;
    for (ssize_t n; len + 1 < sizeof proc_text && (n = read(fd, proc_text + len, sizeof proc_text - 1 - len)) > 0;)
        len += (size_t)n;
    close(fd);
    proc_text[len] = 0;
    return proc_text;
}

static int maps_lines(void)
{
    int lines = 0;
    for (const char *s = read_proc("/proc/self/maps"); *s; s++) lines += *s == '\n';
    return lines;
}

/* Add the "N<id>=<pages>" fields of one numa_maps line to counts (4 KiB
 * pages: numa_maps counts pages of kernelpagesize_kB). */
static void numa_maps_line(const char *line, const char *eol, uint64_t *counts)
{
    uint64_t page_kb = 4;
    const char *k = strstr(line, "kernelpagesize_kB=");
    if (k && k < eol) page_kb = strtoull(k + strlen("kernelpagesize_kB="), NULL, 10);
    for (const char *s = line; (s = strstr(s, " N")) != NULL && s < eol;) {
        char *end;
        long id = strtol(s + 2, &end, 10);
        s += 2;
        if (end == s || *end != '=' || id < 0 || id >= MAX_NODE) continue;
        counts[id] += strtoull(end + 1, NULL, 10) * page_kb / 4;
    }
}

/* Pages per node over every mapping of the process. */
static void numa_maps_totals(uint64_t *counts)
{
    memset(counts, 0, sizeof(uint64_t) * MAX_NODE);
    const char *s = read_proc("/proc/self/numa_maps");
    while (*s) {
        const char *eol = strchr(s, '\n');
        if (!eol) eol = s + strlen(s);
        numa_maps_line(s, eol, counts);
        s = *eol ? eol + 1 : eol;
    }
}

/* The mapping that holds `p`, from /proc/self/maps: [start, end). */
static bool mapping_of(const void *p, uintptr_t *start, uintptr_t *end)
{
    const char *s = read_proc("/proc/self/maps");
    while (*s) {
        char *dash, *space;
        uintptr_t a = strtoul(s, &dash, 16), b = strtoul(dash + 1, &space, 16);
        if (a <= (uintptr_t)p && (uintptr_t)p < b) {
            *start = a;
            *end = b;
            return true;
        }
        const char *eol = strchr(s, '\n');
        if (!eol) break;
        s = eol + 1;
    }
    return false;
}

/* Pages per node of the mapping starting at `start`, from numa_maps. */
static bool numa_maps_of(uintptr_t start, uint64_t *counts)
{
    memset(counts, 0, sizeof(uint64_t) * MAX_NODE);
    const char *s = read_proc("/proc/self/numa_maps");
    while (*s) {
        const char *eol = strchr(s, '\n');
        if (!eol) eol = s + strlen(s);
        if (strtoul(s, NULL, 16) == start) {
            numa_maps_line(s, eol, counts);
            return true;
        }
        s = *eol ? eol + 1 : eol;
    }
    return false;
}

/* ---------------------------------------------------------------- check reserve */

struct reserve_job { struct blocks bl; };

static void reserve_job_run(void *p)
{
    struct reserve_job *j = p;
    struct how h = {PLAIN, -1, NULL};
    fill(&j->bl, &h, 1000, 8192);   /* 8 MiB of 1000 B blocks */
}

static void check_reserve(void)
{
    const size_t bytes = 64 * MiB;
    const long want_pages = (long)(bytes / OS_PAGE);
    run_on_node(cpu_nodes[0]);      /* every reserve asked from node 0 */
    memset(proc_text, 0, sizeof proc_text);   /* resident now: reading numa_maps adds no page */
    for (int i = 0; i < mem_node_count; i++) {
        int node = mem_nodes[i];
        uint64_t before[MAX_NODE], after[MAX_NODE];
        numa_maps_totals(before);
        int r = nm_reserve(node, bytes);
        int err = errno;
        numa_maps_totals(after);
        long gained = (long)after[node] - (long)before[node], elsewhere = 0;
        for (int n = 0; n < MAX_NODE; n++)
            if (n != node && after[n] > before[n]) elsewhere += (long)(after[n] - before[n]);
        /* Elsewhere: none of the reserved memory.  The allocator's own
         * bookkeeping (its map of segments) may see a page first touched
         * from node 0: up to 16 pages (64 KiB), against the 16,384 asked. */
        bool ok = r == 0 && gained >= want_pages && elsewhere <= 16;
        printf("%-18s nm_reserve(%d, 64 MiB) from node %d: returned %d%s; +%ld pages on node %d (need >= %ld), "
               "+%ld elsewhere (need <= 16) [%s]\n", "reserve", node, cpu_nodes[0], r, r ? strerror(err) : "",
               gained, node, want_pages, elsewhere, ok ? "ok" : "FAIL");
        if (!ok) failures++;
    }
    /* Threads on each node with CPUs now allocate from what was reserved. */
    for (int i = 0; i < cpu_node_count; i++) {
        struct reserve_job j;
        blocks_init(&j.bl, 8192);
        on_node(cpu_nodes[i], reserve_job_run, &j);
        char what[96];
        snprintf(what, sizeof what, "thread on node %d: 8 MiB of 1000 B", cpu_nodes[i]);
        judge("reserve", what, &j.bl, want_on(cpu_nodes[i]));
        free_all(&j.bl);
        blocks_release(&j.bl);
    }
}

/* ---------------------------------------------------------------- check where */

typedef long (*move_pages_fn)(int, unsigned long, void **, const int *, int *, int);

/* Pages per node of [p, p + len) by libnuma's numa_move_pages. */
static long libnuma_counts(move_pages_fn move, const void *p, size_t len, uint64_t *counts)
{
    memset(counts, 0, sizeof(uint64_t) * MAX_NODE);
    static void *pages[1024];
    static int status[1024];
    uintptr_t first = (uintptr_t)p & ~(OS_PAGE - 1), end = (uintptr_t)p + len;
    long resident = 0;
    for (uintptr_t a = first; a < end;) {
        unsigned long n = 0;
        for (; n < 1024 && a < end; n++, a += OS_PAGE) pages[n] = (void *)a;
        REQUIRE(move(0, n, pages, NULL, status, 0) == 0, "numa_move_pages: %s", strerror(errno));
        for (unsigned long i = 0; i < n; i++)
            if (status[i] >= 0 && status[i] < MAX_NODE) { counts[status[i]]++; resident++; }
    }
    return resident;
}

static bool same_counts(const uint64_t *a, const uint64_t *b)
{
    return memcmp(a, b, sizeof(uint64_t) * MAX_NODE) == 0;
}

static void counts_text(const uint64_t *c, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int n = 0; n < MAX_NODE && used < len - 24; n++)
        if (c[n]) used += (size_t)snprintf(buf + used, len - used, " n%d:%llu", n, (unsigned long long)c[n]);
}

/* nm_where of the block and of its whole mapping; libnuma on both; numa_maps
 * on the mapping.  All must agree exactly. */
static void where_agrees(move_pages_fn move, const char *what, const void *p, size_t size, const struct want *w)
{
    uint64_t mine[MAX_NODE] = {0}, lib[MAX_NODE], maps[MAX_NODE];
    char a[256], b[256], c[256];
    long resident = nm_where(p, size, mine, MAX_NODE);
    long lib_resident = libnuma_counts(move, p, size, lib);
    counts_text(mine, a, sizeof a);
    counts_text(lib, b, sizeof b);
    bool ok_block = resident > 0 && resident == lib_resident && same_counts(mine, lib);
    printf("%-18s %s: nm_where%s, numa_move_pages%s [%s]\n", "where", what, a, b, ok_block ? "ok" : "FAIL: differ");
    if (!ok_block) failures++;
    /* The block's pages are where they should be. */
    struct blocks one = {.b = &(struct block){(char *)p, size}, .n = 1, .cap = 1};
    if (w->kind == ON_NODE) judge("where", what, &one, *w);
    else judge_each("where", what, &one, *w);

    uintptr_t start, end;
    REQUIRE(mapping_of(p, &start, &end), "no mapping holds %p", p);
    memset(mine, 0, sizeof mine);
    resident = nm_where((void *)start, end - start, mine, MAX_NODE);
    lib_resident = libnuma_counts(move, (void *)start, end - start, lib);
    bool found = numa_maps_of(start, maps);
    counts_text(mine, a, sizeof a);
    counts_text(lib, b, sizeof b);
    counts_text(maps, c, sizeof c);
    bool ok_map = found && resident >= 0 && resident == lib_resident && same_counts(mine, lib) &&
                  same_counts(mine, maps);
    printf("%-18s %s: its mapping %#lx-%#lx: nm_where%s, numa_move_pages%s, numa_maps%s [%s]\n", "where", what,
           (unsigned long)start, (unsigned long)end, a, b, found ? c : " (no line)", ok_map ? "ok" : "FAIL: differ");
    if (!ok_map) failures++;
}

static void check_where(void)
{
    void *h = dlopen("libnuma.so.1", RTLD_NOW);
    move_pages_fn move = h ? (move_pages_fn)(uintptr_t)dlsym(h, "numa_move_pages") : NULL;
    /* The guest has libnuma (api.sh copies it in): its absence is a failure. */
    REQUIRE(move != NULL, "libnuma.so.1 not loaded: %s", dlerror());
    run_on_node(cpu_nodes[0]);
    int far = mem_nodes[mem_node_count - 1], near = cpu_nodes[1];
    char what[96];

    char *small = nm_malloc_onnode(200, near);
    REQUIRE(small != NULL);
    memset(small, 1, 200);
    snprintf(what, sizeof what, "nm_malloc_onnode(200 B, node %d)", near);
    struct want w = want_on(near);
    where_agrees(move, what, small, 200, &w);

    char *big = nm_malloc_onnode(3 * MiB, far);
    REQUIRE(big != NULL);
    memset(big, 2, 3 * MiB);
    snprintf(what, sizeof what, "nm_malloc_onnode(3 MiB, node %d)", far);
    w = want_on(far);
    where_agrees(move, what, big, 3 * MiB, &w);

    nm_nodeset one;
    nm_nodeset_clear(&one);
    nm_nodeset_add(&one, far);
    nm_policy bind = nm_policy_bind(&one);
    nm_heap_t *bound = nm_heap_new(&bind);
    REQUIRE(bound != NULL);
    char *hb = nm_heap_malloc(bound, 1000);
    REQUIRE(hb != NULL);
    memset(hb, 3, 1000);
    snprintf(what, sizeof what, "bind:%d heap, 1000 B", far);
    where_agrees(move, what, hb, 1000, &w);

    nm_policy all = interleave_over(&mem_set_nodes);
    nm_heap_t *inter = nm_heap_new(&all);
    REQUIRE(inter != NULL);
    char *hi = nm_heap_malloc(inter, 8 * MiB);
    REQUIRE(hi != NULL);
    memset(hi, 4, 8 * MiB);
    w = want_interleaved(mem_set_nodes);
    where_agrees(move, "interleave:all heap, 8 MiB", hi, 8 * MiB, &w);

    nm_free(small);
    nm_free(big);
    nm_heap_destroy(bound);
    nm_heap_destroy(inter);
}

/* ---------------------------------------------------------------- check bad */

static void refused(const char *what, bool failed, int err, int want_err)
{
    bool ok = failed && err == want_err;
    printf("%-18s %-60s %s [%s]\n", "bad", what, ok ? strerror(err) : failed ? "wrong errno" : "succeeded",
           ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static void parse_refused(const char *text, const char *message)
{
    nm_policy p;
    char err[256] = "", what[96];
    errno = 0;
    int r = nm_policy_parse(text, &p, err, sizeof err);
    bool ok = r == -1 && errno == EINVAL && strcmp(err, message) == 0;
    snprintf(what, sizeof what, "nm_policy_parse(\"%s\")", text);
    printf("%-18s %-60s \"%s\" [%s]\n", "bad", what, err, ok ? "ok" : "FAIL");
    if (!ok) {
        printf("%-18s   expected EINVAL and \"%s\"\n", "bad", message);
        failures++;
    }
}

static void check_bad(void)
{
    char online[256], what[128], message[512];
    REQUIRE(read_line("/sys/devices/system/node/online", online, sizeof online));
    /* Warm up: whatever a first use sets up is there before the count. */
    for (int i = 0; i < mem_node_count; i++) nm_free(nm_malloc_onnode(64, mem_nodes[i]));
    nm_heap_destroy(nm_heap_new(NULL));
    int lines = maps_lines();

    /* Node ids that are not nodes: negative, past the last, offline (a gap
     * in sparse ids), at and past NM_NODE_ID_LIMIT. */
    int bad_ids[8 + MAX_NODE], nbad = 0;
    bad_ids[nbad++] = -1;
    bad_ids[nbad++] = missing_node;
    bad_ids[nbad++] = NM_NODE_ID_LIMIT - 1;
    bad_ids[nbad++] = NM_NODE_ID_LIMIT;
    bad_ids[nbad++] = 1 << 30;
    for (int n = 0; n < missing_node; n++)
        if (!node_online[n]) bad_ids[nbad++] = n;     /* offline */
    /* A node with CPUs but no memory would belong here; no shape has one. */
    for (int i = 0; i < nbad; i++) {
        int id = bad_ids[i];
        snprintf(what, sizeof what, "nm_malloc_onnode(64, %d)%s", id, id < missing_node && id >= 0 ? " (offline)" : "");
        errno = 0;
        bool failed = nm_malloc_onnode(64, id) == NULL;
        refused(what, failed, errno, EINVAL);
        snprintf(what, sizeof what, "nm_calloc_onnode(1, 5 MiB, %d)", id);
        errno = 0;
        failed = nm_calloc_onnode(1, 5 * MiB, id) == NULL;
        refused(what, failed, errno, EINVAL);
        snprintf(what, sizeof what, "nm_reserve(%d, 64 MiB)", id);
        errno = 0;
        failed = nm_reserve(id, 64 * MiB) == -1;
        refused(what, failed, errno, EINVAL);
        if (id >= 0 && id < NM_NODE_ID_LIMIT) {
            nm_nodeset s;
            nm_nodeset_clear(&s);
            nm_nodeset_add(&s, cpu_nodes[0]);
            nm_nodeset_add(&s, id);
            nm_policy p = nm_policy_bind(&s);
            snprintf(what, sizeof what, "nm_heap_new(bind:%d,%d)", cpu_nodes[0], id);
            errno = 0;
            failed = nm_heap_new(&p) == NULL;
            refused(what, failed, errno, EINVAL);
            p = nm_policy_preferred(id);
            snprintf(what, sizeof what, "nm_heap_new(preferred:%d)", id);
            errno = 0;
            failed = nm_heap_new(&p) == NULL;
            refused(what, failed, errno, EINVAL);
        }
    }
    volatile size_t too_big = SIZE_MAX;   /* volatile: not a constant the compiler rejects */
    errno = 0;
    bool failed = nm_malloc_onnode(too_big, cpu_nodes[0]) == NULL;
    refused("nm_malloc_onnode(SIZE_MAX, first node)", failed, errno, ENOMEM);

    /* Empty node sets. */
    nm_nodeset none;
    nm_nodeset_clear(&none);
    const nm_policy empties[] = {nm_policy_bind(&none), nm_policy_interleave(&none), nm_policy_preferred_many(&none),
                                 nm_policy_weighted_interleave(&none)};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        char err[200] = "";
        errno = 0;
        nm_heap_t *h = nm_heap_new(&empties[i]);
        int e = errno;
        snprintf(what, sizeof what, "nm_heap_new(mode %d, empty set)", (int)empties[i].mode);
        refused(what, h == NULL, e, EINVAL);
        errno = 0;
        CHECK(nm_policy_check(&empties[i], err, sizeof err) == -1 && errno == EINVAL &&
              strstr(err, "the node set is empty"),
              "nm_policy_check of an empty set: '%s'", err);
    }

    /* Policy text naming nodes that are not there. */
    snprintf(message, sizeof message, "node %d does not exist (nodes: %s)", missing_node, online);
    snprintf(what, sizeof what, "bind:%d", missing_node);
    parse_refused(what, message);
    snprintf(what, sizeof what, "interleave:%d-%d", missing_node - 1, missing_node);   /* the last node, and one more */
    parse_refused(what, message);
    for (int n = 0; n < missing_node; n++)
        if (!node_online[n]) {
            snprintf(message, sizeof message, "node %d does not exist (nodes: %s)", n, online);
            snprintf(what, sizeof what, "preferred:%d", n);
            parse_refused(what, message);
        }
    parse_refused("bind:", "bind needs nodes, e.g. 'bind:0-1'");
    parse_refused("interleave:1,,2", "bad node list '1,,2': expected ids and ranges like 0-3 or 0,2, "
                                     "a kind such as dram or cxl, or near:DEVICE");

    int after = maps_lines();
    printf("%-18s /proc/self/maps: %d lines before the bad calls, %d after [%s]\n", "bad", lines, after,
           after == lines ? "ok" : "FAIL: something was mapped or unmapped");
    if (after != lines) failures++;
}

/* NUMAMALLOC_POLICY names a node that does not exist: the parent checks the
 * one line on stderr; here, the default (local) placement is kept. */
static void check_bad_env(void)
{
    struct node_job *jobs = node_jobs((struct how){PLAIN, -1, NULL}, false);
    judge_jobs("bad-env", jobs, -1, NULL);
    node_jobs_release(jobs, true);
}

/* ---------------------------------------------------------------- check strict */

/* Pages of [p, p + bytes) present on `node` before anything wrote them
 * (a strict heap faults its memory in when it maps it), of all pages. */
static void resident_on(const void *p, size_t bytes, int node, long *on, long *total)
{
    struct blocks bl;
    blocks_init(&bl, 1);
    blocks_push(&bl, (struct block){ (char *)p, bytes });
    struct tally t;
    tally_lists(&bl, 1, &t);
    blocks_release(&bl);
    *on = t.on[node];
    *total = t.pages;
}

/* NM_HEAP_STRICT on the smallest node (the memory-only one where there is
 * one): a block larger than the node fails up front with ENOMEM and leaves
 * nothing mapped (the process is not OOM-killed, as it is when such a block
 * of a plain bind heap is written); blocks that fit are resident on the
 * node before they are written, small and large, calloc'ed and reused. */
static void check_strict(void)
{
    int node = memory_only >= 0 ? memory_only : mem_set_nodes.id[mem_set_nodes.n - 1];
    char path[128], text[4096];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", node);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL, "cannot read %s", path);
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    const char *at = strstr(text, "MemTotal:");
    REQUIRE(at != NULL, "no MemTotal in %s", path);
    size_t total = strtoul(at + 9, NULL, 10) * 1024;
    nm_nodeset one;
    nm_nodeset_clear(&one);
    nm_nodeset_add(&one, node);
    nm_policy bind = nm_policy_bind(&one);
    char what[128];

    nm_heap_t *plain = nm_heap_new(&bind);
    nm_heap_t *strict = nm_heap_new_flags(&bind, NM_HEAP_STRICT);
    REQUIRE(plain && strict, "nm_heap_new_flags(bind:%d, NM_HEAP_STRICT)", node);
    /* Warm up: each heap's first use sets up its thread cache. */
    nm_free(nm_heap_malloc(strict, 64));
    int lines = maps_lines();
    size_t too_big = total + 64 * MiB;
    errno = 0;
    void *p = nm_heap_malloc(strict, too_big);
    int err = errno;
    int after = maps_lines();
    /* Nothing left mapped by the failed request; the release of cached
     * memory before its retry (arena.h) may take a mapping away. */
    bool ok = p == NULL && err == ENOMEM && after <= lines;
    snprintf(what, sizeof what, "strict heap, %zu MiB on node %d (%zu MiB)", too_big / MiB, node, total / MiB);
    printf("%-18s %-60s %s, maps %d -> %d lines [%s]\n", "strict", what, p ? "succeeded" : strerror(err), lines,
           after, ok ? "ok" : "FAIL");
    if (!ok) failures++;
    /* The same from the plain bind heap succeeds (its pages would be taken
     * at first touch, where the node cannot hold them): never written. */
    void *unchecked = nm_heap_malloc(plain, too_big);
    snprintf(what, sizeof what, "plain bind heap, %zu MiB (not written)", too_big / MiB);
    printf("%-18s %-60s %s [%s]\n", "strict", what, unchecked ? "returned a block" : "NULL",
           unchecked ? "ok" : "FAIL");
    if (!unchecked) failures++;
    nm_free(unchecked);

    /* Blocks that fit: resident on the node before the program writes. */
    const size_t sizes[] = { 1000, 100000, total / 8 };
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char *b = round ? nm_heap_calloc(strict, 1, sizes[i]) : nm_heap_malloc(strict, sizes[i]);
            REQUIRE(b != NULL, "strict heap: %zu bytes on node %d", sizes[i], node);
            long on, pages;
            resident_on(b, sizes[i], node, &on, &pages);
            bool zero = true;
            for (size_t k = 0; round && k < sizes[i]; k += 4096) zero = zero && b[k] == 0;
            snprintf(what, sizeof what, "strict heap, %s(%zu) before any write", round ? "calloc" : "malloc", sizes[i]);
            bool good = on == pages && zero;
            printf("%-18s %-60s %ld of %ld pages on %d%s [%s]\n", "strict", what, on, pages, node,
                   zero ? "" : ", not zero", good ? "ok" : "FAIL");
            if (!good) failures++;
            memset(b, 0x5a, sizes[i]);
            nm_free(b);
        }
    }
    nm_heap_destroy(plain);
    nm_heap_destroy(strict);
}

/* ---------------------------------------------------------------- the checks */

enum env_kind { ENV_NONE, ENV_ABOVE, ENV_INTERLEAVE, ENV_BIND, ENV_PREFERRED, ENV_MEMONLY, ENV_BAD };
enum wrap_kind { WRAP_NONE, WRAP_INTERLEAVE_ALL, WRAP_MEMBIND };

static const struct check {
    const char *name;
    void (*run)(void);
    enum env_kind env;
    enum wrap_kind wrap;
} checks[] = {
    {"onnode", check_onnode, ENV_NONE, WRAP_NONE},
    {"heaps", check_heaps, ENV_NONE, WRAP_NONE},
    {"local", check_local, ENV_NONE, WRAP_NONE},
    {"above", check_above, ENV_ABOVE, WRAP_NONE},
    {"policy-interleave", check_policy_interleave, ENV_INTERLEAVE, WRAP_NONE},
    {"policy-bind", check_policy_bind, ENV_BIND, WRAP_NONE},
    {"policy-preferred", check_policy_preferred, ENV_PREFERRED, WRAP_NONE},
    {"policy-memonly", check_policy_memonly, ENV_MEMONLY, WRAP_NONE},
    {"numactl-interleave", check_numactl_interleave, ENV_NONE, WRAP_INTERLEAVE_ALL},
    {"numactl-membind", check_numactl_membind, ENV_NONE, WRAP_MEMBIND},
    {"reserve", check_reserve, ENV_NONE, WRAP_NONE},
    {"where", check_where, ENV_NONE, WRAP_NONE},
    {"bad", check_bad, ENV_NONE, WRAP_NONE},
    {"bad-env", check_bad_env, ENV_BAD, WRAP_NONE},
    {"strict", check_strict, ENV_NONE, WRAP_NONE},
    {"mallocx", check_mallocx, ENV_NONE, WRAP_NONE},
};
#define NCHECKS (int)(sizeof checks / sizeof checks[0])

/* The environment variable a check runs under ("" for none). */
static void check_env(enum env_kind kind, char *buf, size_t len)
{
    char list[256];
    switch (kind) {
    case ENV_NONE: buf[0] = 0; break;
    case ENV_ABOVE: snprintf(buf, len, "NUMAMALLOC_INTERLEAVE_ABOVE=1M"); break;
    case ENV_INTERLEAVE:
        snprintf(buf, len, "NUMAMALLOC_POLICY=interleave:%s", list_text(&cpu_set_nodes, list, sizeof list));
        break;
    case ENV_BIND: snprintf(buf, len, "NUMAMALLOC_POLICY=bind:%d", bind_target()); break;
    case ENV_PREFERRED: snprintf(buf, len, "NUMAMALLOC_POLICY=preferred:%d", preferred_target()); break;
    case ENV_MEMONLY: snprintf(buf, len, "NUMAMALLOC_POLICY=bind:%d", memory_only); break;
    case ENV_BAD: snprintf(buf, len, "NUMAMALLOC_POLICY=bind:%d", missing_node); break;
    }
}

#define ERR_FILE "/tmp/api_place.stderr"

/* Run one check in a fresh process, under its environment and wrapper.
 * Returns 0 when it passed. */
static int run_check(const struct check *c, const char *numactl)
{
    char env[256], wrap_arg[64] = "";
    check_env(c->env, env, sizeof env);
    if (c->wrap == WRAP_INTERLEAVE_ALL) snprintf(wrap_arg, sizeof wrap_arg, "--interleave=all");
    if (c->wrap == WRAP_MEMBIND) snprintf(wrap_arg, sizeof wrap_arg, "--membind=%d", membind_target());
    printf("=== %s%s%s%s%s\n", c->name, env[0] ? ": " : "", env, wrap_arg[0] ? ": numactl " : "", wrap_arg);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (env[0]) putenv(env);
        if (c->env == ENV_BAD) {
            int fd = open(ERR_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) dup2(fd, 2);
        }
        if (c->wrap != WRAP_NONE) {
            execl(numactl, "numactl", wrap_arg, self_path, "--one", c->name, (char *)NULL);
            fprintf(stderr, "cannot run %s: %s\n", numactl, strerror(errno));
        } else {
            execl(self_path, "api_place", "--one", c->name, (char *)NULL);
        }
        _exit(127);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (WIFSIGNALED(status)) printf("%s: killed by signal %d\n", c->name, WTERMSIG(status));
    if (c->env == ENV_BAD) {
        /* Exactly one line, naming the variable, the value and the reason. */
        char want[512], online[256];
        REQUIRE(read_line("/sys/devices/system/node/online", online, sizeof online));
        snprintf(want, sizeof want,
                 "numamalloc: ignoring NUMAMALLOC_POLICY='bind:%d': node %d does not exist (nodes: %s)\n",
                 missing_node, missing_node, online);
        const char *got = read_proc(ERR_FILE);
        bool ok = strcmp(got, want) == 0;
        printf("%-18s stderr: %s", c->name, got[0] ? got : "(nothing)\n");
        if (got[0] && got[strlen(got) - 1] != '\n') printf("\n");
        printf("%-18s one warning line as expected [%s]\n", c->name, ok ? "ok" : "FAIL");
        if (!ok) {
            printf("%-18s   expected: %s", c->name, want);
            rc = rc ? rc : 1;
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *one = NULL, *numactl = "/numactl";
    const char *wanted[NCHECKS + 1];
    int nwanted = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--one") && i + 1 < argc) one = argv[++i];
        else if (!strcmp(argv[i], "--numactl") && i + 1 < argc) numactl = argv[++i];
        else if (nwanted < NCHECKS) wanted[nwanted++] = argv[i];
        else { fprintf(stderr, "usage: api_place [--numactl PATH] [CHECK...]\n"); return 2; }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    load_nodes();

    if (one) {                       /* child: one check */
        for (int c = 0; c < NCHECKS; c++)
            if (!strcmp(checks[c].name, one)) {
                checks[c].run();
                return failures || nm_test_failures ? 1 : 0;
            }
        fprintf(stderr, "unknown check '%s'\n", one);
        return 2;
    }

    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    REQUIRE(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    self_path[n] = 0;
    char cpus[256], mems[256];
    printf("nodes with CPUs: %s; with memory: %s; memory-only: ", list_text(&cpu_set_nodes, cpus, sizeof cpus),
           list_text(&mem_set_nodes, mems, sizeof mems));
    if (memory_only >= 0) printf("%d\n", memory_only);
    else printf("none\n");

    int failed = 0;
    char summary[1024] = "";
    size_t len = 0;
    for (int c = 0; c < NCHECKS; c++) {
        bool run = nwanted == 0;
        for (int i = 0; i < nwanted; i++) run |= !strcmp(wanted[i], checks[c].name);
        if (!run) continue;
        const char *result;
        if (checks[c].env == ENV_MEMONLY && memory_only < 0) {
            printf("=== %s: not run: this shape has no memory-only node\n", checks[c].name);
            result = "n/a";
        } else {
            int rc = run_check(&checks[c], numactl);
            failed += rc != 0;
            result = rc == 0 ? "pass" : "FAIL";
        }
        len += (size_t)snprintf(summary + len, sizeof summary - len, " %s:%s", checks[c].name, result);
    }
    printf("summary%s\n", summary);
    return failed || nm_test_failures ? 1 : 0;
}
