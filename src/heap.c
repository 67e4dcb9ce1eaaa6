/*
 * heap.c — thread heaps: the allocation slow path, remote-free collection,
 * thread start, exit (parking) and take-over, node moves, and purging free
 * pages and the inside of free medium blocks (the owner's own, and any
 * heap's for the purge layer).  The lists
 * a heap keeps its pages and segments in are page_queue.c's.
 *
 * Invariants (the owner changes its heap, holding `lock`; heap.h):
 *   - page->used counts blocks not on page->free, so blocks on page->remote
 *     still count until collected, and so do blocks a purge took off the
 *     list to give back their inside (block_batch); a page is free only
 *     when used == 0.
 *   - a segment with no page in use and none being purged leaves the heap
 *     (its arena's cache).
 *   (and the queue invariants of page_queue.h)
 *
 * May call the page queues, page, arena, segment, topology and os layers
 * and the options.
 */
#define _GNU_SOURCE
#include "heap.h"
#include "page_queue.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "options.h"
#include "policy.h"

struct nm_heap nm_heap_empty = { .node_word = &nm_heap_empty.node_seen,
                                 .direct = { [0 ... NM_DIRECT_SLOTS - 1] = &nm_empty_page } };
__thread struct nm_heap *nm_tls_heap __attribute__((tls_model("initial-exec"))) = &nm_heap_empty;
__thread int64_t nm_tls_sample_left __attribute__((tls_model("initial-exec")));
__thread struct nm_heap *nm_tls_node_heap[NM_MAX_NODES] __attribute__((tls_model("initial-exec")));
__thread int64_t nm_tls_last_node_id __attribute__((tls_model("initial-exec"))) = NM_NO_LAST_NODE;
__thread struct nm_user_slot nm_tls_user[NM_USER_SLOTS] __attribute__((tls_model("initial-exec")));
__thread struct nm_heap *nm_tls_last_node_heap __attribute__((tls_model("initial-exec")));
__thread struct nm_arena *nm_tls_set_arena __attribute__((tls_model("initial-exec")));
/* While the thread has a heap set (nm_tls_set_arena): its own heap, which
 * nm_tls_heap held before and holds again after (never nm_heap_empty). */
static __thread struct nm_heap *tls_own_heap __attribute__((tls_model("initial-exec")));

/* The calling thread's own heap, whether or not a heap is set
 * (nm_heap_empty if it has none yet). */
static inline struct nm_heap *own_heap(void)
{
    return nm_tls_set_arena ? tls_own_heap : nm_tls_heap;
}

static pthread_key_t heap_key;
static void heap_thread_exit(void *arg);
static void foreign_limits_init(void);
/* Whether the thread's exit destructor is armed (a value is set for
 * heap_key). */
static __thread bool tls_exit_armed __attribute__((tls_model("initial-exec")));

/* Maintenance runs at most every half purge delay, and at least this far
 * apart (ms). */
#define NM_MAINTENANCE_MIN_MS 10

/* NUMAMALLOC_POLICY and NUMAMALLOC_INTERLEAVE_ABOVE: arenas bound as they
 * say.  A policy that does not parse or that the machine cannot honour is
 * reported in one line and the default (node-local) is kept. */
static void process_placement_init(void)
{
    if (nm_opt.policy) {
        nm_policy p;
        char err[200];
        if (nm_policy_parse(nm_opt.policy, &p, err, sizeof err) != 0) {
            nm_line l = { .len = 0 };
            nm_line_str(&l, "numamalloc: ignoring ");
            nm_line_str(&l, nm_opt.policy_from);
            nm_line_str(&l, strcmp(nm_opt.policy_from, "NUMAMALLOC_POLICY") ? " item 'policy:" : "='");
            nm_line_value(&l, nm_opt.policy);
            nm_line_str(&l, "': ");
            nm_line_str(&l, err);
            nm_line_str(&l, "\n");
            nm_line_write(&l, 2);
        } else if (p.mode != NM_POLICY_LOCAL) {
            nm_arena_init_policy(&nm_proc.policy_arena_storage, &p, 0);
            nm_proc.policy_arena = &nm_proc.policy_arena_storage;
        }
    }
    if (nm_opt.interleave_above > 0 && nm_topo.node_count > 1) {
        /* The nodes whose memory threads get (the homes of the nodes with
         * CPUs: usable, so inside the cpuset): memory-only nodes are used
         * only when a policy names them or a cpuset leaves nothing else. */
        nm_policy p;
        memset(&p, 0, sizeof p);
        p.mode = NM_POLICY_INTERLEAVE;
        for (int i = 0; i < nm_topo.node_count; i++)
            if (nm_topo.cpu_count[i] > 0) nm_nodeset_add(&p.nodes, nm_topo.node_id[nm_topo.home[i]]);
        nm_arena_init_policy(&nm_proc.interleave_arena_storage, &p, 0);
        nm_proc.interleave_arena = &nm_proc.interleave_arena_storage;
    }
}

/* Set up this layer and the ones below, once per process.  Runs inside
 * the first malloc (maybe before libc finished its own start-up), so it
 * must not allocate; a thread that comes while another one is at it waits
 * for it (start-up is short and takes no lock that could be held forever). */
static _Atomic int init_state;   /* 0: not yet, 1: running, 2: done */

void nm_heap_init(void)
{
    if (nm_likely(atomic_load_explicit(&init_state, memory_order_acquire) == 2)) return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&init_state, &expected, 1)) {
        while (atomic_load_explicit(&init_state, memory_order_acquire) != 2) sched_yield();
        return;
    }
    nm_topology_ensure();
    nm_page_classes_init();
    foreign_limits_init();
    nm_segment_init();
    nm_arenas_init();
    process_placement_init();
    (void)pthread_key_create(&heap_key, heap_thread_exit);
    atomic_store_explicit(&init_state, 2, memory_order_release);
}

/* ---- heap structs ---------------------------------------------------------------- */

/* Only a local heap on a machine with several nodes needs the node check:
 * it watches the calling thread's rseq word (topology.h), others a word
 * that never changes (heap.h). */
static void node_watch(struct nm_heap *h, struct nm_arena *arena)
{
    const volatile uint32_t *word = NULL;
    if (nm_topo.node_count > 1 && nm_arena_is_local(arena)) word = nm_topology_move_word();
    h->node_word = word ? word : &h->node_seen;
    h->node_seen = *h->node_word;
}

/* `arena` is stored last: a fork child that finds a claimed heap with an
 * arena finds the rest of it set up (nm_heap_after_fork). */
static void heap_reset(struct nm_heap *h, struct nm_arena *arena)
{
    for (size_t i = 0; i < NM_DIRECT_SLOTS; i++) h->direct[i] = &nm_empty_page;
    memset(h->queue, 0, sizeof h->queue);
    memset(&h->full, 0, sizeof h->full);
    h->segments[0] = h->segments[1] = NULL;
    h->node = arena->node;
    __atomic_store_n(&h->thread, nm_thread_self(), __ATOMIC_RELAXED);
    h->user_id = 0;
    node_watch(h, arena);
    atomic_store_explicit(&h->remote_pending, 0, memory_order_relaxed);
    atomic_store_explicit(&h->remote_unseen, 0, memory_order_relaxed);
    h->next_maintenance_ms = 0;
    atomic_store_explicit(&h->active_ms, nm_os_now_ms(), memory_order_relaxed);
    memset(h->quarantine, 0, sizeof h->quarantine);   /* given back before a reset */
    h->quarantine_next = 0;
    h->secure_rng = (nm_proc.canary_key ^ (uintptr_t)h ^ h->thread) | 1;
    atomic_store_explicit(&h->arena, arena, memory_order_release);
}

/* Give the struct back for the next thread; it has no arena until then. */
static void heap_unclaim(struct nm_heap *h)
{
    atomic_store_explicit(&h->arena, NULL, memory_order_relaxed);
    atomic_store_explicit(&h->claimed, false, memory_order_release);
}

static void heap_abandon(struct nm_heap *h);
static void heap_take_over(struct nm_heap *h);

/* Win heap struct `h` if nobody holds it. */
static bool heap_try_claim(struct nm_heap *h)
{
    bool expected = false;
    return !atomic_load_explicit(&h->claimed, memory_order_relaxed) &&
           atomic_compare_exchange_strong(&h->claimed, &expected, true);
}

/* A heap for a new thread of `arena`.  Heap structs are never freed (so
 * remote frees may always touch heap->remote_pending of a heap they read
 * from a segment, even a stale one).  In order of preference: a parked
 * heap of the same arena, taken over whole with its pages (heap.h); an
 * unused struct; a parked heap of another arena, whose memory goes back to
 * its arena first; a new struct. */
static struct nm_heap *heap_claim(struct nm_arena *arena)
{
    struct nm_heap *first = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire);
    for (struct nm_heap *h = first; h; h = h->all_next) {
        if (atomic_load_explicit(&h->arena, memory_order_relaxed) != arena || !heap_try_claim(h))
            continue;
        if (atomic_load_explicit(&h->arena, memory_order_acquire) == arena) {
            heap_take_over(h);
            return h;
        }
        heap_reset(h, arena);   /* abandoned by a purge meanwhile: an unused struct */
        return h;
    }
    struct nm_heap *h;
    for (h = first; h; h = h->all_next)
        if (!atomic_load_explicit(&h->arena, memory_order_relaxed) && heap_try_claim(h)) break;
    if (!h) {
        for (h = first; h; h = h->all_next) {
            if (!heap_try_claim(h)) continue;
            if (atomic_load_explicit(&h->arena, memory_order_acquire)) heap_abandon(h);
            break;
        }
    }
    if (!h) {
        h = nm_os_reserve(sizeof *h, NM_OS_PAGE, false);
        if (!h && nm_arena_release_for_retry(sizeof *h)) h = nm_os_reserve(sizeof *h, NM_OS_PAGE, false);
        if (!h) return NULL;
        atomic_store_explicit(&h->claimed, true, memory_order_relaxed);
        struct nm_heap *head = atomic_load_explicit(&nm_proc.heaps, memory_order_relaxed);
        do {
            h->all_next = head;
        } while (!atomic_compare_exchange_weak_explicit(&nm_proc.heaps, &head, h,
                                                        memory_order_release,
                                                        memory_order_relaxed));
    }
    heap_reset(h, arena);
    return h;
}

/* The owner brackets every change of the heap's lists and pages with these
 * (they nest).  See `lock` in heap.h: the owner waits only for a purge,
 * which holds the lock for a few list operations.  A fork child reads the
 * lock of the heaps of threads that do not exist there: acquire and
 * release keep the changes inside, so a child that sees 0 sees no
 * half-made change (a fork snapshots memory while other threads run). */
