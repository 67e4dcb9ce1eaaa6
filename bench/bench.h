/* Shared helpers for the benchmark programs in bench/: command-line
 * arguments (key=value), clocks, a small random generator, the size mixes,
 * RSS readers, block tagging and the overlap check, and the trailing fields
 * of the one RESULT line every program prints for bench/run.sh.
 *
 * Everything here is static: each workload is one C file that includes this
 * header and is built into its own binary.  The programs call the libc
 * allocation functions only; bench/run.sh chooses the allocator with
 * LD_PRELOAD, so every allocator runs the same binary. */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- command line: key=value pairs -------------------------------------- */

struct bench_args {
    int count;
    char *keys[16];
    char *values[16];
    int used[16];
};

static inline void bench_usage_exit(const char *prog, const char *msg, const char *arg)
{
    fprintf(stderr, "%s: %s%s%s\n", prog, msg, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static inline void bench_args_parse(struct bench_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i] || a->count == 16)
            bench_usage_exit(argv[0], "arguments are key=value", argv[i]);
        *eq = '\0';
        a->keys[a->count] = argv[i];
        a->values[a->count] = eq + 1;
        a->count++;
    }
}

static inline const char *bench_arg_str(struct bench_args *a, const char *key, const char *fallback)
{
    for (int i = 0; i < a->count; i++) {
        if (strcmp(a->keys[i], key) == 0) {
            a->used[i] = 1;
            return a->values[i];
        }
    }
    return fallback;
}

static inline long bench_arg_long(struct bench_args *a, const char *key, long fallback, long lo, long hi)
{
    const char *s = bench_arg_str(a, key, NULL);
    if (!s)
        return fallback;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        bench_usage_exit("bench", "value out of range for", key);
    return v;
}

/* Call after reading every argument: an unknown key is a mistake. */
static inline void bench_args_done(struct bench_args *a, const char *prog)
{
    for (int i = 0; i < a->count; i++)
        if (!a->used[i])
            bench_usage_exit(prog, "unknown argument", a->keys[i]);
}

/* The benchmark size: "tiny" (harness test, milliseconds), "quick"
 * (the default suite), "full" (longer runs, bigger footprints). */
enum bench_mode { MODE_TINY, MODE_QUICK, MODE_FULL };

static inline enum bench_mode bench_arg_mode(struct bench_args *a)
{
    static const char *const names[] = { "tiny", "quick", "full" };
    const char *s = bench_arg_str(a, "mode", "quick");
    for (int m = 0; m < 3; m++)
        if (strcmp(s, names[m]) == 0)
            return (enum bench_mode)m;
    bench_usage_exit("bench", "mode must be tiny, quick or full, not", s);
    return MODE_QUICK;
}

/* ---- clocks ------------------------------------------------------------- */

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void bench_sleep(double seconds)
{
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- random numbers (splitmix64: small, fast, seedable) ------------------ */

static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A size in [lo, hi] where each power-of-two band [2^k, 2^(k+1)) is equally
 * likely and sizes are uniform inside a band: small sizes are common, as in
 * real programs, and every size class up to hi is exercised. */
static inline size_t bench_size_log_uniform(uint64_t *state, size_t lo, size_t hi)
{
    int lo_bit = 63 - __builtin_clzll(lo), hi_bit = 63 - __builtin_clzll(hi);
    int band = lo_bit + (int)(bench_rand(state) % (uint64_t)(hi_bit - lo_bit + 1));
    size_t band_lo = (size_t)1 << band, band_hi = band_lo * 2 - 1;
    if (band_lo < lo)
        band_lo = lo;
    if (band_hi > hi)
        band_hi = hi;
    return band_lo + (size_t)(bench_rand(state) % (band_hi - band_lo + 1));
}

/* A mix of sizes: each band takes `pct` percent of the draws (the last one
 * the rest) and draws log-uniformly in [lo, hi].  One draw of 0..99 picks
 * the band, then bench_size_log_uniform the size. */
struct bench_size_band {
    unsigned pct;
    size_t lo, hi;
};

static inline size_t bench_size_mix(uint64_t *state, const struct bench_size_band *mix, int bands)
{
    unsigned pick = (unsigned)(bench_rand(state) % 100), below = 0;
    int i = 0;
    for (; i < bands - 1; i++) {
        below += mix[i].pct;
        if (pick < below) break;
    }
    return bench_size_log_uniform(state, mix[i].lo, mix[i].hi);
}

/* Start a thread of the benchmark `bench`, or exit with status 1 and a
 * line naming it: a run that cannot start its threads measures nothing. */
static inline void bench_thread_start(const char *bench, pthread_t *thread, void *(*fn)(void *),
                                      void *arg)
{
    if (pthread_create(thread, NULL, fn, arg) != 0) {
        fprintf(stderr, "%s: pthread_create failed\n", bench);
        exit(1);
    }
}

/* ---- memory the harness itself uses: straight from mmap, so that the
 *      allocator under test is measured alone ------------------------------- */

static inline void *bench_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("bench: mmap");
        exit(1);
    }
    return p;
}

