/*
 * segment.h — node-bound memory: segments, pages, blocks, and the map that
 * finds a block's segment from its address.
 *
 * The allocator takes memory in segments: 4 MiB-aligned ranges, carved from
 * its arena's chunks of address space (chunk.h), each bound (mbind) to one
 * NUMA node before anything touches it.  A segment
 * header at the start of the range records the node and the owning heap.
 *
 *   small segment   4 MiB = 64 pages of 64 KiB, blocks of 16 B .. 8 KiB
 *   medium segment  4 MiB =  4 pages of 1 MiB,  blocks of 8 KiB .. 256 KiB
 *   large span      one block above 256 KiB, its own 4 MiB-aligned run of units
 *
 * A page serves one size class.  Its blocks are carved lazily (a few KiB at
 * a time, so untouched memory is never faulted in) and kept on free lists.
 *
 *   segment_of(p) = p rounded down to 4 MiB        O(1), no lock
 *   page_of(p)    = &segment->pages[(p - segment) >> map byte (the page shift)]
 *
 * The segment map (one byte per 4 MiB of address space) says whether an
 * address range starts one of our small or medium segments (and then holds
 * its page shift, so free() finds the page without reading the header),
 * starts or continues a large span, or is not ours; free() consults it
 * before reading any header, so a pointer we do not own is reported instead
 * of followed.
 *
 * Ownership.  A small or medium segment belongs to at most one thread heap
 * (`heap`).  Only that thread pops blocks, pushes its own frees onto
 * `page->free` and changes page lists.  Any other thread frees by pushing
 * onto the page's atomic `remote` list; the owner collects those in batches.
 * A segment whose owner exits (or moves to another node) is abandoned to its
 * arena and adopted by the next heap of the same arena that needs memory, so
 * a block is only ever reused on the node its memory lives on.
 *
 * Arenas.  An arena says how new segments are bound (mbind mode and nodes)
 * and keeps the segments that no heap owns: empty ones (its cache) and ones
 * with live blocks whose owner left (abandoned).  A segment only ever goes
 * back to its own arena.  Each node has two: `local` (preferred on the node,
 * for the thread heaps of threads running there), `bound` (bound to the
 * node, for nm_malloc_onnode) and `first_touch` (not bound, for the large
 * blocks of threads running there: their pages follow first touch).
 *
 * This layer may call the chunk, policy, os and topology layers.
 */
#ifndef NM_SEGMENT_H
#define NM_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "os.h"
#include "policy.h"
#include "topology.h"

#define NM_SEGMENT_SHIFT 22
#define NM_SEGMENT_SIZE ((size_t)1 << NM_SEGMENT_SHIFT)      /* 4 MiB */
_Static_assert(NM_SEGMENT_SHIFT == NM_UNIT_SHIFT, "segments and spans are carved in chunk units");
#define NM_SMALL_PAGE_SHIFT 16                                /* 64 KiB */
#define NM_MEDIUM_PAGE_SHIFT 20                               /* 1 MiB */
#define NM_SMALL_MAX (8 * NM_KiB)          /* largest block in a small page */
#define NM_MEDIUM_MAX (256 * NM_KiB)       /* largest block in a medium page */
#define NM_MAX_PAGES (NM_SEGMENT_SIZE >> NM_SMALL_PAGE_SHIFT) /* 64 */

struct nm_heap;
struct nm_arena;

/* A free block.  `freed` holds nm_free_mark (a random per-process value)
 * while the block is free and 0 once it is handed out: free() of a block
 * that carries the mark is a double free.  Blocks are at least 16 bytes, so
 * both words fit. */
struct nm_block {
    struct nm_block *next;
    uintptr_t freed;
};

enum nm_page_state { NM_PAGE_FREE, NM_PAGE_QUEUED, NM_PAGE_FULL };

/* Page metadata lives in the segment header, not in the page: 64 bytes, one
 * cache line.  All fields but `remote` and `carved` are the owner's alone. */
struct nm_page {
    struct nm_block *free;          /* blocks the owner hands out next */
    uint32_t used;                  /* blocks out, counting uncollected remote frees */
    uint32_t block_size;            /* bytes per block; 0 while the page is free */
    uint8_t *start;                 /* first block */
    uint64_t block_recip;           /* ceil(2^64 / block_size): block start check by one
                                       multiply (nm_page_is_block) */
    _Atomic uint32_t carved;        /* bytes of blocks carved so far (read by remote frees) */
    uint16_t reserved;              /* blocks that fit in the page (at most 4096) */
    uint8_t size_class;
    uint8_t state;                  /* enum nm_page_state */
    _Atomic(struct nm_block *) remote;   /* pushed by other threads, collected by owner */
    struct nm_page *next, *prev;    /* in the owning heap's class queue or full list */
};

