/*
 * chunk.c — address space reserved in large chunks (one mapping each) and
 * carved into 4 MiB units for segments and spans.  See chunk.h for the
 * rules; docs/design.md ("Address space") for the sizes.
 *
 * Calls the os layer only: never malloc, never stdio, no syscall while a
 * chunk's busy flag is held.
 */
#define _GNU_SOURCE
#include "chunk.h"

#include <errno.h>
#include <string.h>

/* Descriptors for this many chunks at once (of 64 MiB to 1 GiB each: at
 * least 1 TiB of address space).  64 bytes each, 1 MiB of bss of which only
 * the pages of descriptors in use are ever touched.  When they run out,
 * callers map their ranges by themselves. */
#define NM_CHUNK_POOL 16384

static struct nm_chunk pool[NM_CHUNK_POOL];
static _Atomic uint32_t pool_used;

/* ---- the bitmap ------------------------------------------------------------ */

static inline uint32_t chunk_units(const struct nm_chunk *c)
{
    return atomic_load_explicit(&c->units, memory_order_relaxed);
}

static inline uintptr_t chunk_base(const struct nm_chunk *c)
{
    return atomic_load_explicit(&c->base, memory_order_relaxed);
}

/* The bits of word `w` that fall in units [first, first + count). */
static inline uint64_t word_mask(size_t w, size_t first, size_t count)
{
    size_t lo = w * 64, hi = lo + 64, end = first + count;
    if (first > lo) lo = first;
    if (end < hi) hi = end;
    if (lo >= hi) return 0;
    size_t bits = hi - lo;
    return (bits == 64 ? ~0ull : ((1ull << bits) - 1)) << (lo % 64);
}

static void bits_set(struct nm_chunk *c, size_t first, size_t count)
{
    for (size_t w = first / 64; w < NM_CHUNK_WORDS && w * 64 < first + count; w++)
        atomic_fetch_or_explicit(&c->free[w], word_mask(w, first, count), memory_order_release);
}

/* Only a holder of `busy` clears bits, and only bits it saw set: they stay
 * set until it clears them (returners only set bits they own). */
static void bits_clear(struct nm_chunk *c, size_t first, size_t count)
{
    for (size_t w = first / 64; w < NM_CHUNK_WORDS && w * 64 < first + count; w++)
        atomic_fetch_and_explicit(&c->free[w], ~word_mask(w, first, count), memory_order_relaxed);
}

static void bits_load(struct nm_chunk *c, uint64_t words[NM_CHUNK_WORDS])
{
    for (size_t w = 0; w < NM_CHUNK_WORDS; w++)
        words[w] = atomic_load_explicit(&c->free[w], memory_order_acquire);
}

static bool all_free(struct nm_chunk *c)
{
    uint32_t units = chunk_units(c);
    if (units == 0) return false;
    uint64_t words[NM_CHUNK_WORDS];
    bits_load(c, words);
    for (size_t w = 0; w < NM_CHUNK_WORDS; w++)
        if (words[w] != word_mask(w, 0, units)) return false;
    return true;
}

/* The first unit of a run of `count` free units in `words`, or -1. */
static long find_run(const uint64_t words[NM_CHUNK_WORDS], uint32_t units, size_t count)
{
    size_t run = 0;
    for (size_t i = 0; i < units; i++) {
        uint64_t word = words[i / 64];
        if (i % 64 == 0 && word == 0) { run = 0; i += 63; continue; }
        run = (word >> (i % 64)) & 1 ? run + 1 : 0;
        if (run == count) return (long)(i + 1 - count);
    }
    return -1;
}

static bool enough_free(struct nm_chunk *c, size_t count)
{
    uint64_t words[NM_CHUNK_WORDS];
    bits_load(c, words);
    size_t have = 0;
    for (size_t w = 0; w < NM_CHUNK_WORDS; w++) have += nm_popcount64(words[w]);
    return have >= count;
}

/* ---- the busy flag ------------------------------------------------------------ */

/* The busy flag (nm_flag_try: a holder keeps it for a bitmap scan). */
static bool chunk_try_enter(struct nm_chunk *c) { return nm_flag_try(&c->busy); }
static void chunk_leave(struct nm_chunk *c) { nm_flag_release(&c->busy); }

