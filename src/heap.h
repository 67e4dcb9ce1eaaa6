/*
 * heap.h — thread heaps: the per-thread cache that serves small and medium
 * blocks (up to 256 KiB) without locks or atomic instructions.
 *
 * Each thread has one local heap, tied to the node the thread runs on (its
 * arena is that node's local arena), and, once it calls nm_malloc_onnode, a
 * heap per node it asked for (arena: the node's bound arena).  For every
 * size class a heap keeps a queue of pages; the first page of a queue is
 * the one blocks come from.  `direct` maps a small size straight to that
 * page, so the fast path is: load the page, pop its free list.
 *
 *   malloc fast path:  page = heap->direct[(size + 15) / 16];
 *                      block = page->free; page->free = next(block)
 *                      (and two compares: is the block's encoding intact
 *                      (segment.h: nm_block), has the thread's node changed?)
 *   free, same thread: push onto page->free
 *   free, other thread: onto the thread's foreign list of the block's
 *                       class (same arena; taken by its next slow path);
 *                       a full list goes whole to the arena (arena.h:
 *                       nm_transfer), for any of its threads; else an
 *                       atomic push onto page->remote (heap.c collects)
 *
 * When a page runs dry the slow path (nm_heap_alloc_slow) takes a foreign
 * block (its own list, else a list from the arena), collects remote
 * frees, carves more blocks, moves to the next page, or takes a new page
 * from a segment of the heap's node; it also notices when the thread moved
 * to another node, returns long-free pages to the OS and adopts segments
 * that exiting threads of the same node abandoned.
 *
 * May call the page, segment, topology, os layers and the options.
 */
#ifndef NM_HEAP_H
#define NM_HEAP_H

#include "page.h"

struct nm_page_queue {
    struct nm_page *first, *last;
};

#define NM_QUARANTINE 128   /* secure mode: frees a block waits before reuse */

struct nm_heap {
    /* The node check of the fast path: *node_word != node_seen means the
     * thread may have moved.  For a local heap on a machine with several
     * nodes node_word is the thread's rseq node_id (Linux 6.3+) or cpu_id
     * (older kernels), which the kernel rewrites on every return to user
     * space; otherwise it points at node_seen and never differs. */
    const volatile uint32_t *node_word;
    uint32_t node_seen;                        /* *node_word at the last check */
    struct nm_page *direct[NM_DIRECT_SLOTS];   /* (size+15)/16 -> first page of its class */
    struct nm_page_queue queue[NM_CLASS_COUNT];/* pages that may have free blocks */
    struct nm_page_queue full;                 /* pages with none, revisited on frees */
    struct nm_segment *segments[2];            /* owned small / medium segments,
                                                  those with free pages first */
    /* Where its segments come from; NULL while the struct is unclaimed or
     * being set up (heap_reset stores it last). */
    _Atomic(struct nm_arena *) arena;
    int node;                                  /* dense node index (arena->node) */
    uintptr_t thread;                          /* nm_thread_self() of its thread (relaxed
                                                  atomic: purges compare it) */
    uint64_t user_id;                          /* the nm_heap_new heap it serves, or 0 */
    _Atomic uint32_t remote_pending;           /* a remote free hit one of our segments */
    _Atomic uint32_t remote_unseen;            /* ... since a purge last looked at the heap
                                                  (the free that sets it wakes the purge
                                                  thread: nm_heap_free_remote) */
    uint64_t next_maintenance_ms;              /* no purge pass before this time */
    _Atomic uint64_t active_ms;                /* the ms clock when the owner was last in its
                                                  allocation slow path (relaxed: purges read
                                                  it, nm_purge_owner_idle) */

