/*
 * large.h — blocks above 256 KiB: one span each, bound to a node.
 *
 * A span is a 4 MiB-aligned range holding a one-page header and one block.
 * Blocks of 2 MiB and more start 2 MiB into the span, so they are 2 MiB
 * aligned and transparent huge pages can back them; smaller ones start
 * 4 KiB in.  A span reserves address space up to the next 4 MiB boundary,
 * so realloc grows in place within it, beyond it into the free units that
 * follow it in its chunk, and else with mremap (the pages move, nothing is
 * copied).  Freed spans up to an eighth of the node cache limit wait in a
 * per-node cache for reuse by a block that fits them, as far as large
 * blocks take spans from it (the demand budget, large.c), then go back to
 * the OS after the purge delay; bigger ones go back at once.  Any thread may
 * allocate or free a large block: spans have no owner.
 *
 * May call the segment, topology and os layers and the options.
 */
#ifndef NM_LARGE_H
#define NM_LARGE_H

#include "segment.h"

#define NM_HUGE_MIN (2 * NM_MiB)            /* blocks from here on are 2 MiB aligned */

/* A block of at least `size` bytes aligned to `alignment` (0: default)
 * from arena `a`, zeroed if `zero`.  NULL + ENOMEM on failure.  Spans of a
 * node's local arena are cached for reuse; others go back when freed. */
void *nm_large_alloc(size_t size, size_t alignment, struct nm_arena *a, bool zero);

/* Free the block of span `s`.  Returns false if it was already free (the
 * caller reports the double free). */
bool nm_large_free(struct nm_segment *s);

/* Resize the block of span `s` in place or by moving its pages with
 * mremap.  Returns the (possibly moved) block, or NULL when that is not
 * possible (the caller then copies). */
void *nm_large_resize(struct nm_segment *s, size_t size);

static inline void *nm_large_block(const struct nm_segment *s)
{
    return (char *)s + s->block_offset;
}

/* Give back cached spans of `node` that waited the purge delay, or while
 * the node caches more than its limit (force: all, now).  Returns whether
 * spans wait that are not due yet. */
bool nm_large_cache_purge(int node, uint64_t now_ms, bool force);

#endif
