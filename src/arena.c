/*
 * arena.c — arenas: their set-up and binding, the lock-free stacks that hold
 * their cached and abandoned segments, the slots that hold lists of small
 * blocks handed between their threads, taking a segment (from the cache,
 * else mapped) and giving one back, reserving, releasing an owned arena,
 * and purging the cache by the one retention rule (arena.h).
 *
 * Nothing here takes a lock: the stacks are lock-free (a pop tries for the
 * stack's flag and never waits), the slots are filled and emptied by one
 * atomic instruction each, and a purge that finds the cache taken by
 * another purge simply comes back later.
 *
 * May call the segment, chunk, policy, os and topology layers and the
 * options.
 */
#define _GNU_SOURCE
#include "segment.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "options.h"
#include "policy.h"

/* All zero at load (in .bss, so a process touches only the pages of it
 * that it uses: 46 KiB in .data were all resident, the kernel mapping a
 * file page's neighbours in with it); set up by nm_arenas_init. */
struct nm_process nm_proc;

/* ---- start-up ---------------------------------------------------------------- */

void nm_arenas_init(void)
{
    /* Respect a policy the process already has (numactl --membind/--interleave
     * /--preferred): binding our segments would override it. */
    int mode = NM_MPOL_DEFAULT;
    nm_proc.bind_segments = true;
    if (nm_os_get_mempolicy(&mode, NULL, NULL, 0) == 0 && mode != NM_MPOL_DEFAULT)
        nm_proc.bind_segments = false;
    /* One node: binding changes nothing, save the syscall. */
    if (nm_topo.node_count < 2) nm_proc.bind_segments = false;

    for (int i = 0; i < nm_topo.node_count; i++) {
        nm_nodemask one;
        memset(&one, 0, sizeof one);
        nm_mask_set(&one, nm_topo.node_id[i]);
        nm_arena_init(&nm_proc.nodes[i].local, i, nm_proc.bind_segments ? NM_MPOL_PREFERRED : -1, &one);
        nm_arena_init(&nm_proc.nodes[i].bound, i, NM_MPOL_BIND, &one);
        nm_arena_init(&nm_proc.nodes[i].first_touch, i, -1, NULL);
    }
}

void nm_arena_init(struct nm_arena *a, int node, int bind_mode, const nm_nodemask *nodes)
{
    memset(a, 0, sizeof *a);
    a->node = node;
    a->bind_mode = bind_mode;
    if (nodes) a->nodes = *nodes;
}

void nm_arena_init_policy(struct nm_arena *a, const nm_policy *p, int local)
{
    nm_nodemask mask;
    nm_policy_kernel_mask(p, &mask);
    int first = 0;
    while (first < NM_MASK_BITS - 1 && !nm_mask_test(&mask, first)) first++;
    int index = p->mode == NM_POLICY_LOCAL ? local : nm_topology_index(&nm_topo, first);
    nm_arena_init(a, index < 0 ? 0 : index, nm_policy_kernel_mode(p), &mask);
}

void nm_arena_after_fork(struct nm_arena *a)
{
    atomic_store(&a->cache.popping, false);
    atomic_store(&a->abandoned.popping, false);
}

void nm_arenas_after_fork(void)
{
    for (int i = 0; i < NM_MAX_NODES; i++) {
        nm_arena_after_fork(&nm_proc.nodes[i].local);
        nm_arena_after_fork(&nm_proc.nodes[i].bound);
        nm_arena_after_fork(&nm_proc.nodes[i].first_touch);
    }
    if (nm_proc.policy_arena) nm_arena_after_fork(nm_proc.policy_arena);
    if (nm_proc.interleave_arena) nm_arena_after_fork(nm_proc.interleave_arena);
    nm_chunk_after_fork();
}

/* ---- lists of small blocks handed between threads (arena.h: nm_transfer) --------------- */

static inline uint64_t transfer_pack(const struct nm_block *head, uint32_t count)
{
    return ((uint64_t)(uintptr_t)head >> 4) << 16 | count;
}

static inline struct nm_block *transfer_head(uint64_t packed)
{
    return (struct nm_block *)(uintptr_t)((packed >> 16) << 4);
}

/* Bit c of a->transfer_touched set, written only when it is not. */
static inline void transfer_touch(struct nm_arena *a, unsigned cls)
{
    uint64_t bit = 1ull << cls;
    if (!(atomic_load_explicit(&a->transfer_touched, memory_order_relaxed) & bit)) {
        atomic_fetch_or_explicit(&a->transfer_touched, bit, memory_order_relaxed);
        nm_purge_signal();   /* a purge gives the lists back if nobody takes them */
    }
}