static void heap_enter(struct nm_heap *h)
{
    uint32_t depth = atomic_load_explicit(&h->lock, memory_order_relaxed);
    if (depth != 0 && depth != NM_HEAP_PURGING) {   /* ours already: one deeper */
        atomic_store_explicit(&h->lock, depth + 1, memory_order_relaxed);
        return;
    }
    for (;;) {
        uint32_t expected = 0;
        if (atomic_compare_exchange_weak_explicit(&h->lock, &expected, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        sched_yield();
    }
}

static void heap_leave(struct nm_heap *h)
{
    atomic_store_explicit(&h->lock, atomic_load_explicit(&h->lock, memory_order_relaxed) - 1,
                          memory_order_release);
}

/* A purge takes the lock only when nobody holds it. */
static bool heap_try_purge_lock(struct nm_heap *h)
{
    uint32_t expected = 0;
    return atomic_compare_exchange_strong_explicit(&h->lock, &expected, NM_HEAP_PURGING,
                                                   memory_order_acquire, memory_order_relaxed);
}

static void heap_purge_unlock(struct nm_heap *h)
{
    atomic_store_explicit(&h->lock, 0, memory_order_release);
}

/* Out of every change of the heap (lock not held by its owner), on an
 * allocation path: the background purge may be started here (purge.c),
 * which allocates.  Never on a free path: glibc frees memory while holding
 * locks that pthread_create takes (tests/preload/purge_start.c). */
static inline void heap_safe_point(struct nm_heap *h)
{
    if (atomic_load_explicit(&h->lock, memory_order_relaxed) == 0) nm_purge_safe_point();
}

/* Refills of a page's free list, where the per-class statistic is counted
 * (heap.h: allocs): carving fresh blocks and collecting remote frees. */
static bool heap_extend(struct nm_heap *h, struct nm_page *pg)
{
    uint32_t before = nm_page_capacity(pg);
    if (!nm_page_extend(pg, nm_proc.secure ? &h->secure_rng : NULL)) return false;
    nm_count(&h->allocs[pg->size_class], nm_page_capacity(pg) - before);
    return true;
}

static void heap_collect(struct nm_heap *h, struct nm_page *pg)
{
    uint32_t n = nm_page_collect(pg);
    nm_count(&h->remote_frees, n);
    nm_count(&h->allocs[pg->size_class], n);
}

/* Page `pg` of `s` (used == 0, in no list) becomes free.  Returns whether
 * the segment has no page in use left.  No list of any heap is touched, so
 * this serves abandoned segments too. */
static bool segment_page_release(struct nm_segment *s, struct nm_page *pg, uint64_t now_ms)
{
    size_t index = (size_t)(pg - s->pages);
    atomic_fetch_sub_explicit(&nm_proc.class_pages[pg->size_class], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&nm_proc.nodes[s->node].in_use, (size_t)1 << s->page_shift,
                              memory_order_relaxed);
    pg->state = NM_PAGE_FREE;
    nm_page_sync_owner(pg);
    pg->free = NULL;
    pg->block_size = 0;
    atomic_store_explicit(&pg->carved, 0, memory_order_relaxed);
    pg->reserved = 0;
    s->retired_ms[index] = (uint32_t)now_ms;
    atomic_fetch_or_explicit(&s->free_pages, 1ull << index, memory_order_release);
    return --s->pages_used == 0;
}

/* Whether segment `s` may go to its arena's cache: no page in use, and no
 * purge giving pages of it back (segment.h). */
static bool segment_empty(struct nm_segment *s)
{
    return s->pages_used == 0 && atomic_load_explicit(&s->purging, memory_order_acquire) == 0;
}

/* Page `pg` (used == 0, unlinked) goes back to its segment; the segment
 * goes to the node cache when it is empty.  Returns true then. */
static bool page_release(struct nm_heap *h, struct nm_segment *s, struct nm_page *pg,
                         uint64_t now_ms)
{
    segment_page_release(s, pg, now_ms);
    nm_purge_signal();
    if (segment_empty(s)) {
        nm_heap_segment_unlink(h, s);
        nm_arena_cache_segment(s);
        return true;
    }
    nm_heap_segment_reorder(h, s);
    return false;
}

/* A page with no block in use: keep it when its class allocates from it
 * (so a malloc/free loop does not cycle pages), else release it.  Returns
 * whether it was released. */
static bool page_retire(struct nm_heap *h, struct nm_page *pg)
{
    if (pg->state == NM_PAGE_QUEUED && h->queue[pg->size_class].first == pg) return false;
    nm_queue_unlink(h, pg);
    page_release(h, nm_segment_of(pg->start), pg, nm_os_now_ms());
    return true;
}

/* Page `index` of `s` is about to be touched again: if its memory had gone
 * back to the OS, it no longer counts as decommitted, and no block of it is
 * resident any more. */
static void page_recommitted(struct nm_segment *s, size_t index)
{
    uint64_t bit = 1ull << index;
    if (atomic_fetch_and_explicit(&s->decommitted_pages, ~bit, memory_order_relaxed) & bit) {
        uint8_t *start;
        size_t len;
        nm_page_area(s, index, &start, &len);
        atomic_fetch_sub_explicit(&nm_proc.nodes[s->node].decommitted, len, memory_order_relaxed);
        s->pages[index].touched_end = NULL;
    }
}

/* Take a free page of segment `s` for class `cls` and queue it first;
 * NULL when a purge claimed the last free pages meanwhile, or (errno
 * ENOMEM) when the page cannot be committed (strict accounting, os.h). */
static struct nm_page *page_take(struct nm_heap *h, struct nm_segment *s, unsigned cls)
{
    uint64_t avail = atomic_load_explicit(&s->free_pages, memory_order_acquire);
    size_t index;
    do {
        if (!avail) {
            nm_heap_segment_reorder(h, s);
            return NULL;
        }
        /* A page still committed first: one given back would be faulted
         * in again, while the committed one would wait to be given back. */
        uint64_t committed =
            avail & ~atomic_load_explicit(&s->decommitted_pages, memory_order_relaxed);
        index = (size_t)__builtin_ctzll(committed ? committed : avail);
    } while (!atomic_compare_exchange_weak_explicit(&s->free_pages, &avail,
                                                    avail & ~(1ull << index),
                                                    memory_order_acquire, memory_order_acquire));
    if (nm_unlikely(nm_segment_commit_page(s, index) != 0)) {
        atomic_fetch_or_explicit(&s->free_pages, 1ull << index, memory_order_release);
        return NULL;
    }
    struct nm_page *pg = &s->pages[index];
    s->pages_used++;
    page_recommitted(s, index);
    nm_page_format(s, index, cls);
    atomic_fetch_add_explicit(&nm_proc.class_pages[cls], 1, memory_order_relaxed);
    nm_node_use(&nm_proc.nodes[s->node], (size_t)1 << s->page_shift);
    nm_heap_segment_reorder(h, s);
    nm_queue_push_page_front(h, pg);
    return pg;
}

/* Make `h` the owner of segment `s`. */
static void segment_own(struct nm_heap *h, struct nm_segment *s)
{
    atomic_store_explicit(&s->heap, h, memory_order_release);
    nm_segment_set_thread(s, h->thread);
}

/* Take over an abandoned segment: collect its remote frees, release empty
 * pages, queue the others (a segment found empty goes to the cache). */
static void heap_adopt(struct nm_heap *h, struct nm_segment *s)
{
    segment_own(h, s);
    atomic_store_explicit(&s->remote_pending, 0, memory_order_relaxed);
    nm_heap_segment_link(h, s, atomic_load_explicit(&s->free_pages, memory_order_relaxed) != 0);
    uint64_t now = nm_os_now_ms();
    for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1) {
        struct nm_page *pg = &s->pages[__builtin_ctzll(in_use)];
        if (pg->state == NM_PAGE_FREE) continue;
        heap_collect(h, pg);
        pg->next = pg->prev = NULL;
        if (pg->used == 0) {
            pg->state = NM_PAGE_QUEUED;   /* not linked: page_release only counts */
            nm_page_sync_owner(pg);
            if (page_release(h, s, pg, now)) return;
        } else if (pg->free || nm_page_capacity(pg) < pg->reserved) {
            nm_queue_push_page_back(h, pg);
        } else {
            pg->state = NM_PAGE_FULL;
            nm_page_sync_owner(pg);
            nm_queue_push_back(&h->full, pg);
        }
    }
    /* Empty already (its last pages were being purged when it was
     * abandoned): maintenance gives it to the cache once the purge is done. */
}

/* Adopt up to `count` abandoned segments of our node. */
static void heap_adopt_abandoned(struct nm_heap *h, int count)
{
    for (int i = 0; i < count; i++) {
        struct nm_segment *s = nm_arena_take_abandoned(h->arena);
        if (!s) break;
        heap_adopt(h, s);
    }
}

/* A segment with a free page of `kind`: our own, an abandoned one of our
 * arena that has one, or a fresh one. */
static struct nm_segment *heap_segment_with_free_page(struct nm_heap *h, enum nm_segment_kind kind)
{
    /* Segments with free pages come first: the first whose free pages are
     * still committed, else the first with any. */
    struct nm_segment *s = h->segments[kind];
    int looked = 0;
    for (struct nm_segment *t = s; t && looked < 8; t = t->heap_next, looked++) {
        uint64_t free_now = atomic_load_explicit(&t->free_pages, memory_order_relaxed);
        if (!free_now) break;
        if (free_now & ~atomic_load_explicit(&t->decommitted_pages, memory_order_relaxed))
            return t;
    }
    if (s && atomic_load_explicit(&s->free_pages, memory_order_relaxed)) return s;
    for (int i = 0; i < 16; i++) {
        s = nm_arena_take_abandoned(h->arena);
        if (!s) break;
        heap_adopt(h, s);
        s = h->segments[kind];
        if (s && atomic_load_explicit(&s->free_pages, memory_order_relaxed)) return s;
    }
    s = nm_arena_take_segment(h->arena, kind);
    if (!s) return NULL;
    segment_own(h, s);
    nm_heap_segment_link(h, s, true);
    return s;
}

/* ---- remote frees ---------------------------------------------------------------------- */

nm_cold void nm_heap_double_free(const void *b)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, "free(): double free of ");
    nm_line_hex(&l, (uintptr_t)b);
    nm_report_error(&l);
}

/* Foreign blocks kept per small class (heap.h: foreign): 16 KiB of them,
 * at least 4, doubled (at most NM_FOREIGN_MAX_SCALE times) each time the
 * thread takes every block of a list that had to turn blocks away, so
 * that a thread that allocates as much as it frees keeps them all and
 * one that only frees keeps little.  Back to the base when a purge or
 * the owner empties the lists. */
#define NM_FOREIGN_CLASS_BYTES (16 * NM_KiB)
#define NM_FOREIGN_MIN 4
#define NM_FOREIGN_MAX_SCALE 2
static uint32_t nm_foreign_limit[NM_SMALL_CLASSES];
_Static_assert((NM_FOREIGN_CLASS_BYTES / 16) << NM_FOREIGN_MAX_SCALE <= NM_TRANSFER_MAX_BLOCKS,
               "a full foreign list fits in an arena's list");

static void foreign_limits_init(void)
{
    for (unsigned c = 0; c < NM_SMALL_CLASSES; c++) {
        uint32_t n = NM_FOREIGN_CLASS_BYTES / nm_class_size[c];
        nm_foreign_limit[c] = n < NM_FOREIGN_MIN ? NM_FOREIGN_MIN : n;
    }
}

/* The owner's side of the handshake on its foreign lists (heap.h:
 * foreign): false when a purge is taking them.  Under ThreadSanitizer,
 * which does not model membarrier, the heap's lock instead (a purge holds
 * it while it takes them). */
