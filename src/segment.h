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
 *   medium segment  4 MiB =  8 pages of 512 KiB, blocks of 12 KiB .. 256 KiB
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
 * A segment whose owner's heap is abandoned (its thread exited and no new
 * thread took the heap over, or it moved to another node) goes to its arena
 * (arena.h) and is adopted by the next heap of the same arena that needs
 * memory, so a block is only ever reused on the node its memory lives on.
 *
 * This layer maps and formats segments and gives back their free pages
 * (the claim and finish of a purge); arena.h's types say how (binding,
 * chunks, counters).  It may call the chunk, policy, os and topology
 * layers and the options.
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
#define NM_MEDIUM_PAGE_SHIFT 19                               /* 512 KiB */
#define NM_SMALL_MAX (8 * NM_KiB)          /* largest block in a small page */
#define NM_MEDIUM_MAX (256 * NM_KiB)       /* largest block in a medium page */
#define NM_MAX_PAGES (NM_SEGMENT_SIZE >> NM_SMALL_PAGE_SHIFT) /* 64 */

struct nm_heap;
struct nm_arena;

/* A free block: two words, encoded with the process's keys and the
 * block's own address, so that a stray write into a freed block (a use
 * after free, an overflow from the block before it) is caught when the
 * allocator next reads the block instead of steering a later malloc:
 *
 *   link  = next ^ address ^ nm_proc.link_key    (next: the following free
 *                                                 block of its list, or NULL)
 *   check = (link + address) ^ nm_proc.check_key
 *
 *   block is free  <=>  check == (link + address) ^ check_key
 *
 * Allocation sets check = 0, so a live block does not pass (its owner's
 * data takes the words over; passing by chance is a 1 in 2^64 event).
 * Zeroing the words, writing a pointer over them or copying a free block's
 * words to another address breaks the equation unless the writer knows
 * both 64-bit keys.  Every list that holds blocks (a page's free and
 * remote lists, a thread's foreign lists, heap.h) keeps this encoding, and
 * whoever pops a block checks it before following its link
 * (nm_block_is_free): a block that fails is reported as heap corruption,
 * never handed out.  free() of a block that passes is a double free.
 * Blocks are at least 16 bytes, so both words fit. */
struct nm_block {
    uintptr_t link;
    uintptr_t check;
};

enum nm_page_state { NM_PAGE_FREE, NM_PAGE_QUEUED, NM_PAGE_FULL };

/* Page metadata lives in the segment header, not in the page: two cache
 * lines, split by who writes them.  The first is the owner's, written by
 * every malloc and local free; the second is read by every free, whichever
 * thread frees (the block check), and written by the owner only when it
 * carves more blocks (`carved`) or formats the page, by whoever changes
 * the page's state or its segment's owner (`local_owner`: the owner, a
 * purge releasing the page or abandoning a parked heap, a thread adopting
 * the segment), and by other threads' frees that push onto `remote` (those
 * their own foreign lists do not keep, heap.h).  A thread freeing blocks
 * of another thread's page so reads a line that the owner's allocations
 * leave alone. */
struct nm_page {
    /* The owner's line. */
    struct nm_block *free;          /* blocks the owner hands out next */
    uint32_t used;                  /* blocks out, counting uncollected remote frees */
    uint8_t state;                  /* enum nm_page_state; every change is followed by
                                       nm_page_sync_owner (local_owner) */
    struct nm_page *next, *prev;    /* in the owning heap's class queue or full list */
    uint8_t *touched_end;           /* end of the memory carved blocks have covered
                                       since the page's memory was last given back
                                       (NULL: none); kept while the page is free, so a
                                       page taken again carves that much at once (mostly
                                       resident: a block's tail may never have been
                                       written) */

    /* The shared line. */
    _Alignas(64) uint8_t *start;    /* first block */
    uint64_t block_recip;           /* ceil(2^64 / block_size): block start check by one
                                       multiply (nm_page_is_block) */
    _Atomic uint32_t carved;        /* bytes of blocks carved so far (read by remote frees) */
    uint32_t block_size;            /* bytes per block; 0 while the page is free */
    uint16_t reserved;              /* blocks that fit in the page (at most 4096) */
    uint8_t size_class;
    _Atomic(struct nm_block *) remote;   /* pushed by other threads, collected by owner */
    /* What free compares with nm_thread_self() to know, in one compare,
     * that the block is its own and needs nothing special (heap.h:
     * nm_heap_free_block):
     *   local_owner == (state == NM_PAGE_QUEUED && !secure mode ? segment's thread : 0)
     * kept by nm_page_sync_owner wherever either side changes (a page
     * queued, filled, released; a segment owned, parked, taken over,
     * abandoned, cached).  Relaxed: other threads only ever find a value
     * that is not theirs. */
    _Atomic uintptr_t local_owner;
};