bool nm_arena_transfer_put(struct nm_arena *a, unsigned cls, struct nm_block *head,
                           uint32_t count)
{
    uint64_t packed = transfer_pack(head, count);
    if (count == 0 || count > NM_TRANSFER_MAX_BLOCKS || transfer_head(packed) != head) return false;
    struct nm_transfer *t = &a->transfer[cls];
    for (int i = 0; i < NM_TRANSFER_SLOTS; i++) {
        uint64_t empty = 0;
        if (atomic_load_explicit(&t->slot[i], memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&t->slot[i], &empty, packed,
                                                    memory_order_release, memory_order_relaxed)) {
            transfer_touch(a, cls);
            return true;
        }
    }
    return false;
}

struct nm_block *nm_arena_transfer_drain(struct nm_arena *a, unsigned cls, uint32_t *count)
{
    struct nm_transfer *t = &a->transfer[cls];
    for (int i = 0; i < NM_TRANSFER_SLOTS; i++) {
        if (atomic_load_explicit(&t->slot[i], memory_order_relaxed) == 0) continue;
        uint64_t packed = atomic_exchange_explicit(&t->slot[i], 0, memory_order_acquire);
        if (packed == 0) continue;   /* another thread took it first */
        *count = (uint32_t)(packed & NM_TRANSFER_MAX_BLOCKS);
        return transfer_head(packed);
    }
    return NULL;
}

struct nm_block *nm_arena_transfer_take(struct nm_arena *a, unsigned cls, uint32_t *count)
{
    struct nm_block *head = nm_arena_transfer_drain(a, cls, count);
    if (head) transfer_touch(a, cls);
    return head;
}

uint64_t nm_arena_transfer_idle(struct nm_arena *a, bool force, bool *waiting)
{
    uint64_t touched = atomic_exchange_explicit(&a->transfer_touched, 0, memory_order_relaxed);
    uint64_t idle = 0;
    for (unsigned c = 0; c < NM_TRANSFER_CLASSES; c++) {
        if (!nm_arena_transfer_any(a, c)) continue;
        if (force || !(touched & (1ull << c))) idle |= 1ull << c;
        else *waiting = true;   /* in use: the next pass looks again */
    }
    return idle;
}

void nm_arena_transfer_forget(struct nm_arena *a)
{
    for (unsigned c = 0; c < NM_TRANSFER_CLASSES; c++)
        for (int i = 0; i < NM_TRANSFER_SLOTS; i++)
            atomic_store_explicit(&a->transfer[c].slot[i], 0, memory_order_relaxed);
    atomic_store_explicit(&a->transfer_touched, 0, memory_order_relaxed);
}

/* ---- lock-free node stacks ------------------------------------------------------- */

