/*
 * placement.c — runs inside the multi-node guest (tests/vm/placement.sh) and
 * proves where numamalloc, preloaded, puts each thread's memory:
 *
 *   a   threads pinned one per node allocate small, medium and large blocks
 *       with plain malloc: >= 99% of the pages of each thread's blocks, per
 *       size range, are on the thread's node
 *   b   blocks allocated on node 0 and freed by a thread on node 1 are never
 *       handed to node 1 (whose new blocks are all on node 1); node 0's next
 *       allocations reuse them
 *   c1  threads on node 0 exit with half their blocks live; new threads on
 *       node 1 get node-1 memory only
 *   c2  the main thread allocates and frees >= 64 MiB on node 0; workers then
 *       started on node 1 get node-1 memory only
 *   d1  a thread moved to node 1 with sched_setaffinity gets node-1 memory at
 *       once after nm_thread_rebind()
 *   d2  the same without the call: new blocks are on node 1 after a bounded
 *       number of allocations, per size class and for a mix of classes; the
 *       number is printed
 *   thp huge blocks (>= 2 MiB) cost no more resident memory than their size
 *       rounded up to 2 MiB under transparent huge pages "always"
 *
 * "node 0" and "node 1" are the first two nodes with CPUs.  Pages are located
 * with move_pages(2) and a NULL node list (nothing is moved or faulted in);
 * no libnuma.  The test's own bookkeeping lives in mmap'd memory so that the
 * allocator under test serves only the blocks measured (guest.h).
 *
 *   placement [--report] [--expect-online LIST --expect-cpus LIST] [CHECK...]
 *
 * With no CHECK every check runs, each in a fresh process (exec of
 * /proc/self/exe).  --report measures and prints without judging (used to
 * show glibc's numbers for comparison).  Exit 0 = all checks pass.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest.h"

static bool report_only;     /* measure and print, judge nothing */
static int failures;
static long pages_measured, pages_local;   /* over every judged list of this check */

static int node0, node1;     /* the first two nodes with CPUs */

typedef int (*rebind_fn)(void);
static rebind_fn thread_rebind;   /* nm_thread_rebind, when numamalloc is loaded */

/* ---------------------------------------------------------------- bookkeeping */

/* malloc a block, write every byte of it (first touch), remember it. */
static char *alloc_touch(struct blocks *bl, size_t size)
{
    REQUIRE(bl->n < bl->cap, "block list full");
    char *p = malloc(size);
    REQUIRE(p != NULL, "malloc(%zu) failed", size);
    memset(p, 0x5a, size);
    bl->b[bl->n].p = p;
    bl->b[bl->n].size = size;
    bl->n++;
    return p;
}

/* The size ranges of check a (and the mixes of c). */
enum { SMALL, MEDIUM, LARGE, KINDS };
static const struct kind {
    const char *name;
    size_t min, max;
    int count;
} kinds[KINDS] = {
    [SMALL]  = {"small",  16,        1 * KiB,   3000},
    [MEDIUM] = {"medium", 8 * KiB,   256 * KiB, 96},
    [LARGE]  = {"large",  1 * MiB,   8 * MiB,   8},
};

static void alloc_kinds(struct blocks bl[KINDS], uint64_t *seed, int divide)
{
    for (int k = 0; k < KINDS; k++) {
        int count = kinds[k].count / divide;
        if (count < 2) count = 2;
        for (int i = 0; i < count; i++) alloc_touch(&bl[k], guest_random_between(seed, kinds[k].min, kinds[k].max));
    }
}

static bool judge(const char *check, const char *what, const struct tally *t, int want, int min_percent)
{
    double pct = t->pages ? 100.0 * (double)t->on[want] / (double)t->pages : 0.0;
    bool ok = t->pages > 0 && t->absent == 0 && t->on[want] * 100 >= t->pages * min_percent;
    pages_measured += t->pages;
    pages_local += t->on[want];
    char others[512] = "";
    size_t len = 0;
    for (int n = 0; n < MAX_NODE; n++)
        if (n != want && t->on[n] && len < sizeof others - 32)
            len += (size_t)snprintf(others + len, sizeof others - len, " node%d:%ld", n, t->on[n]);
    if (t->absent && len < sizeof others - 32)
        len += (size_t)snprintf(others + len, sizeof others - len, " absent:%ld", t->absent);
    printf("%-4s %-38s %7.2f%% of %6ld pages on node %d%s%s  [%s]\n", check, what, pct, t->pages, want,
           len ? "; elsewhere" : "", others,
           report_only ? "report" : ok ? "ok" : min_percent == 100 ? "FAIL: need 100%" : "FAIL: need >= 99%");
    if (!ok && !report_only) failures++;
    return ok;
}