_Static_assert(sizeof(struct nm_page) == 128, "page metadata is two cache lines");

enum nm_segment_kind { NM_SEGMENT_SMALL, NM_SEGMENT_MEDIUM, NM_SEGMENT_LARGE };

#include "arena.h"

struct nm_segment {
    uintptr_t cookie;               /* nm_segment_cookie(self): proves the header is ours */
    uint8_t kind;                   /* enum nm_segment_kind */
    uint8_t page_shift;             /* small: 16, medium: 19 */
    uint16_t node;                  /* dense node index (topology.h) its memory is charged to */
    uint32_t page_count;            /* 64 or 8 */
    size_t size;                    /* bytes mapped from `self` */
    _Atomic uintptr_t thread;       /* nm_thread_self() of the owner's thread, or 0;
                                       set through nm_segment_set_thread only (the pages'
                                       local_owner follow it) */
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
    /* Bit u: some of the segment's 64 KiB unit u is reserved only (PROT_NONE:
     * strict accounting commits on use, os.h); set for every unit when the
     * segment is mapped so, by a purge that gives back a page's charge and
     * when the segment enters a cache (nm_segment_uncommit_pages); cleared
     * when a page is taken (nm_segment_commit_page).  In units, not
     * pages, so that it holds when a segment changes kind.  0 in the other
     * modes.  head_writable: the bytes from the segment's start that are
     * writable for sure (the header's at least, unless a purge gave back
     * medium page 0, whose area starts below the small header's end). */
    _Atomic uint64_t uncommitted;
    size_t head_writable;
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
    size_t committed;               /* bytes from the block's start that may be resident:
                                       what blocks of this span reached since the span was
                                       last decommitted (at least block_size while live) */
    size_t writable;                /* bytes from the block's start that may be written: the
                                       rest of the span's space (and the space between its
                                       header page and its block) is reserved only, to be
                                       committed on use (os.h: nm_os_commit); SIZE_MAX when
                                       the span was mapped writable as a whole */
    size_t alignment;               /* alignment asked for (0: default layout) */
    _Atomic uint32_t large_state;   /* NM_LARGE_LIVE or NM_LARGE_FREE */
    bool zeroed;                    /* block memory known to be all zero */
    bool hugetlb;                   /* backed by MAP_HUGETLB pages */
    bool reserved;                  /* nm_reserve: free pages are never decommitted */
    bool thp;                       /* transparent huge pages for its blocks: while the
                                       span holds a block, live or cached, the bytes of
                                       its block space up to block_size rounded down to
                                       2 MiB have MADV_HUGEPAGE and the rest NOHUGEPAGE
                                       (large.c: thp_extent, span_thp_advise) */
    /* The heap profiler's record of the block when it was sampled (prof.h):
     *   prof.site != 0  <=>  the block is live, sampled, and on the list of
     *       live blocks of site prof.site (prof.next, prof.prev), or being
     *       resized (off the list until nm_prof_attach);
     * set and cleared under the profiler's lock; 0 in every other span. */
    struct nm_prof_mark {
        uint32_t site;              /* index of its call stack's site in prof.c's table */
        int16_t node_seen;          /* a dump's answer: the node its first page is on
                                       (dense index), -1: not known */
        bool mismatched;            /* a dump's answer: outside the nodes its arena names */
        size_t size;                /* bytes the program asked for */
        struct nm_segment *next, *prev;
    } prof;

    struct nm_page pages[];         /* small and medium only */
};

/* Whether large span `s` holds a block the heap profiler sampled that
 * stands for a heap block: sampled blocks get a span of their own whatever
 * their size (prof.h), and one of up to NM_MEDIUM_MAX bytes is counted and
 * resized as the small or medium block it would have been. */
static inline bool nm_span_stands_for_heap_block(const struct nm_segment *s)
{
    return s->prof.site && s->prof.size <= NM_MEDIUM_MAX;
}

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

static inline uintptr_t nm_segment_cookie(const struct nm_segment *s)
{
    return ((uintptr_t)s * 0x9E3779B97F4A7C15ull) ^ nm_proc.cookie_key;
}

/* ---- free blocks (struct nm_block) ---------------------------------------- */

/* Free block `b`, followed by `next` in its list. */
static inline void nm_block_set_next(struct nm_block *b, const struct nm_block *next)
{
    uintptr_t link = (uintptr_t)next ^ (uintptr_t)b ^ nm_proc.link_key;
    b->link = link;
    b->check = (link + (uintptr_t)b) ^ nm_proc.check_key;
}