void nm_stack_push(struct nm_stack *st, struct nm_segment *s)
{
    struct nm_segment *top = atomic_load_explicit(&st->top, memory_order_relaxed);
    do {
        s->stack_next = top;
    } while (!atomic_compare_exchange_weak_explicit(&st->top, &top, s, memory_order_release,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&st->count, 1, memory_order_relaxed);
}

/* Win the pop flag (nm_flag_try: a pop holds it for a few instructions;
 * nobody waits for a holder that a fork or a signal stopped). */
static bool stack_try_enter(struct nm_stack *st)
{
    if (atomic_load_explicit(&st->top, memory_order_relaxed) == NULL) return false;
    return nm_flag_try(&st->popping);
}

static void stack_leave(struct nm_stack *st) { nm_flag_release(&st->popping); }

struct nm_segment *nm_stack_pop(struct nm_stack *st)
{
    if (!stack_try_enter(st)) return NULL;
    /* Only pushes race with us, and they never remove `top`, so reading
     * top->stack_next is safe and the CAS cannot suffer ABA. */
    struct nm_segment *top = atomic_load_explicit(&st->top, memory_order_acquire);
    while (top && !atomic_compare_exchange_weak_explicit(&st->top, &top, top->stack_next,
                                                         memory_order_acquire,
                                                         memory_order_acquire)) {
    }
    stack_leave(st);
    if (top) atomic_fetch_sub_explicit(&st->count, 1, memory_order_relaxed);
    return top;
}

struct nm_segment *nm_stack_take_all(struct nm_stack *st)
{
    if (!stack_try_enter(st)) return NULL;
    struct nm_segment *all = atomic_exchange_explicit(&st->top, NULL, memory_order_acquire);
    stack_leave(st);
    for (struct nm_segment *s = all; s; s = s->stack_next)
        atomic_fetch_sub_explicit(&st->count, 1, memory_order_relaxed);
    return all;
}

bool nm_stack_visit(struct nm_stack *st, void (*visit)(struct nm_segment *s, void *arg), void *arg)
{
    if (!stack_try_enter(st)) return false;
    for (struct nm_segment *s = atomic_load_explicit(&st->top, memory_order_acquire); s;
         s = s->stack_next)
        visit(s, arg);
    stack_leave(st);
    return true;
}

/* ---- segments of an arena ------------------------------------------------------------- */

struct nm_segment *nm_arena_take_segment(struct nm_arena *a, enum nm_segment_kind kind)
{
    struct nm_node_state *ns = &nm_proc.nodes[a->node];
    struct nm_segment *s = nm_stack_pop(&a->cache);
    bool fresh = !s;
    if (s) {
        atomic_fetch_sub_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
    } else {
        /* A new member of an owned arena counts against its limit. */
        if (!nm_arena_charge(a, NM_SEGMENT_SIZE)) return NULL;
        s = nm_segment_map_memory(NM_SEGMENT_SIZE, NM_SEGMENT_SIZE, a, NULL,
                                  nm_map_segment_kind(kind));
        if (!s) {
            nm_arena_uncharge(a, NM_SEGMENT_SIZE);
            return NULL;
        }
    }
    if (nm_segment_format(s, a, kind, fresh) != 0) {   /* past the commit limit (os.h) */
        /* Only a segment of an arena that is not owned (an owned one keeps
         * its members mapped) can be given back here: the owned one waits
         * in the cache. */
        if (a->owned) {
            s->cached_ms = nm_os_now_ms();
            atomic_fetch_add_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
            nm_stack_push(&a->cache, s);
        } else {
            nm_segment_unmap_memory(s, NM_SEGMENT_SIZE, a->node);
        }
        errno = ENOMEM;
        return NULL;
    }
    atomic_fetch_add_explicit(&ns->segments, 1, memory_order_relaxed);
    return s;
}

void nm_arena_cache_segment(struct nm_segment *s)
{
    nm_arena_cache_segment_since(s, nm_os_now_ms());
}

void nm_arena_cache_segment_since(struct nm_segment *s, uint64_t since_ms)
{
    struct nm_arena *a = s->arena;   /* once pushed, the segment is another thread's */
    struct nm_node_state *ns = &nm_proc.nodes[a->node];
    nm_segment_set_thread(s, 0);
    atomic_store_explicit(&s->heap, NULL, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ns->segments, 1, memory_order_relaxed);
    /* Purged pages of the segment were counted as decommitted; from here on
     * the segment counts as a whole (cached, or gone). */
    size_t purged = 0;
    for (uint64_t bits = s->decommitted_pages; bits; bits &= bits - 1) {
        uint8_t *start;
        size_t len;
        nm_page_area(s, (size_t)__builtin_ctzll(bits), &start, &len);
        purged += len;
    }
    atomic_fetch_sub_explicit(&ns->decommitted, purged, memory_order_relaxed);
    if (nm_opt.purge_delay_ms == 0 && nm_opt.cache_bytes == 0 && !a->owned) {
        nm_segment_unmap_memory(s, s->size, s->node);
        atomic_fetch_add_explicit(&nm_proc.counters.purges, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&nm_proc.counters.purged_bytes, NM_SEGMENT_SIZE, memory_order_relaxed);
        return;
    }
    nm_segment_uncommit_pages(s);
    s->cached_ms = since_ms;
    atomic_fetch_add_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
    nm_stack_push(&a->cache, s);
    nm_purge_signal();
}

void nm_arena_abandon(struct nm_segment *s)
{
    nm_segment_set_thread(s, 0);
    atomic_store_explicit(&s->heap, NULL, memory_order_release);
    s->heap_next = s->heap_prev = NULL;
    atomic_fetch_add_explicit(&nm_proc.counters.abandoned, 1, memory_order_relaxed);
    nm_stack_push(&s->arena->abandoned, s);
}

struct nm_segment *nm_arena_take_abandoned(struct nm_arena *a)
{
    struct nm_segment *s = nm_stack_pop(&a->abandoned);
    if (s) atomic_fetch_add_explicit(&nm_proc.counters.reclaimed, 1, memory_order_relaxed);
    return s;
}

/* ---- releasing an owned arena -------------------------------------------------------------- */

/* A member segment no heap owns and with no page in use is in the arena's
 * cache (its memory counted in `cached`); every other one has an owner or
 * pages in use (counted in `segments` and, per page, in_use). */
static bool segment_is_cached(struct nm_segment *s)
{
    return !atomic_load_explicit(&s->heap, memory_order_relaxed) && !s->pages_used;
}

/* Bytes of the pages of `s` serving a class. */
static uint64_t segment_in_use_bytes(struct nm_segment *s)
{
    uint64_t bytes = 0;
    for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1)
        if (s->pages[__builtin_ctzll(in_use)].state != NM_PAGE_FREE)
            bytes += (size_t)1 << s->page_shift;
    return bytes;
}

