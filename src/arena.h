/*
 * arena.h — arenas: how node-bound memory is bound, and what each arena
 * keeps that no heap owns (empty segments in its cache, segments whose
 * owner left on its abandoned stack); the per-node state and counters; the
 * one retention rule (nm_purge_due) and the signal to the background purge.
 *
 * The types here are read by the segment layer below (how to bind and
 * carve a range, whose counters it charges); the functions (arena.c) sit
 * above it: they format, map and unmap segments through segment.h.
 *
 * Each node has three arenas:
 *   local        preferred on the node, for the thread heaps of threads
 *                running there
 *   bound        bound to the node, for nm_malloc_onnode
 *   first_touch  not bound, for the large blocks of threads running there:
 *                their pages follow first touch
 * plus the process-wide ones (NUMAMALLOC_POLICY, NUMAMALLOC_INTERLEAVE_ABOVE)
 * and the owned arenas of heaps made with nm_heap_new.  A segment only ever
 * goes back to its own arena.
 *
 * arena.c may call the segment, chunk, policy, os and topology layers and
 * the options.
 */
#ifndef NM_ARENA_H
#define NM_ARENA_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "options.h"
#include "os.h"
#include "policy.h"
#include "topology.h"

/* Included by segment.h once it has declared the segment types; include
 * segment.h, not this file. */
struct nm_segment;

struct nm_block;

/* Whole lists of free small blocks of one class, waiting in their arena
 * for the next of its threads that needs blocks of the class: what a
 * thread frees of other threads' pages and cannot keep (its foreign list
 * of the class is full; heap.h: foreign) goes here as the whole list, and
 * a thread whose page and foreign list of the class are empty takes a
 * list whole, as tcmalloc's transfer cache hands batches between thread
 * caches.  The blocks travel back one by one to their owners' pages only
 * when every slot is full, and a thread that frees more than it allocates
 * (a consumer) feeds one that allocates more than it frees (a producer).
 *
 * Each slot is 0 (empty) or one list packed in a word:
 *     slot == (head >> 4) << 16 | n      n blocks linked from head
 * (blocks are 16-byte aligned, and an address that does not fit in 52
 * bits is not put).  A thread fills an empty slot with a compare-and-swap
 * and empties one with an exchange, so a list belongs to exactly one
 * party at a time, a slot or one thread, and no lock is taken or held.
 *   list in transfer[c]  =>  its n blocks are encoded free (segment.h),
 *       of class c, of this arena's segments, and counted in their pages'
 *       `used` (in use as far as their owners know), as on a foreign list;
 *   0 < n <= NM_TRANSFER_MAX_BLOCKS.
 * The lists of a class no thread has put a list in nor taken one from
 * since the purge's last pass go back to their pages (transfer_touched),
 * as an idle thread's foreign lists do: that gives no memory back by
 * itself, it lets their pages follow their own rules (a page emptied for an
 * owner that is not allocating goes back at once, others after the purge
 * delay).  nm_trim empties them all, and so does the last thread set to an
 * owned arena's heap when it leaves (heap.c: set_heap_leave; a purge
 * reaches an owned arena only through heaps; in a fork child, an owned
 * arena that no thread was set to keeps the parent's lists until it is
 * destroyed or reset). */
#define NM_TRANSFER_CLASSES 56         /* == NM_SMALL_CLASSES (page.h asserts it) */
#define NM_TRANSFER_SLOTS 8
#define NM_TRANSFER_MAX_BLOCKS 0xffffu
struct nm_transfer {
    _Atomic uint64_t slot[NM_TRANSFER_SLOTS];
} __attribute__((aligned(64)));

/* A lock-free stack of segments.  Anyone pushes; a pop first wins the
 * `popping` flag with a try (never waits), so only one thread pops at a time
 * and a popped segment cannot be unmapped under another popper.  A fork or
 * signal cannot leave a waiter stuck: nobody waits.  The child of a fork
 * clears the flags (nm_arenas_after_fork). */
struct nm_stack {
    _Atomic(struct nm_segment *) top;
    _Atomic bool popping;
    _Atomic uint32_t count;
};