_Static_assert(sizeof(struct nm_page) == 64, "page metadata is one cache line");

enum nm_segment_kind { NM_SEGMENT_SMALL, NM_SEGMENT_MEDIUM, NM_SEGMENT_LARGE };

struct nm_segment {
    uintptr_t cookie;               /* nm_segment_cookie(self): proves the header is ours */
    uint8_t kind;                   /* enum nm_segment_kind */
    uint8_t page_shift;             /* small: 16, medium: 20 */
    uint16_t node;                  /* dense node index (topology.h) its memory is charged to */
    uint32_t page_count;            /* 64 or 4 */
    size_t size;                    /* bytes mapped from `self` */
    _Atomic uintptr_t thread;       /* nm_thread_self() of the owner's thread, or 0 */
    _Atomic(struct nm_heap *) heap; /* owner; NULL when abandoned or cached */
    _Atomic uint32_t remote_pending;/* set by remote frees, cleared by the owner */
    uint32_t pages_used;            /* pages serving a size class (owner's) */
    /* The state of each page, one bit per page in three words:
     *   in use      bit clear in free_pages and in purging (then pages_used counts it)
     *   free        bit set in free_pages: the owner may take it
     *   purging     bit set in purging: a purge took it off free_pages and is
     *               giving its memory back (nm_segment_purge_claim/_finish);
     *               it returns to free_pages, decommitted, when that is done
     * so  popcount(free_pages) + popcount(purging) + pages_used == page_count.
     * The owner takes and returns pages with atomic operations, because a
     * purge may claim free pages at any time; a segment with purging pages
     * never leaves its owner for the cache (it could be unmapped under the
     * purge).  decommitted_pages: bit i, page i's memory went back to the
     * OS (it reads as zero; counted in its node's `decommitted`). */
    _Atomic uint64_t free_pages;
    _Atomic uint64_t purging;
    _Atomic uint64_t decommitted_pages;
    uint32_t retired_ms[NM_MAX_PAGES];  /* when page i became free (ms clock, low bits) */
    struct nm_segment *heap_next, *heap_prev; /* in the owner's segment list */
    struct nm_arena *arena;         /* where it came from and goes back to */
    struct nm_chunk *chunk;         /* the chunk its units were carved from; NULL: a
                                       mapping of its own (kept while it lives) */
    struct nm_segment *member_next; /* in its arena's member list (owned arenas) */
    struct nm_segment *stack_next;  /* in an arena stack (cache or abandoned) */
    uint64_t cached_ms;             /* when it entered the node cache */

    /* Large spans only (kind == NM_SEGMENT_LARGE). */
    size_t block_offset;            /* block = (char *)segment + block_offset */
    size_t block_size;              /* usable bytes */
    size_t alignment;               /* alignment asked for (0: default layout) */
    _Atomic uint32_t large_state;   /* NM_LARGE_LIVE or NM_LARGE_FREE */
    bool zeroed;                    /* block memory known to be all zero */
    bool hugetlb;                   /* backed by MAP_HUGETLB pages */
    bool reserved;                  /* nm_reserve: free pages are never decommitted */
    bool thp;                       /* the block has MADV_HUGEPAGE (the rest NOHUGEPAGE) */

    struct nm_page pages[];         /* small and medium only */
};

/* A span of an owned arena is FREEING while its freer decommits it, then
 * FREE until the arena reuses it. */
enum { NM_LARGE_FREE = 0, NM_LARGE_LIVE = 1, NM_LARGE_FREEING = 2 };

/* A number that names the calling thread and is never reused: not by a
 * later thread, and not by a thread of a fork child that gets the stack
 * (and so the thread pointer) of a parent thread that does not exist there.
 * NM_THREAD_UNNAMED until the thread's first heap is set up
 * (nm_thread_name), which no segment ever carries; 0 marks a segment with
 * no owner. */
#define NM_THREAD_UNNAMED ((uintptr_t)1)
extern __thread uintptr_t nm_tls_thread_id __attribute__((tls_model("initial-exec")));
static inline uintptr_t nm_thread_self(void) { return nm_tls_thread_id; }
/* Give the calling thread its number, once. */
void nm_thread_name(void);

/* ---- process-wide secrets and settings (set by nm_segment_init) ----------- */