static bool is_active(struct nm_chunk *c)
{
    return atomic_load_explicit(&c->state, memory_order_acquire) == NM_CHUNK_ACTIVE;
}

/* ---- chunks come and go ---------------------------------------------------------- */

/* A descriptor in SETUP for `list`: an empty one of its own, else a new one
 * from the pool (pushed onto the list), else NULL. */
static struct nm_chunk *descriptor(struct nm_chunk_list *list)
{
    for (struct nm_chunk *c = atomic_load_explicit(&list->head, memory_order_acquire); c;
         c = c->next) {
        uint8_t empty = NM_CHUNK_EMPTY;
        if (atomic_load_explicit(&c->state, memory_order_relaxed) == NM_CHUNK_EMPTY &&
            atomic_compare_exchange_strong_explicit(&c->state, &empty, NM_CHUNK_SETUP,
                                                    memory_order_acquire, memory_order_relaxed))
            return c;
    }
    if (atomic_load_explicit(&pool_used, memory_order_relaxed) >= NM_CHUNK_POOL) return NULL;
    uint32_t index = atomic_fetch_add_explicit(&pool_used, 1, memory_order_relaxed);
    if (index >= NM_CHUNK_POOL) return NULL;
    struct nm_chunk *c = &pool[index];
    atomic_store_explicit(&c->state, NM_CHUNK_SETUP, memory_order_relaxed);
    c->list = list;
    struct nm_chunk *head = atomic_load_explicit(&list->head, memory_order_relaxed);
    do {
        c->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&list->head, &head, c, memory_order_release,
                                                    memory_order_relaxed));
    return c;
}

/* Map a new chunk for `list` and carve its first `count` units. */
static void *chunk_map(struct nm_chunk_list *list, size_t count, int bind_mode,
                       const nm_nodemask *nodes, struct nm_chunk **chunk)
{
    struct nm_chunk *c = descriptor(list);
    if (!c) { errno = ENOMEM; return NULL; }
    /* 64 MiB for the first chunk an arena holds, doubling with each one it
     * holds at once: a small program reserves little, a big heap few. */
    uint32_t live = atomic_load_explicit(&list->live, memory_order_relaxed);
    size_t units = (size_t)NM_CHUNK_MIN_UNITS << (live < 4 ? live : 4);
    while (units < count) units *= 2;
    size_t size = units << NM_UNIT_SHIFT;
    void *p = nm_os_reserve(size, NM_UNIT_SIZE, false);
    if (p && bind_mode >= 0 && nm_os_mbind(p, size, bind_mode, nodes, 0) != 0 &&
        bind_mode == NM_MPOL_BIND) {
        /* A strict binding that the kernel refuses is not something to
         * serve memory without. */
        nm_os_release(p, size);
        p = NULL;
    }
    if (!p) {
        atomic_store_explicit(&c->state, NM_CHUNK_EMPTY, memory_order_release);
        errno = ENOMEM;
        return NULL;
    }
    /* Blocks are carved 4 KiB at a time so that only what is used is
     * resident: no transparent huge pages unless a huge block asks. */
    nm_os_no_thp(p, size);
    nm_os_name_range(p, size, "numamalloc");
    atomic_store_explicit(&c->base, (uintptr_t)p, memory_order_relaxed);
    atomic_store_explicit(&c->units, (uint32_t)units, memory_order_relaxed);
    for (size_t w = 0; w < NM_CHUNK_WORDS; w++)
        atomic_store_explicit(&c->free[w], word_mask(w, count, units - count), memory_order_relaxed);
    atomic_fetch_add_explicit(&list->live, 1, memory_order_relaxed);
    atomic_store_explicit(&c->state, NM_CHUNK_ACTIVE, memory_order_release);
    *chunk = c;
    return p;
}

