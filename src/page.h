/*
 * page.h — size classes and the blocks of one page.
 *
 * 66 size classes cover 16 B .. 256 KiB: 16-byte steps up to 128 B, then 8
 * classes per power of two up to 8 KiB, so a class is at most 12.5% larger
 * than the previous one (below 128 B the 16-byte granule, which keeps every
 * block 16-byte aligned, dominates), then two per power of two (12, 16, 24,
 * 32, ... 192, 256 KiB).  Classes up to 8 KiB live in 64 KiB pages, larger
 * ones in 512 KiB pages.  Medium classes are coarse because each thread
 * keeps a page per class: with 8 per power of two, a server whose threads
 * hold a few blocks of each of 24 medium classes kept each class's peak
 * resident; with 2, fewer and fuller classes share it (docs/design.md,
 * "Size classes").  The slack a coarse class leaves at a block's end is
 * address space, resident only once a bigger request wrote it.  Blocks are
 * laid out from an address aligned to the largest power of two dividing
 * the block size (capped at the page size), so a 4096-byte block is
 * 4096-aligned.
 *
 * A page's blocks are carved lazily onto its free list: NM_EXTEND_BYTES (at
 * least one block) at a time of memory not touched yet, so a page holding a
 * few blocks commits no more than they need; up to NM_EXTEND_RESIDENT blocks
 * at a time of memory that blocks already covered (`touched_end`: a page
 * released and taken again while still resident), so a class of 2 - 8 KiB
 * blocks whose pages empty and fill again does not take the slow path for
 * every block.  Remote frees wait on `remote` until the owner collects
 * them.  May call the segment layer.
 */
#ifndef NM_PAGE_H
#define NM_PAGE_H

#include "segment.h"

#define NM_CLASS_COUNT NM_CLASS_SLOTS   /* 66 */
#define NM_SMALL_CLASSES 56              /* classes 0..55 are <= 8 KiB, 56..65 medium */
_Static_assert(NM_TRANSFER_CLASSES == NM_SMALL_CLASSES, "an arena holds lists of every small class");
#define NM_DIRECT_MAX NM_SMALL_MAX       /* sizes served by the direct table: every small class */
#define NM_DIRECT_SLOTS (NM_DIRECT_MAX / 16 + 1)
#define NM_EXTEND_BYTES (4 * NM_KiB)     /* carve at most this much of new memory at a time */
#define NM_EXTEND_RESIDENT 16            /* blocks carved at once where memory is resident */
#define NM_EXTEND_MAX_BLOCKS (NM_EXTEND_BYTES / 16)   /* the most blocks one carve makes */

extern uint32_t nm_class_size[NM_CLASS_COUNT];

void nm_page_classes_init(void);

/* The class serving `size` (1 .. NM_MEDIUM_MAX; 0 is served as 16). */
static inline unsigned nm_size_class(size_t size)
{
    if (size <= 128) return size <= 16 ? 0 : (unsigned)((size - 1) >> 4);
    unsigned k = 63u - (unsigned)__builtin_clzll(size - 1);      /* size in (2^k, 2^(k+1)] */
    if (nm_likely(size <= NM_SMALL_MAX)) {
        unsigned step = (unsigned)((size - 1 - ((size_t)1 << k)) >> (k - 3));  /* 0..7 */
        return 8 + (k - 7) * 8 + step;
    }
    unsigned upper = (unsigned)((size - 1) >> (k - 1)) & 1;   /* above 1.5 * 2^k */
    return NM_SMALL_CLASSES + (k - 13) * 2 + upper;
}

/* The class for `size` bytes aligned to `alignment` (a power of two, both
 * at most NM_MEDIUM_MAX): the first class at least as big whose size is a
 * multiple of the alignment, so its blocks are naturally aligned. */
static inline unsigned nm_aligned_class(size_t size, size_t alignment)
{
    unsigned cls = nm_size_class(size > alignment ? size : alignment);
    while (nm_class_size[cls] & (alignment - 1)) cls++;
    return cls;
}

static inline enum nm_segment_kind nm_class_kind(unsigned cls)
{
    return cls < NM_SMALL_CLASSES ? NM_SEGMENT_SMALL : NM_SEGMENT_MEDIUM;
}

/* Set up free page `index` of `s` for class `cls` (nothing carved yet;
 * `touched_end` is the caller's: NULL once the memory was given back). */
void nm_page_format(struct nm_segment *s, size_t index, unsigned cls);

/* Carve the next blocks onto the free list, in address order, or in a
 * random order drawn from xorshift state `*shuffle` when not NULL (secure
 * mode).  False when the page is full. */
bool nm_page_extend(struct nm_page *pg, uint64_t *shuffle);

/* Move remote frees onto the free list.  Returns how many.  A corrupt
 * block (segment.h: nm_block) is reported and the list from it on dropped. */
uint32_t nm_page_collect(struct nm_page *pg);

/* Block `b` of class `cls`, popped from its list, is live now (a medium
 * block's mark goes too: segment.h). */