static void explain(const char *check, const struct blocks *bl, int want);

/* Tally and judge one list of blocks; explain a failure. */
static bool judge_blocks(const char *check, const char *what, const struct blocks *bl, int want, int min_percent)
{
    struct tally t;
    tally_lists(bl, 1, &t);
    bool ok = judge(check, what, &t, want, min_percent);
    if (!ok && !report_only) explain(check, bl, want);
    return ok;
}

/* After a failed judgement: the first blocks (in allocation order) with a
 * page off `want`, and where their pages are. */
static void explain(const char *check, const struct blocks *bl, int want)
{
    int shown = 0;
    for (long i = 0; i < bl->n && shown < 6; i++) {
        long np = pages_in(&bl->b[i]);
        uintptr_t *pages = map_zeroed((size_t)np * sizeof *pages);
        int *status = map_zeroed((size_t)np * sizeof *status);
        uintptr_t first = (uintptr_t)bl->b[i].p & ~(OS_PAGE - 1);
        for (long k = 0; k < np; k++) pages[k] = first + (uintptr_t)k * OS_PAGE;
        locate_pages(pages, np, status);
        long on_want = 0;
        for (long k = 0; k < np; k++) on_want += status[k] == want;
        if (on_want != np) {
            printf("%-4s   block %ld of %ld: %p, %zu B, %ld of %ld pages on node %d, first page on %d, last on %d\n",
                   check, i, bl->n, (void *)bl->b[i].p, bl->b[i].size, on_want, np, want, status[0], status[np - 1]);
            shown++;
        }
        munmap(pages, (size_t)np * sizeof *pages);
        munmap(status, (size_t)np * sizeof *status);
    }
}

/* ---------------------------------------------------------------- check a */

struct pinned {              /* one thread's work in checks a and c */
    pthread_t thread;
    int node;
    uint64_t seed;
    pthread_barrier_t *start;
    struct blocks kind[KINDS];
    bool free_half;          /* c1: free every other block before exiting */
};

static void *pinned_thread(void *arg)
{
    struct pinned *w = arg;
    run_on_node(w->node);
    if (w->start) pthread_barrier_wait(w->start);
    alloc_kinds(w->kind, &w->seed, 1);
    if (w->free_half)
        for (int k = 0; k < KINDS; k++)
            for (long i = 0; i < w->kind[k].n; i += 2) {
                free(w->kind[k].b[i].p);
                w->kind[k].b[i].size = 0;     /* freed: not measured, not freed again */
            }
    return NULL;
}

static void pinned_start(struct pinned *w, int node, uint64_t seed, pthread_barrier_t *start, bool free_half)
{
    memset(w, 0, sizeof *w);
    w->node = node;
    w->free_half = free_half;
    w->seed = seed;
    w->start = start;
    for (int k = 0; k < KINDS; k++) blocks_init(&w->kind[k], kinds[k].count + 2);
    REQUIRE(pthread_create(&w->thread, NULL, pinned_thread, w) == 0, "pthread_create");
}

/* Drop freed entries (size 0) from a thread's lists. */
static void pinned_compact(struct pinned *w)
{
    for (int k = 0; k < KINDS; k++) {
        long n = 0;
        for (long i = 0; i < w->kind[k].n; i++)
            if (w->kind[k].b[i].size) w->kind[k].b[n++] = w->kind[k].b[i];
        w->kind[k].n = n;
    }
}

static void pinned_judge(const char *check, struct pinned *w, int min_percent)
{
    char what[64];
    for (int k = 0; k < KINDS; k++) {
        snprintf(what, sizeof what, "thread on node %d, %s", w->node, kinds[k].name);
        judge_blocks(check, what, &w->kind[k], w->node, min_percent);
    }
}

static void pinned_release(struct pinned *w)
{
    for (int k = 0; k < KINDS; k++) {
        free_all(&w->kind[k]);
        blocks_release(&w->kind[k]);
    }
}

