/*
 * large.c — large and huge blocks, each in its own node-bound span, and the
 * per-node cache of freed spans.
 *
 * Without an explicit policy a large block is not bound: its pages go to
 * the nodes of the threads that first write them (the kernel's local
 * policy), and stay there when the span is cached, reused or grown.
 *
 * The cache is an array of 64 slots per node (as many spans as the node
 * cache limit holds at 4 MiB each), for spans up to an eighth of that
 * limit: bigger ones go back when freed.  A span waits for a block of its
 * own arena (first-touch, a node's bound or local arena, a policy's; not
 * an owned arena's, which keeps its spans itself).  A block takes the
 * cached span of its arena that fits it with the fewest committed pages that still cover it (else
 * the one with the most), keeps them up to twice its size and gives back
 * the rest.  The committed bytes the cache holds follow the demand: a
 * floor plus what large blocks recently took from it or would have
 * (struct large_demand).  A slot is claimed with a
 * compare-and-swap to NULL, so a span is only ever touched by the one thread
 * that claimed it, and can be unmapped safely: no lock, no ABA.  Cached
 * spans go back by the one retention rule (arena.h: nm_purge_due), from
 * the background purge, or from here when there is none.
 *
 * May call the segment, topology and os layers and the options.
 */
#define _GNU_SOURCE
#include "large.h"

#include <errno.h>
#include <string.h>

#include "options.h"

#define NM_LARGE_CACHE_SLOTS 64
#define NM_LARGE_CACHE_MAX_SPAN (256 * NM_MiB)   /* larger spans are never cached */
#define NM_LARGE_CACHE_SHARE 8      /* nor spans above the node cache limit / 8 */
#define NM_LARGE_KEEP 2             /* a reused span keeps 2x its new block committed, */
#define NM_LARGE_KEEP_MIN (2 * NM_MiB)  /* and at least this */
#define NM_LARGE_CLEAR_MAX (8 * NM_MiB) /* a calloc of a smaller block clears it by writing */

#define NM_LARGE_CACHE_FLOOR (4 * NM_MiB)   /* cached whatever the demand */
#define NM_LARGE_GHOSTS 32          /* spans given back that a node remembers */

/* How much of a node's freed spans the cache keeps: NM_LARGE_CACHE_FLOOR
 * plus the demand, the bytes of large blocks that took a span from the
 * cache, or that a span given back for want of room would have served, in
 * the current and the previous purge delay (two buckets, by the clock
 * divided by the delay).  A span freed beyond that goes back at once and is
 * remembered (`ghost`: its size and block offset, newest first over the
 * oldest) for a purge delay.  So a program whose big blocks come back in
 * rounds (the same sizes allocated, freed and allocated again) finds them
 * cached from its second round on, and one whose big blocks only grow (a
 * vector or a hash table doubling: each block is bigger than every one
 * freed before) holds no more than the floor in freed spans.  Counts are
 * relaxed and may race: they steer a cache, they guard nothing.
 *   ghost_span[i] = span size | (block offset == NM_HUGE_MIN), 0: none */
struct large_demand {
    _Atomic size_t held;            /* committed bytes of the spans in the cache */
    _Atomic uint64_t epoch;         /* clock / purge delay of the current bucket */
    _Atomic size_t bucket[2];       /* demand of epochs with that parity */
    _Atomic size_t ghost_span[NM_LARGE_GHOSTS];
    _Atomic uint64_t ghost_ms[NM_LARGE_GHOSTS];
    _Atomic unsigned ghost_next;
};

/* Hints, written before the slot is filled and read without claiming it:
 * the span's arena, size, block offset and committed bytes.  A span is
 * only ever reused by a block of its own arena (its binding is the one
 * the block asks for). */
struct large_cache {
    _Atomic(struct nm_segment *) slot[NM_LARGE_CACHE_SLOTS];
    _Atomic(struct nm_arena *) slot_arena[NM_LARGE_CACHE_SLOTS];
    _Atomic size_t slot_size[NM_LARGE_CACHE_SLOTS];
    _Atomic size_t slot_offset[NM_LARGE_CACHE_SLOTS];
    _Atomic size_t slot_committed[NM_LARGE_CACHE_SLOTS];
    struct large_demand demand;
};
static struct large_cache caches[NM_MAX_NODES];

/* A span of `size` bytes with `committed` of them committed enters or
 * leaves the cache of `node`: counted in the node's `cached` (nm_stats,
 * the spans' size) and in what the cache holds (their committed bytes;
 * s->committed does not change while a span is cached). */
static void cache_count(int node, size_t size, size_t committed, bool enters)
{
    if (enters) {
        atomic_fetch_add_explicit(&nm_proc.nodes[node].cached, size, memory_order_relaxed);
        atomic_fetch_add_explicit(&caches[node].demand.held, committed, memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&nm_proc.nodes[node].cached, size, memory_order_relaxed);
        atomic_fetch_sub_explicit(&caches[node].demand.held, committed, memory_order_relaxed);
    }
}

/* ---- layout ----------------------------------------------------------------------- */

struct span_layout {
    size_t offset;      /* block offset in the span */
    size_t usable;      /* block bytes */
    size_t size;        /* span bytes (multiple of 4 MiB) */
    size_t align;       /* alignment of the span's start */
};

/* Secure mode: a guard page (no access) right after a live block's last
 * page, inside its span; taken away when the block is freed, so a cached
 * span serves a bigger block. */