    /* Blocks of other threads' pages that this thread freed, kept for its
     * own next allocations of their class (as tcmalloc's and jemalloc's
     * thread caches keep every freed block): a block handed between
     * threads is then reused where it was freed, its cache line already
     * there, instead of travelling back to its owner's page.  Only blocks
     * of the heap's own arena (same node, same policy) are kept, so
     * placement is what the owner's page would give; at most
     * nm_foreign_limit[class] << scale per small class (16 KiB of blocks,
     * at least 4, grown while the thread takes them all; heap.c); a full
     * list goes whole to the arena (arena.h: nm_transfer), and an empty
     * one may become a list taken from there; what finds the arena's
     * slots full takes the remote path.
     *   block b on foreign[c]  =>  b is encoded free (segment.h), b's page has
     *       class c and counts b in `used` (it is in use as far as its owner
     *       knows), b's segment's arena == this heap's arena;
     *   foreign_blocks == sum of foreign[c].count.
     * The owner pushes (free path) and pops (slow path) with plain stores
     * between foreign_busy = 1 and 0, no atomic instruction and no fence.
     * A purge takes a class's list back to its pages once the owner has
     * not pushed onto it nor popped from it for the purge delay (from one
     * pass to the next while the owner is not allocating: arena.h, bit c of
     * foreign_touched, foreign_seen_ms[c]), so that a thread that frees
     * and goes quiet, or stops using a class, pins no page: it sets
     * foreign_steal, makes every thread pass a barrier (nm_os_membarrier)
     * and takes the lists only if foreign_busy is still 0; an owner that
     * sees foreign_steal leaves the lists alone.  (Dekker's handshake with
     * the fence on the rare side only.)  Emptied by the owner whenever the
     * heap changes hands (thread exit, node move, fork) or nm_trim runs. */
    struct nm_foreign_list {
        _Atomic(struct nm_block *) head;       /* relaxed: the owner peeks at it outside */
        uint32_t count;
        uint8_t scale;                         /* limit: the class's base << scale */
        bool overflowed;                       /* turned a block away since it was empty */
    } foreign[NM_SMALL_CLASSES];
    _Atomic uint32_t foreign_blocks;
    _Atomic uint32_t foreign_busy;             /* the owner is changing the lists */
    _Atomic uint32_t foreign_steal;            /* a purge is taking them */
    _Atomic uint64_t foreign_touched;          /* bit c: list c pushed or popped since a
                                                  purge looked */
    uint32_t foreign_seen_ms[NM_SMALL_CLASSES];/* a purge last saw list c touched (purge's;
                                                  the ms clock's low 32 bits) */

    /* Secure mode (NUMAMALLOC_SECURE; heap.c): the last NM_QUARANTINE
     * blocks the thread freed, oldest at quarantine_next, not yet on any
     * list: reused only after that many more frees, and checked then.
     *   block b in quarantine  =>  b is encoded free (a second free of it
     *       is a double free), its bytes from 16 on hold the poison, its
     *       page counts it in `used`.
     * Owner only; given back with the foreign lists (heap_release_held). */
    struct nm_block *quarantine[NM_QUARANTINE];
    uint32_t quarantine_next;
    uint64_t secure_rng;                       /* xorshift state: order of carved blocks */

    /* Statistics: written by the owner only (no lock, no atomic add), read
     * by anyone through relaxed loads.  `allocs` is counted when a page's
     * free list is refilled, not per malloc: blocks carved from fresh
     * memory plus remote frees collected, per class.  A block its own
     * thread frees and takes again is not counted again. */
    _Atomic uint64_t allocs[NM_CLASS_COUNT];   /* blocks supplied to free lists (and foreign
                                                  blocks taken back), per class */
    _Atomic uint64_t remote_frees;             /* blocks collected from remote lists */
    _Atomic uint64_t cross_node_frees;         /* blocks whose memory is on another node than
                                                  the heap's that this thread freed (small,
                                                  medium and large; nm_heap_note_free; a
                                                  thread without a heap counts in
                                                  nm_proc.counters) */

