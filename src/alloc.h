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

#include <stddef.h>

#include "heap.h"
#include "large.h"

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

/* Free `p` on the common path: a live small or medium block.  Anything
 * else (large blocks, invalid pointers, double frees) goes to the slow path,
 * which reports errors. */
static inline void nm_free_inline(void *p)
{
    if (nm_likely(nm_map_lookup((uintptr_t)p) == NM_MAP_SEGMENT)) {
        struct nm_segment *s = nm_segment_of(p);
        struct nm_page *pg = nm_page_of(s, p);
        struct nm_block *b = p;
        if (nm_likely(nm_page_is_block(pg, p) && b->freed != nm_free_mark)) {
            nm_heap_free(s, pg, b);
            return;
        }
    }
    if (p) nm_free_slow(p, "free");
}

#endif
