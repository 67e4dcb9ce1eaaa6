/*
 * options.h — run-time options, read once from the environment at start-up
 * without allocating.  The lowest layer: calls nothing but libc (and the os
 * layer's output helper to warn about a value it cannot parse).
 */
#ifndef NM_OPTIONS_H
#define NM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum nm_hugepages { NM_HUGEPAGES_OFF, NM_HUGEPAGES_THP, NM_HUGEPAGES_HUGETLB };
enum nm_on_error { NM_ON_ERROR_ABORT, NM_ON_ERROR_WARN };

struct nm_options {
    bool verbose;                   /* NUMAMALLOC_VERBOSE: say what was chosen at start-up */
    bool stats_at_exit;             /* NUMAMALLOC_STATS: print statistics at exit */
    uint64_t purge_delay_ms;        /* NUMAMALLOC_PURGE_DELAY_MS: free memory kept this long */
    uint64_t cache_bytes;           /* NUMAMALLOC_CACHE_MB: at most this much free memory in
                                       a node's caches; past it, it goes back at once */
    bool purge_thread;              /* NUMAMALLOC_PURGE_THREAD: purge in a background thread */
    enum nm_hugepages hugepages;    /* NUMAMALLOC_HUGEPAGES: off | thp | hugetlb */
    enum nm_on_error on_error;      /* NUMAMALLOC_ON_ERROR: abort | warn */
    bool secure;                    /* NUMAMALLOC_SECURE: guard pages, canaries, quarantine */
    const char *sysfs_root;         /* NUMAMALLOC_SYSFS_ROOT: topology source (tests) */
    const char *policy;             /* NUMAMALLOC_POLICY: policy text for all allocations */
    uint64_t interleave_above;      /* NUMAMALLOC_INTERLEAVE_ABOVE: bytes; 0 = off */
};

extern struct nm_options nm_opt;

/* Read the environment (once; later calls do nothing). */
void nm_options_init(void);

/* The value of environment variable `name`, or NULL.  Works before libc has
 * set up `environ` (reads /proc/self/environ then).  Does not allocate. */
const char *nm_getenv(const char *name);

#endif