static inline bool foreign_enter(struct nm_heap *h)
{
    if (NM_TSAN) {
        heap_enter(h);
        return true;
    }
    atomic_store_explicit(&h->foreign_busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (nm_likely(!atomic_load_explicit(&h->foreign_steal, memory_order_acquire))) return true;
    atomic_store_explicit(&h->foreign_busy, 0, memory_order_release);
    return false;
}

static inline void foreign_leave(struct nm_heap *h)
{
    if (NM_TSAN) {
        heap_leave(h);
        return;
    }
    atomic_store_explicit(&h->foreign_busy, 0, memory_order_release);
}

/* Owner-only counters of list `cls`, read by purges; returns the heap's
 * count of foreign blocks before the change. */
static inline uint32_t foreign_changed(struct nm_heap *h, unsigned cls, int delta)
{
    uint32_t n = atomic_load_explicit(&h->foreign_blocks, memory_order_relaxed);
    atomic_store_explicit(&h->foreign_blocks, n + (uint32_t)delta, memory_order_relaxed);
    uint64_t touched = atomic_load_explicit(&h->foreign_touched, memory_order_relaxed);
    if (!(touched & (1ull << cls)))
        atomic_fetch_or_explicit(&h->foreign_touched, 1ull << cls, memory_order_relaxed);
    return n;
}

void nm_heap_note_free(const struct nm_segment *s)
{
    struct nm_heap *h = own_heap();
    if (atomic_load_explicit(&h->arena, memory_order_relaxed)) {
        if (nm_unlikely(s->node != h->node)) nm_count(&h->cross_node_frees, 1);
    } else if (s->node != nm_topology_home_node()) {
        /* A thread without a heap (one that only frees) shares
         * nm_heap_empty: counted process-wide. */
        atomic_fetch_add_explicit(&nm_proc.counters.cross_node_frees, 1, memory_order_relaxed);
    }
}

void nm_heap_free_nonlocal(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    if (atomic_load_explicit(&s->thread, memory_order_relaxed) != nm_thread_self()) {
        nm_heap_free_other(s, pg, b);
    } else if (pg->state == NM_PAGE_FULL) {
        /* Back to its queue under the heap's lock, before the count
         * changes (nm_heap_free_local). */
        nm_heap_free_to_full(atomic_load_explicit(&s->heap, memory_order_relaxed), pg, b);
    } else {
        nm_heap_free_local(s, pg, b);   /* not full: queued in secure mode */
    }
}

void nm_heap_free_slow(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    if (nm_proc.secure) nm_heap_free_secure(s, pg, b);
    else nm_heap_free_nonlocal(s, pg, b);
}

void nm_heap_free_other(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    struct nm_heap *h = nm_tls_heap;
    unsigned cls = pg->size_class;
    nm_heap_note_free(s);
    /* nm_heap_empty has no arena: a thread without a heap keeps nothing. */
    if (s->arena == atomic_load_explicit(&h->arena, memory_order_relaxed) &&
        cls < NM_SMALL_CLASSES && foreign_enter(h)) {
        struct nm_foreign_list *f = &h->foreign[cls];
        struct nm_block *head = atomic_load_explicit(&f->head, memory_order_relaxed);
        if (nm_unlikely(head == b)) {   /* freed again after its mark was erased */
            foreign_leave(h);
            nm_heap_double_free(b);
            return;
        }
        if (f->count >= nm_foreign_limit[cls] << f->scale) {
            /* Full: the list goes to the arena whole, for the next thread
             * that runs out of the class (arena.h: nm_transfer), and `b`
             * starts the list anew (first on it, where a second free of it
             * is found). */
            if (!nm_arena_transfer_put(s->arena, cls, head, f->count)) {
                f->overflowed = true;
                foreign_leave(h);
                nm_heap_free_remote(s, pg, b);
                return;
            }
            f->overflowed = false;
            foreign_changed(h, cls, -(int)f->count);
            f->count = 0;
            head = NULL;
        }
        nm_block_set_next(b, head);
        atomic_store_explicit(&f->head, b, memory_order_relaxed);
        f->count++;
        bool first = foreign_changed(h, cls, 1) == 0;
        foreign_leave(h);
        /* A purge gives them back if the thread stops allocating. */
        if (first) nm_purge_signal();
        return;
    }
    nm_heap_free_remote(s, pg, b);
}

/* The foreign list of class `cls` of `h` (its owner's, inside
 * foreign_enter), empty, becomes a list taken from `a`, the heap's arena
 * (arena.h: nm_transfer), if it has one. */
static void foreign_refill(struct nm_heap *h, struct nm_arena *a, unsigned cls)
{
    uint32_t count;
    struct nm_block *head = nm_arena_transfer_take(a, cls, &count);
    if (!head) return;
    atomic_store_explicit(&h->foreign[cls].head, head, memory_order_relaxed);
    h->foreign[cls].count = count;
    foreign_changed(h, cls, (int)count);
}

/* A foreign block of class `cls` for the owner, or NULL: from its own
 * list, else from a list its arena holds for the class. */
static struct nm_block *foreign_pop(struct nm_heap *h, unsigned cls)
{
    if (cls >= NM_SMALL_CLASSES) return NULL;
    struct nm_foreign_list *f = &h->foreign[cls];
    struct nm_arena *a = NULL;
    if (!atomic_load_explicit(&f->head, memory_order_relaxed)) {
        a = atomic_load_explicit(&h->arena, memory_order_relaxed);
        if (!a || !nm_arena_transfer_any(a, cls)) return NULL;
    }
    if (!foreign_enter(h)) return NULL;
    if (a) foreign_refill(h, a, cls);
    struct nm_block *b = atomic_load_explicit(&f->head, memory_order_relaxed);
    if (b && nm_unlikely(!nm_block_is_free(b))) {
        /* Dropped from `b` on, the blocks stay counted in their pages. */
        nm_page_corrupt(nm_page_of(nm_segment_of(b), b), b, "free", false);
        foreign_changed(h, cls, -(int)f->count);
        atomic_store_explicit(&f->head, NULL, memory_order_relaxed);
        f->count = 0;
        b = NULL;
    }
    if (b) {
        struct nm_block *next = nm_block_next(b);
        atomic_store_explicit(&f->head, next, memory_order_relaxed);
        /* The next pop reads `next`'s link: a line this thread wrote when
         * it freed the block, which may have left its cache since. */
        if (next) __builtin_prefetch(next);
        f->count--;
        foreign_changed(h, cls, -1);
        nm_block_take(b);
        if (f->count == 0 && f->overflowed) {   /* it would have taken more */
            f->overflowed = false;
            if (f->scale < NM_FOREIGN_MAX_SCALE) f->scale++;
        }
    }
    foreign_leave(h);
    if (b) {
        /* Supplied to this heap, and freed by a thread other than its owner. */
        nm_count(&h->allocs[cls], 1);
        nm_count(&h->remote_frees, 1);
    }
    return b;
}

/* The last block of the list of at most `count` free blocks from `head`,
 * to splice it whole.  A list with a block that fails, or a longer chain
 * (a block pushed twice links back into the list: a cycle), is reported
 * and dropped whole (NULL): its blocks stay counted in their pages. */
static struct nm_block *block_list_tail(struct nm_block *head, uint32_t count)
{
    struct nm_block *tail = NULL;
    uint32_t n = 0;
    for (struct nm_block *b = head; b; b = nm_block_next(b)) {
        if (nm_unlikely(n == count || !nm_block_is_free(b))) {
            nm_page_corrupt(nm_page_of(nm_segment_of(b), b), b, "free", false);
            return NULL;
        }
        tail = b;
        n++;
    }
    return tail;
}

/* Take the foreign blocks of the classes in `classes` (bit c: class c),
 * chained as one list (the lists are the caller's: the owner inside
 * foreign_enter, or a purge that won the handshake). */
static struct nm_block *foreign_take(struct nm_heap *h, uint64_t classes)
{
    struct nm_block *all = NULL;
    uint32_t taken = 0;
    for (; classes; classes &= classes - 1) {
        unsigned c = (unsigned)__builtin_ctzll(classes);
        struct nm_foreign_list *f = &h->foreign[c];
        taken += f->count;
        struct nm_block *head = atomic_load_explicit(&f->head, memory_order_relaxed);
        atomic_store_explicit(&f->head, NULL, memory_order_relaxed);
        struct nm_block *tail = block_list_tail(head, f->count);
        if (tail) {
            nm_block_set_next(tail, all);
            all = head;
        }
        f->count = 0;
        f->scale = 0;
        f->overflowed = false;
    }
    uint32_t n = atomic_load_explicit(&h->foreign_blocks, memory_order_relaxed);
    atomic_store_explicit(&h->foreign_blocks, n - taken, memory_order_relaxed);
    return all;
}

#define NM_FOREIGN_ALL ((1ull << NM_SMALL_CLASSES) - 1)
_Static_assert(NM_SMALL_CLASSES < 64, "a bit per foreign list");

/* Give blocks taken from a foreign list back to their pages: to the
 * calling thread's own page when it owns the segment now (it adopted it),
 * else to the page's remote list.  No lock held. */
static void foreign_release(struct nm_block *list)
{
    for (struct nm_block *b = list, *next; b; b = next) {
        next = nm_block_next(b);
        struct nm_segment *s = nm_segment_of(b);
        struct nm_page *pg = nm_page_of(s, b);
        if (atomic_load_explicit(&s->thread, memory_order_relaxed) == nm_thread_self())
            nm_heap_free(s, pg, b);
        else
            nm_heap_free_remote(s, pg, b);
    }
}

void nm_heap_purge_transfer(struct nm_arena *a, bool force, bool *waiting)
{
    uint64_t idle = nm_arena_transfer_idle(a, force, waiting);
    for (; idle; idle &= idle - 1) {
        unsigned c = (unsigned)__builtin_ctzll(idle);
        uint32_t count;
        struct nm_block *head;
        while ((head = nm_arena_transfer_drain(a, c, &count)) != NULL)
            if (block_list_tail(head, count)) foreign_release(head);
    }
}

/* Drop the foreign lists of heap `h` without walking them: in a fork
 * child, for a heap whose thread was changing them at the fork; for the
 * heaps of an owned arena whose memory is about to go
 * (nm_heap_forget_arena). */
static void heap_foreign_forget(struct nm_heap *h)
{
    for (unsigned c = 0; c < NM_SMALL_CLASSES; c++) {
        atomic_store_explicit(&h->foreign[c].head, NULL, memory_order_relaxed);
        h->foreign[c].count = 0;
    }
    atomic_store_explicit(&h->foreign_blocks, 0, memory_order_relaxed);
    atomic_store_explicit(&h->foreign_busy, 0, memory_order_relaxed);
}

/* The owner empties its foreign lists before its heap changes hands (or
 * for nm_trim).  A purge may be taking them at that moment: it holds
 * foreign_steal for a few loads and stores and never waits for us, so we
 * wait for it and look again (it may have backed off, finding us busy). */
static void heap_foreign_flush(struct nm_heap *h)
{
    if (atomic_load_explicit(&h->foreign_blocks, memory_order_relaxed) == 0) return;
    while (!foreign_enter(h)) sched_yield();
    struct nm_block *all = foreign_take(h, NM_FOREIGN_ALL);
    foreign_leave(h);
    foreign_release(all);
}

/* ---- secure mode ----------------------------------------------------------------------- */

/* A small block of secure mode (heap.h: nm_heap_alloc_secure), of B bytes
 * for a request of n:
 *
 *   [0, n)       the program's bytes
 *   [n, n + 8)   canary = secure_canary(block)
 *   [B - 8, B)   size tag = n ^ secure_canary(block)
 *
 * so n + NM_SECURE_TAG <= B.  Medium blocks (and a small request that
 * does not leave room) carry neither; every block gets the quarantine. */
#define NM_SECURE_TAG 16
/* A freed block's poison covers the rest of its first cache line, [16, 64)
 * (or the block, when smaller): the line its free-list link is on, which
 * the free writes and the release reads anyway.  Poisoning 128 bytes took
 * alloc_pairs pattern=pair from 25 to 41 ns per malloc+free. */
#define NM_POISON_END 64
#define NM_POISON_WORD 0xdbdbdbdbdbdbdbdbull

static inline uint64_t secure_canary(const void *b)
{
    return ((uintptr_t)b ^ nm_proc.canary_key) * 0x9E3779B97F4A7C15ull;
}

static unsigned secure_class(size_t size, size_t alignment)
{
    size_t need = size + NM_SECURE_TAG;
    if (need > NM_SMALL_MAX) need = size > NM_SMALL_MAX ? size : NM_SMALL_MAX + 1;
    return alignment > 16 ? nm_aligned_class(need, alignment) : nm_size_class(need);
}

void *nm_heap_alloc_secure(struct nm_heap *h, size_t size, size_t alignment)
{
    unsigned cls = secure_class(size, alignment);
    struct nm_page *pg = h->queue[cls].first;
    uint8_t *p = pg ? nm_heap_pop(h, pg, cls) : nm_heap_alloc_class(h, cls);
    if (p && cls < NM_SMALL_CLASSES) {
        uint64_t canary = secure_canary(p), tag = size ^ canary;
        memcpy(p + size, &canary, sizeof canary);
        memcpy(p + nm_class_size[cls] - sizeof tag, &tag, sizeof tag);
    }
    return p;
}

/* The request size a small block's tag holds, or SIZE_MAX when the tag
 * was overwritten. */
static size_t secure_tagged_size(const struct nm_page *pg, const uint8_t *b)
{
    uint64_t tag;
    memcpy(&tag, b + pg->block_size - sizeof tag, sizeof tag);
    uint64_t size = tag ^ secure_canary(b);
    return size <= pg->block_size - NM_SECURE_TAG ? (size_t)size : SIZE_MAX;
}

size_t nm_heap_secure_usable(const struct nm_page *pg, const void *b)
{
    if (pg->size_class >= NM_SMALL_CLASSES) return pg->block_size;
    /* An overwritten tag: the whole block (its free reports the tag). */
    size_t size = secure_tagged_size(pg, b);
    return size == SIZE_MAX ? pg->block_size : size;
}

/* One line naming the block, then abort (or go on, with warn). */
static nm_cold void secure_report(const char *what, size_t size, const void *b, const char *why)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, what);
    nm_line_u64(&l, size);
    nm_line_str(&l, "-byte block at ");
    nm_line_hex(&l, (uintptr_t)b);
    nm_line_str(&l, why);
    nm_report_error(&l);
}