static size_t span_guard_size(void)
{
    return nm_proc.secure ? NM_OS_PAGE : 0;
}

static void span_guard(struct nm_segment *s, bool on)
{
    if (!nm_proc.secure || s->hugetlb) return;   /* hugetlb pages cannot be split */
    void *guard = (char *)nm_large_block(s) + s->block_size;
    if (on) nm_os_guard(guard, NM_OS_PAGE);
    /* Under strict overcommit a page past the writable part stays PROT_NONE
     * (making it writable would charge it; span_commit does when needed). */
    else if (s->writable == SIZE_MAX || s->block_size + NM_OS_PAGE <= s->writable)
        nm_os_unguard(guard, NM_OS_PAGE);
}

/* The bytes of a block of `usable` bytes that get transparent huge pages:
 * its whole huge pages, from its start (2 MiB aligned) to its size rounded
 * down to 2 MiB.  The huge page that would hold the block's last bytes
 * would also hold up to 2 MiB the block does not have (a 3 MiB block cost
 * 4 MiB; in a memory cgroup the difference counts). */
static size_t thp_extent(size_t usable)
{
    return usable & ~(NM_HUGE_PAGE - 1);
}

/* The huge-page advice of span `s`'s block space goes from covering
 * [0, from) to covering [0, to) (segment.h: thp). */
static void span_thp_advise(const struct nm_segment *s, size_t from, size_t to)
{
    if (!s->thp || from == to) return;
    char *block = nm_large_block(s);
    if (to > from) nm_os_use_thp(block + from, to - from);
    else nm_os_no_thp(block + to, from - to);
}

static bool span_layout(size_t size, size_t alignment, struct span_layout *l)
{
    if (size == 0) size = 1;   /* a block of its own, inside its span */
    bool huge = size >= NM_HUGE_MIN;
    l->usable = nm_align_up(size, huge && nm_opt.hugepages == NM_HUGEPAGES_HUGETLB
                                      ? NM_HUGE_PAGE : NM_OS_PAGE);
    l->align = NM_SEGMENT_SIZE;
    l->offset = huge ? NM_HUGE_MIN : NM_OS_PAGE;
    if (alignment > l->offset) l->offset = alignment;
    if (alignment > NM_SEGMENT_SIZE) l->align = alignment;   /* block = start + alignment */
    if (l->usable < size || l->offset + l->usable < l->usable) return false;
    size_t end = l->offset + l->usable + span_guard_size();
    l->size = nm_align_up(end, NM_SEGMENT_SIZE);
    return end > l->usable && l->size >= end;
}

/* ---- the cache ---------------------------------------------------------------------- */

/* Whether a span of `span_size` bytes with its block at `block_offset` can
 * serve a block of layout `l`: its reserved space holds the block at the
 * same offset.  The one rule for cached spans and remembered ones. */
static bool span_fits(size_t span_size, size_t block_offset, const struct span_layout *l)
{
    return span_size >= l->size && block_offset == l->offset;
}

static uint64_t demand_epoch(uint64_t now_ms)
{
    return nm_opt.purge_delay_ms ? now_ms / nm_opt.purge_delay_ms : now_ms;
}

/* Large blocks of `bytes` were (or would have been) served by the cache.
 * The epoch only moves forward: a thread whose clock reading is older
 * than the current epoch (it read the clock before a slow call) adds to
 * the previous bucket, or nowhere if even older. */
static void demand_add(struct large_demand *d, size_t bytes, uint64_t now_ms)
{
    uint64_t now = demand_epoch(now_ms);
    uint64_t epoch = atomic_load_explicit(&d->epoch, memory_order_relaxed);
    if (now > epoch && atomic_compare_exchange_strong(&d->epoch, &epoch, now)) {
        /* A new epoch: its bucket starts empty; the other one holds the
         * previous epoch's demand, if that was the one just before. */
        atomic_store_explicit(&d->bucket[now & 1], 0, memory_order_relaxed);
        if (now != epoch + 1) atomic_store_explicit(&d->bucket[(now + 1) & 1], 0, memory_order_relaxed);
    } else if (now + 1 < epoch) {
        return;
    }
    atomic_fetch_add_explicit(&d->bucket[now & 1], bytes, memory_order_relaxed);
}

/* Bytes of freed spans the cache may hold now. */
static size_t demand_budget(struct large_demand *d, uint64_t now_ms)
{
    uint64_t now = demand_epoch(now_ms);
    uint64_t epoch = atomic_load_explicit(&d->epoch, memory_order_relaxed);
    size_t recent = 0;
    if (epoch >= now)   /* current (or moved on since the clock was read) */
        recent = atomic_load_explicit(&d->bucket[0], memory_order_relaxed) +
                 atomic_load_explicit(&d->bucket[1], memory_order_relaxed);
    else if (epoch + 1 == now)
        recent = atomic_load_explicit(&d->bucket[epoch & 1], memory_order_relaxed);
    return NM_LARGE_CACHE_FLOOR + recent;
}

/* Cached spans have no alignment of their own: their block is at
 * NM_OS_PAGE, or at NM_HUGE_MIN for a huge block, one bit in the key. */
static size_t ghost_key(size_t span_size, size_t block_offset)
{
    return span_size | (block_offset == NM_HUGE_MIN);
}

static bool ghost_fits(size_t key, const struct span_layout *l)
{
    return span_fits(key & ~(size_t)1, key & 1 ? NM_HUGE_MIN : NM_OS_PAGE, l);
}