    /* Who is changing the heap's lists and page states: 0 nobody; 1, 2, ..
     * the owner, that many calls deep (allocation slow path, page releases,
     * maintenance, abandoning); NM_HEAP_PURGING a purge of another thread
     * (nm_heap_purge) or the statistics' count of blocks in use
     * (nm_heap_count_blocks).  The owner waits for a purge, which holds it
     * for a few list operations and never across a system call (what it
     * gives back, it gives back after; a purge that holds the heap of an
     * exited thread, which no owner waits for, gives it back holding it),
     * and for the count, which reads
     * the `used` of every page of the heap's segments (time in proportion
     * to the heap's size, no system call); neither waits for the owner:
     * they try, and come back later.  The fast paths
     * take no lock: a purge only touches pages they cannot reach (free
     * pages, and pages other than the first of their class whose every
     * block was freed by other threads).  A fork child leaves alone the heap
     * of a thread that held it (heap.c). */
    _Atomic uint32_t lock;
    _Atomic bool claimed;                      /* in use by a thread */
    bool lost;                                 /* fork child: its thread was changing it
                                                  at the fork; it stays as it is */
    _Atomic uint64_t parked_ms;                /* when its thread exited (parked heaps;
                                                  relaxed: purges read it unlocked) */
    struct nm_heap *all_next;                  /* every heap ever made (never freed) */
};

/* Two pages: what each thread touches for its heap. */
_Static_assert(sizeof(struct nm_heap) <= 2 * NM_OS_PAGE, "a heap fits in two pages");

#define NM_HEAP_PURGING 0x80000000u

/* A heap is parked when its thread exited: unclaimed but still with its
 * arena and segments, for the next thread of the same arena to take over
 * (as glibc hands a free arena to a new thread); a purge abandons it once
 * it has waited the purge delay. */
static inline bool nm_heap_parked(struct nm_heap *h)
{
    return !atomic_load_explicit(&h->claimed, memory_order_acquire) &&
           atomic_load_explicit(&h->arena, memory_order_acquire) != NULL;
}

/* Counters that only their owner writes: a plain add, visible to readers. */
static inline void nm_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* A heap with no pages: every thread starts with it, so its first malloc
 * takes the slow path, which sets up the thread's real heap. */
extern struct nm_heap nm_heap_empty;
extern __thread struct nm_heap *nm_tls_heap __attribute__((tls_model("initial-exec")));
/* The heap profiler's sampling countdown (prof.h): bytes the calling thread
 * may still allocate before its next sampled allocation.  Counted only
 * while the profiler is on, by the slow paths every allocation then takes;
 * an allocation that takes it below zero goes to nm_proc.sample_alloc,
 * which draws the next interval. */
extern __thread int64_t nm_tls_sample_left __attribute__((tls_model("initial-exec")));
/* Whether the calling thread's allocation of `size` bytes is to be sampled
 * (the profiler is on and the countdown crosses zero): the one countdown
 * rule, for the heaps' slow path and for large blocks (alloc.c). */
static inline bool nm_heap_sample_due(size_t size)
{
    return atomic_load_explicit(&nm_proc.sample_alloc, memory_order_relaxed) &&
           (nm_tls_sample_left -= (int64_t)size) < 0;
}
/* The thread's heaps for nm_malloc_onnode, by dense node index (NULL until
 * used), and the kernel node id asked for last with its heap.  The id is
 * kept wider than an int so that "none yet" (NM_NO_LAST_NODE) equals no
 * argument a caller can pass, -1 included. */
extern __thread struct nm_heap *nm_tls_node_heap[NM_MAX_NODES]
    __attribute__((tls_model("initial-exec")));
#define NM_NO_LAST_NODE INT64_MIN
extern __thread int64_t nm_tls_last_node_id __attribute__((tls_model("initial-exec")));
extern __thread struct nm_heap *nm_tls_last_node_heap __attribute__((tls_model("initial-exec")));

/* The thread's heaps for heaps made with nm_heap_new, in a small table
 * indexed by the heap's id (unique, never reused).  A slot whose id does not
 * match is taken over: its heap is handed to its arena. */