/* Segment `s` (not cached) no longer counts on node `ns`: the segment, its
 * pages in use and their classes. */
static void segment_uncount(struct nm_segment *s, struct nm_node_state *ns)
{
    atomic_fetch_sub_explicit(&ns->segments, 1, memory_order_relaxed);
    for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1) {
        const struct nm_page *pg = &s->pages[__builtin_ctzll(in_use)];
        if (pg->state != NM_PAGE_FREE)
            atomic_fetch_sub_explicit(&nm_proc.class_pages[pg->size_class], 1, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&ns->in_use, segment_in_use_bytes(s), memory_order_relaxed);
}

void nm_arena_release(struct nm_arena *a)
{

    struct nm_node_state *ns = &nm_proc.nodes[a->node];
    /* What the counters hold for each range: cached, live segments (and
     * their pages in use), live large blocks. */
    for (struct nm_segment *s = nm_stack_take_all(&a->cache); s; s = s->stack_next)
        atomic_fetch_sub_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
    struct nm_segment *segments = atomic_exchange_explicit(&a->members, NULL, memory_order_acquire);
    struct nm_segment *spans = atomic_exchange_explicit(&a->spans, NULL, memory_order_acquire);
    for (struct nm_segment *s = spans, *next; s; s = next) {
        next = s->member_next;
        if (atomic_load_explicit(&s->large_state, memory_order_relaxed) == NM_LARGE_LIVE)
            nm_node_span_uncount(ns, s->block_size);
        nm_segment_unmap_memory(s, s->size, a->node);
    }
    struct nm_segment *s = segments;
    while (s) {
        struct nm_segment *next = s->member_next;
        if (!segment_is_cached(s)) segment_uncount(s, ns);
        nm_segment_unmap_memory(s, s->size, a->node);
        s = next;
    }
    atomic_store_explicit(&a->abandoned.top, NULL, memory_order_relaxed);
    atomic_store_explicit(&a->charged, 0, memory_order_relaxed);
}

/* ---- emptying an owned arena ---------------------------------------------------------------- */

/* Bytes of the pages of `s` marked given back (decommitted_pages). */
static uint64_t segment_decommitted_bytes(struct nm_segment *s)
{
    uint64_t bytes = 0;
    uint64_t valid = s->page_count >= 64 ? ~0ull : (1ull << s->page_count) - 1;
    for (uint64_t bits = atomic_load_explicit(&s->decommitted_pages, memory_order_relaxed) & valid;
         bits; bits &= bits - 1) {
        uint8_t *start;
        size_t len;
        nm_page_area(s, (size_t)__builtin_ctzll(bits), &start, &len);
        bytes += len;
    }
    return bytes;
}

void nm_arena_empty(struct nm_arena *a)
{
    struct nm_node_state *ns = &nm_proc.nodes[a->node];
    /* Cached segments stay as they are; abandoned ones are members too,
     * emptied below with the heaps' own. */
    struct nm_segment *cached = nm_stack_take_all(&a->cache);
    (void)nm_stack_take_all(&a->abandoned);
    uint64_t now = nm_os_now_ms();
    for (struct nm_segment *s = atomic_load_explicit(&a->members, memory_order_acquire); s;
         s = s->member_next) {
        if (segment_is_cached(s)) continue;
        /* What nm_arena_release uncounts for it, and what nm_arena_cache_segment
         * does with its given-back pages: from here on it counts as cached. */
        segment_uncount(s, ns);
        atomic_fetch_sub_explicit(&ns->decommitted, segment_decommitted_bytes(s),
                                  memory_order_relaxed);
        /* Its pages' records go: a free of one of its old blocks finds no
         * block there (an invalid pointer).  The header of the segment's
         * own kind is writable already, so this cannot fail. */
        if (nm_segment_format(s, a, (enum nm_segment_kind)s->kind, false) != 0) continue;
        nm_segment_uncommit_pages(s);
        s->cached_ms = now;
        atomic_fetch_add_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
        nm_stack_push(&a->cache, s);
    }
    for (struct nm_segment *s = cached, *next; s; s = next) {
        next = s->stack_next;
        nm_stack_push(&a->cache, s);
    }
    nm_purge_signal();
}