/* Span `s` goes back for want of room in the cache: remember it. */
static void ghost_remember(struct large_demand *d, const struct nm_segment *s, uint64_t now_ms)
{
    unsigned i = atomic_fetch_add_explicit(&d->ghost_next, 1, memory_order_relaxed) % NM_LARGE_GHOSTS;
    atomic_store_explicit(&d->ghost_span[i], 0, memory_order_relaxed);
    atomic_store_explicit(&d->ghost_ms[i], now_ms, memory_order_relaxed);
    atomic_store_explicit(&d->ghost_span[i], ghost_key(s->size, s->block_offset),
                          memory_order_relaxed);
}

/* A block of layout `l` missed the cache: if a span given back within the
 * purge delay would have served it (span_fits), count it as demand, once. */
static void ghost_hit(struct large_demand *d, const struct span_layout *l, uint64_t now_ms)
{
    for (int i = 0; i < NM_LARGE_GHOSTS; i++) {
        size_t key = atomic_load_explicit(&d->ghost_span[i], memory_order_relaxed);
        /* Given back longer ago than the delay: it would have gone anyway. */
        if (!key || !ghost_fits(key, l) ||
            nm_purge_due(atomic_load_explicit(&d->ghost_ms[i], memory_order_relaxed), now_ms,
                         nm_opt.purge_delay_ms, false))
            continue;
        if (atomic_compare_exchange_strong(&d->ghost_span[i], &key, 0)) {
            demand_add(d, l->usable, now_ms);
            return;
        }
    }
}

static void span_unmap(struct nm_segment *s);

/* Put a claimed span back into the slot it came from; if another span took
 * the slot meanwhile, give this one back to the OS. */
static void slot_return(struct large_cache *c, int i, struct nm_segment *s)
{
    struct nm_segment *empty = NULL;
    if (atomic_compare_exchange_strong(&c->slot[i], &empty, s)) return;
    cache_count(s->node, s->size, s->committed, false);
    span_unmap(s);
}

/* Claim slot `i` of `c` if it holds a span of arena `a` for layout `l`
 * (span_fits).  The hints may be stale: the span itself decides, once
 * claimed. */
static bool slot_fits(struct large_cache *c, int i, const struct span_layout *l, const struct nm_arena *a)
{
    return atomic_load_explicit(&c->slot[i], memory_order_relaxed) &&
           atomic_load_explicit(&c->slot_arena[i], memory_order_relaxed) == a &&
           span_fits(atomic_load_explicit(&c->slot_size[i], memory_order_relaxed),
                     atomic_load_explicit(&c->slot_offset[i], memory_order_relaxed), l);
}

static struct nm_segment *slot_claim(struct large_cache *c, int i, const struct span_layout *l,
                                     const struct nm_arena *a)
{
    struct nm_segment *s = atomic_load_explicit(&c->slot[i], memory_order_acquire);
    if (!s || !atomic_compare_exchange_strong(&c->slot[i], &s, NULL)) return NULL;
    if (s->arena == a && span_fits(s->size, s->block_offset, l)) return s;
    slot_return(c, i, s);
    return NULL;
}

/* What taking a span with `committed` bytes committed costs a block of
 * `usable` bytes: if they cover it, the bytes beyond it (held, or given
 * back); if not, the bytes missing (page faults), ranked after every span
 * that covers it. */
static size_t span_take_cost(size_t committed, size_t usable)
{
    return committed >= usable ? committed - usable : SIZE_MAX / 2 + (usable - committed);
}

/* The cached span for a block of layout `l`: of those that fit, the
 * cheapest to take (span_take_cost: no page fault first, then the least
 * held beyond the block); if another thread claims that one first, any
 * that fits (a miss maps and faults a whole span). */
static struct nm_segment *cache_take(int node, const struct span_layout *l, const struct nm_arena *a)
{
    struct large_cache *c = &caches[node];
    int best = -1;
    size_t best_cost = SIZE_MAX;
    for (int i = 0; i < NM_LARGE_CACHE_SLOTS; i++) {
        if (!slot_fits(c, i, l, a)) continue;
        size_t cost = span_take_cost(atomic_load_explicit(&c->slot_committed[i], memory_order_relaxed),
                                     l->usable);
        if (cost < best_cost) {
            best = i;
            best_cost = cost;
        }
    }
    if (best < 0) return NULL;
    struct nm_segment *s = slot_claim(c, best, l, a);
    for (int i = 0; !s && i < NM_LARGE_CACHE_SLOTS; i++)
        if (slot_fits(c, i, l, a)) s = slot_claim(c, i, l, a);
    if (s) cache_count(node, s->size, s->committed, false);
    return s;
}

/* ---- committing on use ------------------------------------------------------------------
 *
 * Under strict accounting a span mapped by itself is space reserved
 * PROT_NONE, not charged (os.h, "Committing on use"): its header page is
 * committed when it is mapped, and its block's bytes [0, writable) as blocks
 * reach them.  Every place a block grows (a fresh or reused span, a resize
 * in place, a move) commits first; every place that gives a block's pages
 * back from some byte on (span_give_back) gives their charge back too.  A
 * span whose `writable` is SIZE_MAX (any span in the other modes, hugetlb
 * and strict arenas' spans) never calls the os layer for this. */

/* Make the block's first `bytes` writable.  False (errno ENOMEM) past the
 * commit limit. */
static bool span_commit(struct nm_segment *s, size_t bytes)
{
    if (nm_likely(bytes <= s->writable)) return true;
    if (nm_os_commit(nm_large_block(s) + s->writable, bytes - s->writable) != 0) return false;
    s->writable = bytes;
    return true;
}