void nm_stack_push(struct nm_stack *st, struct nm_segment *s);
/* Pop one, or NULL when empty or another thread is popping. */
struct nm_segment *nm_stack_pop(struct nm_stack *st);
/* Take the whole stack (NULL if empty or busy); walk it through stack_next. */
struct nm_segment *nm_stack_take_all(struct nm_stack *st);
/* Call `visit` for each segment on the stack, leaving them there: the pop
 * flag is held meanwhile (nobody pops; pushes only add above the top we
 * started from), so `visit` must be short and make no system call.  False
 * when the stack is empty or another thread is popping (nothing visited). */
bool nm_stack_visit(struct nm_stack *st, void (*visit)(struct nm_segment *s, void *arg), void *arg);

struct nm_arena {
    struct nm_stack cache;              /* empty segments, still mapped and bound */
    struct nm_stack abandoned;          /* segments with live blocks and no owner */
    _Atomic uint64_t next_purge_ms;     /* no cache purge before this time */
    struct nm_chunk_list chunks;        /* where its segments and spans are carved */
    int node;                           /* dense node index its memory is charged to */
    int bind_mode;                      /* NM_MPOL_* for new memory, or -1: no mbind */
    nm_nodemask nodes;                  /* the nodes for mbind */
    /* Owned arenas (nm_heap_new) keep every range they map until they are
     * released as a whole: `members` lists their segments and `spans` their
     * large spans (push only), a purge only decommits, and a freed large
     * span waits, decommitted, for reuse by the same arena. */
    bool owned;
    /* Strict (owned arenas of NM_HEAP_STRICT heaps): every range is faulted
     * in when it is mapped, under the arena's binding, and a range the
     * nodes cannot hold is given back at once (the allocation fails with
     * ENOMEM); nothing of it is ever decommitted before the arena is
     * released, so no later first touch can fail. */
    bool strict;
    /* Set while an owned arena is released: purges leave it alone, and the
     * release waits for the purges already at it (nm_purge_wait_passes). */
    _Atomic bool releasing;
    _Atomic(struct nm_segment *) members;
    _Atomic(struct nm_segment *) spans;
    /* Owned arenas: the bytes charged against the heap's limit
     * (nm_heap_set_limit; 0: none): NM_SEGMENT_SIZE per member segment
     * (charged when it is mapped, kept until the arena is released) plus
     * s->size of each live span (charged when a span is mapped or taken
     * for a block, given back when the block is freed).  Changed only with
     * nm_arena_charge / nm_arena_uncharge:  charged <= limit  whenever
     * limit != 0 and the limit was set before the memory was charged. */
    _Atomic uint64_t charged;
    _Atomic uint64_t limit;
    /* Owned arenas: threads that have the heap set as theirs
     * (nm_thread_set_heap; heap.c). */
    _Atomic uint32_t set_threads;
    /* Small blocks handed between the arena's threads (struct nm_transfer). */
    struct nm_transfer transfer[NM_TRANSFER_CLASSES];
    _Atomic uint64_t transfer_touched;  /* bit c: a list of class c put or taken since a
                                           purge looked */
    _Atomic uint64_t transfer_pass;     /* the purge pass that last looked (purge.c) */
};

struct nm_node_state {
    struct nm_arena local;              /* thread heaps of threads on this node */
    struct nm_arena bound;              /* nm_malloc_onnode: bound to this node */
    struct nm_arena first_touch;        /* large blocks of threads on this node, not
                                           bound: a page goes where it is first
                                           written (large.c) */
    /* Counters, in bytes unless named otherwise. */
    _Atomic uint64_t mapped;            /* address space of segments and spans (not the
                                           free units of chunks, which hold nothing) */
    _Atomic uint64_t decommitted;       /* of that, given back with MADV_DONTNEED */
    _Atomic uint64_t cached;            /* in cached segments and spans */
    _Atomic uint64_t reserved;          /* nm_reserve: cached memory kept regardless */
    _Atomic uint64_t in_use;            /* pages serving a class + live large blocks */
    _Atomic uint64_t in_use_peak;       /* the most in_use has been (nm_node_use) */
    _Atomic uint64_t segments;          /* live small/medium segments (count) */
    _Atomic uint64_t large_blocks;      /* live large blocks (count) */
    _Atomic uint64_t large_bytes;       /* their usable bytes (also in in_use) */
} __attribute__((aligned(64)));