/* The words of a freed block that hold the poison: [16, end) (blocks are
 * multiples of 16 bytes). */
static size_t secure_poison_end(const struct nm_page *pg)
{
    return pg->block_size < NM_POISON_END ? pg->block_size : NM_POISON_END;
}

static void secure_poison(const struct nm_page *pg, struct nm_block *b)
{
    uint64_t *w = (uint64_t *)b;
    if (nm_likely(pg->block_size >= NM_POISON_END)) {
        for (size_t i = 2; i < NM_POISON_END / 8; i++) w[i] = NM_POISON_WORD;
        return;
    }
    for (size_t i = 2; i < pg->block_size / 8; i++) w[i] = NM_POISON_WORD;
}

/* Whether the poison of quarantined block `b` is intact. */
static bool secure_poison_intact(const struct nm_page *pg, const struct nm_block *b)
{
    const uint64_t *w = (const uint64_t *)b;
    uint64_t diff = 0;
    for (size_t i = 2; i < secure_poison_end(pg) / 8; i++) diff |= w[i] ^ NM_POISON_WORD;
    return diff == 0;
}

/* A block leaves the quarantine: to its page's lists if nothing wrote it
 * meanwhile; else reported, and with warn left out of use for good. */
static void quarantine_release(struct nm_block *b)
{
    struct nm_segment *s = nm_segment_of(b);
    struct nm_page *pg = nm_page_of(s, b);
    if (nm_unlikely(!nm_block_is_free(b) || !secure_poison_intact(pg, b))) {
        secure_report("use after free detected: the ", pg->block_size, b,
                      " was written after it was freed");
        return;
    }
    nm_heap_free(s, pg, b);
}

void nm_heap_free_secure(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    if (pg->size_class < NM_SMALL_CLASSES) {
        uint8_t *p = (uint8_t *)b;
        size_t size = secure_tagged_size(pg, p);
        uint64_t canary;
        if (size != SIZE_MAX) memcpy(&canary, p + size, sizeof canary);
        if (nm_unlikely(size == SIZE_MAX))
            secure_report("free(): heap overflow into the end of the ", pg->block_size, b,
                          ": its size tag was overwritten");
        else if (nm_unlikely(canary != secure_canary(p)))
            secure_report("free(): heap overflow past the ", size, b,
                          ": its canary was overwritten");
    }
    /* A thread without a heap keeps nothing; nor does any thread keep
     * blocks of an nm_heap_new heap, whose memory nm_heap_destroy unmaps
     * at once. */
    struct nm_heap *h = nm_tls_heap;
    if (h == &nm_heap_empty || s->arena->owned) {
        nm_heap_free(s, pg, b);
        return;
    }
    secure_poison(pg, b);
    nm_block_set_next(b, NULL);   /* free: a second free is a double free */
    struct nm_block *oldest = h->quarantine[h->quarantine_next];
    h->quarantine[h->quarantine_next] = b;
    h->quarantine_next = (h->quarantine_next + 1) % NM_QUARANTINE;
    if (oldest) quarantine_release(oldest);
}

/* Secure mode: the slow path's check of the page it takes blocks from.
 * Metadata that does not hold cannot be repaired: always fatal. */
static void secure_page_check(struct nm_heap *h, struct nm_page *pg, unsigned cls)
{
    struct nm_segment *s = nm_segment_of(pg);
    size_t index = (size_t)(pg - s->pages);
    uint8_t *base = nm_page_base(s, index);
    bool ok = s->cookie == nm_segment_cookie(s) && s->kind != NM_SEGMENT_LARGE &&
              index < s->page_count && atomic_load_explicit(&s->heap, memory_order_relaxed) == h &&
              pg->size_class == cls && pg->block_size == nm_class_size[cls] &&
              pg->start >= base && pg->start < base + ((size_t)1 << s->page_shift) &&
              nm_page_capacity(pg) <= pg->reserved &&
              (!pg->free || nm_page_is_block(pg, pg->free));
    if (nm_likely(ok)) return;
    nm_line l = { .len = 0 };
    nm_line_str(&l, "heap corruption detected in the metadata of the page at ");
    nm_line_hex(&l, (uintptr_t)nm_page_base(s, index));
    nm_line_str(&l, ": overwritten");
    nm_report_error(&l);
    abort();   /* with warn too */
}

/* Blocks the heap holds outside its pages' lists go back: the quarantine,
 * then the foreign lists. */
static void heap_release_held(struct nm_heap *h)
{
    for (uint32_t i = 0; i < NM_QUARANTINE; i++) {
        struct nm_block *b = h->quarantine[(h->quarantine_next + i) % NM_QUARANTINE];
        h->quarantine[(h->quarantine_next + i) % NM_QUARANTINE] = NULL;
        if (b) quarantine_release(b);
    }
    heap_foreign_flush(h);
}

void nm_heap_free_remote(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    /* Everything that reads the segment comes before the push: once the
     * block is on the remote list the owner may collect it, release the page
     * and the segment, and the segment may be reused or unmapped. */
    /* Tell the owner; read first so a busy page does not bounce the line.
     * An owner that scans between these flags and the push misses the
     * block until its next maintenance pass, which scans every page. */
    if (!atomic_load_explicit(&s->remote_pending, memory_order_relaxed)) {
        atomic_store_explicit(&s->remote_pending, 1, memory_order_release);
        /* Its owner may be idle: a purge collects pages freed whole. */
        nm_purge_signal();
    }
    struct nm_heap *owner = atomic_load_explicit(&s->heap, memory_order_acquire);
    if (owner && !atomic_load_explicit(&owner->remote_pending, memory_order_relaxed))
        atomic_store_explicit(&owner->remote_pending, 1, memory_order_release);

    struct nm_block *head = atomic_load_explicit(&pg->remote, memory_order_relaxed);
    do {
        if (nm_unlikely(head == b)) {   /* freed again after its mark was erased */
            nm_heap_double_free(b);
            return;
        }
        nm_block_set_next(b, head);
    } while (!atomic_compare_exchange_weak_explicit(&pg->remote, &head, b, memory_order_seq_cst,
                                                    memory_order_relaxed));
    /* A purge gives back pages other threads emptied while their owner is
     * not allocating, and only a purge does: wake it for the first block
     * since it last looked at the heap, which remote_pending (set until the
     * owner collects) no longer does.  After the push, sequentially
     * consistent with it (on x86 the same instructions): either the pass
     * that cleared the flag finds the block, or this load finds the flag
     * clear.  The heap struct is never freed. */
    if (owner && !atomic_load_explicit(&owner->remote_unseen, memory_order_seq_cst)) {
        atomic_store_explicit(&owner->remote_unseen, 1, memory_order_release);
        nm_purge_signal();
    }
}

/* Collect remote frees on every segment that got some: full pages that now
 * have blocks go back to their queue, empty pages are released. */
static void heap_collect_remote(struct nm_heap *h, bool all)
{
    if (!all && !atomic_load_explicit(&h->remote_pending, memory_order_relaxed)) return;
    atomic_store_explicit(&h->remote_pending, 0, memory_order_relaxed);
    uint64_t now = nm_os_now_ms();
    for (int kind = 0; kind < 2; kind++) {
        for (struct nm_segment *s = h->segments[kind], *next; s; s = next) {
            next = s->heap_next;
            if (!all && !atomic_load_explicit(&s->remote_pending, memory_order_relaxed)) continue;
            atomic_exchange_explicit(&s->remote_pending, 0, memory_order_acquire);
            for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1) {
                struct nm_page *pg = &s->pages[__builtin_ctzll(in_use)];
                if (pg->state == NM_PAGE_FREE || !nm_page_has_remote(pg)) continue;
                heap_collect(h, pg);
                if (pg->used == 0 && h->queue[pg->size_class].first != pg) {
                    nm_queue_unlink(h, pg);
                    if (page_release(h, s, pg, now)) break;
                } else if (pg->state == NM_PAGE_FULL) {
                    nm_queue_remove(&h->full, pg);
                    nm_queue_push_page_front(h, pg);
                }
            }
        }
    }
}

/* ---- purging ------------------------------------------------------------------------------ */

/* Pages claimed for a purge (nm_segment_purge_claim), given back after the
 * heap's lists are left alone: the madvise calls walk no list, so a
 * program that intercepts madvise and allocates from inside it (MPI
 * libraries do) finds the heap consistent. */
#define NM_PURGE_BATCH 32
struct purge_batch {
    int count;
    struct nm_segment *segment[NM_PURGE_BATCH];
    uint64_t pages[NM_PURGE_BATCH];
};

/* Claim the due free pages of the heap's segments (all free ones if
 * `force`) into `b`, as many segments as it holds.  Under the heap's lock. */
static void heap_purge_claim(struct nm_heap *h, uint64_t now_ms, bool force,
                             struct purge_batch *b, bool *waiting)
{
    b->count = 0;
    for (int kind = 0; kind < 2; kind++) {
        for (struct nm_segment *s = h->segments[kind]; s; s = s->heap_next) {
            if (!atomic_load_explicit(&s->free_pages, memory_order_relaxed)) continue;
            if (b->count == NM_PURGE_BATCH) {
                if (waiting) *waiting = true;   /* the next pass takes the rest */
                return;
            }
            uint64_t pages = nm_segment_purge_claim(s, now_ms, force, waiting);
            if (!pages) continue;
            b->segment[b->count] = s;
            b->pages[b->count++] = pages;
        }
    }
}

static void purge_batch_finish(const struct purge_batch *b)
{
    for (int i = 0; i < b->count; i++) nm_segment_purge_finish(b->segment[i], b->pages[i]);
}