/* Hidden: the free fast path loads them directly, not through the GOT. */
extern uintptr_t nm_cookie_key __attribute__((visibility("hidden")));  /* random per process */
extern uintptr_t nm_free_mark __attribute__((visibility("hidden")));   /* marks free blocks
                                                                          (derived from the key) */
extern bool nm_bind_segments;       /* false when the process has its own policy */

static inline uintptr_t nm_segment_cookie(const struct nm_segment *s)
{
    return ((uintptr_t)s * 0x9E3779B97F4A7C15ull) ^ nm_cookie_key;
}

/* ---- the segment map ------------------------------------------------------ */

/* One byte per 4 MiB of the 47-bit address space (32 MiB of bss, of which
 * only the few pages covering our ranges are ever touched).  A segment's
 * byte is its page shift, set whenever the segment is formatted for a kind
 * (it changes only while the segment holds no block): every value from
 * NM_MAP_SEGMENT_SMALL up starts a segment. */
enum nm_map_kind {
    NM_MAP_NONE = 0,        /* not ours */
    NM_MAP_SPAN = 2,        /* starts a large span */
    NM_MAP_CONT = 3,        /* continues the span that starts before it */
    NM_MAP_SEGMENT_SMALL = NM_SMALL_PAGE_SHIFT,    /* starts a small segment (16) */
    NM_MAP_SEGMENT_MEDIUM = NM_MEDIUM_PAGE_SHIFT,  /* starts a medium segment (20) */
};

static inline bool nm_map_is_segment(enum nm_map_kind k) { return k >= NM_MAP_SEGMENT_SMALL; }

#define NM_MAP_ADDRESS_BITS 47
#define NM_MAP_UNITS ((size_t)1 << (NM_MAP_ADDRESS_BITS - NM_SEGMENT_SHIFT))
extern _Atomic uint8_t nm_segment_map[NM_MAP_UNITS];

static inline enum nm_map_kind nm_map_lookup(uintptr_t addr)
{
    size_t unit = addr >> NM_SEGMENT_SHIFT;
    if (nm_unlikely(unit >= NM_MAP_UNITS)) return NM_MAP_NONE;
    return (enum nm_map_kind)atomic_load_explicit(&nm_segment_map[unit], memory_order_relaxed);
}

/* The segment whose range holds `p`, or NULL when p is not ours. */
struct nm_segment *nm_segment_find(const void *p);

static inline struct nm_segment *nm_segment_of(const void *p)
{
    return (struct nm_segment *)((uintptr_t)p & ~(NM_SEGMENT_SIZE - 1));
}

static inline struct nm_page *nm_page_of(struct nm_segment *s, const void *p)
{
    return &s->pages[((uintptr_t)p - (uintptr_t)s) >> s->page_shift];
}

/* The same from the segment's map byte (its page shift): no header load. */
static inline struct nm_page *nm_page_of_shift(struct nm_segment *s, const void *p, unsigned shift)
{
    return &s->pages[((uintptr_t)p & (NM_SEGMENT_SIZE - 1)) >> shift];
}

static inline uint8_t *nm_page_base(struct nm_segment *s, size_t index)
{
    return (uint8_t *)s + (index << s->page_shift);
}

/* The header (segment fields and page descriptors) starts page 0. */
static inline size_t nm_segment_header_size(const struct nm_segment *s)
{
    return sizeof *s + s->page_count * sizeof(struct nm_page);
}

/* The part of page `index` that may be decommitted: all but the header. */
static inline void nm_page_area(struct nm_segment *s, size_t index, uint8_t **start, size_t *len)
{
    size_t skip = index == 0 ? nm_align_up(nm_segment_header_size(s), NM_OS_PAGE) : 0;
    *start = nm_page_base(s, index) + skip;
    *len = ((size_t)1 << s->page_shift) - skip;
}

/* Mark [start, start + size) as one of ours: `kind` for its first unit,
 * NM_MAP_CONT for the others. */
void nm_map_add(void *start, size_t size, enum nm_map_kind kind);
/* The map byte of a small or medium segment of `kind`. */
static inline enum nm_map_kind nm_map_segment_kind(enum nm_segment_kind kind)
{
    return kind == NM_SEGMENT_SMALL ? NM_MAP_SEGMENT_SMALL : NM_MAP_SEGMENT_MEDIUM;
}
void nm_map_remove(void *start, size_t size);

/* ---- per-node state --------------------------------------------------------- */