static inline void nm_block_take_class(struct nm_block *b, unsigned cls)
{
    if (cls >= NM_SMALL_CLASSES) nm_block_take_medium(b);
    else nm_block_take(b);
}

/* The inside of free medium blocks (every OS page of a block but its
 * first, which holds its list words) goes back to the OS once a purge has
 * found the block free for the purge delay, so that a page that keeps a
 * long-lived block keeps only that block and the first OS page of each
 * free one resident.  In three steps, so that the madvise calls run while
 * no list is being walked (a program that intercepts madvise may allocate
 * from inside it):
 *
 * nm_page_take_due_blocks walks the free list of medium page `pg`: a block
 * found free for the first time gets the time in its mark (segment.h), a
 * block marked a delay ago or more (any block not purged yet if
 * `due_now`) is unlinked into `out` (at most `max`) and counted in `used`,
 * so the page is not released meanwhile; *waiting is set when blocks wait
 * for their delay.  Returns how many it took.  A block handed out and
 * freed again starts over.  The caller owns the page's free list (its
 * owner; a purge holding the heap of an exited thread or an abandoned
 * segment); not in secure mode (its poison fills free blocks), and not on
 * a page pinned as corrupt.
 *
 * nm_block_purge_inside gives back the inside of taken block `b` of
 * `size` bytes and marks it purged (a purged block is not taken again);
 * returns the bytes given back.
 *
 * nm_page_put_back returns taken block `b` to the free list of `pg` where
 * nothing changed the page meanwhile; the owner frees it instead
 * (nm_heap_free), which copes with a page filled meanwhile. */
uint32_t nm_page_take_due_blocks(struct nm_page *pg, uint64_t now_ms, bool due_now,
                                 bool *waiting, struct nm_block **out, uint32_t max);
size_t nm_block_purge_inside(struct nm_block *b, size_t size);
void nm_page_put_back(struct nm_page *pg, struct nm_block *b);

/* Report heap corruption found at block `b` of page `pg` (b failed
 * nm_block_is_free) in a `list` ("free", "remote-free") in one line, then
 * abort, or return with NUMAMALLOC_ON_ERROR=warn: the caller drops the
 * list from `b` on, so neither `b` nor a block its link names is ever
 * handed out, and with `pin` (the caller owns the page: the page's own
 * lists) the page is pinned (never given back, its count of blocks in use
 * no longer trusted: a block freed twice may be live).  A page of a
 * foreign list is another thread's; the dropped blocks keep it in use. */
nm_cold void nm_page_corrupt(struct nm_page *pg, const struct nm_block *b, const char *list,
                             bool pin);

static inline bool nm_page_has_remote(const struct nm_page *pg)
{
    return atomic_load_explicit(&pg->remote, memory_order_relaxed) != NULL;
}

/* Blocks carved so far (owner only). */
static inline uint32_t nm_page_capacity(const struct nm_page *pg)
{
    return atomic_load_explicit(&pg->carved, memory_order_relaxed) / pg->block_size;
}

/* ceil(2^64 / size) for a block size of at least 2 (the page's
 * block_recip). */
static inline uint64_t nm_block_recip(uint32_t size)
{
    return UINT64_MAX / size + 1;
}

/* Whether `off` (< 2^32) is a multiple of `size`, with recip =
 * nm_block_recip(size): write off = q * size + r; then off * recip mod 2^64
 * = q * e + r * recip, where e = recip * size - 2^64 < size.  For r = 0
 * that is q * e < off < 2^32, below recip (>= 2^64 / 2^18) as long as
 * size <= 2^18; for r > 0 it lies in [recip, 2^64).  One multiply and one
 * compare (snmalloc's trick); tests/unit/size_classes.c checks it for every
 * class and every offset in its page. */
static inline bool nm_is_block_offset(uint64_t off, uint64_t recip)
{
    return off * recip < recip;
}

/* The index of the block that holds offset `off` (< 2^32) of a page of
 * blocks of `size` bytes, with recip = nm_block_recip(size): floor(off /
 * size) by one multiply.  recip = (2^64 + e) / size with 0 <= e < size,
 * so off * recip / 2^64 = off / size + off * e / (size * 2^64), and the
 * excess is below off / 2^64 < 2^-32; the fraction of off / size is at
 * most 1 - 1/size, and 1/size >= 2^-18, so the excess never carries into
 * the integer part.  tests/unit/size_classes.c checks every class and
 * offset. */
static inline uint64_t nm_block_index(uint64_t off, uint64_t recip)
{
    return (uint64_t)(((unsigned __int128)off * recip) >> 64);
}

/* Whether `p` is the start of a block carved from this page.  Any thread
 * may ask (`carved` is atomic because the owner may be carving). */
static inline bool nm_page_is_block(const struct nm_page *pg, const void *p)
{
    uintptr_t off = (uintptr_t)p - (uintptr_t)pg->start;
    if (off >= atomic_load_explicit(&pg->carved, memory_order_relaxed)) return false;
    return nm_is_block_offset(off, pg->block_recip);
}

#endif