/* ---- what an owned arena holds ------------------------------------------------------------ */

void nm_arena_stats(struct nm_arena *a, struct nm_heap_stats *out)
{
    memset(out, 0, sizeof *out);
    /* Members and spans are only ever pushed until the arena is released:
     * walking them is safe while its threads run. */
    for (struct nm_segment *s = atomic_load_explicit(&a->members, memory_order_acquire); s;
         s = s->member_next) {
        out->mapped += NM_SEGMENT_SIZE;
        out->committed += NM_SEGMENT_SIZE - segment_decommitted_bytes(s);
        if (segment_is_cached(s)) continue;
        /* Read once and bounded: another thread may be formatting it. */
        uint32_t pages = __atomic_load_n(&s->page_count, __ATOMIC_RELAXED);
        if (pages > NM_MAX_PAGES) pages = NM_MAX_PAGES;
        for (uint32_t i = 0; i < pages; i++) {
            const struct nm_page *pg = &s->pages[i];
            if (__atomic_load_n(&pg->state, __ATOMIC_RELAXED) == NM_PAGE_FREE) continue;
            uint64_t used = __atomic_load_n(&pg->used, __ATOMIC_RELAXED);
            out->blocks += used;
            out->in_use += used * __atomic_load_n(&pg->block_size, __ATOMIC_RELAXED);
        }
    }
    for (struct nm_segment *s = atomic_load_explicit(&a->spans, memory_order_acquire); s;
         s = s->member_next) {
        out->mapped += s->size;
        bool live = atomic_load_explicit(&s->large_state, memory_order_relaxed) == NM_LARGE_LIVE;
        size_t committed = NM_OS_PAGE + (live ? s->committed : 0);
        out->committed += committed < s->size ? committed : s->size;
        if (!live) continue;
        out->blocks++;
        /* A block the heap profiler sampled has a span of its own whatever
         * its size (prof.h). */
        if (!nm_span_stands_for_heap_block(s)) out->large_blocks++;
        out->in_use += s->block_size;   /* its usable size (nm_usable_size) */
    }
    out->charged = atomic_load_explicit(&a->charged, memory_order_relaxed);
    out->limit = atomic_load_explicit(&a->limit, memory_order_relaxed);
}

/* ---- moving an owned arena -------------------------------------------------------------- */

#define MOVE_BATCH 512      /* pages asked about per move_pages call */

/* Where policy `p` (nodes in ascending order in `set`, `n` of them) puts
 * the page at `addr` that sits on kernel node `on`: a node id, or -1 when
 * it may stay (numamalloc.h: nm_heap_migrate). */
static int move_target(const nm_policy *p, const int *set, int n, uintptr_t addr, int on)
{
    switch (p->mode) {
    case NM_POLICY_LOCAL:
        return -1;
    case NM_POLICY_PREFERRED:
        return on == set[0] ? -1 : set[0];
    case NM_POLICY_INTERLEAVE:
    case NM_POLICY_WEIGHTED_INTERLEAVE:
        if (nm_nodeset_has(&p->nodes, on)) return -1;
        return set[(addr / NM_OS_PAGE) % (size_t)n];
    default: {   /* bind, preferred-many: the nearest node of the set */
        if (nm_nodeset_has(&p->nodes, on)) return -1;
        int from = nm_topology_index(&nm_topo, on), best = set[0], best_d = 1 << 30;
        for (int i = 0; from >= 0 && i < n; i++) {
            int to = nm_topology_index(&nm_topo, set[i]);
            int d = to < 0 ? 1 << 29 : nm_topo.distance[from][to];
            if (d < best_d) {
                best_d = d;
                best = set[i];
            }
        }
        return best;
    }
    }
}

static void move_failed(struct nm_migrate_report *r, int error)
{
    r->not_moved++;
    if (error == EBUSY || error == EAGAIN) r->busy++;
    else if (error == ENOMEM) r->no_memory++;
    else r->other++;
    r->last_error = error;
}