/* Whether `b` carries the encoding of a free block. */
static inline bool nm_block_is_free(const struct nm_block *b)
{
    return b->check == ((b->link + (uintptr_t)b) ^ nm_proc.check_key);
}

/* The block after free block `b` in its list (b passed nm_block_is_free). */
static inline struct nm_block *nm_block_next(const struct nm_block *b)
{
    return (struct nm_block *)(b->link ^ (uintptr_t)b ^ nm_proc.link_key);
}

/* Block `b`, popped from its list, is live now. */
static inline void nm_block_take(struct nm_block *b)
{
    b->check = 0;
}

/* A free medium block (12 KiB and more, page.h) has a third word, `mark`,
 * written only by the purge of free blocks (page.h:
 * nm_page_take_due_blocks), keyed like the other two:
 *
 *   mark == key(address) ^ (t << 32 | NM_MARK_SEEN)  a purge first found the
 *                                                    block free at ms time t
 *                                                    (the clock's low 32 bits)
 *   mark == key(address) ^ NM_MARK_PURGED             the block's inside (all
 *                                                    its OS pages but the
 *                                                    first) went back to the OS
 *   anything else                                    not seen free yet
 *
 * Handing a medium block out clears the word (nm_block_take_medium), and
 * so does carving it (nm_page_extend: a page of another class may have
 * left a mark there), so a block used and freed again is not taken for
 * one seen or purged before; data a program leaves there matches only by a
 * 1 in 2^32 chance. */
#define NM_MARK_SEEN 0x5EE4F8EEu
#define NM_MARK_PURGED 0x9E6A1D0C00000000ull

static inline uint64_t nm_block_mark_key(const struct nm_block *b)
{
    return ((uintptr_t)b * 0xC2B2AE3D27D4EB4Full) ^ nm_proc.check_key;
}

static inline uint64_t *nm_block_mark(struct nm_block *b)
{
    return (uint64_t *)(void *)b + 2;
}