/* The end of the block's bytes that may hold pages or a charge. */
static size_t span_used_end(const struct nm_segment *s)
{
    return s->writable != SIZE_MAX ? s->writable : s->committed;
}

/* Give back the pages of the block's bytes [from, to), and their charge
 * where the span commits on use (from `from` to its writable end).  The
 * caller updates `committed`.  Returns whether it was done. */
static bool span_give_back(struct nm_segment *s, size_t from, size_t to)
{
    char *block = nm_large_block(s);
    if (s->writable == SIZE_MAX) return nm_os_decommit(block + from, to - from) == 0;
    if (to < s->writable) to = s->writable;
    if (from >= to) return true;
    /* A fresh mapping for [from, to), with the advice it had (segment.h:
     * thp): huge pages up to the block's extent, none after. */
    struct nm_os_advice advice = { s->arena->bind_mode, &s->arena->nodes, false };
    if (nm_os_uncommit(block + from, to - from, &advice) < 0) return false;
    size_t huge_end = s->thp ? thp_extent(s->block_size) : 0;
    if (from < huge_end) nm_os_use_thp(block + from, (to < huge_end ? to : huge_end) - from);
    if (s->writable > from) s->writable = from;
    return true;
}

/* Give back the block's committed pages from byte `from` of the block on.
 * On a span with transparent huge pages only whole huge pages go: giving
 * back part of one splits it, and its pages come back 4 KiB at a time
 * (bench/large.c took 6x the page faults before this rule). */
static void span_decommit_tail(struct nm_segment *s, size_t from)
{
    size_t end = s->size - s->block_offset;   /* the block's reserved space */
    size_t to = span_used_end(s);
    if (s->thp) {
        from = nm_align_up(from, NM_HUGE_PAGE);
        to = nm_align_up(to, NM_HUGE_PAGE);
    }
    if (to > end) to = end;
    if (from >= to || s->hugetlb || s->arena->strict) return;
    if (span_give_back(s, from, to) && s->committed > from) s->committed = from;
}

/* A reused span keeps the pages its earlier blocks left committed, up to
 * NM_LARGE_KEEP times its new block, so the block fills them without page
 * faults; the rest goes back (one madvise), so a small block does not hold
 * a big one's pages. */
static void span_trim(struct nm_segment *s, size_t usable)
{
    size_t keep = usable * NM_LARGE_KEEP;
    if (keep < NM_LARGE_KEEP_MIN) keep = NM_LARGE_KEEP_MIN;
    if (span_used_end(s) > keep) span_decommit_tail(s, keep);
}

/* A large calloc on a reused span: the bytes its earlier blocks may have
 * left in [0, usable) are cleared.  For a block below NM_LARGE_CLEAR_MAX they are
 * written with zeros: the pages stay committed and where they are, and a
 * buffer that is cleared, written and freed over and over takes no page
 * faults (tests/preload/stress.c, where 4% of the allocations are callocs:
 * giving back and faulting in took 10.5 s and 1.1M faults, clearing 4.8 s
 * and 0.35M, glibc 4.6 s).  From there on the pages are given back, so the
 * block reads as zero without being written: a big array is placed by the
 * first write of the threads that use it (the OpenMP first-touch idiom,
 * tests/vm/first_touch.sh, whose smallest array is 16 MiB), and a sparse
 * table takes only the pages it touches.  A strict arena's memory and
 * hugetlb pages are not given back: they are written. */
static void span_clear(struct nm_segment *s, size_t usable)
{
    size_t dirty = s->committed < usable ? s->committed : usable;
    if (usable >= NM_LARGE_CLEAR_MAX && !s->arena->strict && !s->hugetlb &&
        nm_os_decommit(nm_large_block(s), s->size - s->block_offset) == 0) {
        s->committed = 0;
        return;
    }
    memset(nm_large_block(s), 0, s->arena->strict || s->hugetlb ? usable : dirty);
}

static void span_unmap(struct nm_segment *s)
{
    atomic_fetch_add_explicit(&nm_proc.counters.purges, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&nm_proc.counters.purged_bytes, s->size, memory_order_relaxed);
    nm_segment_unmap_memory(s, s->size, s->node);
}

/* ---- where a first-touch span's pages are ------------------------------------------
 *
 * The pages of a first-touch span are on the nodes of the threads that first
 * wrote them, which need not be the node of the thread that allocated it (an
 * OpenMP array: the master allocates, every thread writes its part).  The
 * cache is per node, so before a span is cached a sample of its pages says
 * whose it is: all on node M, it goes to M's cache (the next large block of a
 * thread on M finds its pages local); on several nodes, the block was
 * shared, so its pages are given back and the span waits empty (the next
 * block on it is placed by its own first touch, like a fresh mapping).  One
 * move_pages call of 16 addresses, made only on machines with several nodes
 * and only for spans that are cached. */
#define NM_SETTLE_SAMPLES 16