/* Move the resident pages of [start, start + len) that `p` wants elsewhere. */
static void move_range(char *start, size_t len, const nm_policy *p, const int *set, int n,
                       struct nm_migrate_report *r)
{
    for (size_t done = 0; done < len;) {
        void *pages[MOVE_BATCH], *moving[MOVE_BATCH];
        int status[MOVE_BATCH], targets[MOVE_BATCH];
        size_t count = 0, moves = 0;
        for (; count < MOVE_BATCH && done < len; count++, done += NM_OS_PAGE)
            pages[count] = start + done;
        if (nm_os_move_pages(count, pages, NULL, status, 0) < 0) continue;   /* cannot look */
        for (size_t i = 0; i < count; i++) {
            if (status[i] < 0) continue;   /* not resident */
            r->resident++;
            int target = move_target(p, set, n, (uintptr_t)pages[i], status[i]);
            if (target < 0) continue;
            moving[moves] = pages[i];
            targets[moves++] = target;
        }
        if (!moves) continue;
        r->asked += moves;
        if (nm_os_move_pages(moves, moving, targets, status, NM_MPOL_MF_MOVE) < 0) {
            int error = errno;
            for (size_t i = 0; i < moves; i++) move_failed(r, error);
            continue;
        }
        /* A page of a huge page answers EBUSY once the whole huge page
         * moved with an earlier one: look again where the others are. */
        size_t again = 0;
        int first[MOVE_BATCH];
        for (size_t i = 0; i < moves; i++) {
            if (status[i] == targets[i]) {
                r->moved++;
                continue;
            }
            moving[again] = moving[i];
            targets[again] = targets[i];
            first[again++] = status[i] < 0 ? -status[i] : EINVAL;
        }
        if (!again) continue;
        if (nm_os_move_pages(again, moving, NULL, status, 0) < 0)
            for (size_t i = 0; i < again; i++) status[i] = -1;
        for (size_t i = 0; i < again; i++) {
            if (status[i] == targets[i]) r->moved++;
            else move_failed(r, first[i]);
        }
    }
}

/* Move the counters of range `s` (a member segment or a span of arena
 * `a`) from node index `from` to `to`. */