#define NM_USER_SLOTS 8
struct nm_user_slot {
    uint64_t id;
    struct nm_heap *heap;
};
extern __thread struct nm_user_slot nm_tls_user[NM_USER_SLOTS]
    __attribute__((tls_model("initial-exec")));


/* Start-up of this layer and all below it (options, topology, classes,
 * segments); idempotent and cheap after the first call. */
void nm_heap_init(void);

/* The slow path of an allocation of `size` bytes aligned to `alignment`
 * (16 or less: the class's own alignment). */
void *nm_heap_alloc_slow(struct nm_heap *h, size_t size, size_t alignment);
/* Allocate from class `cls` (the slow path; it also checks the node). */
void *nm_heap_alloc_class(struct nm_heap *h, unsigned cls);

/* Secure mode (NUMAMALLOC_SECURE), where every allocation of a heap comes
 * here (direct[] stays empty) and every free the program makes goes to
 * nm_heap_free_secure: a small block carries a canary right after the
 * `size` bytes asked for and a size tag in its last 8 bytes, both keyed
 * with its address; a freed block waits in the thread's quarantine. */
void *nm_heap_alloc_secure(struct nm_heap *h, size_t size, size_t alignment);
void nm_heap_free_secure(struct nm_segment *s, struct nm_page *pg, struct nm_block *b);
/* Secure mode: the bytes asked for of live block `b` of page `pg`. */
size_t nm_heap_secure_usable(const struct nm_page *pg, const void *b);

/* Whether the thread may have moved since the heap last looked: one load
 * of the kernel's rseq word and a compare (see node_word).  The slow path
 * then maps the node through the topology (nm_topology_home_node) and
 * moves the heap if its home changed, so a moved thread's first
 * allocation already comes from its new node (a moved thread would
 * otherwise keep using the free lists of its old node's pages). */
static inline bool nm_heap_node_changed(const struct nm_heap *h)
{
    return *h->node_word != h->node_seen;
}
/* The free path's slow parts: page `pg` (not first in its queue) became
 * empty; block `b` is freed into page `pg`, which is full. */
void nm_heap_page_freed(struct nm_heap *h, struct nm_page *pg);
void nm_heap_free_to_full(struct nm_heap *h, struct nm_page *pg, struct nm_block *b);
/* Free from a thread that does not own the segment: kept in the calling
 * thread's foreign lists when it may be, else nm_heap_free_remote. */
void nm_heap_free_other(struct nm_segment *s, struct nm_page *pg, struct nm_block *b);
/* Report a double free that the block's encoding could not show (the
 * program erased it): the block is already first on the list it would go
 * to.  One line; abort, or with warn return (the block is left as it is). */
nm_cold void nm_heap_double_free(const void *b);
/* Give the block back to its page's remote list for the owner. */
void nm_heap_free_remote(struct nm_segment *s, struct nm_page *pg, struct nm_block *b);

/* A block of segment `s` (any kind) that is not the calling thread's own
 * is being freed: counted in its heap's cross_node_frees when its memory
 * is charged to another node than the thread's. */
void nm_heap_note_free(const struct nm_segment *s);

/* The calling thread's heap, set up if needed (NULL + ENOMEM if impossible). */
struct nm_heap *nm_heap_get(void);
/* The calling thread's heap for node `index` (bound arena), set up if needed. */
struct nm_heap *nm_heap_for_node(int index);
/* The calling thread's heap for the nm_heap_new heap `id` with arena `a`. */
struct nm_heap *nm_heap_for_user(struct nm_arena *a, uint64_t id);
static inline struct nm_heap *nm_heap_user(struct nm_arena *a, uint64_t id)
{
    struct nm_user_slot *slot = &nm_tls_user[id % NM_USER_SLOTS];
    return nm_likely(slot->id == id) ? slot->heap : nm_heap_for_user(a, id);
}
/* Reset every heap of owned arena `a` and release all its memory. */
void nm_heap_release_arena(struct nm_arena *a);
/* Reset every heap of owned arena `a` (their segments and blocks are
 * forgotten; the structs go back unclaimed), with `releasing` set and the
 * purges at it waited for; the caller empties or releases the arena and
 * clears `releasing` if it keeps it. */