static void span_settle(struct nm_segment *s)
{
    if (nm_topo.node_count < 2) return;
    void *pages[NM_SETTLE_SAMPLES];
    int status[NM_SETTLE_SAMPLES];
    char *block = nm_large_block(s);
    size_t total = s->block_size / NM_OS_PAGE;
    size_t count = total < NM_SETTLE_SAMPLES ? total : NM_SETTLE_SAMPLES;
    for (size_t i = 0; i < count; i++) pages[i] = block + i * total / count * NM_OS_PAGE;
    /* No answer (no move_pages, or a seccomp filter): leave it as it is. */
    if (nm_os_move_pages(count, pages, NULL, status, 0) != 0) return;
    int first = -1;
    bool shared = false;
    for (size_t i = 0; i < count && !shared; i++) {
        if (status[i] < 0) continue;            /* not resident */
        if (first < 0) first = status[i];
        shared = status[i] != first;
    }
    int index = first < 0 ? -1 : nm_topology_index(&nm_topo, first);
    if (shared || (first >= 0 && index < 0)) {
        if (span_give_back(s, 0, s->size - s->block_offset)) {
            s->zeroed = true;
            s->committed = 0;
        }
    } else if (index >= 0 && index != s->node) {
        atomic_fetch_sub_explicit(&nm_proc.nodes[s->node].mapped, s->size, memory_order_relaxed);
        atomic_fetch_add_explicit(&nm_proc.nodes[index].mapped, s->size, memory_order_relaxed);
        s->node = (uint16_t)index;
        s->arena = nm_first_touch_arena(index);
    }
}

/* Cache a freed span for reuse by large blocks of its arena (threads on
 * its node for a first-touch span; the same binding for the others:
 * nm_malloc_onnode's, a policy's, the profiler's sampled blocks of a
 * node's heaps), except owned arenas' (kept by their arena), not hugetlb ones (their pages, once given back, may
 * not come back from the pool), within the node cache limit and the
 * demand budget.  The caller purged the cache of the span's node (when no
 * background purge runs), so spans that waited the delay there do not
 * count against the budget. */
static bool cache_put(struct nm_segment *s, uint64_t now_ms)
{
    if (s->alignment || s->hugetlb || s->size > NM_LARGE_CACHE_MAX_SPAN ||
        s->size > nm_opt.cache_bytes / NM_LARGE_CACHE_SHARE || s->arena->owned)
        return false;
    int home = s->node;
    /* A bound span's pages are where its binding put them. */
    if (s->arena == nm_first_touch_arena(s->node)) span_settle(s);
    /* A span that commits on use gives its charge back while it waits: it
     * keeps its address space, and its next block commits anew. */
    if (s->writable != SIZE_MAX && s->writable && span_give_back(s, 0, s->size - s->block_offset)) {
        s->committed = 0;
        s->zeroed = true;
    }
    /* A span settled on another node goes to a cache that the threads of
     * this one do not look at: purge that one here too, so its spans do
     * not outlive the purge delay there (and do not fill its budget). */
    if (s->node != home && !nm_purge_thread_running())
        (void)nm_large_cache_purge(s->node, now_ms, false);
    /* Once in a slot the span is anyone's: read what we need first. */
    int node = s->node;
    struct nm_arena *arena = s->arena;
    size_t size = s->size, offset = s->block_offset, committed = s->committed;
    /* The cache limit holds for spans at once: a span that would take the
     * node past it goes back now rather than after the purge delay. */
    if (atomic_load_explicit(&nm_proc.nodes[node].cached, memory_order_relaxed) + size > nm_opt.cache_bytes)
        return false;
    struct large_cache *c = &caches[node];
    size_t held = atomic_load_explicit(&c->demand.held, memory_order_relaxed);
    if (held && held + committed > demand_budget(&c->demand, now_ms)) {
        ghost_remember(&c->demand, s, now_ms);
        return false;
    }
    s->cached_ms = now_ms;
    for (int i = 0; i < NM_LARGE_CACHE_SLOTS; i++) {
        struct nm_segment *empty = NULL;
        if (atomic_load_explicit(&c->slot[i], memory_order_relaxed)) continue;
        cache_count(node, size, committed, true);
        atomic_store_explicit(&c->slot_arena[i], arena, memory_order_relaxed);
        atomic_store_explicit(&c->slot_size[i], size, memory_order_relaxed);
        atomic_store_explicit(&c->slot_offset[i], offset, memory_order_relaxed);
        atomic_store_explicit(&c->slot_committed[i], committed, memory_order_relaxed);
        if (atomic_compare_exchange_strong(&c->slot[i], &empty, s)) return true;
        cache_count(node, size, committed, false);
    }
    return false;
}

bool nm_large_cache_purge(int node, uint64_t now_ms, bool force)
{
    struct large_cache *c = &caches[node];
    bool waiting = false;
    for (int i = 0; i < NM_LARGE_CACHE_SLOTS; i++) {
        struct nm_segment *s = atomic_load_explicit(&c->slot[i], memory_order_acquire);
        if (!s) continue;
        if (!atomic_compare_exchange_strong(&c->slot[i], &s, NULL)) {
            waiting = true;   /* another thread has it */
            continue;
        }
        bool over = atomic_load_explicit(&nm_proc.nodes[node].cached, memory_order_relaxed) >
                    nm_opt.cache_bytes;
        if (nm_purge_due(s->cached_ms, now_ms, nm_opt.purge_delay_ms, force) || over) {
            cache_count(node, s->size, s->committed, false);
            span_unmap(s);
        } else {
            waiting = true;
            slot_return(c, i, s);
        }
    }
    nm_chunk_sweep(&nm_first_touch_arena(node)->chunks);
    return waiting;
}

/* ---- spans of owned arenas -------------------------------------------------------------
 *
 * An owned arena (nm_heap_new) keeps its spans mapped until it is released:
 * a freed span is decommitted and waits in the arena's member list for the
 * next large block of a similar size. */