/* The owner gives back its own due free pages. */
static void heap_decommit_free_pages(struct nm_heap *h, uint64_t now_ms, bool force)
{
    struct purge_batch b;
    do {
        heap_purge_claim(h, now_ms, force, &b, NULL);
        purge_batch_finish(&b);
    } while (b.count == NM_PURGE_BATCH);
}

/* Free medium blocks whose inside goes back (page.h:
 * nm_page_take_due_blocks), taken off their lists a batch at a time; the
 * madvise calls come after the walks, as for pages (purge_batch).  A
 * maintenance pass takes at most NM_BLOCK_PURGE_PASS of them, at most a
 * few milliseconds of system calls in an allocation slow path; nm_trim
 * and an exited thread's heap take all. */
#define NM_BLOCK_BATCH 64
#define NM_BLOCK_PURGE_PASS (8 * NM_BLOCK_BATCH)
struct block_batch {
    uint32_t count;
    struct nm_page *page[NM_BLOCK_BATCH];
    struct nm_block *block[NM_BLOCK_BATCH];
};

/* Take due blocks of medium segment `s`, from its page `*page` on, into
 * `bb` until it is full: returns false then, with *page the page to go on
 * from (it may hold more).  `due_now`: every free block is due; `trim`:
 * reserved memory too (nm_trim gives it back, the purge never does).  Not
 * in secure mode (its poison fills free blocks), nor in memory that is
 * never decommitted (strict arenas). */
static bool segment_take_due_blocks(struct nm_segment *s, size_t *page, uint64_t now_ms,
                                    bool due_now, bool trim, bool *waiting,
                                    struct block_batch *bb)
{
    if (s->kind != NM_SEGMENT_MEDIUM || nm_proc.secure || (s->reserved && !trim) ||
        s->arena->strict)
        return true;
    due_now = due_now || nm_opt.purge_delay_ms == 0;
    for (; *page < s->page_count; ++*page) {
        struct nm_page *pg = &s->pages[*page];
        if (pg->state == NM_PAGE_FREE || !pg->free) continue;
        uint32_t n = nm_page_take_due_blocks(pg, now_ms, due_now, waiting, &bb->block[bb->count],
                                             NM_BLOCK_BATCH - bb->count);
        for (uint32_t k = 0; k < n; k++) bb->page[bb->count++] = pg;
        if (bb->count == NM_BLOCK_BATCH) return false;
    }
    return true;
}

/* Give back the inside of the blocks in `bb`, then return them to their
 * pages: by the owner's free for its own heap (a program that intercepts
 * madvise may have allocated meanwhile, and filled a page), straight onto
 * the list where the caller holds the pages alone and nothing ran on them. */
static void block_batch_finish(struct block_batch *bb, bool owner)
{
    for (uint32_t i = 0; i < bb->count; i++)
        nm_block_purge_inside(bb->block[i], bb->page[i]->block_size);
    for (uint32_t i = 0; i < bb->count; i++) {
        if (owner) nm_heap_free(nm_segment_of(bb->block[i]), bb->page[i], bb->block[i]);
        else nm_page_put_back(bb->page[i], bb->block[i]);
    }
    bb->count = 0;
}

/* Whether `s` is still one of heap `h`'s medium segments. */
static bool heap_has_segment(const struct nm_heap *h, const struct nm_segment *s)
{
    for (const struct nm_segment *t = h->segments[NM_SEGMENT_MEDIUM]; t; t = t->heap_next)
        if (t == s) return true;
    return false;
}

/* The inside of heap `h`'s free medium blocks that waited the delay (all
 * of them if `due_now`), for its owner (`owner`) or for a purge that holds
 * the heap of an exited thread.  Each batch goes on from the page where
 * the last one filled up, so a block is read once a pass; if the owner's
 * frees of a batch released that segment, from the first one again. */
static void heap_purge_free_blocks(struct nm_heap *h, uint64_t now_ms, bool due_now, bool trim,
                                   bool owner)
{
    struct block_batch bb = { .count = 0 };
    struct nm_segment *s = h->segments[NM_SEGMENT_MEDIUM];
    size_t page = 0;
    for (uint32_t done = 0; s && (trim || due_now || done < NM_BLOCK_PURGE_PASS);
         done += NM_BLOCK_BATCH) {
        while (s && segment_take_due_blocks(s, &page, now_ms, due_now, trim, NULL, &bb)) {
            s = s->heap_next;
            page = 0;
        }
        block_batch_finish(&bb, owner);
        if (s && !heap_has_segment(h, s)) {
            s = h->segments[NM_SEGMENT_MEDIUM];
            page = 0;
        }
    }
}

/* Segments left empty while a purge had pages of them go to the cache. */
static void heap_free_empty_segments(struct nm_heap *h)
{
    for (int kind = 0; kind < 2; kind++) {
        for (struct nm_segment *s = h->segments[kind], *next; s; s = next) {
            next = s->heap_next;
            if (!segment_empty(s)) continue;
            nm_heap_segment_unlink(h, s);
            nm_arena_cache_segment(s);
        }
    }
}

/* Pages kept empty as the first of their class (see page_retire). */
static void heap_release_idle_pages(struct nm_heap *h)
{
    uint64_t now = nm_os_now_ms();
    for (unsigned c = 0; c < NM_CLASS_COUNT; c++) {
        struct nm_page *pg = h->queue[c].first;
        if (pg && pg->used == 0 && !nm_page_has_remote(pg)) {
            nm_queue_unlink(h, pg);
            page_release(h, nm_segment_of(pg->start), pg, now);
        }
    }
}

/* Runs only from the entry points of this layer (allocation slow path,
 * nm_heap_page_freed, nm_heap_tick), never from inside a walk over the
 * heap's lists, which it changes. */
static void heap_maintenance(struct nm_heap *h, uint64_t now_ms)
{
    h->next_maintenance_ms = now_ms + (nm_opt.purge_delay_ms > 2 * NM_MAINTENANCE_MIN_MS
                                       ? nm_opt.purge_delay_ms / 2 : NM_MAINTENANCE_MIN_MS);
    heap_collect_remote(h, true);
    /* Take over a few segments that exited threads of our node left, so
     * their free pages are reused or purged instead of waiting. */
    heap_adopt_abandoned(h, 4);
    /* Empty pages kept as the first of their class go back to their segment (their
     * memory stays for the purge delay, so a busy class takes it back
     * without faults), so a program that stops using a class returns it. */
    heap_release_idle_pages(h);
    heap_free_empty_segments(h);
    heap_decommit_free_pages(h, now_ms, false);
    heap_purge_free_blocks(h, now_ms, false, false, true);
    nm_arena_maybe_purge(h->arena, now_ms);
}

/* ---- threads and nodes ------------------------------------------------------------------ */

/* Before the heap is left (abandoned or parked): blocks other threads
 * freed are collected, and pages and segments with nothing in use go back
 * to their segment and arena. */
static void heap_release_unused(struct nm_heap *h)
{
    heap_collect_remote(h, true);
    heap_release_idle_pages(h);
    heap_free_empty_segments(h);
}

/* Hand everything the heap owns to its node: empty pages and segments go
 * back, free pages are given back to the OS, segments with live blocks wait
 * for adoption by another heap.  The caller holds the heap (its owner, or
 * a purge that claimed a parked heap). */
static void heap_abandon(struct nm_heap *h)
{
    heap_release_held(h);
    heap_enter(h);
    heap_release_unused(h);
    for (int kind = 0; kind < 2; kind++) {
        for (struct nm_segment *s = h->segments[kind], *next; s; s = next) {
            next = s->heap_next;
            /* Claimed while the segment is held; given back once it is in
             * the arena, where it may be adopted meanwhile: finishing a
             * purge takes atomic operations only (segment.h).  Nothing
             * re-entered from madvise reaches this heap: its thread has
             * another one by now. */
            uint64_t pages = nm_segment_purge_claim(s, 0, true, NULL);
            nm_heap_segment_unlink(h, s);
            nm_arena_abandon(s);
            nm_segment_purge_finish(s, pages);
        }
    }
    heap_reset(h, h->arena);
    heap_leave(h);
}

/* The thread of heap `h` exits: its segments stay with it, parked, for the
 * next thread of the same arena (heap_claim); blocks freed meanwhile take
 * the remote path (no segment names a thread). */
static void heap_park(struct nm_heap *h)
{
    heap_release_held(h);
    heap_enter(h);
    heap_release_unused(h);
    for (int kind = 0; kind < 2; kind++)
        for (struct nm_segment *s = h->segments[kind]; s; s = s->heap_next)
            nm_segment_set_thread(s, 0);
    __atomic_store_n(&h->thread, 0, __ATOMIC_RELAXED);   /* purges read it (nm_heap_purge) */
    atomic_store_explicit(&h->parked_ms, nm_os_now_ms(), memory_order_relaxed);
    heap_leave(h);
    atomic_store_explicit(&h->claimed, false, memory_order_release);
    nm_purge_signal();
}

/* A new thread takes over parked heap `h` (claimed by it). */
static void heap_take_over(struct nm_heap *h)
{
    heap_enter(h);
    __atomic_store_n(&h->thread, nm_thread_self(), __ATOMIC_RELAXED);
    for (int kind = 0; kind < 2; kind++)
        for (struct nm_segment *s = h->segments[kind]; s; s = s->heap_next)
            nm_segment_set_thread(s, h->thread);
    node_watch(h, atomic_load_explicit(&h->arena, memory_order_relaxed));
    h->next_maintenance_ms = 0;
    atomic_store_explicit(&h->active_ms, nm_os_now_ms(), memory_order_relaxed);
    atomic_store_explicit(&h->remote_unseen, 0, memory_order_relaxed);
    heap_leave(h);
}

/* Fork child: whether one of this thread's heaps is held, by the thread
 * itself (its slow path) or by a purge it was running (nm_trim).  Only a
 * signal handler that stopped the thread there can have forked. */
static bool own_heap_held(uintptr_t self)
{
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next)
        if (atomic_load_explicit(&h->claimed, memory_order_relaxed) && h->thread == self &&
            atomic_load_explicit(&h->lock, memory_order_relaxed) != 0)
            return true;
    return false;
}

/* Fork child of a signal handler that stopped this thread inside one of its
 * heaps: the heap is mid-change (or held by a purge that will never end
 * here), so the thread cannot go on with it.  It goes on under a new number
 * with no heap, as a new thread would, and its old heaps are handed over
 * below like those of the threads that are gone (the held one is lost). */
static void thread_start_afresh(void)
{
    if (nm_tls_set_arena) atomic_fetch_sub(&nm_tls_set_arena->set_threads, 1);
    nm_tls_set_arena = NULL;
    tls_own_heap = NULL;
    nm_tls_thread_id = NM_THREAD_UNNAMED;
    nm_thread_name();
    nm_tls_heap = &nm_heap_empty;
    for (int i = 0; i < NM_MAX_NODES; i++) nm_tls_node_heap[i] = NULL;
    nm_tls_last_node_id = NM_NO_LAST_NODE;
    nm_tls_last_node_heap = NULL;
    for (int i = 0; i < NM_USER_SLOTS; i++) {
        nm_tls_user[i].id = 0;
        nm_tls_user[i].heap = NULL;
    }
}