static inline void bench_unmap(void *p, size_t bytes)
{
    munmap(p, bytes);
}

/* ---- self-check failures ------------------------------------------------ */

/* A failed self-check in worker `index` (a thread, lineage or array: `who`)
 * of benchmark `bench`: the first one of that worker is reported on
 * stderr, the worker's check and the run fail. */
static inline void bench_fail(const char *bench, const char *who, int index, int *check_ok,
                              _Atomic int *any_failure, const char *what)
{
    if (*check_ok) fprintf(stderr, "%s: %s %d: %s\n", bench, who, index, what);
    *check_ok = 0;
    atomic_store(any_failure, 1);
}

/* ---- block tags: a word at each end of a block that names the block ------ */

#define BENCH_TAG_SALT 0x5bd1e9955bd1e995ull

static inline uint64_t bench_tag_of(const void *p, size_t size)
{
    return ((uint64_t)(uintptr_t)p ^ BENCH_TAG_SALT) + size;
}

/* Writes the tag at the start and at the end of a block (size >= 16). */
static inline void bench_tag_write(void *p, size_t size)
{
    uint64_t tag = bench_tag_of(p, size), end = ~tag;
    memcpy(p, &tag, 8);
    memcpy((char *)p + size - 8, &end, 8);
}

/* Returns the tag if both ends are intact, 0 if either was overwritten. */
static inline uint64_t bench_tag_read(const void *p, size_t size)
{
    uint64_t tag, end;
    memcpy(&tag, p, 8);
    memcpy(&end, (const char *)p + size - 8, 8);
    if (tag != bench_tag_of(p, size) || end != ~tag)
        return 0;
    return tag;
}

/* Fills a whole block with words derived from its id, and checks them. */
static inline void bench_fill(void *p, size_t size, uint64_t id)
{
    unsigned char *b = p;
    uint64_t word = id * 0x9e3779b97f4a7c15ull + 1;
    size_t i = 0;
    for (; i + 8 <= size; i += 8)
        memcpy(b + i, &word, 8);
    for (; i < size; i++)
        b[i] = (unsigned char)(word >> (8 * (i & 7)));
}

static inline int bench_fill_ok(const void *p, size_t size, uint64_t id)
{
    const unsigned char *b = p;
    uint64_t word = id * 0x9e3779b97f4a7c15ull + 1, got;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        memcpy(&got, b + i, 8);
        if (got != word)
            return 0;
    }
    for (; i < size; i++)
        if (b[i] != (unsigned char)(word >> (8 * (i & 7))))
            return 0;
    return 1;
}

/* ---- self-describing blocks: the size in the first word, a tag naming the
 *      block in the last, so that whoever frees a block (another thread,
 *      a later one) can check it without a side table ------------------------ */

/* Writes both words (size >= 16). */
static inline void bench_block_write(void *p, size_t size)
{
    uint64_t word = size, end = bench_tag_of(p, size);
    memcpy(p, &word, 8);
    memcpy((char *)p + size - 8, &end, 8);
}

/* The block's size if both words are intact (and the size is in
 * [16, max_size]), else 0. */
static inline size_t bench_block_check(const void *p, size_t max_size)
{
    uint64_t size, end;
    memcpy(&size, p, 8);
    if (size < 16 || size > max_size)
        return 0;
    memcpy(&end, (const char *)p + size - 8, 8);
    return end == bench_tag_of(p, (size_t)size) ? (size_t)size : 0;
}

/* ---- the overlap check: no two live blocks may share a byte ------------- */

struct bench_range {
    uintptr_t start;
    size_t size;
};

static inline void bench_sift_down(struct bench_range *r, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && r[child + 1].start > r[child].start)
            child++;
        if (r[root].start >= r[child].start)
            return;
        struct bench_range t = r[root];
        r[root] = r[child];
        r[child] = t;
        root = child;
    }
}

/* Heap sort (no allocation, unlike qsort), then compare neighbours.
 * Returns 1 when the ranges are pairwise disjoint and none is NULL. */
static inline int bench_ranges_disjoint(struct bench_range *r, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        bench_sift_down(r, i, n);
    for (size_t end = n; end-- > 1;) {
        struct bench_range t = r[0];
        r[0] = r[end];
        r[end] = t;
        bench_sift_down(r, 0, end);
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].start == 0)
            return 0;
        if (i + 1 < n && r[i].start + r[i].size > r[i + 1].start)
            return 0;
    }
    return 1;
}

/* ---- memory figures from /proc (read with open/read: no stdio buffers) -- */