/* Claim a free span first, then look whether it fits: the fields of a
 * span are only read by the thread that holds it. */
static struct nm_segment *owned_take(struct nm_arena *a, const struct span_layout *l)
{
    for (struct nm_segment *s = atomic_load_explicit(&a->spans, memory_order_acquire); s;
         s = s->member_next) {
        uint32_t expected = NM_LARGE_FREE;
        if (!atomic_compare_exchange_strong(&s->large_state, &expected, NM_LARGE_LIVE)) continue;
        if (!s->alignment && s->block_offset == l->offset && s->size >= l->size &&
            s->size <= 2 * l->size)
            return s;
        atomic_store_explicit(&s->large_state, NM_LARGE_FREE, memory_order_release);
    }
    return NULL;
}

static void owned_release(struct nm_segment *s)
{
    /* A strict arena keeps its pages committed, and hugetlb pages given
     * back may not come back from the pool (the next write would raise
     * SIGBUS): both keep them for the next block. */
    if (!s->arena->strict && !s->hugetlb && span_give_back(s, 0, s->size - s->block_offset)) {
        s->zeroed = true;
        s->committed = 0;
    }
    atomic_store_explicit(&s->large_state, NM_LARGE_FREE, memory_order_release);
}

/* ---- allocation ------------------------------------------------------------------------- */

void *nm_large_alloc(size_t size, size_t alignment, struct nm_arena *a, bool zero)
{
    int saved_errno = errno;   /* a successful allocation leaves errno alone */
    struct span_layout l;
    int node = a->node;
    if (alignment <= (size >= NM_HUGE_MIN ? NM_HUGE_MIN : NM_OS_PAGE)) alignment = 0;
    if (!span_layout(size, alignment, &l)) { errno = ENOMEM; return NULL; }
    uint64_t now = nm_os_now_ms();
    if (!nm_purge_thread_running()) (void)nm_large_cache_purge(node, now, false);

    struct nm_segment *s = NULL;
    bool retried = false;
again:
    if (!alignment && !a->owned) {
        s = cache_take(node, &l, a);
        if (s) demand_add(&caches[node].demand, l.usable, now);
        else ghost_hit(&caches[node].demand, &l, now);
    }
    if (!alignment && a->owned) {
        s = owned_take(a, &l);
        /* The span's whole size counts against the heap's limit while the
         * block lives (arena.h: charged). */
        if (s && !nm_arena_charge(a, s->size)) {
            atomic_store_explicit(&s->large_state, NM_LARGE_FREE, memory_order_release);
            return NULL;
        }
    }
    if (!s) {
        bool hugetlb = nm_opt.hugepages == NM_HUGEPAGES_HUGETLB && size >= NM_HUGE_MIN;
        if (!nm_arena_charge(a, l.size)) return NULL;
        s = nm_segment_map_memory(l.size, l.align, a, &hugetlb, NM_MAP_SPAN);
        if (nm_unlikely(!s) && !retried && nm_arena_release_for_retry(l.size)) {
            retried = true;
            s = nm_segment_map_memory(l.size, l.align, a, &hugetlb, NM_MAP_SPAN);
        }
        if (!s) {
            nm_arena_uncharge(a, l.size);
            return NULL;
        }
        /* Transparent huge pages for the block of a huge span when asked,
         * or when hugetlb pages could not be had (the mapping came without:
         * the header's range and smaller blocks never get them). */
        s->thp = size >= NM_HUGE_MIN && nm_opt.hugepages != NM_HUGEPAGES_OFF && !hugetlb;
        s->block_size = 0;   /* no huge-page advice yet */
        /* A fresh mapping reads as zero: no memset, which would also race with
         * walkers of an owned arena's span list (member_next is set). */
        s->size = l.size;
        s->zeroed = true;
        s->hugetlb = hugetlb;
        s->committed = 0;
        s->node = (uint16_t)node;       /* what a failed commit, below, reads */
        s->arena = a;
        s->block_offset = l.offset;
    } else {
        span_trim(s, l.usable);
    }
    if (nm_unlikely(!span_commit(s, l.usable))) {
        /* Past the commit limit: the span goes back, everything cached
         * too, and the block is tried once more (arena.h). */
        if (a->owned) {
            nm_arena_uncharge(a, s->size);
            owned_release(s);
        } else {
            span_unmap(s);
        }
        if (retried || !nm_arena_release_for_retry(l.usable)) return NULL;
        retried = true;
        s = NULL;
        goto again;
    }
    s->cookie = nm_segment_cookie(s);
    s->kind = NM_SEGMENT_LARGE;
    s->node = (uint16_t)node;
    s->arena = a;
    s->block_offset = l.offset;
    span_thp_advise(s, thp_extent(s->block_size), thp_extent(l.usable));
    s->block_size = l.usable;
    s->alignment = alignment;
    atomic_store_explicit(&s->large_state, NM_LARGE_LIVE, memory_order_relaxed);
    nm_node_span_count(&nm_proc.nodes[node], l.usable);
    atomic_fetch_add_explicit(&nm_proc.counters.large_allocs, 1, memory_order_relaxed);

    void *block = nm_large_block(s);
    if (zero && !s->zeroed) span_clear(s, l.usable);
    s->zeroed = false;
    if (s->committed < l.usable) s->committed = l.usable;
    span_guard(s, true);
    errno = saved_errno;
    return block;
}