/* Process-wide event counters. */
struct nm_global_counters {
    _Atomic uint64_t purges;
    _Atomic uint64_t purged_bytes;
    _Atomic uint64_t abandoned;
    _Atomic uint64_t reclaimed;
    _Atomic uint64_t threads;         /* thread heaps set up */
    _Atomic uint64_t large_allocs;
    _Atomic uint64_t large_frees;
    _Atomic uint64_t purge_collected;   /* blocks freed by other threads, collected by a
                                           purge (idle owners, abandoned segments) */
    _Atomic uint64_t map_retries;       /* refused mappings retried after a release of
                                           everything cached */
    _Atomic uint64_t cross_node_frees;  /* those of threads without a heap (heap.h) */
};

#define NM_CLASS_SLOTS 66   /* size classes (page.h) */

/* The background purge (purge.c): a thread, started at the first
 * allocation safe point that finds the program with a second thread, that
 * gives back what has waited the purge delay in
 * every heap, arena and cache, so a process that goes quiet returns its
 * free memory without calling malloc again.  Lower layers only signal it:
 *   waiting   set when memory starts waiting for a purge (futex word)
 *   idle      the thread sleeps until `waiting` is set
 *   state     0: not started; 1: running; 2: none (off, or it could not
 *             start: the heaps then purge on their own slow paths)
 *   running   passes over other threads' heaps in progress (the thread's,
 *             nm_trim's): an owned arena's release and a fork wait for
 *             them, except for the calling thread's own (nm_purge_pass_begin:
 *             a fork from a signal handler that stopped a pass)
 *   threads   the program's threads with a heap and an armed exit
 *             destructor (heap.c); each one's exit sets `quit` and wakes
 *             the thread, which ends once nothing waits and the program
 *             has one thread left or none (so that a single-threaded
 *             program stays single-threaded, and a process whose threads
 *             all call pthread_exit ends, as without us)
 *   pass      purge.c's pass; run from allocation paths (every quarter of
 *             the delay at most) while no thread runs: a program with one
 *             thread gets no purge thread, and purges on its own
 *   start     set by purge.c once the process is up; called only at safe
 *             points (no heap lock held: creating a thread allocates).
 *   release   purge.c's release of everything cached (what nm_trim gives
 *             back), for an allocation whose mapping the kernel refused
 *             (nm_arena_release_for_retry). */
struct nm_purge_clock {
    _Atomic uint32_t waiting;
    _Atomic uint32_t idle;
    _Atomic int state;
    _Atomic uint32_t running;        /* purge passes in progress (any thread) */
    _Atomic uint32_t threads;
    _Atomic uint32_t helpers;        /* the library's other threads (the statistics timer,
                                        override.c): not the program's, left out where
                                        the program's threads are counted in /proc */
    _Atomic uint32_t exits;          /* futex word: bumped at each thread exit while
                                        helpers run, which look whether any of the
                                        program's threads is left */
    _Atomic uint32_t quit;           /* futex word: look whether to end */
    _Atomic uint64_t next_pass_ms;   /* no pass from an allocation path before */
    _Atomic uint64_t next_count_ms;  /* no look at the thread count before */
    void (*_Atomic start)(void);
    bool (*_Atomic pass)(uint64_t now_ms, bool force);
    void (*_Atomic release)(void);
};

/* ---- the process ------------------------------------------------------------------ */

/* The allocator's process-wide state, in one place.  Not in it: the
 * options and the topology (read-only once set up, their layers' own),
 * the segment map (a lookup table of its own, segment.h), the chunk
 * descriptors (chunk.c) and the span caches (large.c).
 * nm_heap_init (heap.c) sets it up, once, inside the first allocation;
 * after_fork_in_child (override.c) repairs it in a fork child, where only
 * the forking thread exists. */
struct nm_heap;
struct nm_user_heap;
struct nm_process {
    /* Set once at start-up. */
    uintptr_t cookie_key;           /* random: a header's cookie proves it is ours */
    uintptr_t link_key, check_key;  /* random: encode free blocks (segment.h: nm_block) */
    uintptr_t canary_key;           /* random: secure mode's canaries and size tags (heap.c) */
    bool secure;                    /* NUMAMALLOC_SECURE (here, beside the keys the fast
                                       paths load, for free's one test) */
    bool slow_allocs;               /* every allocation of a heap takes the heap's slow
                                       path (direct[] stays empty): secure mode, the
                                       profiler */
    bool bind_segments;             /* false when the process has its own policy */
    /* The heap profiler, once it is ready (prof.h: nm_prof_alloc; NULL while
     * it is off): an allocation of `size` bytes for arena `a` that crossed
     * its thread's sampling countdown, as a sampled block, or NULL to serve
     * it the usual way.  Heaps call it through this pointer: the profiler
     * is a layer above them. */
    void *(*_Atomic sample_alloc)(struct nm_arena *a, size_t size, size_t alignment, bool zero);
    /* NUMAMALLOC_POLICY, NUMAMALLOC_INTERLEAVE_ABOVE: the arena every thread
     * heap and large block comes from instead of the node-local ones (NULL:
     * node-local), and the one for large blocks of at least
     * nm_opt.interleave_above bytes (NULL: none). */
    struct nm_arena *policy_arena;
    struct nm_arena *interleave_arena;
    struct nm_arena policy_arena_storage, interleave_arena_storage;