static void check_a(void)
{
    struct pinned *w = map_zeroed(sizeof *w * (size_t)cpu_node_count);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)cpu_node_count);
    for (int i = 0; i < cpu_node_count; i++) pinned_start(&w[i], cpu_nodes[i], 0x9e3779b97f4a7c15ULL + (uint64_t)i, &start, false);
    for (int i = 0; i < cpu_node_count; i++) pthread_join(w[i].thread, NULL);
    /* 99%: the bar for "local" (numamalloc aims at 100%). */
    for (int i = 0; i < cpu_node_count; i++) pinned_judge("a", &w[i], 99);
    for (int i = 0; i < cpu_node_count; i++) pinned_release(&w[i]);
}

/* ---------------------------------------------------------------- check b */

/* Sizes handed from node 0 to node 1, and how many blocks of each: at least
 * three 64 KiB / 1 MiB pages' worth, so a class's leftover page cannot hide
 * whether freed blocks come back. */
static const struct { size_t size; int count; } handed_sizes[] = {
    {48, 4096}, {1000, 256}, {24 * KiB, 128}, {200 * KiB, 24}, {1536 * KiB, 4},
};
#define HANDED_KINDS (int)(sizeof handed_sizes / sizeof handed_sizes[0])

struct handover {
    pthread_barrier_t step;
    struct blocks first[HANDED_KINDS];   /* node 0's blocks, freed on node 1 */
    struct blocks remote[HANDED_KINDS];  /* node 1's blocks after freeing them */
    struct blocks again[HANDED_KINDS];   /* node 0's next blocks */
};

static void *handover_node0(void *arg)
{
    struct handover *h = arg;
    run_on_node(node0);
    for (int k = 0; k < HANDED_KINDS; k++)
        for (int i = 0; i < handed_sizes[k].count; i++) alloc_touch(&h->first[k], handed_sizes[k].size);
    pthread_barrier_wait(&h->step);      /* node 1 frees them and allocates */
    pthread_barrier_wait(&h->step);
    for (int k = 0; k < HANDED_KINDS; k++)
        for (int i = 0; i < 2 * handed_sizes[k].count; i++) alloc_touch(&h->again[k], handed_sizes[k].size);
    return NULL;
}

static void *handover_node1(void *arg)
{
    struct handover *h = arg;
    run_on_node(node1);
    pthread_barrier_wait(&h->step);
    for (int k = 0; k < HANDED_KINDS; k++)
        for (long i = 0; i < h->first[k].n; i++) free(h->first[k].b[i].p);
    for (int k = 0; k < HANDED_KINDS; k++)
        for (int i = 0; i < handed_sizes[k].count; i++) alloc_touch(&h->remote[k], handed_sizes[k].size);
    pthread_barrier_wait(&h->step);
    return NULL;
}

static bool contains(const struct blocks *bl, const char *p)
{
    for (long i = 0; i < bl->n; i++)
        if (bl->b[i].p == p) return true;
    return false;
}

/* Whether any block of the lists overlaps [p, p + size). */
static bool overlaps(const struct blocks *lists, int nlists, const char *p, size_t size)
{
    for (int l = 0; l < nlists; l++)
        for (long i = 0; i < lists[l].n; i++)
            if (lists[l].b[i].p < p + size && p < lists[l].b[i].p + lists[l].b[i].size) return true;
    return false;
}

