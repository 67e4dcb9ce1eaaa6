/*
 * options.h — run-time options, read once at start-up (the environment and
 * the program's nm_conf string) without allocating.  The lowest layer: calls nothing but libc (and the os
 * layer's output helper to warn about a value it cannot parse).
 */
#ifndef NM_OPTIONS_H
#define NM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os.h"

enum nm_hugepages { NM_HUGEPAGES_OFF, NM_HUGEPAGES_THP, NM_HUGEPAGES_HUGETLB };
enum nm_on_error { NM_ON_ERROR_ABORT, NM_ON_ERROR_WARN };
enum nm_stats_at_exit { NM_STATS_OFF, NM_STATS_TEXT, NM_STATS_JSON };

struct nm_options {
    bool verbose;                   /* NUMAMALLOC_VERBOSE: say what was chosen at start-up */
    enum nm_stats_at_exit stats_at_exit;  /* NUMAMALLOC_STATS: print statistics at exit,
                                             as a table or as JSON */
    const char *stats_file;         /* NUMAMALLOC_STATS_FILE: where (%p: pid, %r: rank);
                                       NULL: stderr (always in a set-user-ID
                                       program: nm_options_init) */
    uint64_t stats_interval_ms;     /* NUMAMALLOC_STATS_INTERVAL: also print them this often
                                       while the process runs; 0: never */
    uint64_t purge_delay_ms;        /* NUMAMALLOC_PURGE_DELAY_MS: free memory kept this long */
    uint64_t cache_bytes;           /* NUMAMALLOC_CACHE_MB: at most this much free memory in
                                       a node's caches; past it, it goes back at once */
    bool purge_thread;              /* NUMAMALLOC_PURGE_THREAD: purge in a background thread */
    enum nm_hugepages hugepages;    /* NUMAMALLOC_HUGEPAGES: off | thp | hugetlb */
    enum nm_on_error on_error;      /* NUMAMALLOC_ON_ERROR: abort | warn */
    bool secure;                    /* NUMAMALLOC_SECURE: guard pages, canaries, quarantine */
    const char *sysfs_root;         /* NUMAMALLOC_SYSFS_ROOT: topology source (tests) */
    const char *policy;             /* NUMAMALLOC_POLICY: policy text for all allocations */
    const char *policy_from;        /* where `policy` was set (its variable, NUMAMALLOC_CONF
                                       or nm_conf), for the warning when it is checked */
    uint64_t interleave_above;      /* NUMAMALLOC_INTERLEAVE_ABOVE: bytes; 0 = off */
    bool prof;                      /* NUMAMALLOC_PROF: the heap profiler (prof.h) */
    uint64_t prof_sample;           /* NUMAMALLOC_PROF_SAMPLE: mean bytes between samples
                                       (0 or 1: every allocation) */
    const char *prof_file;          /* NUMAMALLOC_PROF_FILE: where profiles go (%p: pid,
                                       %r: rank, %n: the dump's number) */
    int prof_signal;                /* NUMAMALLOC_PROF_SIGNAL: dump on this signal; 0: none */
};

extern struct nm_options nm_opt;

/* An error of the program the library runs under (a bad free, heap
 * corruption): its one line, built in `l` without "numamalloc: " and the
 * newline, goes to stderr; then abort, or return with
 * NUMAMALLOC_ON_ERROR=warn.  The one place that rule is applied. */
void nm_report_error(const nm_line *l);

/* Read the environment (once; later calls do nothing). */
void nm_options_init(void);

/* Where nm_options_parse finds the variables: `lookup` gives the value of
 * one (NULL: not set), `next` the entries "NAME=VALUE" one by one from
 * *cursor (0 at first; NULL after the last), both in `source`: the
 * environment for nm_options_init, a buffer for tests and fuzzing. */
struct nm_option_source {
    const char *(*lookup)(const char *name, const void *source);
    const char *(*next)(const void *source, size_t *cursor);
    const void *source;
};

/* Set nm_opt from, in this order, each overriding the one before: the
 * configuration string `builtin_conf` (NULL: none), the string in
 * NUMAMALLOC_CONF, and the single variables; then warn about the
 * NUMAMALLOC_ variables that are no option.  Strings are "key:value,..."
 * (options.c, "the configuration string").  A value that does not parse
 * leaves its option as it was; each problem is one line on `warn_fd`.
 * What nm_options_init does with the environment, the program's nm_conf
 * and fd 2. */
void nm_options_parse(const struct nm_option_source *src, const char *builtin_conf, int warn_fd);

/* File name `pattern` with %p (the pid), %r (the MPI or Slurm rank,
 * "none" without one), %n (`number`; with number < 0 left as it is) put in
 * and %% as %, into `out` of `cap` bytes; false when it does not fit. */
bool nm_file_name(const char *pattern, long number, char *out, size_t cap);

/* The MPI or Slurm rank of this process, from the variables the launchers
 * set (Open MPI's OMPI_COMM_WORLD_RANK, PMI_RANK, PMIX_RANK, Slurm's
 * SLURM_PROCID, in that order); -1 when none is set. */
long nm_process_rank(void);

/* The value of environment variable `name`, or NULL.  Works before libc has
 * set up `environ` (reads /proc/self/environ then).  Does not allocate. */
const char *nm_getenv(const char *name);

/* The value of `name` in an environment block of `len` bytes: NAME=VALUE
 * entries, each ended by '\0', as /proc/self/environ holds them; the byte
 * at block[len] must be '\0' too (so the last value ends).  The first
 * entry for `name` wins, as with getenv.  NULL if none. */
const char *nm_env_block_find(const char *block, size_t len, const char *name);

#endif