    struct nm_node_state nodes[NM_MAX_NODES];
    struct nm_global_counters counters;
    _Atomic uint64_t class_pages[NM_CLASS_SLOTS];  /* pages serving each class, all heaps */
    struct nm_purge_clock purge;
    _Atomic(struct nm_heap *) heaps;               /* every heap struct ever made (heap.c) */
    _Atomic uintptr_t next_thread_id;              /* names given (segment.h: nm_thread_name) */
    _Atomic uint64_t next_user_heap_id;            /* ids given (alloc.c: nm_heap_new; from 1) */
    /* Each node's heap for NM_STRICT allocations (alloc.c: strict_heap),
     * made at the node's first one and kept; by dense node index. */
    _Atomic(struct nm_user_heap *) strict_node_heap[NM_MAX_NODES];
};
/* Hidden: the fast paths load the block keys directly, not through the GOT. */
extern struct nm_process nm_proc __attribute__((visibility("hidden")));

/* ---- operations --------------------------------------------------------------- */

/* Count `bytes` more in use on node state `ns`, and raise its peak.  (A
 * node's in_use never goes below zero between two updates: each block or
 * page is counted before it is uncounted.) */
static inline void nm_node_use(struct nm_node_state *ns, uint64_t bytes)
{
    uint64_t now = atomic_fetch_add_explicit(&ns->in_use, bytes, memory_order_relaxed) + bytes;
    uint64_t peak = atomic_load_explicit(&ns->in_use_peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(&ns->in_use_peak, &peak, now,
                                                                memory_order_relaxed,
                                                                memory_order_relaxed)) {
    }
}

/* A live large block of `bytes` usable bytes counts on node `ns` (in_use,
 * large_bytes, large_blocks), or no longer does. */
static inline void nm_node_span_count(struct nm_node_state *ns, uint64_t bytes)
{
    nm_node_use(ns, bytes);
    atomic_fetch_add_explicit(&ns->large_bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&ns->large_blocks, 1, memory_order_relaxed);
}
static inline void nm_node_span_uncount(struct nm_node_state *ns, uint64_t bytes)
{
    atomic_fetch_sub_explicit(&ns->in_use, bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ns->large_bytes, bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ns->large_blocks, 1, memory_order_relaxed);
}

/* Once, at start-up: whether segments are bound to nodes (not when the
 * process runs under its own memory policy, or on one node), and every
 * node's arenas. */
void nm_arenas_init(void);
/* In a fork child: clear the pop flags of the node arenas' stacks (a thread
 * that held one does not exist there) and the chunks' busy flags, or the
 * pop flags of arena `a`. */
void nm_arenas_after_fork(void);
void nm_arena_after_fork(struct nm_arena *a);

/* Set up an arena charged to `node` whose new memory is bound with
 * `bind_mode` (NM_MPOL_*; -1: not bound) to `nodes`. */
void nm_arena_init(struct nm_arena *a, int node, int bind_mode, const nm_nodemask *nodes);
/* Set up arena `a` bound by policy `p` (policy.h), charged to the first
 * node of its set, or to node `local` for a local policy. */
void nm_arena_init_policy(struct nm_arena *a, const nm_policy *p, int local);
static inline struct nm_arena *nm_local_arena(int node) { return &nm_proc.nodes[node].local; }
static inline struct nm_arena *nm_bound_arena(int node) { return &nm_proc.nodes[node].bound; }
static inline struct nm_arena *nm_first_touch_arena(int node) { return &nm_proc.nodes[node].first_touch; }
static inline bool nm_arena_is_local(const struct nm_arena *a)
{
    return a == &nm_proc.nodes[a->node].local;
}