static void check_b(void)
{
    struct handover *h = map_zeroed(sizeof *h);
    pthread_t t0, t1;
    pthread_barrier_init(&h->step, NULL, 2);
    for (int k = 0; k < HANDED_KINDS; k++) {
        blocks_init(&h->first[k], handed_sizes[k].count);
        blocks_init(&h->remote[k], handed_sizes[k].count);
        blocks_init(&h->again[k], 2 * handed_sizes[k].count);
    }
    REQUIRE(pthread_create(&t0, NULL, handover_node0, h) == 0, "pthread_create");
    REQUIRE(pthread_create(&t1, NULL, handover_node1, h) == 0, "pthread_create");
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);

    /* Node 1 must not get any of the memory node 0 freed through it (not
     * the same block, nor a block overlapping one), and node 0's next
     * allocations, of any size, must reuse some of it. */
    for (int k = 0; k < HANDED_KINDS; k++) {
        char what[80];
        size_t size = handed_sizes[k].size;
        long stolen = 0, reused = 0, same = 0;
        for (long i = 0; i < h->first[k].n; i++) {
            const struct block *b = &h->first[k].b[i];
            stolen += overlaps(h->remote, HANDED_KINDS, b->p, b->size);
            reused += overlaps(h->again, HANDED_KINDS, b->p, b->size);
            same += contains(&h->again[k], b->p);
        }
        bool ok_stolen = stolen == 0, ok_reused = reused > 0;
        printf("%-4s %7zu B: of %ld blocks from node %d freed on node %d, node %d's new blocks "
               "overlap %ld [%s]; node %d's next blocks overlap %ld [%s] (%ld at the same address and size)\n",
               "b", size, h->first[k].n, node0, node1, node1, stolen,
               report_only ? "report" : ok_stolen ? "ok" : "FAIL: need 0", node0, reused,
               report_only ? "report" : ok_reused ? "ok" : "FAIL: need > 0", same);
        if (!report_only) failures += !ok_stolen + !ok_reused;
        snprintf(what, sizeof what, "%zu B, node %d after remote frees", size, node1);
        judge_blocks("b", what, &h->remote[k], node1, 100);
        snprintf(what, sizeof what, "%zu B, node %d reallocating", size, node0);
        judge_blocks("b", what, &h->again[k], node0, 100);
    }
    for (int k = 0; k < HANDED_KINDS; k++) {
        free_all(&h->remote[k]);
        free_all(&h->again[k]);
    }
}

/* ---------------------------------------------------------------- check c */

#define C_THREADS 2

static void check_c1(void)
{
    struct pinned *w = map_zeroed(sizeof *w * 2 * C_THREADS);
    /* Threads on node 0 exit with every other block still allocated. */
    for (int i = 0; i < C_THREADS; i++) pinned_start(&w[i], node0, 1000 + (uint64_t)i, NULL, true);
    for (int i = 0; i < C_THREADS; i++) pthread_join(w[i].thread, NULL);
    for (int i = C_THREADS; i < 2 * C_THREADS; i++) pinned_start(&w[i], node1, 2000 + (uint64_t)i, NULL, false);
    for (int i = C_THREADS; i < 2 * C_THREADS; i++) pthread_join(w[i].thread, NULL);
    for (int i = 0; i < C_THREADS; i++) pinned_compact(&w[i]);
    /* The leftovers of the exited threads stay on node 0 ... */
    for (int i = 0; i < C_THREADS; i++) pinned_judge("c1", &w[i], 99);
    /* ... and the new threads got node 1 only. */
    for (int i = C_THREADS; i < 2 * C_THREADS; i++) pinned_judge("c1", &w[i], 100);
    for (int i = 0; i < 2 * C_THREADS; i++) pinned_release(&w[i]);
}

static void check_c2(void)
{
    struct blocks set[KINDS];
    uint64_t seed = 77;
    size_t bytes = 0;
    run_on_node(node0);
    /* About 64 MiB: the mix of a, three times over (a mix is ~21 MiB). */
    for (int k = 0; k < KINDS; k++) blocks_init(&set[k], 3 * kinds[k].count + 8);
    while (bytes < 64 * MiB) {
        alloc_kinds(set, &seed, 1);
        bytes = 0;
        for (int k = 0; k < KINDS; k++)
            for (long i = 0; i < set[k].n; i++) bytes += set[k].b[i].size;
        if (set[LARGE].n + kinds[LARGE].count > set[LARGE].cap) break;
    }
    printf("c2   main thread on node %d allocated and freed %.1f MiB in %ld blocks\n", node0,
           (double)bytes / (double)MiB, set[SMALL].n + set[MEDIUM].n + set[LARGE].n);
    for (int k = 0; k < KINDS; k++) {
        free_all(&set[k]);
        blocks_release(&set[k]);
    }
    struct pinned *w = map_zeroed(sizeof *w * C_THREADS);
    for (int i = 0; i < C_THREADS; i++) pinned_start(&w[i], node1, 3000 + (uint64_t)i, NULL, false);
    for (int i = 0; i < C_THREADS; i++) pthread_join(w[i].thread, NULL);
    for (int i = 0; i < C_THREADS; i++) pinned_judge("c2", &w[i], 100);
    for (int i = 0; i < C_THREADS; i++) pinned_release(&w[i]);
}

/* ---------------------------------------------------------------- check d */