void nm_heap_forget_arena(struct nm_arena *a);
/* Owned arena `a` is charged to another node now (nm_arena_migrate): its
 * heaps follow. */
void nm_heap_arena_moved(struct nm_arena *a);

/* The heap set as the calling thread's (nm_thread_set_heap): the owned
 * arena whose heap plain allocations come from, or NULL.  While one is
 * set, nm_tls_heap is the thread's heap for it (as nm_heap_user gives),
 * so that malloc's fast path serves it unchanged; large blocks look here
 * on their slow path (alloc.c: large_arena). */
extern __thread struct nm_arena *nm_tls_set_arena __attribute__((tls_model("initial-exec")));
/* Set owned arena `a` (heap id `id`; NULL: none) as the calling thread's.
 * 0, or -1 with errno ENOMEM (nothing changed). */
int nm_heap_set_thread(struct nm_arena *a, uint64_t id);
/* The calling thread's own heap: nm_tls_heap, or while a heap is set the
 * one it had before (set up then); nm_heap_empty if it has none yet.  The
 * calls below that act on "the calling thread's heap" act on this one. */
struct nm_heap *nm_heap_own(void);
/* Run the calling thread's heap maintenance if it is due (purge free pages,
 * the inside of free medium blocks and the node cache), the heap set's
 * too.  For slow paths outside the heap (large blocks). */
void nm_heap_tick(void);
/* Check the calling thread's node now; move its own heap if it changed (a
 * heap set stays where its policy puts it).  The node id of its own heap. */
int nm_heap_rebind(void);
/* In the child of a fork, where only the forking thread exists: the heaps
 * of the other threads go to their arenas as at thread exit, so that their
 * blocks can be freed, reused and given back by the child's threads.  When
 * a signal handler forked while its thread held one of its own heaps, the
 * thread starts afresh, and its heaps go the same way. */
void nm_heap_after_fork(void);
/* Fault in the free pages of the segments heap `h` owns (nm_reserve: the
 * heap takes those pages before any reserved segment). */
void nm_heap_populate(struct nm_heap *h);
/* Return the calling thread's free pages, the inside of its free medium
 * blocks and cached memory now (its own heap's and the heap set's), and
 * adopt abandoned segments whose blocks were all freed. */
void nm_heap_trim(void);

/* ---- purging other threads' heaps (purge.c) ----------------------------------------------- */

/* Give back what heap `h` (any thread's) holds free: its free pages that
 * are due, the pages other threads freed entirely while its owner was
 * away, and, for a parked heap that waited the purge delay, the whole heap
 * (the inside of its free medium blocks given back, then abandoned: free
 * pages decommitted, segments with blocks to its arena).
 * Force: everything free, now.  Sets *waiting when free memory remains
 * that is not due yet.  Never waits for the owner. */
void nm_heap_purge(struct nm_heap *h, uint64_t now_ms, bool force, bool *waiting);
/* The lists of small blocks arena `a` holds for its threads (arena.h:
 * nm_transfer) of classes no thread has put to nor taken from since the
 * last pass (force: all) go back to their pages. */
void nm_heap_purge_transfer(struct nm_arena *a, bool force, bool *waiting);
/* The same for the segments abandoned to arena `a`: their remote frees are
 * collected, their empty pages released and given back when due, the
 * inside of their free medium blocks given back when due, and empty
 * segments go to the arena's cache. */
void nm_heap_purge_abandoned(struct nm_arena *a, uint64_t now_ms, bool force, bool *waiting);

/* ---- blocks in use (stats.c) --------------------------------------------------------------- */

/* What the pages of small and medium blocks hold, counted by
 * nm_heap_count_blocks when the statistics are taken (never on an
 * allocation path). */