/* A lock-free stack of segments.  Anyone pushes; a pop first wins the
 * `popping` flag with a try (never waits), so only one thread pops at a time
 * and a popped segment cannot be unmapped under another popper.  A fork or
 * signal cannot leave a waiter stuck: nobody waits.  The child of a fork
 * clears the flags (nm_segment_after_fork). */
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
     * release waits for the purges already at it (nm_purge_running). */
    _Atomic bool releasing;
    _Atomic(struct nm_segment *) members;
    _Atomic(struct nm_segment *) spans;
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
    _Atomic uint64_t segments;          /* live small/medium segments (count) */
    _Atomic uint64_t large_blocks;      /* live large blocks (count) */
} __attribute__((aligned(64)));

extern struct nm_node_state nm_nodes[NM_MAX_NODES];

/* Process-wide placement (NUMAMALLOC_POLICY, NUMAMALLOC_INTERLEAVE_ABOVE),
 * set once at start-up: the arena every thread heap and large block comes
 * from instead of the node-local ones (NULL: node-local), and the arena for
 * large blocks of at least nm_opt.interleave_above bytes (NULL: none). */
extern struct nm_arena *nm_process_arena;
extern struct nm_arena *nm_interleave_arena;

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
};
extern struct nm_global_counters nm_counters;
/* Pages now serving each size class (page.h), over all heaps. */
#define NM_CLASS_SLOTS 96
extern _Atomic uint64_t nm_class_pages[NM_CLASS_SLOTS];

/* ---- operations --------------------------------------------------------------- */

/* Once, at start-up: secrets, and whether segments are bound to nodes. */
void nm_segment_init(void);
/* In a fork child: clear the pop flags of the node arenas' stacks (a thread
 * that held one does not exist there), or of arena `a`. */
void nm_segment_after_fork(void);
void nm_arena_after_fork(struct nm_arena *a);

/* Set up an arena charged to `node` whose new memory is bound with
 * `bind_mode` (NM_MPOL_*; -1: not bound) to `nodes`. */
void nm_arena_init(struct nm_arena *a, int node, int bind_mode, const nm_nodemask *nodes);
/* Set up arena `a` bound by policy `p` (policy.h), charged to the first
 * node of its set, or to node `local` for a local policy. */
void nm_arena_init_policy(struct nm_arena *a, const nm_policy *p, int local);
static inline struct nm_arena *nm_local_arena(int node) { return &nm_nodes[node].local; }
static inline struct nm_arena *nm_bound_arena(int node) { return &nm_nodes[node].bound; }
static inline struct nm_arena *nm_first_touch_arena(int node) { return &nm_nodes[node].first_touch; }
static inline bool nm_arena_is_local(const struct nm_arena *a)
{
    return a == &nm_nodes[a->node].local;
}

/* Give back every range an owned arena ever mapped, at once (its blocks
 * become invalid).  No thread may use the arena meanwhile. */
void nm_arena_release(struct nm_arena *a);

/* Map `size` bytes aligned to `align` for arena `a`, bound as the arena
 * says, with MADV_NOHUGEPAGE, and sets the header's `chunk`.  Carved from
 * one of the arena's chunks (chunk.h) when it is at most 256 MiB, aligned
 * to at most 4 MiB, without hugetlb pages and the arena is not owned;
 * else a mapping of its own.  Registered in the segment map as `kind`.
 * NULL + ENOMEM.
 * `hugetlb` (NULL: no): in, whether hugetlb pages are wanted; out, whether
 * the range has them.  Hugetlb ranges are faulted in at once (from the
 * pool, as the binding allows); when the pool cannot back the range, it is
 * mapped with normal pages instead. */
void *nm_segment_map_memory(size_t size, size_t align, struct nm_arena *a, bool *hugetlb,
                            enum nm_map_kind kind);
/* Give back the segment or span at `start` (its header says where it came
 * from: its units go back to their chunk, decommitted, or its own mapping
 * is unmapped) and take it out of the map and node's `mapped` count. */
void nm_segment_unmap_memory(void *start, size_t size, int node);

/* A fresh segment of `kind` from arena `a`: its cache, else the OS.  All
 * pages free, no owner.  NULL + ENOMEM on failure. */
struct nm_segment *nm_segment_alloc(struct nm_arena *a, enum nm_segment_kind kind);
/* An empty segment goes to its arena's cache (or back to the OS). */
void nm_segment_free(struct nm_segment *s);
/* Give an owned segment with live blocks to its arena for adoption. */
void nm_segment_abandon(struct nm_segment *s);
/* Take one abandoned segment of arena `a`, or NULL. */
struct nm_segment *nm_segment_take_abandoned(struct nm_arena *a);