static inline long bench_read_proc(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* Resident set size now, in KiB (second field of /proc/self/statm). */
static inline long bench_rss_kb(void)
{
    char buf[256];
    long pages_total, pages_resident;
    if (bench_read_proc("/proc/self/statm", buf, sizeof buf) < 0 ||
        sscanf(buf, "%ld %ld", &pages_total, &pages_resident) != 2)
        return -1;
    return pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Peak resident set size so far, in KiB (VmHWM in /proc/self/status). */
static inline long bench_peak_rss_kb(void)
{
    char buf[4096];
    if (bench_read_proc("/proc/self/status", buf, sizeof buf) < 0)
        return -1;
    const char *line = strstr(buf, "VmHWM:");
    return line ? strtol(line + 6, NULL, 10) : -1;
}

/* ---- which library's malloc this process runs ---------------------------- */

/* The file name of the object that defines the malloc this process calls
 * (libc.so.6 without a preload): run.sh checks that the preload took. */
static inline const char *bench_malloc_from(void)
{
    Dl_info info;
    void *(*volatile fn)(size_t) = malloc;
    if (!dladdr((void *)fn, &info) || !info.dli_fname)
        return "unknown";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

/* The fields that end every RESULT line, then the newline, with the peak
 * RSS the workload compares (run.sh reads peak_rss_kb): the process's peak
 * now (bench_result_end), or one it read at a fixed amount of work.  The
 * caller has printed "RESULT bench=... <metrics>" before. */
static inline void bench_result_end_rss(int check_ok, uint64_t checksum, long peak_rss_kb)
{
    printf(" peak_rss_kb=%ld malloc_from=%s checksum=%016llx check=%s\n",
           peak_rss_kb, bench_malloc_from(), (unsigned long long)checksum,
           check_ok ? "ok" : "fail");
    fflush(stdout);
}

static inline void bench_result_end(int check_ok, uint64_t checksum)
{
    bench_result_end_rss(check_ok, checksum, bench_peak_rss_kb());
}

/* ---- a per-thread counter on its own cache line -------------------------- */

struct bench_counter {
    _Alignas(64) _Atomic uint64_t value;
};

/* ---- the measured interval of a timed workload ----------------------------
 * Workers add their operations to their own counter and stop when *stop is
 * set.  The main thread lets them warm up, then measures for run_s,
 * stretched (up to 30 s) until every counter has moved, so each worker
 * took part; it then sets *stop.  Returns the seconds measured and sets
 * *ops to the operations done in them. */
static inline double bench_timed_interval(struct bench_counter *counters, int n, double warm_s,
                                          double run_s, _Atomic int *stop,
                                          _Atomic int *failure, uint64_t *ops)
{
    uint64_t *seen = bench_map((size_t)n * sizeof *seen);
    uint64_t start = 0, end = 0;
    bench_sleep(warm_s);
    for (int i = 0; i < n; i++) {
        seen[i] = atomic_load_explicit(&counters[i].value, memory_order_relaxed);
        start += seen[i];
    }
    double t_start = bench_now(), t_end;
    bench_sleep(run_s);
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++)
            if (atomic_load_explicit(&counters[i].value, memory_order_relaxed) == seen[i])
                all = 0;
        if (all || atomic_load(failure) || bench_now() - t_start > 30.0)
            break;
        bench_sleep(0.001);
    }
    for (int i = 0; i < n; i++)
        end += atomic_load_explicit(&counters[i].value, memory_order_relaxed);
    t_end = bench_now();
    atomic_store(stop, 1);
    bench_unmap(seen, (size_t)n * sizeof *seen);
    *ops = end - start;
    return t_end - t_start;
}

static inline void bench_count(struct bench_counter *c, uint64_t n)
{
    atomic_store_explicit(&c->value, atomic_load_explicit(&c->value, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* ---- batches of blocks handed between threads ----------------------------
 * A batch (harness memory, from mmap) carries up to BENCH_BATCH blocks; a
 * queue is a mutex-protected FIFO of batches.  The queue costs one lock per
 * batch, so the time goes to the allocator. */
#define BENCH_BATCH 64

struct bench_batch {
    struct bench_batch *next;
    int count;
    void *blocks[BENCH_BATCH];
};

struct bench_queue {
    pthread_mutex_t lock;
    struct bench_batch *head, *tail;
    _Atomic long length;
};

static inline void bench_queue_init(struct bench_queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
    atomic_store(&q->length, 0);
}

static inline void bench_queue_push(struct bench_queue *q, struct bench_batch *b)
{
    b->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    atomic_fetch_add(&q->length, 1);
    pthread_mutex_unlock(&q->lock);
}

/* The oldest batch, or NULL when the queue is empty. */
static inline struct bench_batch *bench_queue_pop(struct bench_queue *q)
{
    if (atomic_load_explicit(&q->length, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&q->lock);
    struct bench_batch *b = q->head;
    if (b) {
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        atomic_fetch_sub(&q->length, 1);
    }
    pthread_mutex_unlock(&q->lock);
    return b;
}

/* A queue holding n empty batches: the pool that batches come from. */
static inline void bench_batch_pool(struct bench_queue *pool, int n)
{
    struct bench_batch *b = bench_map((size_t)n * sizeof *b);
    bench_queue_init(pool);
    for (int i = 0; i < n; i++)
        bench_queue_push(pool, &b[i]);
}

#endif