/* Give back every range an owned arena ever mapped, at once (its blocks
 * become invalid).  No thread may use the arena meanwhile. */
void nm_arena_release(struct nm_arena *a);
/* Empty owned arena `a` and keep its memory: every segment with blocks
 * (of a heap, or abandoned) is formatted afresh (its blocks become
 * invalid) and joins the arena's cache; its spans are left to the caller
 * (large.c frees each live one).  No thread may use the arena meanwhile,
 * and no heap struct may own its segments any more (heap.c resets them
 * first). */
void nm_arena_empty(struct nm_arena *a);

/* Charge `bytes` of owned arena `a` against its limit (arena: `charged`):
 * false with errno ENOMEM when that would take it over, nothing charged.
 * Always true for other arenas. */
static inline bool nm_arena_charge(struct nm_arena *a, uint64_t bytes)
{
    if (!a->owned) return true;
    uint64_t now = atomic_load_explicit(&a->charged, memory_order_relaxed);
    for (;;) {
        uint64_t limit = atomic_load_explicit(&a->limit, memory_order_relaxed);
        if (limit && (now + bytes > limit || now + bytes < now)) {
            errno = ENOMEM;
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&a->charged, &now, now + bytes,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}
static inline void nm_arena_uncharge(struct nm_arena *a, uint64_t bytes)
{
    if (a->owned) atomic_fetch_sub_explicit(&a->charged, bytes, memory_order_relaxed);
}
/* Whether `bytes` more would take owned arena `a` over its limit: a
 * failure the release of every cache (nm_arena_release_for_retry) cannot
 * help. */
static inline bool nm_arena_over_limit(const struct nm_arena *a, uint64_t bytes)
{
    uint64_t limit = atomic_load_explicit(&a->limit, memory_order_relaxed);
    return a->owned && limit &&
           atomic_load_explicit(&a->charged, memory_order_relaxed) + bytes > limit;
}

/* What owned arena `a` holds (numamalloc.h: struct nm_heap_stats, all
 * but `limit`), read relaxed while its threads may run. */
struct nm_heap_stats;
void nm_arena_stats(struct nm_arena *a, struct nm_heap_stats *out);

/* Move the resident pages of owned arena `a` to policy `p` (checked by
 * the caller), and bind its ranges and its future memory by it; its
 * memory is charged to `node` (dense index) from then on (the node
 * counters move with it).  Fills `r` (numamalloc.h; zeroed first).
 * Returns whether every page asked to move moved.  No thread may
 * allocate from or free into the arena meanwhile, and no purge may be at
 * it (`releasing`, as for a release). */
struct nm_migrate_report;
bool nm_arena_migrate(struct nm_arena *a, const nm_policy *p, int node, struct nm_migrate_report *r);

/* A fresh segment of `kind` from arena `a`: its cache, else the OS.  All
 * pages free, no owner.  NULL + ENOMEM on failure. */
struct nm_segment *nm_arena_take_segment(struct nm_arena *a, enum nm_segment_kind kind);
/* An empty segment goes to its arena's cache (or back to the OS), free
 * since now; _since: since `since_ms` (nm_purge_due). */
void nm_arena_cache_segment(struct nm_segment *s);
void nm_arena_cache_segment_since(struct nm_segment *s, uint64_t since_ms);
/* Give an owned segment with live blocks to its arena for adoption. */
void nm_arena_abandon(struct nm_segment *s);
/* Take one abandoned segment of arena `a`, or NULL. */
struct nm_segment *nm_arena_take_abandoned(struct nm_arena *a);

/* ---- the retention rule and the background purge ------------------------------ */


/* Memory starts waiting for a purge.  The next safe point looks at the
 * thread count again (nm_purge_at_safe_point): it may be the last one
 * before the program goes quiet. */
static inline void nm_purge_signal(void)
{
    if (atomic_load_explicit(&nm_proc.purge.waiting, memory_order_relaxed)) return;
    atomic_store_explicit(&nm_proc.purge.next_count_ms, 0, memory_order_relaxed);
    atomic_store(&nm_proc.purge.waiting, 1);
    if (atomic_load(&nm_proc.purge.idle)) nm_os_futex_wake(&nm_proc.purge.waiting);
}

/* Whether the background thread purges (else the slow paths do). */
static inline bool nm_purge_thread_running(void)
{
    return atomic_load_explicit(&nm_proc.purge.state, memory_order_relaxed) == 1;
}

/* How often a pass runs while memory waits: a quarter of the purge delay,
 * at least 10 ms (the thread's sleep, and the allocation paths' pace). */
static inline uint64_t nm_purge_tick_ms(void)
{
    uint64_t tick = nm_opt.purge_delay_ms / 4;
    return tick < 10 ? 10 : tick;
}

/* Bracket a purge pass: `running` counts it, and so does the calling
 * thread's own count, which a signal handler on this thread reads. */
void nm_purge_pass_begin(void);
void nm_purge_pass_end(void);

/* Wait until no purge pass of another thread is in progress (nm_trim's,
 * the purge thread's), at most `timeout_ms` (0: as long as it takes).  The
 * calling thread's own passes are not waited for: a thread in a pass waits
 * only when a signal handler interrupted it there (and forks), and its pass
 * goes on only once the handler returns. */
void nm_purge_wait_passes(uint64_t timeout_ms);

/* In a fork child: only the forking thread's passes are in progress. */
void nm_purge_passes_after_fork(void);

/* At a safe point of an allocation path, while no purge thread runs:
 * start one if the program has a second thread (whether memory waits or
 * not: frees never start it, and a program that frees its memory and then
 * allocates only on fast paths, or not at all, would keep it all), else
 * run a pass here when one is due and memory waits (arena.c). */
void nm_purge_at_safe_point(void);
static inline void nm_purge_safe_point(void)
{
    int state = atomic_load_explicit(&nm_proc.purge.state, memory_order_relaxed);
    if (nm_likely(state == 1) ||
        (state == 2 && !atomic_load_explicit(&nm_proc.purge.waiting, memory_order_relaxed)))
        return;
    nm_purge_at_safe_point();
}

/* The one retention rule: free memory (a page, a cached segment or span, a
 * parked heap) stays committed while it has been free for less than the
 * purge delay, so a program that frees and allocates again takes it back
 * without page faults, and goes back to the OS once it has waited that long
 * (force: now).  `since_ms` is when it became free; a time up to
 * NM_CLOCK_AHEAD_MS after `now_ms` (memory freed after a pass read the
 * clock) has not waited at all, and one earlier than `now_ms` by more than
 * the clock's range (a time taken back by a delay, below) has.
 *
 * What other threads free into a thread that is not allocating waits no
 * delay: the pages they emptied (heap.c: heap_release_remote_freed), its
 * segments they emptied whole (cached as due) and the blocks the thread
 * kept from other threads' pages (its foreign lists) go back at the next
 * passes once it has not been in its allocation slow path for
 * nm_purge_idle_ms() (nm_purge_owner_idle): it is blocked, or allocates
 * from blocks it has.  A master thread that built a structure its workers
 * free and replace, then waits for them, would otherwise keep all of it
 * resident for the delay beside the workers' new memory (docs/design.md,
 * "Giving memory back").  The pages a thread emptied itself keep the
 * delay: it may be between two bursts. */
#define NM_CLOCK_AHEAD_MS 60000
static inline bool nm_purge_due(uint64_t since_ms, uint64_t now_ms, uint64_t delay_ms, bool force)
{
    uint64_t waited = now_ms - since_ms;
    if (waited > UINT64_MAX - NM_CLOCK_AHEAD_MS) waited = 0;
    return force || waited >= delay_ms;
}

/* The time since `since_ms`, a time kept in the clock's low 32 bits
 * (retired_ms, foreign_seen_ms, a free block's mark), at `now_ms`, as
 * nm_purge_due counts it. */
static inline uint64_t nm_ms_since32(uint32_t since_ms, uint64_t now_ms)
{
    uint32_t waited = (uint32_t)now_ms - since_ms;
    return waited > UINT32_MAX - NM_CLOCK_AHEAD_MS ? 0 : waited;
}

/* nm_purge_due for a time kept in the clock's low 32 bits. */
static inline bool nm_purge_due32(uint32_t since_ms, uint64_t now_ms, uint64_t delay_ms, bool force)
{
    return force || nm_ms_since32(since_ms, now_ms) >= delay_ms;
}

/* The time to record as when memory became free so that it is due at
 * `now_ms` (what other threads freed into a heap that is not allocating):
 * a delay before it, in the clock's wrapping arithmetic. */
static inline uint64_t nm_purge_due_now(uint64_t now_ms)
{
    return now_ms - nm_opt.purge_delay_ms;
}

/* How long a thread stays out of its allocation slow path before it counts
 * as not allocating: a fiftieth of the purge delay, 20 ms by default (a few
 * scheduler time slices, so that a thread that waits for a CPU is not
 * taken for one that waits for work), at least 10 ms. */
static inline uint64_t nm_purge_idle_ms(void)
{
    uint64_t idle = nm_opt.purge_delay_ms / 50;
    return idle < 10 ? 10 : idle;
}

/* Whether a heap whose thread was last in its allocation slow path at
 * `active_ms` is idle at `now_ms` (read when the pass began: a later
 * `active_ms` is a thread at work). */
static inline bool nm_purge_owner_idle(uint64_t active_ms, uint64_t now_ms)
{
    return now_ms > active_ms && now_ms - active_ms >= nm_purge_idle_ms();
}

/* ---- mapping failures ------------------------------------------------------------ */

/* The one rule for a mapping the kernel refuses (ENOMEM: ulimit -v, the
 * commit limit of vm.overcommit_memory=2, vm.max_map_count): before an
 * allocation returns NULL, the process's cached memory goes back, all of
 * it, as nm_trim gives it back (the calling thread's foreign lists and
 * remote frees, the free pages of every heap, parked heaps, every arena's
 * cache and abandoned segments, the span caches, and the chunks left
 * empty, unmapped), and the allocation tries once more.  Returns whether
 * to try: false for a request of `size` bytes that the kernel could never
 * commit (nm_os_commit_possible: it fails at once, keeping the caches), or
 * before the purge layer registered its release (start-up).  errno is
 * ENOMEM on return.  The caller holds no heap lock (the release purges
 * every heap, the caller's too); it runs only on failure paths. */
bool nm_arena_release_for_retry(size_t size);

/* Map segments for `bytes` of arena `a`, fault their pages in now, and keep
 * them in the arena's cache (never purged below that amount), for heaps to
 * take without page faults.  Returns 0 or -1 with errno ENOMEM. */
int nm_arena_reserve(struct nm_arena *a, size_t bytes);

/* Put the list of `count` free blocks of class `cls` from `head` in a
 * free slot of arena `a` (struct nm_transfer); false when every slot is
 * full (the caller keeps the list). */
bool nm_arena_transfer_put(struct nm_arena *a, unsigned cls, struct nm_block *head,
                           uint32_t count);
/* Whether arena `a` holds a list of class `cls` (a peek: relaxed loads). */
static inline bool nm_arena_transfer_any(struct nm_arena *a, unsigned cls)
{
    for (int i = 0; i < NM_TRANSFER_SLOTS; i++)
        if (atomic_load_explicit(&a->transfer[cls].slot[i], memory_order_relaxed)) return true;
    return false;
}
/* Take a list of class `cls` from arena `a`: its head (NULL when there is
 * none) and, in *count, its length.  _take is a thread's, for its own
 * allocations (the class counts as touched); _drain a purge's. */
struct nm_block *nm_arena_transfer_take(struct nm_arena *a, unsigned cls, uint32_t *count);
struct nm_block *nm_arena_transfer_drain(struct nm_arena *a, unsigned cls, uint32_t *count);
/* The classes (bit c: class c) of arena `a` whose lists no thread has
 * put nor taken since the last call (force: every class with a list);
 * sets *waiting when lists stay.  A purge's. */
uint64_t nm_arena_transfer_idle(struct nm_arena *a, bool force, bool *waiting);
/* Drop every list of owned arena `a`, whose memory is about to go. */
void nm_arena_transfer_forget(struct nm_arena *a);

/* Give back cached segments of arena `a` that have waited the purge delay
 * or that take its node past the cache limit (force: every cached segment,
 * now).  Never blocks: if another thread is at it, returns.  Returns
 * whether segments wait that are not due yet. */
bool nm_arena_cache_purge(struct nm_arena *a, uint64_t now_ms, bool force);
static inline void nm_arena_maybe_purge(struct nm_arena *a, uint64_t now_ms)
{
    if (now_ms >= atomic_load_explicit(&a->next_purge_ms, memory_order_relaxed))
        (void)nm_arena_cache_purge(a, now_ms, false);
}

#endif