/* ---- giving back free pages ------------------------------------------------ */

/* The background purge (purge.c): a thread, started the first time memory
 * waits for a purge, that gives back what has waited the purge delay in
 * every heap, arena and cache, so a process that goes quiet returns its
 * free memory without calling malloc again.  Lower layers only signal it:
 *   waiting   set when memory starts waiting for a purge (futex word)
 *   idle      the thread sleeps until `waiting` is set
 *   state     0: not started; 1: running; 2: none (off, or it could not
 *             start: the heaps then purge on their own slow paths)
 *   running   passes over other threads' heaps in progress (the thread's,
 *             nm_trim's): an owned arena's release waits for them
 *   start     set by purge.c once the process is up; called only at safe
 *             points (no heap lock held: creating a thread allocates). */
struct nm_purge_clock {
    _Atomic uint32_t waiting;
    _Atomic uint32_t idle;
    _Atomic int state;
    _Atomic uint32_t running;        /* purge passes in progress (any thread) */
    void (*_Atomic start)(void);
};
extern struct nm_purge_clock nm_purge_clock;

static inline void nm_purge_signal(void)
{
    if (atomic_load_explicit(&nm_purge_clock.waiting, memory_order_relaxed)) return;
    atomic_store(&nm_purge_clock.waiting, 1);
    if (atomic_load(&nm_purge_clock.idle)) nm_os_futex_wake(&nm_purge_clock.waiting);
}

/* Whether the background thread purges (else the slow paths do). */
static inline bool nm_purge_thread_running(void)
{
    return atomic_load_explicit(&nm_purge_clock.state, memory_order_relaxed) == 1;
}

static inline void nm_purge_safe_point(void)
{
    if (nm_likely(atomic_load_explicit(&nm_purge_clock.state, memory_order_relaxed) != 0) ||
        !atomic_load_explicit(&nm_purge_clock.waiting, memory_order_relaxed))
        return;
    void (*start)(void) = atomic_load_explicit(&nm_purge_clock.start, memory_order_acquire);
    if (start) start();
}

/* The one retention rule: free memory (a page, a cached segment or span, a
 * parked heap) stays committed while it has been free for less than the
 * purge delay, so a program that frees and allocates again takes it back
 * without page faults, and goes back to the OS once it has waited that long
 * (force: now).  `since_ms` is when it became free. */
static inline bool nm_purge_due(uint64_t since_ms, uint64_t now_ms, uint64_t delay_ms, bool force)
{
    return force || now_ms - since_ms >= delay_ms;
}

/* Take the free pages of `s` that are due (nm_purge_due of their
 * retired_ms) and still committed off free_pages into `purging`, and return
 * them as a bit mask (0: none).  A reserved segment (nm_reserve) gives its
 * pages only when forced, a strict arena's never.  *waiting is set when free pages remain that are not due yet.
 * The caller must keep the segment from leaving its owner meanwhile: the
 * owner's heap lock, or holding an unowned segment.  No system call. */
uint64_t nm_segment_purge_claim(struct nm_segment *s, uint64_t now_ms, bool force, bool *waiting);
/* Give back the memory of the pages claimed (one madvise per run of
 * neighbours) and return them to free_pages, decommitted.  Atomic
 * operations only: needs no lock, and the segment may meanwhile have been
 * abandoned or adopted.  Returns the bytes given back. */
size_t nm_segment_purge_finish(struct nm_segment *s, uint64_t claimed);

/* Map segments for `bytes` of arena `a`, fault their pages in now, and keep
 * them in the arena's cache (never purged below that amount), for heaps to
 * take without page faults.  Returns 0 or -1 with errno ENOMEM. */
int nm_segment_reserve(struct nm_arena *a, size_t bytes);

/* Give back cached segments of arena `a` that have waited the purge delay
 * or that take its node past the cache limit (force: every cached segment,
 * now).  Never blocks: if another thread is at it, returns.  Returns
 * whether segments wait that are not due yet. */
bool nm_segment_cache_purge(struct nm_arena *a, uint64_t now_ms, bool force);
static inline void nm_segment_maybe_purge(struct nm_arena *a, uint64_t now_ms)
{
    if (now_ms >= atomic_load_explicit(&a->next_purge_ms, memory_order_relaxed))
        (void)nm_segment_cache_purge(a, now_ms, false);
}

#endif