struct nm_block_count {
    uint64_t blocks[NM_CLASS_COUNT];     /* blocks in use, per class */
    uint64_t pages[NM_CLASS_COUNT];      /* pages serving the class that were walked */
    uint64_t node_bytes[NM_MAX_NODES];   /* bytes of those blocks, per dense node index */
    uint32_t heaps_skipped;              /* heaps busy for the whole look (or whose thread
                                            was stopped in them by a fork), and stacks of
                                            abandoned segments being popped: not counted */
};

/* Add up, in *out (zeroed first), each page's `used` count over every heap
 * and every arena's abandoned segments.  A blocks in use are blocks handed
 * out and not yet back on their page: blocks another thread freed count
 * until their page's owner collects them, and so do blocks waiting in a
 * thread's cache of freed blocks (`foreign`) or secure mode's quarantine.
 * Each heap is held as a purge holds it (never waited for long, never
 * across a system call) while its pages are read, relaxed; threads keep
 * allocating meanwhile, so the totals are approximate.  The caller
 * brackets the call with nm_purge_visit_begin/_end (purge.h).  Does not
 * allocate. */
void nm_heap_count_blocks(struct nm_block_count *out);

/* Pop a block of page `pg` (its class's first page) or take the slow path.
 * No statistic and no counter here: allocs are counted on refills. */
static inline void *nm_heap_pop(struct nm_heap *h, struct nm_page *pg, unsigned cls)
{
    struct nm_block *b = pg->free;
    if (nm_unlikely(b == NULL || !nm_block_is_free(b) || nm_heap_node_changed(h)))
        return nm_heap_alloc_class(h, cls);
    pg->free = nm_block_next(b);
    __atomic_store_n(&pg->used, pg->used + 1, __ATOMIC_RELAXED);
    nm_block_take_class(b, cls);
    return b;
}

/* A block of the class of `slot` (at most NM_DIRECT_MAX) through the direct
 * table, for `size` bytes aligned to `alignment` (0: the class's own; else
 * the class of `slot` must be the one nm_aligned_class gives).  A block
 * that fails its check sends the call to the slow path, which reports it
 * (nm_heap_alloc_class). */
static inline void *nm_heap_alloc_direct(struct nm_heap *h, size_t slot, size_t size,
                                         size_t alignment)
{
    struct nm_page *pg = h->direct[(slot + 15) >> 4];
    struct nm_block *b = pg->free;
    if (nm_unlikely(b == NULL || !nm_block_is_free(b) || nm_heap_node_changed(h)))
        return nm_heap_alloc_slow(h, size, alignment);
    pg->free = nm_block_next(b);
    __atomic_store_n(&pg->used, pg->used + 1, __ATOMIC_RELAXED);
    nm_block_take(b);
    return b;
}

static inline void *nm_heap_alloc_small(struct nm_heap *h, size_t size)
{
    return nm_heap_alloc_direct(h, size, size, 0);
}

/* A block of `size` bytes aligned to `alignment`, both at most
 * NM_DIRECT_MAX, through the direct table: the class of the size rounded up
 * to a multiple of the alignment (at least the alignment) is the one
 * nm_aligned_class gives.  (Classes in (2^k, 2^(k+1)] are the multiples of
 * 2^(k-3), 16 below 128: a multiple of an alignment no larger than the step
 * is in a class that is its multiple too, and a multiple of a larger
 * power-of-two alignment is a multiple of the step, so a class itself;
 * and no class between the request and that multiple is a multiple of the
 * alignment.  tests/unit/size_classes.c checks every pair.) */
static inline size_t nm_aligned_slot(size_t size, size_t alignment)
{
    return ((size > alignment ? size : alignment) + alignment - 1) & ~(alignment - 1);
}

/* A block of class `cls`, for `size` bytes aligned to `alignment` (medium
 * sizes, aligned requests): the class's first page.  An empty queue (also
 * a thread's first allocation), secure mode or the profiler takes the slow
 * path. */