bool nm_large_free(struct nm_segment *s)
{
    bool owned = s->arena->owned;
    if (atomic_exchange_explicit(&s->large_state, owned ? NM_LARGE_FREEING : NM_LARGE_FREE,
                                 memory_order_acq_rel) != NM_LARGE_LIVE)
        return false;
    int node = s->node;
    span_guard(s, false);
    nm_node_span_uncount(&nm_proc.nodes[node], s->block_size);
    atomic_fetch_add_explicit(&nm_proc.counters.large_frees, 1, memory_order_relaxed);
    uint64_t now = nm_os_now_ms();
    /* Without the background purge, caches are purged as blocks come and
     * go: first, so spans that waited the delay make room for this one. */
    bool purging_here = !nm_purge_thread_running();
    if (purging_here) (void)nm_large_cache_purge(node, now, false);
    if (owned) {
        nm_arena_uncharge(s->arena, s->size);
        owned_release(s);
    } else if (!cache_put(s, now)) {
        span_unmap(s);
    }
    nm_purge_signal();
    if (purging_here) nm_arena_maybe_purge(nm_local_arena(node), now);
    return true;
}

/* ---- resizing ------------------------------------------------------------------------------ */

/* Grow span `s`, carved from a chunk, to `size` bytes: into the chunk's
 * free units right after it (no syscall), else by moving its block's pages
 * behind a copy of its header in a range of its own; its units then go
 * back to the chunk, whose range stays mapped.  The pages leave the chunk
 * with MREMAP_DONTUNMAP, which moves a range only to one of the same size:
 * to a staging range first, from which one more mremap moves them and
 * grows the block, so that the block is one kernel mapping (VMA), as a
 * later mremap of the whole block needs (mremap fails with EFAULT across
 * two, and the next growth would copy).  The moved mapping keeps what the
 * chunk's had (binding, huge-page advice, name); only the header's range
 * is set up here.  The staging range is 2 MiB-aligned like a huge block,
 * so its huge pages move whole (a misaligned move splits them).  The
 * caller updates the map for [result, result + size) and the counters.
 * NULL when neither is possible (the caller copies). */
static struct nm_segment *carved_grow(struct nm_segment *s, size_t size)
{
    size_t old_size = s->size, offset = s->block_offset;
    struct nm_chunk *chunk = s->chunk;
    if (nm_chunk_extend(chunk, s, old_size >> NM_UNIT_SHIFT, (size - old_size) >> NM_UNIT_SHIFT)) {
        if (s->thp) nm_os_use_thp((char *)s + old_size, size - old_size);
        return s;
    }
    struct nm_arena *a = s->arena;
    char *block = nm_large_block(s);
    size_t old_bytes = old_size - offset;
    char *target = nm_os_reserve(size, NM_SEGMENT_SIZE, false);
    char *staging = target && nm_map_prepare(target, size)
                        ? nm_os_reserve(old_bytes, NM_HUGE_PAGE, false) : NULL;
    if (!staging) {
        if (target) nm_os_release(target, size);
        return NULL;
    }
    if (a->bind_mode >= 0) (void)nm_os_mbind(target, offset, a->bind_mode, &a->nodes, 0);
    nm_os_no_thp(target, offset);
    nm_os_name_range(target, offset, "numamalloc");
    if (nm_os_move_range(block, old_bytes, staging) != 0) {
        nm_os_release(staging, old_bytes);
        nm_os_release(target, size);
        return NULL;
    }
    if (!nm_os_remap(staging, old_bytes, size - offset, target + offset)) {
        /* The block's range is still mapped, empty: the contents go back
         * by a copy (another mremap could fail as this one did). */
        memcpy(block, staging, old_bytes);
        nm_os_release(staging, old_bytes);
        nm_os_release(target, size);
        return NULL;
    }
    memcpy(target, s, sizeof *s);
    struct nm_segment *moved = (struct nm_segment *)target;
    moved->cookie = nm_segment_cookie(moved);
    moved->chunk = NULL;
    nm_map_remove(s, old_size);
    if (s->thp) nm_os_no_thp(s, old_size);
    nm_chunk_return(chunk, s, old_size >> NM_UNIT_SHIFT);
    return moved;
}

/* Grow span `s`, which commits on use, to `size` bytes for a block of
 * `usable` bytes.  Its block's space is two mappings, the writable part
 * and the rest (PROT_NONE), and mremap moves one at a time: the writable
 * part moves, grown to `usable` (only that is charged), behind a copy of
 * the header in a fresh range whose rest stays reserved; then the old
 * range's header page and reserved rest go.  The moved part keeps its
 * binding and huge-page advice; the new range's header page and rest get
 * theirs here.  (No growth in place: the rest is in the way, and letting
 * it go first would leave its addresses to any other mapping.)  The caller
 * updates the map for [result, result + size) and the counters.  NULL when
 * it cannot (the caller copies). */