void nm_heap_after_fork(void)
{
    if (own_heap_held(nm_thread_self())) thread_start_afresh();
    /* Only this thread exists in the child: no other has a heap set
     * (nm_thread_set_heap), whatever the parent's threads had.  Counted
     * while the heaps still name their arenas (the loop below lets go of
     * the other threads' heaps). */
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        struct nm_arena *a = atomic_load_explicit(&h->arena, memory_order_acquire);
        if (a && a->owned) atomic_store(&a->set_threads, 0);
    }
    if (nm_tls_set_arena) atomic_fetch_add(&nm_tls_set_arena->set_threads, 1);
    uintptr_t self = nm_thread_self();
    atomic_store(&nm_proc.purge.threads, tls_exit_armed ? 1 : 0);
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        struct nm_arena *a = atomic_load_explicit(&h->arena, memory_order_acquire);
        /* Claimed by a thread that had not set it up yet at the fork: it
         * stays claimed (one struct lost to the child). */
        if (!atomic_load_explicit(&h->claimed, memory_order_relaxed) || !a) continue;
        /* A stack pop of a thread that is gone holds its flag forever. */
        nm_arena_after_fork(a);
        if (h->thread == self) continue;
        /* A heap its thread was changing at the fork cannot be walked: it
         * stays claimed, and its memory is lost to the child, not corrupted. */
        if (atomic_load_explicit(&h->lock, memory_order_acquire) != 0) {
            h->lost = true;   /* purges leave it alone too */
            continue;
        }
        /* Nor can foreign lists it was changing: their blocks are lost. */
        if (atomic_load_explicit(&h->foreign_busy, memory_order_acquire) != 0) heap_foreign_forget(h);
        heap_abandon(h);
        heap_unclaim(h);
    }
}

/* Hand the heap of a user slot back, if it is still this thread's heap for
 * that id (nm_heap_destroy may have taken it away meanwhile) and not the
 * heap the thread has set (nm_heap_set_thread: it goes back when it is
 * unset). */
static void user_slot_clear(struct nm_user_slot *slot)
{
    struct nm_heap *h = slot->heap;
    if (h && h != nm_tls_heap && h->user_id == slot->id && h->thread == nm_thread_self() &&
        atomic_load_explicit(&h->claimed, memory_order_acquire)) {
        heap_abandon(h);
        heap_unclaim(h);
    }
    slot->id = 0;
    slot->heap = NULL;
}

/* Thread exit (the pthread key's destructor, set when the thread's first
 * heap was set up): every heap of the thread goes back. */
static void set_heap_leave(struct nm_heap *h, struct nm_arena *a);

static void heap_thread_exit(void *arg)
{
    (void)arg;
    if (nm_tls_set_arena) {   /* the heap set goes first: nm_tls_heap is the thread's own again */
        struct nm_heap *set = nm_tls_heap;
        struct nm_arena *a = nm_tls_set_arena;
        nm_tls_heap = tls_own_heap;
        tls_own_heap = NULL;
        nm_tls_set_arena = NULL;
        set_heap_leave(set, a);
    }
    struct nm_heap *h = nm_tls_heap;
    nm_tls_heap = &nm_heap_empty;
    if (h != &nm_heap_empty) heap_park(h);
    for (int i = 0; i < NM_MAX_NODES; i++) {
        h = nm_tls_node_heap[i];
        nm_tls_node_heap[i] = NULL;
        if (h) heap_park(h);
    }
    nm_tls_last_node_id = NM_NO_LAST_NODE;
    nm_tls_last_node_heap = NULL;
    for (int i = 0; i < NM_USER_SLOTS; i++) user_slot_clear(&nm_tls_user[i]);
    /* glibc cleared our value before calling us: a later destructor that
     * allocates sets up a heap and arms us again for another round. */
    tls_exit_armed = false;
    /* The purge thread looks whether the program is down to one thread
     * (it then ends once nothing waits: it must not keep the process
     * alive, nor a single-threaded program multi-threaded). */
    atomic_fetch_sub(&nm_proc.purge.threads, 1);
    if (atomic_load(&nm_proc.purge.helpers)) {
        atomic_fetch_add(&nm_proc.purge.exits, 1);
        nm_os_futex_wake(&nm_proc.purge.exits);
    }
    if (atomic_load_explicit(&nm_proc.purge.state, memory_order_relaxed) == 1) {
        atomic_store(&nm_proc.purge.quit, 1);
        nm_os_futex_wake(&nm_proc.purge.quit);
        nm_os_futex_wake(&nm_proc.purge.waiting);
    }
}

/* Arm the thread-exit destructor, once per thread, after the new heap is
 * stored where the thread's next malloc finds it: pthread_setspecific
 * itself calls calloc for keys of index 32 and above, and that calloc must
 * find the heap set up rather than start a second set-up (which would
 * recurse until the stack overflows). */
static void thread_exit_arm(void)
{
    if (tls_exit_armed) return;
    tls_exit_armed = true;   /* before the call: its calloc comes back here */
    atomic_fetch_add(&nm_proc.purge.threads, 1);
    if (pthread_setspecific(heap_key, &nm_heap_empty) != 0) {   /* any non-NULL value */
        tls_exit_armed = false;   /* try again with the thread's next heap */
        atomic_fetch_sub(&nm_proc.purge.threads, 1);
    }
}

/* A new heap of the calling thread, from `arena`. */
static struct nm_heap *heap_new(struct nm_arena *arena)
{
    nm_heap_init();
    nm_thread_name();
    struct nm_heap *h = heap_claim(arena);
    if (!h) { errno = ENOMEM; return NULL; }
    atomic_fetch_add_explicit(&nm_proc.counters.threads, 1, memory_order_relaxed);
    return h;
}

struct nm_heap *nm_heap_get(void)
{
    struct nm_heap *h = nm_tls_heap;
    if (h != &nm_heap_empty) return h;
    nm_heap_init();
    h = heap_new(nm_proc.policy_arena ? nm_proc.policy_arena : nm_local_arena(nm_topology_home_node()));
    if (!h) return NULL;
    nm_tls_heap = h;
    thread_exit_arm();
    /* A second thread: blocks may now be freed by threads other than their
     * owner, whose pages only a purge can give back if the owner idles. */
    if (atomic_load_explicit(&nm_proc.counters.threads, memory_order_relaxed) > 1) nm_purge_signal();
    /* From here on the thread's heap may no longer be `h`: arming the exit
     * destructor (pthread_setspecific) and the safe point (starting the
     * purge thread: pthread_create) allocate, and an allocation of a
     * thread that moved to another node since `h` was made moves it to a
     * heap of that node and gives `h` back (heap_move). */
    heap_safe_point(nm_tls_heap);
    return nm_tls_heap;
}

struct nm_heap *nm_heap_for_node(int index)
{
    struct nm_heap *h = nm_tls_node_heap[index];
    if (h) return h;
    h = heap_new(nm_bound_arena(index));
    if (!h) return NULL;
    nm_tls_node_heap[index] = h;
    thread_exit_arm();
    return h;
}

struct nm_heap *nm_heap_for_user(struct nm_arena *a, uint64_t id)
{
    struct nm_user_slot *slot = &nm_tls_user[id % NM_USER_SLOTS];
    user_slot_clear(slot);
    struct nm_heap *h = heap_new(a);
    if (!h) return NULL;
    h->user_id = id;
    slot->heap = h;
    slot->id = id;
    thread_exit_arm();
    return h;
}

/* The heap struct `h` of arena `a` that the thread had set leaves it:
 * the blocks it holds outside its pages (foreign lists: blocks of `a`
 * this thread freed; secure mode's quarantine: any block it freed) go
 * back, and the struct goes back to the arena unless the thread's table
 * of heaps still names it. */
static void set_heap_leave(struct nm_heap *h, struct nm_arena *a)
{
    /* Bracketed as a purge pass: once set_threads is 0 the heap may be
     * destroyed or reset, which waits for passes (nm_heap_forget_arena)
     * before its memory goes. */
    nm_purge_pass_begin();
    /* The last thread to leave gives back the lists its arena holds: a
     * purge reaches an owned arena only through heaps set to it. */
    if (atomic_fetch_sub(&a->set_threads, 1) == 1) {
        bool waiting = false;
        nm_heap_purge_transfer(a, true, &waiting);
    }
    struct nm_user_slot *slot = &nm_tls_user[h->user_id % NM_USER_SLOTS];
    if (slot->heap == h && slot->id == h->user_id) {
        heap_release_held(h);
    } else {
        heap_abandon(h);
        heap_unclaim(h);
    }
    nm_purge_pass_end();
}

int nm_heap_set_thread(struct nm_arena *a, uint64_t id)
{
    struct nm_arena *before = nm_tls_set_arena;
    if (a && a == before) return 0;
    struct nm_heap *set = before ? nm_tls_heap : NULL;
    if (!before) {
        if (!a) return 0;
        /* The thread's own heap is set up first: realloc of a plain block
         * allocates from it while the heap is set (alloc.c: alloc_like). */
        if (!nm_heap_get()) return -1;
    }
    struct nm_heap *h = NULL;
    if (a) {
        h = nm_heap_user(a, id);
        if (!h) return -1;
        atomic_fetch_add(&a->set_threads, 1);
    }
    if (!before) tls_own_heap = nm_tls_heap;
    nm_tls_heap = a ? h : tls_own_heap;
    nm_tls_set_arena = a;
    if (!a) tls_own_heap = NULL;
    if (set) set_heap_leave(set, before);
    return 0;
}

struct nm_heap *nm_heap_own(void)
{
    return own_heap();
}

/* How long nm_trim waits for a heap that its owner or another purge holds. */
#define NM_TRIM_WAIT_MS 100

void nm_heap_forget_arena(struct nm_arena *a)
{
    /* No purge may be at its heaps or segments when they go: a pass that
     * starts after `releasing` is set leaves them alone, and the passes
     * under way are waited for, twice: a pass that read one of the heaps'
     * arena before the heaps were reset may still look at the arena. */
    atomic_store(&a->releasing, true);
    nm_purge_wait_passes(0);
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        if (h->arena != a || !atomic_load_explicit(&h->claimed, memory_order_acquire)) continue;
        heap_foreign_forget(h);  /* blocks of `a` the heap's thread freed (a heap once set) */
        heap_reset(h, a);        /* its segments are about to go: forget them */
        heap_unclaim(h);
    }
    nm_arena_transfer_forget(a);
    nm_purge_wait_passes(0);
}

void nm_heap_release_arena(struct nm_arena *a)
{
    nm_heap_forget_arena(a);
    nm_arena_release(a);
}

void nm_heap_arena_moved(struct nm_arena *a)
{
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next)
        if (h->arena == a && atomic_load_explicit(&h->claimed, memory_order_acquire))
            h->node = a->node;
}

/* The thread now runs on `node`: give the old heap's segments to their
 * node and continue with a fresh heap on the new one. */
static struct nm_heap *heap_move(struct nm_heap *h, int node)
{
    struct nm_heap *moved = heap_claim(nm_local_arena(node));
    if (!moved) return h;   /* keep serving from the old node rather than fail */
    if (nm_tls_heap == h) nm_tls_heap = moved;
    else tls_own_heap = moved;   /* the thread's own, while a heap is set */
    heap_abandon(h);
    heap_unclaim(h);
    return moved;
}

/* Local heaps follow their thread; node heaps stay where they were asked.
 * Runs on every slow path and whenever the fast path saw the rseq word
 * change (a move between CPUs or nodes): the word is read before the node,
 * so a move in between shows at the next allocation. */
static struct nm_heap *heap_check_node(struct nm_heap *h)
{
    /* Not while this thread is inside the heap's own work (a program that
     * intercepts madvise allocating from inside a maintenance pass): the
     * move abandons the heap that work uses.  The next allocation moves. */
    uint32_t depth = atomic_load_explicit(&h->lock, memory_order_relaxed);
    if (depth != 0 && depth != NM_HEAP_PURGING) return h;
    h->node_seen = *h->node_word;
    if (nm_topo.node_count < 2 || !nm_arena_is_local(h->arena)) return h;
    int node = nm_topology_home_node();
    return node == h->node ? h : heap_move(h, node);
}