static inline void *nm_heap_alloc_in_class(struct nm_heap *h, unsigned cls, size_t size,
                                           size_t alignment)
{
    struct nm_page *pg = h->queue[cls].first;
    if (nm_unlikely(pg == NULL || nm_proc.slow_allocs)) return nm_heap_alloc_slow(h, size, alignment);
    return nm_heap_pop(h, pg, cls);
}

static inline void *nm_heap_alloc_medium(struct nm_heap *h, size_t size)
{
    return nm_heap_alloc_in_class(h, nm_size_class(size), size, 0);
}

/* `size` bytes (at most NM_MEDIUM_MAX) aligned to `alignment` (a power of
 * two from 32 to NM_MEDIUM_MAX): the first class whose blocks are. */
static inline void *nm_heap_alloc_aligned(struct nm_heap *h, size_t size, size_t alignment)
{
    return nm_heap_alloc_in_class(h, nm_aligned_class(size, alignment), size, alignment);
}

/* Free block `b` of page `pg` in segment `s` (validated) for the calling
 * thread, which owns the segment, onto the page's own list: a page that is
 * not full (full pages take nm_heap_free_to_full).  The fast path comes
 * here when pg->local_owner names the thread; nm_heap_free_nonlocal for
 * the other pages of the thread's that are not full (secure mode). */
static inline void nm_heap_free_local(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    /* Read before the count changes: not first in its queue (prev != NULL;
     * a purge unlinking the page before it stores prev atomically,
     * page_queue.c).  Once the count changes, a purge may release the page
     * when every other block of it was freed by other threads.  The first
     * page stays when it empties (a malloc/free loop must not cycle pages;
     * maintenance releases it if it idles). */
    bool not_first = __atomic_load_n(&pg->prev, __ATOMIC_RELAXED) != NULL;
    /* Freed again after the program erased its mark (its encoding): it is
     * still first on the list, or no block of the page is out. */
    if (nm_unlikely(pg->free == b || pg->used == 0)) {
        nm_heap_double_free(b);
        return;
    }
    nm_block_set_next(b, pg->free);
    pg->free = b;
    /* Released: a purge that reads the new count sees the block on the
     * free list (nm_heap_purge). */
    uint32_t used = pg->used - 1;
    __atomic_store_n(&pg->used, used, __ATOMIC_RELEASE);
    /* Empty now (a purge never takes a page with no remote blocks): give
     * it back to its segment. */
    if (nm_unlikely(used == 0 && not_first))
        nm_heap_page_freed(atomic_load_explicit(&s->heap, memory_order_relaxed), pg);
}

/* The free of a block whose page is not local (pg->local_owner): a full
 * page of the thread's own (back to its queue), a page of another thread
 * (foreign list or remote push), or any page in secure mode. */
void nm_heap_free_nonlocal(struct nm_segment *s, struct nm_page *pg, struct nm_block *b);

/* Whether a free of a block of `pg` is the plain local one: the page is
 * queued in one of the calling thread's heaps, outside secure mode
 * (segment.h: local_owner). */
static inline bool nm_page_is_local(const struct nm_page *pg)
{
    return atomic_load_explicit(&pg->local_owner, memory_order_relaxed) == nm_thread_self();
}

/* Free block `b` of page `pg` in segment `s` (validated), past secure
 * mode's quarantine: for the quarantine releasing a block and for foreign
 * blocks going back to their pages. */
static inline void nm_heap_free(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    if (nm_likely(nm_page_is_local(pg))) nm_heap_free_local(s, pg, b);
    else nm_heap_free_nonlocal(s, pg, b);
}

/* free() of validated block `b`: one compare for the common case, the
 * calling thread's own queued page outside secure mode; everything else
 * (secure mode's quarantine included) in nm_heap_free_slow. */
void nm_heap_free_slow(struct nm_segment *s, struct nm_page *pg, struct nm_block *b);
static inline void nm_heap_free_block(struct nm_segment *s, struct nm_page *pg, struct nm_block *b)
{
    if (nm_likely(nm_page_is_local(pg))) nm_heap_free_local(s, pg, b);
    else nm_heap_free_slow(s, pg, b);
}

#endif
