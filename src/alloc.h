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

void *nm_alloc_slow(size_t size, bool zero);
void nm_free_slow(void *p, const char *fn);
/* realloc, naming `fn` in error reports. */
void *nm_realloc_named(void *p, size_t size, const char *fn);

static inline void *nm_alloc_inline(size_t size)
{
    if (nm_likely(size <= NM_DIRECT_MAX)) return nm_heap_alloc_small(nm_tls_heap, size);
    if (nm_likely(size <= NM_MEDIUM_MAX)) return nm_heap_alloc_medium(nm_tls_heap, size);
    return nm_alloc_slow(size, false);
}

/* calloc: the fast path, then zeroing. */
static inline void *nm_calloc_inline(size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) { errno = ENOMEM; return NULL; }
    if (nm_unlikely(bytes > NM_MEDIUM_MAX)) return nm_alloc_slow(bytes, true);
    void *p = nm_alloc_inline(bytes);
    if (nm_likely(p != NULL)) memset(p, 0, bytes);
    return p;
}

/* Alignments served by the class whose size is the first multiple of the
 * alignment (every class has one up to this) on the fast path; larger ones
 * go to nm_aligned_alloc. */
#define NM_ALIGNED_FAST_MAX (4 * NM_KiB)

/* aligned_alloc for a power-of-two `alignment`. */
static inline void *nm_aligned_inline(size_t alignment, size_t size)
{
    if (alignment <= 16) return nm_alloc_inline(size);
    if (nm_likely(alignment <= NM_ALIGNED_FAST_MAX && size <= NM_MEDIUM_MAX))
        return nm_heap_alloc_aligned(nm_tls_heap, size, alignment);
    return nm_aligned_alloc(alignment, size);
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
            if (nm_unlikely(nm_proc.secure)) nm_heap_free_secure(s, pg, b);
            else nm_heap_free(s, pg, b);
            return;
        }
    }
    if (p) nm_free_slow(p, "free");
}

#endif
