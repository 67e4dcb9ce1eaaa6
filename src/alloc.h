/*
 * alloc.h — the allocation API's fast paths, shared by alloc.c (the nm_
 * functions) and override.c (malloc, free, ...), so both compile the same
 * inlined code: a size decides between the heap (<= 256 KiB) and a large
 * span; free finds the block's segment from its address.
 *
 * May call every layer below: heap, large, page, segment.
 */
#ifndef NM_ALLOC_H
#define NM_ALLOC_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "heap.h"
#include "large.h"
#include "numamalloc.h"

/* A block above the heap's sizes, or aligned beyond them, from arena `a`
 * (NULL: where malloc puts the calling thread's large blocks); zeroed if
 * `zero`.  NULL + ENOMEM (sizes above PTRDIFF_MAX included). */
void *nm_alloc_large(struct nm_arena *a, size_t size, size_t alignment, bool zero);
/* nm_alloc_in for alignments above NM_ALIGNED_FAST_MAX. */
void *nm_alloc_aligned_slow(struct nm_heap *h, struct nm_arena *a, size_t size, size_t alignment,
                            bool zero);
void nm_free_slow(void *p, const char *fn);
/* free_sized (aligned: free_aligned_sized), naming `fn` in error reports:
 * `size` and `alignment` are checked against the block (numamalloc.h:
 * nm_free_sized); a mismatch is reported and the block left alone. */
void nm_free_sized_named(void *p, bool aligned, size_t alignment, size_t size, const char *fn);
/* realloc, naming `fn` in error reports. */
void *nm_realloc_named(void *p, size_t size, const char *fn);

/* Alignments served by the class whose size is the first multiple of the
 * alignment (every class has one up to this) on the fast path; larger ones
 * take nm_alloc_aligned_slow. */
#define NM_ALIGNED_FAST_MAX (4 * NM_KiB)

/* The one size dispatch of every allocation: `size` bytes aligned to
 * `alignment` (a power of two; 16 or less: the class's own alignment),
 * small and medium blocks from thread heap `h`, large ones from arena `a`
 * (NULL: as malloc places the thread's large blocks; else `h`'s arena),
 * the first `size` bytes zeroed if `zero`.  malloc is (nm_tls_heap, NULL,
 * size, 0, false), nm_malloc_onnode a node's heap and bound arena,
 * nm_heap_malloc the heap's.  Always inlined, so that each caller's
 * constant arguments fold away (malloc's copy has no alignment or zero
 * test). */
static nm_always_inline void *nm_alloc_in(struct nm_heap *h, struct nm_arena *a, size_t size,
                                size_t alignment, bool zero)
{
    void *p;
    if (nm_likely(alignment <= 16)) {
        if (nm_likely(size <= NM_DIRECT_MAX)) p = nm_heap_alloc_small(h, size);
        else if (nm_likely(size <= NM_MEDIUM_MAX)) p = nm_heap_alloc_medium(h, size);
        else return nm_alloc_large(a, size, 0, zero);
    } else if (nm_likely(size <= NM_DIRECT_MAX && alignment <= NM_DIRECT_MAX)) {
        p = nm_heap_alloc_direct(h, nm_aligned_slot(size, alignment), size, alignment);
    } else if (nm_likely(alignment <= NM_ALIGNED_FAST_MAX && size <= NM_MEDIUM_MAX)) {
        p = nm_heap_alloc_aligned(h, size, alignment);
    } else {
        return nm_alloc_aligned_slow(h, a, size, alignment, zero);
    }
    if (zero && nm_likely(p != NULL)) memset(p, 0, size);
    return p;
}

/* malloc's fast path: with gcc one shared copy per file, that malloc jumps
 * to and calloc and operator new call (docs/design.md, "The fast paths"). */
static nm_noinline void *nm_alloc_inline(size_t size)
{
    return nm_alloc_in(nm_tls_heap, NULL, size, 0, false);
}

/* calloc: the fast path, then zeroing. */
static inline void *nm_calloc_inline(size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) { errno = ENOMEM; return NULL; }
    if (nm_unlikely(bytes > NM_MEDIUM_MAX)) return nm_alloc_large(NULL, bytes, 0, true);
    void *p = nm_alloc_inline(bytes);
    if (nm_likely(p != NULL)) memset(p, 0, bytes);
    return p;
}

/* aligned_alloc for a power-of-two `alignment`. */
static inline void *nm_aligned_inline(size_t alignment, size_t size)
{
    return nm_alloc_in(nm_tls_heap, NULL, size, alignment, false);
}

/* Free `p` on the common path: a live small or medium block.  Anything
 * else (large blocks, invalid pointers, double frees) goes to the slow path,
 * which reports errors. */
static inline void nm_free_inline(void *p)
{
    enum nm_map_kind kind = nm_map_lookup((uintptr_t)p);
    if (nm_likely(nm_map_is_segment(kind))) {
        struct nm_segment *s = nm_segment_of(p);
        struct nm_page *pg = nm_page_of_shift(s, p, kind);
        struct nm_block *b = p;
        if (nm_likely(nm_page_is_block(pg, p) && !nm_block_is_free(b))) {
            nm_heap_free_block(s, pg, b);
            return;
        }
    }
    if (p) nm_free_slow(p, "free");
}

#endif