/* Medium block `b`, popped from its list, is live now. */
static inline void nm_block_take_medium(struct nm_block *b)
{
    b->check = 0;
    *nm_block_mark(b) = 0;
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
    NM_MAP_SEGMENT_MEDIUM = NM_MEDIUM_PAGE_SHIFT,  /* starts a medium segment (19) */
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

/* Set page `pg`'s local_owner from its state and its segment's thread
 * (struct nm_page). */
static inline void nm_page_sync_owner(struct nm_page *pg)
{
    uintptr_t owner = 0;
    if (pg->state == NM_PAGE_QUEUED && !nm_proc.secure)
        owner = atomic_load_explicit(&nm_segment_of(pg)->thread, memory_order_relaxed);
    atomic_store_explicit(&pg->local_owner, owner, memory_order_relaxed);
}

/* The pages of `s` in use, one bit each (bit i: page i): neither free
 * nor purging.  The heap's walks over a segment's pages go through this
 * mask, not through every descriptor: in a fresh segment the descriptors
 * of pages never taken are memory never touched (nm_segment_format). */
static inline uint64_t nm_segment_pages_in_use(struct nm_segment *s)
{
    uint64_t all = s->page_count == 64 ? ~0ull : (1ull << s->page_count) - 1;
    return all & ~(atomic_load_explicit(&s->free_pages, memory_order_relaxed) |
                   atomic_load_explicit(&s->purging, memory_order_relaxed));
}

/* Segment `s` belongs to the thread named `thread` now (0: to none).  Its
 * free pages (free_pages, purging) are NM_PAGE_FREE, local_owner 0
 * already: their descriptors are left alone. */
static inline void nm_segment_set_thread(struct nm_segment *s, uintptr_t thread)
{
    atomic_store_explicit(&s->thread, thread, memory_order_release);
    for (uint64_t in_use = nm_segment_pages_in_use(s); in_use; in_use &= in_use - 1)
        nm_page_sync_owner(&s->pages[__builtin_ctzll(in_use)]);
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
/* Secure mode (NUMAMALLOC_SECURE): the last 4 KiB of a small or medium
 * segment are a guard page (no access), so a run of writes off the end of
 * one segment faults instead of reaching the next; page `index`'s blocks
 * and memory stop short of it. */
static inline size_t nm_page_guard(const struct nm_segment *s, size_t index)
{
    return nm_proc.secure && index == s->page_count - 1 ? NM_OS_PAGE : 0;
}

static inline void nm_page_area(struct nm_segment *s, size_t index, uint8_t **start, size_t *len)
{
    size_t skip = index == 0 ? nm_align_up(nm_segment_header_size(s), NM_OS_PAGE) : 0;
    *start = nm_page_base(s, index) + skip;
    *len = ((size_t)1 << s->page_shift) - skip - nm_page_guard(s, index);
}

/* The bytes at the start of a segment that its header may take, whatever
 * its kind: committed when a segment is mapped to commit on use. */
static inline size_t nm_segment_header_max(void)
{
    return nm_align_up(sizeof(struct nm_segment) + NM_MAX_PAGES * sizeof(struct nm_page), NM_OS_PAGE);
}

/* Make page `index` of `s` writable where it is reserved only
 * (`uncommitted`), before it is taken.  0, or -1 with ENOMEM past the
 * commit limit.  Only the segment's owner, for a page it holds. */
int nm_segment_commit_page(struct nm_segment *s, size_t index);
/* A segment that commits on use and has no page in use gives back the
 * charge of all its pages (not a reserved one's), as it enters a cache. */
void nm_segment_uncommit_pages(struct nm_segment *s);
/* The same for the whole segment (nm_reserve). */
int nm_segment_commit_all(struct nm_segment *s);

/* Make the map's bytes for [start, start + size) writable, as nm_map_add
 * needs (nm_segment_init maps the map's memory read-only under strict
 * accounting, os.h).  False (ENOMEM) past the commit limit; in the other
 * modes always true, no syscall. */
bool nm_map_prepare(void *start, size_t size);
/* Mark [start, start + size) as one of ours: `kind` for its first unit,
 * NM_MAP_CONT for the others (nm_map_prepare first). */
void nm_map_add(void *start, size_t size, enum nm_map_kind kind);
/* The map byte of a small or medium segment of `kind`. */
static inline enum nm_map_kind nm_map_segment_kind(enum nm_segment_kind kind)
{
    return kind == NM_SEGMENT_SMALL ? NM_MAP_SEGMENT_SMALL : NM_MAP_SEGMENT_MEDIUM;
}
void nm_map_remove(void *start, size_t size);

/* ---- operations --------------------------------------------------------------- */

/* Once, at start-up: the process's secrets (cookie key, free mark). */
void nm_segment_init(void);
/* Format the range at `s` (mapped for arena `a`) as an empty segment of
 * `kind`: every page free, no owner; a reserved segment stays reserved.
 * `fresh`: the range was just mapped or carved (nm_segment_map_memory),
 * so its header reads as zero but for what that set, and the page records
 * are left to be written as pages are taken: a thread that uses a few
 * pages of a small segment has two pages of its header resident (the
 * second of the three only holds the records of pages 28 - 59), not three.
 * 0, or -1 (ENOMEM) when its header cannot be committed (os.h). */
int nm_segment_format(struct nm_segment *s, struct nm_arena *a, enum nm_segment_kind kind,
                      bool fresh);
/* Map `size` bytes aligned to `align` for arena `a`, bound as the arena
 * says, with MADV_NOHUGEPAGE, and sets the header's `chunk`.  Carved from
 * one of the arena's chunks (chunk.h) when it is at most 256 MiB, aligned
 * to at most 4 MiB, without hugetlb pages and the arena is not owned;
 * else a mapping of its own.  Registered in the segment map as `kind`.
 * NULL + ENOMEM.
 * `hugetlb` (NULL: no): in, whether hugetlb pages are wanted; out, whether
 * the range has them.  Hugetlb ranges are faulted in at once (from the
 * pool, as the binding allows); when the pool cannot back the range, it is
 * mapped with normal pages instead.
 * A span (`kind` NM_MAP_SPAN) mapped by itself for an arena that is not
 * strict is reserved as space to commit on use (os.h): its header page is
 * committed, and its `writable` set to 0 where that space is not
 * writable (nm_os_strict_commit), else SIZE_MAX, as for any other span.  A
 * segment mapped by itself for such an arena is too: its header's bytes
 * (nm_segment_header_max) are committed and its pages as they are taken
 * (`uncommitted`). */
void *nm_segment_map_memory(size_t size, size_t align, struct nm_arena *a, bool *hugetlb,
                            enum nm_map_kind kind);
/* Give back the segment or span at `start` (its header says where it came
 * from: its units go back to their chunk, decommitted, or its own mapping
 * is unmapped) and take it out of the map and node's `mapped` count. */
void nm_segment_unmap_memory(void *start, size_t size, int node);

/* ---- giving back free pages ------------------------------------------------ */

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

#endif
