/*
 * numamalloc.h — public API of numamalloc, a NUMA-aware memory allocator.
 *
 * Two ways to use the library:
 *
 *  1. As a drop-in malloc: `LD_PRELOAD=libnumamalloc.so ./app`, or link with
 *     `-lnumamalloc`.  malloc, free, calloc, realloc, the aligned variants,
 *     malloc_usable_size and C++ new/delete are all served by numamalloc, and
 *     every thread's memory comes from the NUMA node it runs on.
 *
 *  2. Through the functions below (prefix `nm_`).  They work whether or not
 *     numamalloc also replaced malloc; a block from any nm_ allocation
 *     function may be freed with nm_free() or, when numamalloc is the
 *     process's malloc, with free().
 *
 * All functions are thread-safe.  None of them takes a lock that a fork() or
 * a signal could leave held.  Errors are reported through errno, as POSIX
 * specifies for the corresponding libc function.
 */
#ifndef NUMAMALLOC_H
#define NUMAMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NUMAMALLOC_VERSION_MAJOR 0
#define NUMAMALLOC_VERSION_MINOR 1
#define NUMAMALLOC_VERSION_PATCH 0

#if defined(__GNUC__)
#define NM_ATTR_MALLOC __attribute__((malloc))
#define NM_ATTR_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#else
#define NM_ATTR_MALLOC
#define NM_ATTR_ALLOC_SIZE(...)
#endif

/* ------------------------------------------------------------------------
 * Core allocation (the same operations as malloc & co.)
 * ------------------------------------------------------------------------ */

/* Allocate `size` bytes on the calling thread's NUMA node.  The block is
 * aligned to at least 16 bytes, and to the largest power of two dividing its
 * usable size up to 4096 (so a 4096-byte request is 4096-aligned); blocks of
 * 2 MiB and more are 2 MiB aligned (and backed by transparent huge pages
 * where the system allows).  Usable size is at most 12.5% (or 16 bytes)
 * above the request.  nm_malloc(0) returns a unique pointer.  Returns NULL
 * and sets errno to ENOMEM when the request cannot be met (including sizes
 * near SIZE_MAX). */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(1) void *nm_malloc(size_t size);

/* Allocate an array of `count` elements of `size` bytes, zeroed.  Returns
 * NULL with errno ENOMEM when count * size overflows or memory is short. */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(1, 2) void *nm_calloc(size_t count, size_t size);

/* Resize a block, keeping its contents up to the smaller of the two sizes.
 * nm_realloc(NULL, n) is nm_malloc(n); nm_realloc(p, 0) frees p and returns
 * NULL.  Large blocks grow in place or are moved with mremap (no copy).  On
 * failure returns NULL with errno ENOMEM and leaves `ptr` untouched. */
NM_ATTR_ALLOC_SIZE(2) void *nm_realloc(void *ptr, size_t size);

/* Free a block from any nm_ allocation function (or from malloc when
 * numamalloc is the process's malloc), from any thread.  nm_free(NULL) does
 * nothing.  Freeing a pointer numamalloc does not own, or a block already
 * free, is reported on stderr with one line naming the pointer, then aborts
 * (or only reports, with NUMAMALLOC_ON_ERROR=warn). */
void nm_free(void *ptr);

/* Allocate `size` bytes aligned to `alignment`, which must be a power of two
 * (any power of two up to 1 GiB and beyond is accepted; below 16 it is
 * raised to 16).  Returns NULL with errno EINVAL for a bad alignment, ENOMEM
 * when memory is short. */
NM_ATTR_MALLOC NM_ATTR_ALLOC_SIZE(2) void *nm_aligned_alloc(size_t alignment, size_t size);

/* The number of bytes usable in the block at `ptr` (at least the size asked
 * for).  0 for NULL. */
size_t nm_usable_size(const void *ptr);

/* Look at the node the calling thread runs on now and, if it moved since
 * its heap was set up, serve its next allocations from the new node.
 * Without this call the move is noticed on its own within a bounded number
 * of allocations (see docs/design.md).  Returns the node now used. */
int nm_thread_rebind(void);

/* Return cached free memory to the operating system now, on every node,
 * without waiting for the purge delay.  (malloc_trim() calls this.) */
void nm_trim(void);

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */

#define NM_STATS_MAX_NODES 64   /* nodes reported in nm_stats.node[] */
#define NM_STATS_MAX_CLASSES 96 /* size classes reported in nm_stats.size_class[] */

struct nm_node_stats {
    int node;                   /* kernel node id */
    uint64_t mapped;            /* bytes of address space reserved on this node */
    uint64_t committed;         /* bytes of that which may hold memory (not purged) */
    uint64_t in_use;            /* bytes in live blocks (small: by page, large: exact) */
    uint64_t segments;          /* live 4 MiB segments for small and medium blocks */
    uint64_t large_blocks;      /* live large (> 256 KiB) blocks */
    uint64_t cached;            /* bytes kept for reuse in the node cache */
};

struct nm_class_stats {
    uint64_t block_size;        /* bytes per block in this class */
    uint64_t allocs;            /* blocks handed out so far (all threads) */
    uint64_t pages;             /* pages now serving the class (64 KiB up to
                                   8 KiB blocks, 1 MiB above) */
};

struct nm_stats {
    int node_count;                                  /* entries used in node[] */
    struct nm_node_stats node[NM_STATS_MAX_NODES];
    int class_count;                                 /* entries used in size_class[] */
    struct nm_class_stats size_class[NM_STATS_MAX_CLASSES];
    uint64_t large_allocs;      /* large blocks handed out so far */
    uint64_t large_frees;       /* large blocks given back so far */
    uint64_t remote_frees;      /* blocks freed by a thread other than their owner,
                                   counted when the owner collects them */
    uint64_t purges;            /* times memory was returned to the OS */
    uint64_t purged_bytes;      /* bytes returned to the OS */
    uint64_t threads;           /* thread heaps created so far */
    uint64_t abandoned;         /* segments handed over by exiting or moving threads */
    uint64_t reclaimed;         /* abandoned segments taken over by another thread */
};

/* Fill `out` with a snapshot of the allocator's counters.  Counters of other
 * threads are read without stopping them, so the snapshot is approximate
 * while they run.  Does not allocate. */
void nm_stats_get(struct nm_stats *out);

/* Write the statistics in a readable table to file descriptor `fd` (for
 * example 2 for stderr).  Does not allocate and does not use stdio, so it is
 * safe to call from anywhere, including at exit. */
void nm_stats_print(int fd);

#ifdef __cplusplus
}
#endif

#endif /* NUMAMALLOC_H */