/* Warm a thread's heap on node 0 with blocks of `size`: a page and a half's
 * worth, every other one freed again, so its free lists hold node-0 blocks. */
static void warm(struct blocks *keep, size_t size, long per_page)
{
    long n = per_page + per_page / 2 + 2;
    struct blocks tmp;
    blocks_init(&tmp, n);
    for (long i = 0; i < n; i++) alloc_touch(&tmp, size);
    for (long i = 0; i < n; i++) {
        if (i % 2) free(tmp.b[i].p);
        else blocks_push(keep, tmp.b[i]);
    }
    blocks_release(&tmp);
}

/* Blocks per allocator page for a size, from docs/design.md (64 KiB pages up
 * to 8 KiB blocks, 1 MiB up to 256 KiB, one span above). */
static long blocks_per_page(size_t size)
{
    if (size <= 8 * KiB) return (long)(64 * KiB / size);
    if (size <= 256 * KiB) return (long)(MiB / size);
    return 1;
}

/* For blocks[from..n): whether every page of each is on `want`; returns the
 * number of blocks up to and including the last one that is not (0: all
 * local), and counts the remote ones. */
static long last_remote(const struct blocks *bl, long from, int want, long *remote)
{
    long total = 0;
    for (long i = from; i < bl->n; i++) total += pages_in(&bl->b[i]);
    uintptr_t *pages = map_zeroed((size_t)total * sizeof *pages);
    int *status = map_zeroed((size_t)total * sizeof *status);
    long n = 0;
    for (long i = from; i < bl->n; i++) {
        uintptr_t first = (uintptr_t)bl->b[i].p & ~(OS_PAGE - 1);
        for (long k = 0; k < pages_in(&bl->b[i]); k++) pages[n++] = first + (uintptr_t)k * OS_PAGE;
    }
    locate_pages(pages, n, status);
    long last = 0, at = 0;
    *remote = 0;
    for (long i = from; i < bl->n; i++) {
        bool local = true;
        for (long k = 0; k < pages_in(&bl->b[i]); k++) local &= status[at++] == want;
        if (!local) {
            last = i - from + 1;
            (*remote)++;
        }
    }
    munmap(pages, (size_t)total * sizeof *pages);
    munmap(status, (size_t)total * sizeof *status);
    return last;
}

struct mover {
    bool call_rebind;
    int rebind_result;
    size_t sizes[8];
    int nsizes;
    long rounds;             /* allocations per size after the move */
    struct blocks keep;      /* warm-up blocks still live */
    struct blocks after;     /* blocks allocated after the move, in order */
};

static void *mover_thread(void *arg)
{
    struct mover *m = arg;
    run_on_node(node0);
    for (int s = 0; s < m->nsizes; s++) warm(&m->keep, m->sizes[s], blocks_per_page(m->sizes[s]));
    run_on_node(node1);
    if (m->call_rebind && thread_rebind) m->rebind_result = thread_rebind();
    for (long r = 0; r < m->rounds; r++)
        for (int s = 0; s < m->nsizes; s++) alloc_touch(&m->after, m->sizes[s]);
    return NULL;
}

static void mover_run(struct mover *m)
{
    long keep = 0;
    for (int s = 0; s < m->nsizes; s++) keep += blocks_per_page(m->sizes[s]) + 4;
    blocks_init(&m->keep, keep);
    blocks_init(&m->after, m->rounds * m->nsizes);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, mover_thread, m) == 0, "pthread_create");
    pthread_join(t, NULL);
}

static void mover_release(struct mover *m)
{
    free_all(&m->keep);
    free_all(&m->after);
    blocks_release(&m->keep);
    blocks_release(&m->after);
}

static void check_d1(void)
{
    /* 16 rounds: enough to drain what the warm-up left on node 0's free
     * lists if the rebind did nothing, and small enough (48 MiB of 3 MiB
     * blocks) that node 1 never runs short and spills to node 0. */
    struct mover m = {.call_rebind = true, .sizes = {64, 1000, 24 * KiB, 200 * KiB, 3 * MiB}, .nsizes = 5, .rounds = 16};
    if (!thread_rebind)
        printf("d1   nm_thread_rebind not found: measuring without the call\n");
    mover_run(&m);
    if (thread_rebind) {
        printf("d1   nm_thread_rebind() after the move returned %d [%s]\n", m.rebind_result,
               report_only ? "report" : m.rebind_result == node1 ? "ok" : "FAIL: need the new node");
        if (!report_only && m.rebind_result != node1) failures++;
    }
    for (int s = 0; s < m.nsizes; s++) {
        struct blocks one = {0};
        blocks_init(&one, m.rounds);
        for (long i = s; i < m.after.n; i += m.nsizes) one.b[one.n++] = m.after.b[i];
        char what[80];
        snprintf(what, sizeof what, "%zu B after move to node %d + rebind", m.sizes[s], node1);
        judge_blocks("d1", what, &one, node1, 100);
        blocks_release(&one);
    }
    mover_release(&m);
}