static struct nm_segment *committed_grow(struct nm_segment *s, size_t size, size_t usable)
{
    size_t old_size = s->size, offset = s->block_offset, writable = s->writable;
    struct nm_arena *a = s->arena;
    char *target = nm_os_reserve_space(size, NM_SEGMENT_SIZE);
    if (!target) return NULL;
    if (!nm_map_prepare(target, size) || nm_os_commit(target, NM_OS_PAGE) != 0 ||
        !nm_os_remap(nm_large_block(s), writable, usable, target + offset)) {
        nm_os_release(target, size);
        return NULL;
    }
    if (a->bind_mode >= 0) {
        (void)nm_os_mbind(target, offset, a->bind_mode, &a->nodes, 0);
        (void)nm_os_mbind(target + offset + usable, size - offset - usable, a->bind_mode,
                          &a->nodes, 0);
    }
    nm_os_no_thp(target, offset);
    if (s->thp) nm_os_use_thp(target + offset + usable, size - offset - usable);
    else nm_os_no_thp(target + offset + usable, size - offset - usable);
    nm_os_name_range(target, size, "numamalloc");
    memcpy(target, s, sizeof *s);
    struct nm_segment *moved = (struct nm_segment *)target;
    moved->cookie = nm_segment_cookie(moved);
    moved->writable = usable;
    nm_map_remove(s, old_size);
    if (old_size - offset > writable)
        nm_os_release((char *)s + offset + writable, old_size - offset - writable);
    nm_os_release(s, offset);
    return moved;
}

static void span_set_usable(struct nm_segment *s, size_t usable)
{
    nm_node_use(&nm_proc.nodes[s->node], usable - s->block_size);   /* wraps correctly when shrinking */
    atomic_fetch_add_explicit(&nm_proc.nodes[s->node].large_bytes, usable - s->block_size,
                              memory_order_relaxed);
    s->block_size = usable;
}

/* Span `s` (not owned, not hugetlb, its alignment at most NM_SEGMENT_SIZE)
 * grown to `size` bytes for a block of `usable`: the block's mapping grown where
 * it is, else its pages moved behind a new header page in a fresh range
 * (the header and the block are separate mappings, and mremap moves one
 * mapping at a time).  The kernel carries the block's node binding and
 * huge-page advice along; nothing is copied but the header.  The caller
 * updates the map and the counters.  NULL when it cannot (the caller
 * copies). */
static struct nm_segment *span_move(struct nm_segment *s, size_t size, size_t usable)
{
    size_t old_size = s->size, offset = s->block_offset;
    char *block = nm_large_block(s);
    if (s->chunk) return carved_grow(s, size);
    if (s->writable != SIZE_MAX) return committed_grow(s, size, usable);
    if (nm_os_remap(block, old_size - offset, size - offset, NULL)) return s;
    char *target = nm_os_reserve(size, NM_SEGMENT_SIZE, false);
    if (!target) return NULL;
    if (!nm_map_prepare(target, size)) {
        nm_os_release(target, size);
        return NULL;
    }
    struct nm_arena *a = s->arena;
    if (a->bind_mode >= 0) (void)nm_os_mbind(target, offset, a->bind_mode, &a->nodes, 0);
    nm_os_no_thp(target, offset);
    if (!nm_os_remap(block, old_size - offset, size - offset, target + offset)) {
        nm_os_release(target, size);
        return NULL;
    }
    memcpy(target, s, sizeof *s);
    nm_map_remove(s, old_size);
    nm_os_release(s, offset);
    struct nm_segment *moved = (struct nm_segment *)target;
    moved->cookie = nm_segment_cookie(moved);
    nm_os_name_range(moved, size, "numamalloc");
    return moved;
}

/* Span `s` resized for a block of `size` bytes, in place or moved (then
 * the result is another span), or NULL when it cannot be (the caller
 * copies).  Secure mode's guard page is off while it runs (nm_large_resize). */
static struct nm_segment *span_resize(struct nm_segment *s, size_t size)
{
    struct span_layout l;
    if (!span_layout(size, s->alignment, &l) || l.offset != s->block_offset) return NULL;
    size_t old_extent = thp_extent(s->block_size);

    if (s->block_offset + l.usable + span_guard_size() <= s->size) {   /* fits: in place */
        if (l.usable + NM_MiB <= span_used_end(s))   /* shrunk a lot: drop the tail */
            span_decommit_tail(s, l.usable);
        if (!span_commit(s, l.usable)) return NULL;
        span_thp_advise(s, old_extent, thp_extent(l.usable));
        span_set_usable(s, l.usable);
        if (s->committed < l.usable) s->committed = l.usable;
        return s;
    }
    /* An owned arena lists its spans by address: they do not move. */
    if (s->alignment > NM_SEGMENT_SIZE || s->hugetlb || s->arena->owned) return NULL;
    size_t old_size = s->size, offset = s->block_offset;
    int node = s->node;
    if (!nm_map_prepare(s, l.size)) return NULL;   /* (for growth in place) */
    /* One advice over all of the block's space, so that it is one mapping
     * for mremap; cut back to the block's huge pages once it moved. */
    span_thp_advise(s, old_extent, old_size - offset);
    struct nm_segment *moved = span_move(s, l.size, l.usable);
    if (!moved) {
        span_thp_advise(s, old_size - offset, old_extent);
        return NULL;
    }
    s = moved;
    nm_map_add(s, l.size, NM_MAP_SPAN);
    s->size = l.size;
    atomic_fetch_add_explicit(&nm_proc.nodes[node].mapped, l.size - old_size, memory_order_relaxed);
    span_thp_advise(s, l.size - offset, thp_extent(l.usable));
    span_set_usable(s, l.usable);
    if (s->committed < l.usable) s->committed = l.usable;
    return s;
}

/* Secure mode: the block's guard page is made ordinary memory again first,
 * so that the block's space is one kernel mapping that mremap can grow or
 * move, and it is put back after the block's end, new or kept. */
void *nm_large_resize(struct nm_segment *s, size_t size)
{
    span_guard(s, false);
    struct nm_segment *resized = span_resize(s, size);
    span_guard(resized ? resized : s, true);
    return resized ? nm_large_block(resized) : NULL;
}