/* Unmap `c` if all its units are free and nobody is carving from it. */
static void chunk_retire(struct nm_chunk *c)
{
    if (!is_active(c) || !all_free(c)) return;
    if (atomic_exchange_explicit(&c->busy, true, memory_order_acquire)) return;
    bool retire = is_active(c) && all_free(c);
    if (retire) atomic_store_explicit(&c->state, NM_CHUNK_RETIRING, memory_order_relaxed);
    chunk_leave(c);
    if (!retire) return;
    /* Nobody holds a unit of it, and no carver will look at it again. */
    nm_os_release((void *)chunk_base(c), (size_t)chunk_units(c) << NM_UNIT_SHIFT);
    for (size_t w = 0; w < NM_CHUNK_WORDS; w++)
        atomic_store_explicit(&c->free[w], 0, memory_order_relaxed);
    atomic_store_explicit(&c->base, 0, memory_order_relaxed);
    atomic_store_explicit(&c->units, 0, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->list->live, 1, memory_order_relaxed);
    atomic_store_explicit(&c->state, NM_CHUNK_EMPTY, memory_order_release);
}

/* ---- carving and returning -------------------------------------------------------- */

void *nm_chunk_carve(struct nm_chunk_list *list, size_t count, int bind_mode,
                     const nm_nodemask *nodes, struct nm_chunk **chunk)
{
    if (count == 0 || count > NM_CHUNK_CARVE_MAX) { errno = ENOMEM; return NULL; }
    /* Under strict accounting a chunk is charged in full however little of
     * it is carved (and twice across a fork): ranges are mapped by
     * themselves there, each charged for what it is. */
    if (nm_unlikely(nm_os_strict_commit())) { errno = ENOMEM; return NULL; }
    for (struct nm_chunk *c = atomic_load_explicit(&list->head, memory_order_acquire); c;
         c = c->next) {
        if (!is_active(c) || !enough_free(c, count) || !chunk_try_enter(c)) continue;
        long first = -1;
        if (is_active(c)) {
            uint64_t words[NM_CHUNK_WORDS];
            bits_load(c, words);
            first = find_run(words, chunk_units(c), count);
            if (first >= 0) bits_clear(c, (size_t)first, count);
        }
        chunk_leave(c);
        if (first >= 0) {
            *chunk = c;
            return (void *)(chunk_base(c) + ((size_t)first << NM_UNIT_SHIFT));
        }
    }
    return chunk_map(list, count, bind_mode, nodes, chunk);
}

void nm_chunk_return(struct nm_chunk *c, void *start, size_t count)
{
    size_t first = ((uintptr_t)start - chunk_base(c)) >> NM_UNIT_SHIFT;
    /* A locked range (mlockall) refuses: its pages stay, cleared, so that
     * free units read as zero all the same (a fresh segment's header is
     * not cleared again, a span's block counts as zeroed).  Not under
     * strict accounting, where parts of the run may be reserved only. */
    if (nm_os_decommit(start, count << NM_UNIT_SHIFT) != 0 && !nm_os_strict_commit())
        memset(start, 0, count << NM_UNIT_SHIFT);
    bits_set(c, first, count);
    chunk_retire(c);
}

bool nm_chunk_extend(struct nm_chunk *c, void *start, size_t count, size_t more)
{
    size_t first = (((uintptr_t)start - chunk_base(c)) >> NM_UNIT_SHIFT) + count;
    if (more == 0 || first + more > chunk_units(c) || !chunk_try_enter(c)) return false;
    uint64_t words[NM_CHUNK_WORDS];
    bits_load(c, words);
    bool free = true;
    for (size_t w = 0; w < NM_CHUNK_WORDS; w++) {
        uint64_t want = word_mask(w, first, more);
        if ((words[w] & want) != want) free = false;
    }
    if (free) bits_clear(c, first, more);
    chunk_leave(c);
    return free;
}

void nm_chunk_sweep(struct nm_chunk_list *list)
{
    for (struct nm_chunk *c = atomic_load_explicit(&list->head, memory_order_acquire); c;
         c = c->next)
        chunk_retire(c);
}

void nm_chunk_after_fork(void)
{
    uint32_t used = atomic_load_explicit(&pool_used, memory_order_relaxed);
    if (used > NM_CHUNK_POOL) used = NM_CHUNK_POOL;
    for (uint32_t i = 0; i < used; i++) atomic_store(&pool[i].busy, false);
}