static void recharge(struct nm_segment *s, bool span, int from, int to)
{
    struct nm_node_state *old = &nm_proc.nodes[from], *now = &nm_proc.nodes[to];
    atomic_fetch_sub_explicit(&old->mapped, s->size, memory_order_relaxed);
    atomic_fetch_add_explicit(&now->mapped, s->size, memory_order_relaxed);
    s->node = (uint16_t)to;
    if (span) {
        if (atomic_load_explicit(&s->large_state, memory_order_relaxed) != NM_LARGE_LIVE) return;
        nm_node_span_uncount(old, s->block_size);
        nm_node_span_count(now, s->block_size);
        return;
    }
    if (segment_is_cached(s)) {
        atomic_fetch_sub_explicit(&old->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
        atomic_fetch_add_explicit(&now->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
        return;
    }
    atomic_fetch_sub_explicit(&old->segments, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&now->segments, 1, memory_order_relaxed);
    uint64_t given_back = segment_decommitted_bytes(s);
    atomic_fetch_sub_explicit(&old->decommitted, given_back, memory_order_relaxed);
    atomic_fetch_add_explicit(&now->decommitted, given_back, memory_order_relaxed);
    uint64_t in_use = segment_in_use_bytes(s);
    atomic_fetch_sub_explicit(&old->in_use, in_use, memory_order_relaxed);
    nm_node_use(now, in_use);
}

bool nm_arena_migrate(struct nm_arena *a, const nm_policy *p, int node, struct nm_migrate_report *r)
{
    memset(r, 0, sizeof *r);
    int set[NM_MAX_NODES];
    int n = 0;
    for (int id = 0; id < NM_NODE_ID_LIMIT && n < NM_MAX_NODES; id++)
        if (nm_nodeset_has(&p->nodes, id)) set[n++] = id;
    if (n == 0 && p->mode != NM_POLICY_LOCAL) return true;   /* checked by the caller */
    struct nm_segment *lists[2] = { atomic_load_explicit(&a->members, memory_order_acquire),
                                    atomic_load_explicit(&a->spans, memory_order_acquire) };
    /* The binding first, so that no page faulted in from here on lands
     * where the old one put it; then the pages already there. */
    for (int k = 0; k < 2; k++)
        for (struct nm_segment *s = lists[k]; s; s = s->member_next)
            (void)nm_policy_apply(s, s->size, p, 0);
    a->bind_mode = nm_policy_kernel_mode(p);
    nm_policy_kernel_mask(p, &a->nodes);
    for (int k = 0; k < 2; k++)
        for (struct nm_segment *s = lists[k]; s; s = s->member_next)
            move_range((char *)s, s->size, p, set, n, r);
    if (node != a->node) {
        for (int k = 0; k < 2; k++)
            for (struct nm_segment *s = lists[k]; s; s = s->member_next)
                recharge(s, k == 1, a->node, node);
        a->node = node;
    }
    return r->not_moved == 0;
}

/* ---- mapping failures ------------------------------------------------------------------ */

bool nm_arena_release_for_retry(size_t size)
{
    void (*release)(void) = atomic_load_explicit(&nm_proc.purge.release, memory_order_acquire);
    bool retry = release && nm_os_commit_possible(size);
    if (retry) {
        atomic_fetch_add_explicit(&nm_proc.counters.map_retries, 1, memory_order_relaxed);
        release();
    }
    errno = ENOMEM;
    return retry;
}

/* ---- reserving ------------------------------------------------------------------------ */

int nm_arena_reserve(struct nm_arena *a, size_t bytes)
{
    struct nm_node_state *ns = &nm_proc.nodes[a->node];
    uint64_t now = nm_os_now_ms();
    bool retried = false;
    for (size_t done = 0; done < bytes; done += NM_SEGMENT_SIZE) {
        struct nm_segment *s =
            nm_segment_map_memory(NM_SEGMENT_SIZE, NM_SEGMENT_SIZE, a, NULL, NM_MAP_SEGMENT_SMALL);
        if (!s && !retried && nm_arena_release_for_retry(NM_SEGMENT_SIZE)) {
            retried = true;
            s = nm_segment_map_memory(NM_SEGMENT_SIZE, NM_SEGMENT_SIZE, a, NULL,
                                      NM_MAP_SEGMENT_SMALL);
        }
        if (!s) return -1;
        if (nm_segment_commit_all(s) != 0) {   /* past the commit limit (os.h) */
            nm_segment_unmap_memory(s, NM_SEGMENT_SIZE, a->node);
            errno = ENOMEM;
            return -1;
        }
        (void)nm_os_populate(s, NM_SEGMENT_SIZE);
        s->arena = a;
        s->reserved = true;
        s->cached_ms = now;
        atomic_fetch_add_explicit(&ns->reserved, NM_SEGMENT_SIZE, memory_order_relaxed);
        atomic_fetch_add_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
        nm_stack_push(&a->cache, s);
    }
    return 0;
}

/* ---- purging the node cache ---------------------------------------------------------- */

bool nm_arena_cache_purge(struct nm_arena *a, uint64_t now_ms, bool force)
{
    int node = a->node;
    struct nm_node_state *ns = &nm_proc.nodes[node];
    bool waiting = false;
    atomic_store_explicit(&a->next_purge_ms, now_ms + (nm_opt.purge_delay_ms / 2) + 1,
                          memory_order_relaxed);
    struct nm_segment *all = nm_stack_take_all(&a->cache);
    if (!all && atomic_load_explicit(&a->cache.count, memory_order_relaxed) > 0)
        waiting = true;   /* another thread is at it */
    if (force) atomic_store_explicit(&ns->reserved, 0, memory_order_relaxed);
    /* A segment goes back once it has waited the purge delay
     * (nm_purge_due), or at once while the node caches more than the cache
     * limit beyond its reserved memory (nm_reserve), which stays until
     * forced. */
    for (struct nm_segment *s = all, *next; s; s = next) {
        next = s->stack_next;
        uint64_t over = atomic_load_explicit(&ns->reserved, memory_order_relaxed) +
                        nm_opt.cache_bytes;
        bool due = nm_purge_due(s->cached_ms, now_ms, nm_opt.purge_delay_ms, force) ||
                   atomic_load_explicit(&ns->cached, memory_order_relaxed) > over;
        if (a->strict ||
            (s->reserved && atomic_load_explicit(&ns->reserved, memory_order_relaxed) > 0)) {
            nm_stack_push(&a->cache, s);   /* kept committed */
        } else if (due && a->owned) {
            /* Owned arenas keep their ranges: give back the pages only. */
            if (!atomic_load_explicit(&s->decommitted_pages, memory_order_relaxed)) {
                nm_os_decommit((char *)s + NM_OS_PAGE, NM_SEGMENT_SIZE - NM_OS_PAGE);
                atomic_store_explicit(&s->decommitted_pages, ~0ull, memory_order_relaxed);
                atomic_fetch_add_explicit(&nm_proc.counters.purges, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&nm_proc.counters.purged_bytes, NM_SEGMENT_SIZE,
                                          memory_order_relaxed);
            }
            nm_stack_push(&a->cache, s);
        } else if (due) {
            atomic_fetch_sub_explicit(&ns->cached, NM_SEGMENT_SIZE, memory_order_relaxed);
            nm_segment_unmap_memory(s, NM_SEGMENT_SIZE, node);
            atomic_fetch_add_explicit(&nm_proc.counters.purges, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&nm_proc.counters.purged_bytes, NM_SEGMENT_SIZE,
                                      memory_order_relaxed);
        } else {
            waiting = true;
            nm_stack_push(&a->cache, s);
        }
    }
    nm_chunk_sweep(&a->chunks);
    return waiting;
}

/* ---- the background purge's start, and purging without it -------------------------------- */

/* The calling thread's passes in progress (nested: an nm_trim from a
 * signal handler that stopped a pass).  It counts a pass before `running`
 * does and stops counting it after: a handler on this thread that reads it
 * never finds its own pass in `running` uncounted here, so it never waits
 * for itself. */
static __thread uint32_t tls_passes __attribute__((tls_model("initial-exec")));

void nm_purge_pass_begin(void)
{
    tls_passes++;
    atomic_signal_fence(memory_order_seq_cst);
    atomic_fetch_add(&nm_proc.purge.running, 1);
}

void nm_purge_pass_end(void)
{
    atomic_fetch_sub(&nm_proc.purge.running, 1);
    atomic_signal_fence(memory_order_seq_cst);
    tls_passes--;
}

void nm_purge_wait_passes(uint64_t timeout_ms)
{
    uint64_t until = nm_os_now_ms() + timeout_ms;
    while (atomic_load(&nm_proc.purge.running) > tls_passes &&
           (!timeout_ms || nm_os_now_ms() < until))
        sched_yield();
}

void nm_purge_passes_after_fork(void)
{
    atomic_store(&nm_proc.purge.running, tls_passes);
}

/* How often a safe point may count the program's threads in /proc while
 * no purge thread runs: a few microseconds each, at most 100 a second,
 * and only in a program that has created a thread.  Short, because the
 * program may stop reaching slow paths soon after its second thread
 * appears (pthread_create's own allocation comes before the thread). */
#define NM_THREAD_LOOK_MS 10

void nm_purge_at_safe_point(void)
{
    struct nm_purge_clock *c = &nm_proc.purge;
    void (*start)(void) = atomic_load_explicit(&c->start, memory_order_acquire);
    if (start && atomic_load(&c->state) == 0) {
        /* A second thread of the program: the program's own with a heap,
         * or any (threads that never allocate have none), counted in /proc
         * at most every NM_THREAD_LOOK_MS once the C library says a thread
         * was created (never before), and at once when memory starts
         * waiting (nm_purge_signal). */
        bool several = atomic_load(&c->threads) >= 2;
        if (!several && !nm_os_never_threaded()) {
            uint64_t now = nm_os_now_ms();
            if (now >= atomic_load_explicit(&c->next_count_ms, memory_order_relaxed)) {
                atomic_store_explicit(&c->next_count_ms, now + NM_THREAD_LOOK_MS,
                                      memory_order_relaxed);
                several = nm_os_thread_count() - (int)atomic_load(&c->helpers) >= 2;
            }
        }
        if (several) start();
    }
    /* A single-threaded program with nothing waiting gets here on every
     * slow path: it reads no clock. */
    if (atomic_load(&c->state) == 1 || !atomic_load(&c->waiting)) return;
    uint64_t now = nm_os_now_ms();
    bool (*pass)(uint64_t, bool) = atomic_load_explicit(&c->pass, memory_order_acquire);
    if (!pass || now < atomic_load_explicit(&c->next_pass_ms, memory_order_relaxed)) return;
    atomic_store_explicit(&c->next_pass_ms, now + nm_purge_tick_ms(), memory_order_relaxed);
    atomic_store(&c->waiting, 0);
    if (pass(now, false)) atomic_store(&c->waiting, 1);
}