/* Without nm_thread_rebind: allocations until every new block is local.  The
 * bound judged, from docs/design.md: every allocation from the 64th after
 * the move on comes from the new node (with rseq the heap notices the move
 * at the first allocation; without, at its next refill). */
#define MOVE_BOUND 64
static void check_d2(void)
{
    static const size_t one_class[] = {16, 64, 256, 1024, 8 * KiB, 32 * KiB, 128 * KiB, 256 * KiB, 1 * MiB, 4 * MiB};
    long worst = 0;
    for (size_t c = 0; c < sizeof one_class / sizeof one_class[0]; c++) {
        size_t size = one_class[c];
        long per_page = blocks_per_page(size);
        long rounds = 3 * per_page < 8 ? 8 : 3 * per_page;
        struct mover m = {.sizes = {size}, .nsizes = 1, .rounds = rounds};
        mover_run(&m);
        long remote, until = last_remote(&m.after, 0, node1, &remote);
        /* Judged: every allocation from the bound on is local. */
        bool ok = until < MOVE_BOUND;
        printf("d2   %7zu B: %5ld of %5ld allocations after the move were not on node %d; "
               "local from allocation %ld on (%ld blocks per page) [%s]\n",
               size, remote, rounds, node1, until + 1, per_page,
               report_only ? "report" : ok ? "ok" : "FAIL: not local within 64 allocations");
        if (!report_only && !ok) failures++;
        if (until > worst) worst = until;
        mover_release(&m);
    }
    /* A mix of small classes allocated round-robin: counted in allocations
     * of any class after the move. */
    struct mover m = {.sizes = {16, 64, 256, 1024, 2048}, .nsizes = 5, .rounds = 3 * 4096};
    mover_run(&m);
    long remote, until = last_remote(&m.after, 0, node1, &remote);
    long total = m.rounds * m.nsizes;
    bool ok = until < MOVE_BOUND;
    printf("d2   mix 16..2048 B: %ld of %ld allocations after the move were not on node %d; "
           "local from allocation %ld on [%s]\n",
           remote, total, node1, until + 1,
           report_only ? "report" : ok ? "ok" : "FAIL: not local within 64 allocations");
    if (!report_only && !ok) failures++;
    printf("d2   without nm_thread_rebind: worst single class local after %ld allocations, mix after %ld\n",
           worst, until);
    mover_release(&m);
}

/* ---------------------------------------------------------------- check thp */

/* Resident KiB from /proc/self/statm, read without stdio: a FILE is a
 * malloc'd block, and its first write could fault in a huge page itself. */