int nm_heap_rebind(void)
{
    struct nm_heap *h = own_heap();   /* never the heap set: it stays on its node */
    if (h == &nm_heap_empty) h = nm_heap_get();
    if (!h) return nm_topo.node_id[nm_topology_home_node()];
    return nm_topo.node_id[heap_check_node(h)->node];
}

static void heap_tick(struct nm_heap *h, uint64_t now)
{
    if (now >= h->next_maintenance_ms) {
        heap_enter(h);
        heap_maintenance(h, now);
        heap_leave(h);
    }
}

void nm_heap_tick(void)
{
    struct nm_heap *h = own_heap();
    if (h == &nm_heap_empty) return;
    uint64_t now = nm_os_now_ms();
    heap_tick(h, now);
    if (nm_tls_set_arena) heap_tick(nm_tls_heap, now);   /* the heap set too */
}

void nm_heap_populate(struct nm_heap *h)
{
    heap_enter(h);
    for (int kind = 0; kind < 2; kind++) {
        for (struct nm_segment *s = h->segments[kind]; s && s->free_pages; s = s->heap_next) {
            s->reserved = true;
            for (uint64_t bits = s->free_pages; bits; bits &= bits - 1) {
                size_t index = (size_t)__builtin_ctzll(bits);
                uint8_t *start;
                size_t len;
                nm_page_area(s, index, &start, &len);
                if (nm_segment_commit_page(s, index) != 0) continue;
                page_recommitted(s, index);
                if (nm_os_populate(start, len) == 0) s->pages[index].touched_end = start + len;
            }
        }
    }
    heap_leave(h);
}

/* Give back what heap `h` of the calling thread holds free. */
static void heap_trim(struct nm_heap *h)
{
    heap_release_held(h);
    heap_enter(h);
    heap_collect_remote(h, true);
    heap_release_idle_pages(h);
    /* Adopt every abandoned segment of our arena: their empty pages go back
     * too. */
    heap_adopt_abandoned(h, (int)atomic_load_explicit(&h->arena->abandoned.count,
                                                      memory_order_relaxed));
    uint64_t now = nm_os_now_ms();
    heap_decommit_free_pages(h, now, true);
    heap_purge_free_blocks(h, now, true, true, true);
    heap_leave(h);
}

void nm_heap_trim(void)
{
    struct nm_heap *h = own_heap();
    if (h != &nm_heap_empty) heap_trim(h);
    if (nm_tls_set_arena) heap_trim(nm_tls_heap);   /* the heap set too */
}

/* ---- purging other threads' heaps ------------------------------------------------------------ */

/* Pages other than the first of their class whose every block in use was
 * freed by other threads: their owner cannot reach them (it has no block
 * there to free, and allocates only from the first page of a class), so a
 * purge may release them while the owner runs, idle or not.  The remote
 * list is counted first and taken only when it holds every block in use
 * (the owner's count is read with acquire: its last local free is on the
 * free list by then).  The pages count as free since `retired_ms`: now,
 * or a delay ago for an owner that is not allocating (nm_purge_due_now),
 * so that the same pass gives them back. */
static struct nm_segment *heap_release_remote_freed(struct nm_heap *h, uint64_t retired_ms)
{
    struct nm_segment *emptied = NULL;
    for (int kind = 0; kind < 2; kind++) {
        for (struct nm_segment *s = h->segments[kind], *next; s; s = next) {
            next = s->heap_next;
            if (!atomic_load_explicit(&s->remote_pending, memory_order_acquire)) continue;
            for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1) {
                struct nm_page *pg = &s->pages[__builtin_ctzll(in_use)];
                if (pg->state == NM_PAGE_FREE) continue;
                if (pg->state == NM_PAGE_QUEUED && h->queue[pg->size_class].first == pg) continue;
                struct nm_block *head = atomic_load_explicit(&pg->remote, memory_order_acquire);
                if (!head) continue;
                uint32_t used = __atomic_load_n(&pg->used, __ATOMIC_ACQUIRE);
                uint32_t count = 0;
                /* A corrupt block ends the count: the owner's collect reports it. */
                uint32_t most = nm_page_capacity(pg);   /* a cycle ends the count too */
                for (struct nm_block *b = head; b && count <= used && count <= most;
                     b = nm_block_next(b)) {
                    if (!nm_page_is_block(pg, b) || !nm_block_is_free(b)) break;
                    count++;
                }
                if (count != used) continue;
                atomic_fetch_add_explicit(&nm_proc.counters.purge_collected, nm_page_collect(pg),
                                          memory_order_relaxed);
                if (pg->used != 0) continue;   /* a double free raced in: leave it */
                nm_queue_unlink(h, pg);
                segment_page_release(s, pg, retired_ms);
                if (segment_empty(s)) {
                    /* To the cache after the heap's lock is let go. */
                    nm_heap_segment_unlink(h, s);
                    s->stack_next = emptied;
                    emptied = s;
                    break;
                }
                nm_heap_segment_reorder(h, s);
            }
        }
    }
    return emptied;
}

/* The foreign lists of `h` (locked by a purge) that its owner has not
 * touched for `delay_ms` (or all, with `force`): a purge that finds a list
 * touched clears its bit and notes the time, so a list goes back once a
 * whole delay passes without a push or a pop on it (with no delay: once a
 * pass finds it untouched since the last). */
static struct nm_block *heap_foreign_take_idle(struct nm_heap *h, uint64_t now_ms,
                                               uint64_t delay_ms, bool force, bool *waiting)
{
    if (atomic_load_explicit(&h->foreign_blocks, memory_order_relaxed) == 0) return NULL;
    uint64_t touched = atomic_exchange_explicit(&h->foreign_touched, 0, memory_order_relaxed);
    uint64_t idle = 0;
    for (unsigned c = 0; c < NM_SMALL_CLASSES; c++) {
        /* A list that fills after this look is touched. */
        if (!atomic_load_explicit(&h->foreign[c].head, memory_order_relaxed) &&
            !(touched & (1ull << c)))
            continue;
        /* The time since in 32 bits, as segments' retired_ms. */
        if ((touched & (1ull << c)) && !force)
            h->foreign_seen_ms[c] = (uint32_t)now_ms;
        else if (nm_purge_due32(h->foreign_seen_ms[c], now_ms, delay_ms, force))
            idle |= 1ull << c;
        if (!(idle & (1ull << c))) *waiting = true;
    }
    if (!idle) return NULL;
    /* The heap's lock is held: under ThreadSanitizer that keeps the owner
     * out (foreign_enter), and so does being the owner. */
    if (NM_TSAN || __atomic_load_n(&h->thread, __ATOMIC_RELAXED) == nm_thread_self())
        return foreign_take(h, idle);
    atomic_store_explicit(&h->foreign_steal, 1, memory_order_relaxed);
    struct nm_block *all = NULL;
    if (!nm_os_membarrier()) {
        /* No way to keep the owner out: the lists stay (at most
         * nm_foreign_limit << NM_FOREIGN_MAX_SCALE blocks a class) until
         * the owner empties them. */
    } else if (atomic_load_explicit(&h->foreign_busy, memory_order_acquire)) {
        *waiting = true;   /* the owner is at them right now: next pass */
    } else {
        all = foreign_take(h, idle);
    }
    atomic_store_explicit(&h->foreign_steal, 0, memory_order_release);
    return all;
}

void nm_heap_purge(struct nm_heap *h, uint64_t now_ms, bool force, bool *waiting)
{
    struct nm_arena *a = atomic_load_explicit(&h->arena, memory_order_acquire);
    if (!a || h->lost || atomic_load(&a->releasing)) return;
    if (nm_heap_parked(h)) {
        if (!nm_purge_due(atomic_load_explicit(&h->parked_ms, memory_order_relaxed), now_ms,
                          nm_opt.purge_delay_ms, force)) {
            *waiting = true;
            return;
        }
        if (!heap_try_claim(h)) return;   /* a new thread took it over */
        if (atomic_load_explicit(&h->arena, memory_order_acquire)) {
            /* Its thread freed these blocks before it exited, a delay ago.
             * Locked: a pass that finds the heap claimed, not parked, takes
             * the purge lock if it is free. */
            heap_enter(h);
            heap_release_unused(h);   /* pages emptied meanwhile go back whole */
            heap_purge_free_blocks(h, now_ms, true, force, false);
            heap_leave(h);
            heap_abandon(h);
        }
        heap_unclaim(h);
        return;
    }
    /* A forced purge (nm_trim) waits a little for the heap: its owner's
     * slow path or another purge has it for a moment.  Only a little: the
     * owner may be stopped inside its slow path (a signal handler). */
    bool locked = heap_try_purge_lock(h);
    /* (Not for the caller's own heap: a lock it holds stays held.) */
    bool own = __atomic_load_n(&h->thread, __ATOMIC_RELAXED) == nm_thread_self();
    for (uint64_t until = now_ms + NM_TRIM_WAIT_MS;
         !locked && force && !own && nm_os_now_ms() < until;) {
        sched_yield();
        locked = heap_try_purge_lock(h);
    }
    if (!locked) {
        *waiting = true;
        return;
    }
    /* What other threads freed for an owner that is not allocating goes
     * back without the delay (arena.h: nm_purge_owner_idle). */
    bool idle = nm_purge_owner_idle(atomic_load_explicit(&h->active_ms, memory_order_relaxed),
                                    now_ms);
    struct nm_block *foreign = heap_foreign_take_idle(
        h, now_ms, idle ? 0 : nm_opt.purge_delay_ms, force, waiting);
    /* Remote frees from now on wake the purge thread again: the fence
     * orders the store before the loads of the pages' remote lists (and a
     * free's push before its load of the flag: nm_heap_free_remote). */
    atomic_store_explicit(&h->remote_unseen, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t retired_ms = idle ? nm_purge_due_now(now_ms) : now_ms;
    struct nm_segment *emptied = heap_release_remote_freed(h, retired_ms);
    struct purge_batch b;
    heap_purge_claim(h, now_ms, force, &b, waiting);
    heap_purge_unlock(h);
    /* No system call under the lock: the cache may unmap (nm_trim). */
    for (struct nm_segment *s = emptied, *next; s; s = next) {
        next = s->stack_next;
        nm_arena_cache_segment_since(s, retired_ms);
    }
    purge_batch_finish(&b);
    /* Their pages may now be freed whole: the next pass releases them. */
    foreign_release(foreign);
}

void nm_heap_purge_abandoned(struct nm_arena *a, uint64_t now_ms, bool force, bool *waiting)
{
    if (atomic_load(&a->releasing)) return;
    struct nm_segment *all = nm_stack_take_all(&a->abandoned);
    if (!all && atomic_load_explicit(&a->abandoned.count, memory_order_relaxed) > 0)
        *waiting = true;   /* another thread is at it */
    for (struct nm_segment *s = all, *next; s; s = next) {
        next = s->stack_next;
        /* Ours alone while it is off the stack; each goes back as soon as
         * it is done, so that heaps may adopt it meanwhile. */
        for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1) {
            struct nm_page *pg = &s->pages[__builtin_ctzll(in_use)];
            if (pg->state == NM_PAGE_FREE) continue;
            atomic_fetch_add_explicit(&nm_proc.counters.purge_collected, nm_page_collect(pg),
                                      memory_order_relaxed);
            if (pg->used == 0) segment_page_release(s, pg, now_ms);
        }
        nm_segment_purge_finish(s, nm_segment_purge_claim(s, now_ms, force, waiting));
        struct block_batch bb = { .count = 0 };
        size_t page = 0;
        while (!segment_take_due_blocks(s, &page, now_ms, force, force, waiting, &bb))
            block_batch_finish(&bb, false);
        block_batch_finish(&bb, false);
        if (segment_empty(s)) nm_arena_cache_segment(s);
        else nm_stack_push(&a->abandoned, s);
    }
}