static long rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    REQUIRE(fd >= 0, "open /proc/self/statm: %s", strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    REQUIRE(n > 0, "read /proc/self/statm");
    buf[n] = 0;
    char *space = strchr(buf, ' ');
    REQUIRE(space != NULL, "odd /proc/self/statm: %s", buf);
    return strtol(space + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The guest kernel has transparent huge pages "always" (Debian's default),
 * so any 2 MiB-aligned range the allocator writes to is backed by a whole
 * huge page.  A huge block must not cost more than its size rounded up to
 * 2 MiB: writing the block's header into its own, otherwise unused 2 MiB
 * range would fault in a second huge page for 4 KiB of metadata. */
static void check_thp(void)
{
    static const size_t sizes[] = {2 * MiB, 3 * MiB, 6 * MiB, 9 * MiB};
    char thp[64] = "";
    read_line("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof thp);
    printf("thp  transparent_hugepage/enabled: %s\n", thp);
    run_on_node(node0);
    /* Blocks are kept until the end: each one is a fresh span, none reused. */
    char *live[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i];
        long limit = (long)((size + 2 * MiB - 1) / (2 * MiB) * (2 * MiB) / KiB) + 256;
        long before = rss_kib();
        char *p = malloc(size);
        REQUIRE(p != NULL, "malloc(%zu)", size);
        memset(p, 1, size);
        __asm__ volatile("" : : "r"(p) : "memory");   /* keep the writes */
        long cost = rss_kib() - before;
        bool ok = cost <= limit;
        printf("thp  %zu MiB block: resident +%ld KiB (limit %ld KiB: the size rounded up to 2 MiB, "
               "plus 256 KiB) [%s]\n", size / MiB, cost, limit,
               report_only ? "report" : ok ? "ok" : "FAIL: too much memory");
        if (!report_only && !ok) failures++;
        live[i] = p;
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) free(live[i]);
}

/* ---------------------------------------------------------------- check d3 */

/* A thread that frees blocks another thread of its node allocated may keep
 * them for its own next allocations (docs/design.md: foreign lists).  When
 * it then moves to another node, its next blocks must come from there, not
 * from what it kept.  Run with the kernel's rseq node word ("d3") and
 * without it ("d3-norseq": GLIBC_TUNABLES=glibc.pthread.rseq=0, where the
 * move is noticed only by the slow path). */
static const struct { size_t size; int count; } kept_sizes[] = { {48, 1024}, {1000, 64} };
#define KEPT_KINDS (int)(sizeof kept_sizes / sizeof kept_sizes[0])

struct keeper {
    pthread_barrier_t step;
    struct blocks theirs[KEPT_KINDS];    /* the other thread's blocks, freed by the keeper */
    struct blocks after[KEPT_KINDS];     /* the keeper's blocks after its move to node 1 */
};

static void *keeper_owner(void *arg)
{
    struct keeper *k = arg;
    run_on_node(node0);
    for (int i = 0; i < KEPT_KINDS; i++)
        for (int j = 0; j < kept_sizes[i].count; j++) alloc_touch(&k->theirs[i], kept_sizes[i].size);
    pthread_barrier_wait(&k->step);      /* the keeper frees them */
    pthread_barrier_wait(&k->step);
    return NULL;
}

static void *keeper(void *arg)
{
    struct keeper *k = arg;
    run_on_node(node0);
    void *own = malloc(16);              /* a heap on node 0 (kept out of the optimiser's reach) */
    __asm__ volatile("" : : "r"(own) : "memory");
    free(own);
    pthread_barrier_wait(&k->step);
    for (int i = 0; i < KEPT_KINDS; i++)
        for (long j = 0; j < k->theirs[i].n; j++) free(k->theirs[i].b[j].p);
    run_on_node(node1);
    for (int i = 0; i < KEPT_KINDS; i++)
        for (int j = 0; j < kept_sizes[i].count; j++) alloc_touch(&k->after[i], kept_sizes[i].size);
    pthread_barrier_wait(&k->step);
    return NULL;
}

static void check_d3(void)
{
    /* glibc 2.35+ exports the size of the rseq area it registered (0: none). */
    const unsigned *rseq_size = dlsym(RTLD_DEFAULT, "__rseq_size");
    printf("d3   rseq registered by glibc: %s\n",
           !rseq_size ? "unknown (glibc before 2.35)" : *rseq_size ? "yes" : "no");
    struct keeper *k = map_zeroed(sizeof *k);
    pthread_barrier_init(&k->step, NULL, 2);
    for (int i = 0; i < KEPT_KINDS; i++) {
        blocks_init(&k->theirs[i], kept_sizes[i].count);
        blocks_init(&k->after[i], kept_sizes[i].count);
    }
    pthread_t t0, t1;
    REQUIRE(pthread_create(&t0, NULL, keeper_owner, k) == 0, "pthread_create");
    REQUIRE(pthread_create(&t1, NULL, keeper, k) == 0, "pthread_create");
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    for (int i = 0; i < KEPT_KINDS; i++) {
        long reused = 0;
        for (long j = 0; j < k->after[i].n; j++)
            reused += overlaps(&k->theirs[i], 1, k->after[i].b[j].p, k->after[i].b[j].size);
        bool ok = reused == 0;
        printf("d3   %5zu B: of %ld blocks freed on node %d before the move, %ld came back on node %d "
               "[%s]\n", kept_sizes[i].size, k->theirs[i].n, node0, reused, node1,
               report_only ? "report" : ok ? "ok" : "FAIL: need 0");
        if (!report_only && !ok) failures++;
        char what[80];
        snprintf(what, sizeof what, "%zu B after the move to node %d", kept_sizes[i].size, node1);
        judge_blocks("d3", what, &k->after[i], node1, 100);
        free_all(&k->after[i]);
    }
}

/* ---------------------------------------------------------------- main */

static const struct check {
    const char *name;
    void (*run)(void);
} checks[] = {
    {"a", check_a}, {"b", check_b}, {"c1", check_c1}, {"c2", check_c2}, {"d1", check_d1}, {"d2", check_d2},
    {"d3", check_d3}, {"d3-norseq", check_d3}, {"thp", check_thp},
};
#define NCHECKS (int)(sizeof checks / sizeof checks[0])

static int run_in_child(const char *name)
{
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* A check named *-norseq runs without glibc's rseq registration. */
        size_t len = strlen(name);
        if (len > 7 && !strcmp(name + len - 7, "-norseq")) setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
        char *argv[] = {"placement", report_only ? "--report" : "--strict", "--one", (char *)name, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
    if (WIFSIGNALED(status)) {
        printf("%-4s killed by signal %d\n", name, WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status);
}

static void expect_file(const char *path, const char *want)
{
    char buf[256];
    REQUIRE(read_line(path, buf, sizeof buf), "cannot read %s", path);
    CHECK(strcmp(buf, want) == 0, "%s is '%s', the shape promised '%s'", path, buf, want);
}

int main(int argc, char **argv)
{
    const char *one = NULL, *expect_online = NULL, *expect_cpus = NULL;
    const char *wanted[NCHECKS + 1];
    int nwanted = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--report")) report_only = true;
        else if (!strcmp(argv[i], "--strict")) report_only = false;
        else if (!strcmp(argv[i], "--one") && i + 1 < argc) one = argv[++i];
        else if (!strcmp(argv[i], "--expect-online") && i + 1 < argc) expect_online = argv[++i];
        else if (!strcmp(argv[i], "--expect-cpus") && i + 1 < argc) expect_cpus = argv[++i];
        else if (nwanted < NCHECKS) wanted[nwanted++] = argv[i];
        else { fprintf(stderr, "usage: placement [--report] [--expect-online L --expect-cpus L] [CHECK...]\n"); return 2; }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    thread_rebind = (rebind_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "nm_thread_rebind");
    if (!report_only) nm_test_require_numamalloc();
    load_topology();
    node0 = cpu_nodes[0];
    node1 = cpu_nodes[1];

    if (one) {                       /* child: one check */
        for (int c = 0; c < NCHECKS; c++)
            if (!strcmp(checks[c].name, one)) {
                checks[c].run();
                if (pages_measured)
                    printf("%-4s all measured pages: %.2f%% of %ld on the node asked for\n", one,
                           100.0 * (double)pages_local / (double)pages_measured, pages_measured);
                return failures || nm_test_failures ? 1 : 0;
            }
        fprintf(stderr, "unknown check '%s'\n", one);
        return 2;
    }

    if (expect_online) expect_file("/sys/devices/system/node/online", expect_online);
    if (expect_cpus) expect_file("/sys/devices/system/node/has_cpu", expect_cpus);
    printf("guest nodes with CPUs:");
    for (int i = 0; i < cpu_node_count; i++) printf(" %d", cpu_nodes[i]);
    printf(" (of online:");
    for (int n = 0; n < MAX_NODE; n++)
        if (node_online[n]) printf(" %d", n);
    printf("); node 0 = %d, node 1 = %d; allocator: %s\n", node0, node1,
           thread_rebind ? "numamalloc" : "not numamalloc (report only)");

    int failed = nm_test_failures;
    char summary[512] = "";
    size_t len = 0;
    for (int c = 0; c < NCHECKS; c++) {
        bool run = nwanted == 0;
        for (int i = 0; i < nwanted; i++) run |= !strcmp(wanted[i], checks[c].name);
        if (!run) continue;
        int rc = run_in_child(checks[c].name);
        failed += rc != 0;
        len += (size_t)snprintf(summary + len, sizeof summary - len, " %s:%s", checks[c].name,
                                rc == 0 ? (report_only ? "done" : "pass") : "FAIL");
    }
    printf("summary%s\n", summary);
    return failed ? 1 : 0;
}