/* ---- blocks in use ------------------------------------------------------------------------- */

static void count_segment(struct nm_segment *s, void *arg)
{
    struct nm_block_count *out = arg;
    for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1) {
        const struct nm_page *pg = &s->pages[__builtin_ctzll(in_use)];
        if (pg->state == NM_PAGE_FREE || pg->block_size == 0) continue;
        uint64_t used = __atomic_load_n(&pg->used, __ATOMIC_RELAXED);
        out->blocks[pg->size_class] += used;
        out->pages[pg->size_class]++;
        out->node_bytes[s->node] += used * pg->block_size;
    }
}

/* The arenas whose abandoned stacks were counted (owned arenas are shared
 * by the heaps of one nm_heap_new heap: counted once). */
#define NM_COUNT_OWNED_MAX 256

/* The abandoned segments of arena `a`; a stack another thread is popping
 * meanwhile is left out and counted in heaps_skipped. */
static void count_abandoned(struct nm_arena *a, struct nm_block_count *out)
{
    if (!nm_stack_visit(&a->abandoned, count_segment, out) &&
        atomic_load_explicit(&a->abandoned.count, memory_order_relaxed) != 0)
        out->heaps_skipped++;
}

void nm_heap_count_blocks(struct nm_block_count *out)
{
    static struct nm_arena *owned_seen[NM_COUNT_OWNED_MAX];   /* the caller's turn (stats.c) */
    size_t owned_count = 0;
    memset(out, 0, sizeof *out);
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        struct nm_arena *a = atomic_load_explicit(&h->arena, memory_order_acquire);
        if (!a || atomic_load(&a->releasing)) continue;
        if (h->lost) {
            out->heaps_skipped++;
            continue;
        }
        /* Held as a purge holds it: the owner's slow path waits for the
         * few microseconds of the walk, and no segment leaves the heap.  A
         * heap its owner holds (it is in its slow path) is tried again for
         * a moment, then left out. */
        bool locked = heap_try_purge_lock(h);
        for (int tries = 0; !locked && tries < 1000; tries++) {
            sched_yield();
            locked = heap_try_purge_lock(h);
        }
        if (!locked) {
            out->heaps_skipped++;
            continue;
        }
        if (atomic_load_explicit(&h->arena, memory_order_relaxed)) {
            for (int kind = 0; kind < 2; kind++)
                for (struct nm_segment *s = h->segments[kind]; s; s = s->heap_next)
                    count_segment(s, out);
        }
        heap_purge_unlock(h);
        if (a->owned) {
            size_t i = 0;
            while (i < owned_count && owned_seen[i] != a) i++;
            if (i == owned_count && owned_count == NM_COUNT_OWNED_MAX) {
                out->heaps_skipped++;   /* its abandoned segments, if any, are not counted */
            } else if (i == owned_count) {
                owned_seen[owned_count++] = a;
                count_abandoned(a, out);
            }
        }
    }
    for (int node = 0; node < nm_topo.node_count; node++) {
        count_abandoned(nm_local_arena(node), out);
        count_abandoned(nm_bound_arena(node), out);
        count_abandoned(nm_first_touch_arena(node), out);
    }
    if (nm_proc.policy_arena) count_abandoned(nm_proc.policy_arena, out);
    if (nm_proc.interleave_arena) count_abandoned(nm_proc.interleave_arena, out);
}

/* ---- the slow path -------------------------------------------------------------------------- */

static bool page_usable(struct nm_heap *h, struct nm_page *pg)
{
    return pg && (pg->free || heap_extend(h, pg));
}

/* A page of class `cls` with a free block, first in its queue; NULL + ENOMEM. */
static struct nm_page *heap_find_page(struct nm_heap *h, unsigned cls)
{
    struct nm_page_queue *q = &h->queue[cls];
    for (struct nm_page *pg = q->first, *next; pg; pg = next) {
        next = pg->next;
        heap_collect(h, pg);
        if (pg->free || heap_extend(h, pg)) {
            if (q->first != pg) {
                nm_queue_unlink(h, pg);
                nm_queue_push_page_front(h, pg);
            }
            return pg;
        }
        nm_queue_to_full(h, pg);
    }
    /* Nothing queued: remote frees may have refilled full pages, and
     * segments abandoned on our node may hold pages of this class. */
    heap_collect_remote(h, false);
    if (page_usable(h, q->first)) return q->first;
    for (int i = 0; i < 4; i++) {
        struct nm_segment *s = nm_arena_take_abandoned(h->arena);
        if (!s) break;
        heap_adopt(h, s);
        if (page_usable(h, q->first)) return q->first;
    }

    struct nm_segment *s = heap_segment_with_free_page(h, nm_class_kind(cls));
    if (!s) { errno = ENOMEM; return NULL; }
    struct nm_page *pg = page_take(h, s, cls);
    if (!pg) { errno = ENOMEM; return NULL; }
    heap_extend(h, pg);
    return pg;
}

void *nm_heap_alloc_class(struct nm_heap *h, unsigned cls)
{
    int saved_errno = errno;   /* a successful malloc leaves errno alone */
    if (h == &nm_heap_empty) {
        h = nm_heap_get();
        if (!h) return NULL;
    }
    h = heap_check_node(h);
    /* Blocks this thread freed for others come first: their lines are here. */
    struct nm_block *b = foreign_pop(h, cls);
    if (b) return b;
    heap_enter(h);
    uint64_t now = nm_os_now_ms();
    /* Stored when the coarse clock moved: remote frees read the line. */
    if (atomic_load_explicit(&h->active_ms, memory_order_relaxed) != now)
        atomic_store_explicit(&h->active_ms, now, memory_order_relaxed);
    if (now >= h->next_maintenance_ms) heap_maintenance(h, now);

    struct nm_page *pg = h->queue[cls].first;
    for (;;) {
        if (!pg || !pg->free) {
            pg = heap_find_page(h, cls);
            if (nm_unlikely(!pg)) {
                /* No segment could be mapped: release everything cached,
                 * with the lock let go, and look once more (arena.h). */
                heap_leave(h);
                /* Over the heap's limit (nm_heap_set_limit), releasing
                 * caches gives no room: fail now. */
                if (nm_arena_over_limit(h->arena, NM_SEGMENT_SIZE)) {
                    errno = ENOMEM;
                    return NULL;
                }
                if (!nm_arena_release_for_retry(NM_SEGMENT_SIZE)) return NULL;
                heap_enter(h);
                pg = heap_find_page(h, cls);
            }
            if (!pg) {
                heap_leave(h);
                errno = ENOMEM;
                return NULL;
            }
        }
        if (nm_unlikely(nm_proc.secure)) secure_page_check(h, pg, cls);
        b = pg->free;
        if (nm_likely(nm_block_is_free(b))) break;
        /* Dropped from `b` on (with warn): the page's blocks not on its
         * list stay counted in `used`. */
        nm_page_corrupt(pg, b, "free", true);
        pg->free = NULL;
    }
    pg->free = nm_block_next(b);
    __atomic_store_n(&pg->used, pg->used + 1, __ATOMIC_RELAXED);
    nm_block_take_class(b, cls);
    heap_leave(h);
    heap_safe_point(h);
    errno = saved_errno;
    return b;
}

/* Whether heap `h` is known to be on the calling thread's node without
 * asking the topology: the kernel's rseq word it watches has not changed
 * (heap.h: node_word), or it has no node to follow (one node, a heap bound
 * by a policy, nm_heap_empty).  Without rseq a moved thread is noticed
 * only by heap_check_node. */
static inline bool heap_node_current(struct nm_heap *h)
{
    if (h->node_word != &h->node_seen) return !nm_heap_node_changed(h);
    struct nm_arena *a = atomic_load_explicit(&h->arena, memory_order_relaxed);
    return nm_topo.node_count < 2 || !a || !nm_arena_is_local(a);
}

/* The size class the slow path serves `size` bytes aligned to `alignment` from. */
static inline unsigned heap_class_of(size_t size, size_t alignment)
{
    return alignment > 16 ? nm_aligned_class(size, alignment) : nm_size_class(size);
}

/* Every allocation of a heap comes here while nm_proc.slow_allocs is set:
 * the profiler's countdown first (its sampled block comes from the heap's
 * arena), then secure mode's blocks, else the class's first page as the
 * fast path would pop it. */
static nm_noinline void *heap_alloc_counted(struct nm_heap *h, size_t size, size_t alignment)
{
    /* A thread that moved gets its new node's heap first, as on the fast
     * path's slow branch: a sampled block is placed as the others. */
    if (nm_unlikely(!heap_node_current(h))) h = heap_check_node(h);
    if (nm_heap_sample_due(size)) {
        int saved = errno;
        void *(*sample)(struct nm_arena *, size_t, size_t, bool) =
            atomic_load_explicit(&nm_proc.sample_alloc, memory_order_relaxed);
        void *p = sample(atomic_load_explicit(&h->arena, memory_order_relaxed), size, alignment, false);
        errno = saved;
        if (p) return p;
    }
    if (nm_proc.secure) return nm_heap_alloc_secure(h, size, alignment);
    unsigned cls = heap_class_of(size, alignment);
    struct nm_page *pg = h->queue[cls].first;
    return pg ? nm_heap_pop(h, pg, cls) : nm_heap_alloc_class(h, cls);
}

void *nm_heap_alloc_slow(struct nm_heap *h, size_t size, size_t alignment)
{
    /* A thread's first allocation sets up its heap, and the process's
     * first one reads the options: secure mode is known from here on. */
    if (h == &nm_heap_empty && !(h = nm_heap_get())) return NULL;
    if (nm_unlikely(nm_proc.slow_allocs)) return heap_alloc_counted(h, size, alignment);
    unsigned cls = heap_class_of(size, alignment);
    /* A thread that frees what others allocated takes it back here (blocks
     * of its class, not aligned ones), at the cost of a leaf call, when its
     * heap is known to be on its node; else nm_heap_alloc_class checks the
     * node first. */
    if (alignment <= 16 && heap_node_current(h)) {
        struct nm_block *b = foreign_pop(h, cls);
        if (b) return b;
    }
    return nm_heap_alloc_class(h, cls);
}

/* The page `pg` of the calling thread's heap `h` may be released (used
 * == 0): a purge never takes such a page (it has no remote block), so it
 * is still where the free left it.  A program that releases pages may have
 * memory to give back: maintenance may run here too, not only when
 * allocating.  A free keeps errno. */
static void heap_page_emptied(struct nm_heap *h, struct nm_page *pg)
{
    if (pg->used == 0 && page_retire(h, pg)) {
        uint64_t now = nm_os_now_ms();
        if (now >= h->next_maintenance_ms) heap_maintenance(h, now);
    }
}

void nm_heap_page_freed(struct nm_heap *h, struct nm_page *pg)
{
    int saved = errno;
    heap_enter(h);
    heap_page_emptied(h, pg);
    heap_leave(h);
    errno = saved;
}

void nm_heap_free_to_full(struct nm_heap *h, struct nm_page *pg, struct nm_block *b)
{
    int saved = errno;
    heap_enter(h);
    nm_block_set_next(b, pg->free);
    pg->free = b;
    __atomic_store_n(&pg->used, pg->used - 1, __ATOMIC_RELEASE);
    nm_queue_remove(&h->full, pg);
    nm_queue_push_page_back(h, pg);
    heap_page_emptied(h, pg);
    heap_leave(h);
    errno = saved;
}
