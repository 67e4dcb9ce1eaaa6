/*
 * prof.c — the heap profiler: sampling, the table of call-stack sites, and
 * the profile written at exit, on a signal and by nm_prof_dump (prof.h).
 *
 * May call the large, segment, topology and os layers and the options.
 */
#define _GNU_SOURCE
#include "prof.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "heap.h"
#include "large.h"
#include "numamalloc.h"
#include "options.h"

#define PROF_DEPTH 32           /* frames kept of a stack, innermost first */
#define PROF_SITES 16384        /* distinct stacks kept; later ones count in PROF_OTHER */
#define PROF_SLOTS (2 * PROF_SITES)
#define PROF_OTHER 1            /* the site of the stacks that found no room */

/* One call stack that allocated a sampled block, and what its samples
 * did.  Counts are of samples (blocks and the bytes asked for), not
 * estimates: the reader scales them (prof.h).
 *   live: the spans of its sampled blocks not freed yet, linked through
 *   their headers' prof.next/prev (each with prof.site == this index);
 *   alloc_blocks - freed_blocks == the length of that list, plus the
 *   blocks being resized (nm_prof_detach). */
struct prof_site {
    uint64_t hash;
    uint32_t depth;
    uintptr_t frame[PROF_DEPTH];
    uint64_t alloc_blocks, alloc_bytes;
    uint64_t freed_blocks, freed_bytes;
    uint64_t cross_blocks, cross_bytes;   /* freed by a thread of another node */
    struct nm_segment *live;
};

/* The profiler's state: set up by nm_prof_init; the table and every
 * sample's mark are changed under `lock` only.  `lock` is one of the
 * flags that are waited for (os.h: nm_flag_wait), not kept for a few
 * instructions only: held for a few list operations, or for a whole dump
 * with its file writes, while samples of other threads wait.  A signal
 * handler never waits for it (dump_on_signal leaves its profile to the
 * holder: dump_pending), and a fork waits a few milliseconds at most
 * (nm_prof_before_fork). */
static struct {
    _Atomic bool lock;
    _Atomic bool dump_pending;          /* a signal came while the lock was held */
    struct prof_site *sites;            /* [0] unused, [PROF_OTHER], then the sites */
    uint32_t *slots;                    /* open addressing by hash: site index, 0 = empty */
    uint32_t site_count;                /* indices in use, PROF_OTHER included */
    uint64_t dropped;                   /* samples whose stack went to PROF_OTHER */
    uintptr_t own_lo, own_hi;           /* this library's code, left out of stacks */
    uint64_t mean;                      /* NUMAMALLOC_PROF_SAMPLE (at most PROF_MEAN_MAX);
                                           <= 1: every allocation */
    uint64_t seed;
    _Atomic long dumps;                 /* profiles begun (%n) */
    bool fork_locked;                   /* the forking thread holds the lock */
    /* A fork child whose parent was changing the tables when it forked
     * (the lock could not be had: a fork from a signal handler that
     * interrupted its holder): nothing is sampled or written any more,
     * and frees only clear their marks. */
    bool broken;
} prof;

#define PROF_MEAN_MAX ((uint64_t)1 << 40)   /* 1 TiB between samples: none, in practice */
#define PROF_FORK_WAIT_MS 5                 /* how long a fork waits for the lock */

/* libgcc's unwinder: linked into the shared library (the Makefile links it
 * with -static-libgcc -u _Unwind_Backtrace); weak, so that a program
 * linked with libnumamalloc.a gets no library it did not ask for (its
 * stacks are empty unless it has the unwinder: C++ programs do, C
 * programs link -lgcc_s). */
extern _Unwind_Reason_Code _Unwind_Backtrace(_Unwind_Trace_Fn trace, void *arg) __attribute__((weak));

static __thread uint64_t prof_rng __attribute__((tls_model("initial-exec")));
static __thread bool prof_busy __attribute__((tls_model("initial-exec")));

static void prof_lock(void) { nm_flag_wait(&prof.lock); }

static int open_next_profile(void);
static int write_and_close(int fd);

/* Let go of the lock, first writing the profiles that signals asked for
 * while it was held (one after another, errno kept). */
static void prof_unlock(void)
{
    for (;;) {
        nm_flag_release(&prof.lock);
        if (nm_likely(!atomic_load_explicit(&prof.dump_pending, memory_order_relaxed)) ||
            !atomic_exchange(&prof.dump_pending, false) || prof.broken)
            return;
        int saved = errno;
        prof_lock();
        int fd = open_next_profile();
        if (fd >= 0) (void)write_and_close(fd);
        errno = saved;
    }
}

/* ---- sampling intervals ---------------------------------------------------------- */

/* -ln(u) for u = x / 2^53, x in [1, 2^53]: u = m * 2^e with m in [1, 2),
 * ln m = 2 atanh(s) with s = (m - 1) / (m + 1) <= 1/3, whose series to
 * s^11 is within 2e-7 of it.  No libm. */
static double neg_log_unit(uint64_t x)
{
    union { double d; uint64_t bits; } u = { .d = (double)x / 9007199254740992.0 };
    int e = (int)((u.bits >> 52) & 0x7ff) - 1023;
    u.bits = (u.bits & ((1ull << 52) - 1)) | (1023ull << 52);
    double s = (u.d - 1) / (u.d + 1), s2 = s * s;
    double ln_m = 2 * s * (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 / 11)))));
    return -(e * 0.6931471805599453 + ln_m);
}

/* The bytes until the calling thread's next sample: exponential with mean
 * prof.mean (xorshift64*), or -1 (the next allocation) for a mean of 1. */
static int64_t next_interval(void)
{
    if (prof.mean <= 1) return -1;
    uint64_t x = prof_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    prof_rng = x;
    uint64_t r = (x * 0x2545F4914F6CDD1Dull) >> 11;   /* 53 bits */
    /* At most 2^40 * 37 (-ln 2^-53): far below 2^63. */
    return (int64_t)((double)prof.mean * neg_log_unit(r + 1));
}

/* ---- call stacks ------------------------------------------------------------------- */

struct stack_walk {
    uintptr_t *frame;
    uint32_t depth;
};

static _Unwind_Reason_Code stack_step(struct _Unwind_Context *ctx, void *arg)
{
    struct stack_walk *w = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (ip == 0) return _URC_END_OF_STACK;
    /* The library's own frames, from the unwinder up to malloc. */
    if (w->depth == 0 && ip >= prof.own_lo && ip < prof.own_hi) return _URC_NO_REASON;
    if (w->depth == PROF_DEPTH) return _URC_END_OF_STACK;
    w->frame[w->depth++] = ip;
    return _URC_NO_REASON;
}

static uint64_t stack_hash(const uintptr_t *frame, uint32_t depth)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ depth;
    for (uint32_t i = 0; i < depth; i++) {
        h ^= frame[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

/* The site of this stack, added if new (PROF_OTHER when the table is
 * full).  Under the lock. */
static uint32_t site_of(const uintptr_t *frame, uint32_t depth)
{
    uint64_t hash = stack_hash(frame, depth);
    uint32_t i = (uint32_t)hash & (PROF_SLOTS - 1);
    for (;; i = (i + 1) & (PROF_SLOTS - 1)) {
        uint32_t index = prof.slots[i];
        if (index == 0) break;
        const struct prof_site *site = &prof.sites[index];
        if (site->hash == hash && site->depth == depth &&
            memcmp(site->frame, frame, depth * sizeof *frame) == 0)
            return index;
    }
    if (prof.site_count > PROF_SITES) {
        prof.dropped++;
        return PROF_OTHER;
    }
    uint32_t index = ++prof.site_count;
    struct prof_site *site = &prof.sites[index];
    site->hash = hash;
    site->depth = depth;
    memcpy(site->frame, frame, depth * sizeof *frame);
    prof.slots[i] = index;
    return index;
}

/* ---- samples ----------------------------------------------------------------------- */

static void live_link(struct nm_segment *s, uint32_t index, size_t size)
{
    struct prof_site *site = &prof.sites[index];
    s->prof.site = index;
    s->prof.size = size;
    s->prof.node_seen = -1;
    s->prof.mismatched = false;
    s->prof.prev = NULL;
    s->prof.next = site->live;
    if (site->live) site->live->prof.prev = s;
    site->live = s;
}

static void live_unlink(struct nm_segment *s)
{
    struct prof_site *site = &prof.sites[s->prof.site];
    if (!s->prof.prev && site->live != s) return;   /* off the list (being resized) */
    if (s->prof.prev) s->prof.prev->prof.next = s->prof.next;
    else site->live = s->prof.next;
    if (s->prof.next) s->prof.next->prof.prev = s->prof.prev;
    s->prof.next = s->prof.prev = NULL;
}

/* Record the block of span `s`, `size` bytes, with the caller's stack. */
static void record(struct nm_segment *s, size_t size)
{
    uintptr_t frame[PROF_DEPTH];
    struct stack_walk w = { frame, 0 };
    if (_Unwind_Backtrace) _Unwind_Backtrace(stack_step, &w);
    prof_lock();
    uint32_t index = site_of(frame, w.depth);
    prof.sites[index].alloc_blocks++;
    prof.sites[index].alloc_bytes += size;
    live_link(s, index, size);
    prof_unlock();
}

/* An allocation or resize of `size` bytes took the calling thread's
 * countdown below zero: draw its next interval, and say whether to record
 * it now.  The thread's first count (its countdown started at 0, its
 * generator unseeded): seed, and count `size` against a drawn interval
 * instead.  Not while the profiler is broken (the countdown then never
 * ends) or allocates for itself (prof_busy).  True with prof_busy set:
 * the caller records the block, then calls sample_end. */
static bool sample_begin(size_t size)
{
    if (nm_unlikely(prof.broken)) {
        nm_tls_sample_left = INT64_MAX;
        return false;
    }
    if (nm_unlikely(prof_rng == 0)) {
        prof_rng = (prof.seed ^ ((uintptr_t)&prof_rng * 0x9E3779B97F4A7C15ull)) | 1;
        nm_tls_sample_left = next_interval() - (int64_t)size;
        if (nm_tls_sample_left >= 0) return false;
    }
    nm_tls_sample_left = next_interval();
    if (prof_busy) return false;
    prof_busy = true;
    return true;
}

static void sample_end(void) { prof_busy = false; }

void *nm_prof_alloc(struct nm_arena *a, size_t size, size_t alignment, bool zero)
{
    if (!sample_begin(size)) return NULL;
    void *p = nm_large_alloc(size, alignment, a, zero);
    if (p) record(nm_segment_find(p), size);
    sample_end();
    return p;
}

void nm_prof_adopt(struct nm_segment *s, size_t size)
{
    if (!sample_begin(size)) return;
    record(s, size);
    sample_end();
}

void nm_prof_free(struct nm_segment *s)
{
    if (nm_unlikely(prof.broken)) {
        s->prof.site = 0;
        return;
    }
    int here = nm_topology_home_node();
    prof_lock();
    uint32_t index = s->prof.site;
    if (index) {
        struct prof_site *site = &prof.sites[index];
        live_unlink(s);
        site->freed_blocks++;
        site->freed_bytes += s->prof.size;
        if (s->node != here) {
            site->cross_blocks++;
            site->cross_bytes += s->prof.size;
        }
        s->prof.site = 0;
    }
    prof_unlock();
}

uint32_t nm_prof_detach(struct nm_segment *s)
{
    if (nm_unlikely(prof.broken)) {
        s->prof.site = 0;
        return 0;
    }
    prof_lock();
    uint32_t index = s->prof.site;
    if (index) live_unlink(s);
    prof_unlock();
    return index;
}

void nm_prof_attach(struct nm_segment *s, uint32_t index, size_t size)
{
    if (index == 0) return;   /* freed meanwhile by another thread (a double free) */
    prof_lock();
    size_t old = s->prof.size;
    if (size > old) prof.sites[index].alloc_bytes += size - old;
    live_link(s, index, size);
    prof_unlock();
}

void nm_prof_resized(struct nm_segment *s, size_t size)
{
    if (nm_unlikely(prof.broken)) return;
    prof_lock();
    uint32_t index = s->prof.site;
    if (index && size > s->prof.size) prof.sites[index].alloc_bytes += size - s->prof.size;
    if (index) s->prof.size = size;
    prof_unlock();
}

void nm_prof_forget_arena(const struct nm_arena *a)
{
    if (!atomic_load_explicit(&nm_proc.sample_alloc, memory_order_relaxed) || prof.broken) return;
    prof_lock();
    for (uint32_t index = PROF_OTHER; index <= prof.site_count; index++) {
        struct prof_site *site = &prof.sites[index];
        for (struct nm_segment *s = site->live, *next; s; s = next) {
            next = s->prof.next;
            if (s->arena != a) continue;
            live_unlink(s);
            site->freed_blocks++;
            site->freed_bytes += s->prof.size;
            s->prof.site = 0;
        }
    }
    prof_unlock();
}

/* ---- the profile ------------------------------------------------------------------- */

/* Output without stdio: a buffer flushed with write(2); a failed write
 * makes the whole profile fail. */
static struct {
    int fd;
    int error;                  /* the first failed write's errno (0: none) */
    size_t len;
    char buf[16384];
} out;

static void out_flush(void)
{
    for (size_t done = 0; done < out.len && !out.error;) {
        ssize_t n = write(out.fd, out.buf + done, out.len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) out.error = errno;
        else if (n == 0) out.error = EIO;
        else done += (size_t)n;
    }
    out.len = 0;
}

static void out_bytes(const char *s, size_t n)
{
    while (n > 0) {
        if (out.len == sizeof out.buf) out_flush();
        size_t room = sizeof out.buf - out.len, take = n < room ? n : room;
        memcpy(out.buf + out.len, s, take);
        out.len += take;
        s += take;
        n -= take;
    }
}

static void out_str(const char *s) { out_bytes(s, strlen(s)); }

static void out_u64(uint64_t v)
{
    nm_line l = { .len = 0 };
    nm_line_u64(&l, v);
    out_bytes(l.data, l.len);
}

static void out_i64(int64_t v)
{
    nm_line l = { .len = 0 };
    nm_line_i64(&l, v);
    out_bytes(l.data, l.len);
}

static void out_hex(uintptr_t v)
{
    nm_line l = { .len = 0 };
    nm_line_hex(&l, v);
    out_bytes(l.data, l.len);
}

static void out_pair(uint64_t blocks, uint64_t bytes)
{
    out_u64(blocks);
    out_str(":");
    out_u64(bytes);
}

/* A file copied through (/proc/self/maps), up to its end. */
static void out_file(const char *path)
{
    int fd = nm_os_open_read(path);
    if (fd < 0) {
        out.error = errno ? errno : EIO;
        return;
    }
    for (;;) {
        if (out.len == sizeof out.buf) out_flush();
        ssize_t n = read(fd, out.buf + out.len, sizeof out.buf - out.len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.len += (size_t)n;
    }
    nm_os_close(fd);
}

/* The program's command line, on one line (arguments split by spaces,
 * control bytes as '?'), cut at 400 bytes. */
static void out_command(void)
{
    char cmd[401];
    ssize_t n = nm_os_read_file("/proc/self/cmdline", cmd, sizeof cmd);
    if (n <= 0) { out_str("?"); return; }
    while (n > 0 && cmd[n - 1] == '\0') n--;
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == '\0') cmd[i] = ' ';
        else if ((unsigned char)cmd[i] < 0x20 || cmd[i] == 0x7f) cmd[i] = '?';
    out_bytes(cmd, (size_t)n);
}

/* Where the first pages of spans span[0..n) are, by one move_pages call:
 * their marks' node_seen and mismatched.  A page not touched yet (or a
 * failed call) leaves the block on its own node. */
static void pages_ask(struct nm_segment **span, void **page, int *status, size_t n)
{
    if (nm_os_move_pages(n, page, NULL, status, 0) != 0) return;
    for (size_t i = 0; i < n; i++) {
        if (status[i] < 0) continue;
        int dense = nm_topology_index(&nm_topo, status[i]);
        const struct nm_arena *a = span[i]->arena;
        if (dense >= 0) span[i]->prof.node_seen = (int16_t)dense;
        span[i]->prof.mismatched = a->bind_mode >= 0 && !nm_mask_test(&a->nodes, status[i]);
    }
}

/* Ask the kernel where the first page of each live sampled block is, 64
 * at a time: prof.node_seen and prof.mismatched of every mark.  Mismatched:
 * outside the nodes its arena binds to (an arena that binds nothing places
 * by first touch, which is what it means). */
static void find_pages(void)
{
    enum { BATCH = 64 };
    void *page[BATCH];
    int status[BATCH];
    struct nm_segment *span[BATCH];
    size_t n = 0;
    for (uint32_t index = PROF_OTHER; index <= prof.site_count; index++) {
        for (struct nm_segment *s = prof.sites[index].live; s; s = s->prof.next) {
            s->prof.node_seen = (int16_t)s->node;
            s->prof.mismatched = false;
            span[n] = s;
            page[n++] = nm_large_block(s);
            if (n == BATCH) {
                pages_ask(span, page, status, n);
                n = 0;
            }
        }
    }
    if (n > 0) pages_ask(span, page, status, n);
}

struct site_live {
    uint64_t blocks, bytes;
    uint64_t node_blocks[NM_MAX_NODES], node_bytes[NM_MAX_NODES];
    uint64_t mismatched_blocks, mismatched_bytes;
};

static void site_live(const struct prof_site *site, struct site_live *l)
{
    memset(l, 0, sizeof *l);
    for (const struct nm_segment *s = site->live; s; s = s->prof.next) {
        l->blocks++;
        l->bytes += s->prof.size;
        int node = s->prof.node_seen >= 0 ? s->prof.node_seen : s->node;
        l->node_blocks[node]++;
        l->node_bytes[node] += s->prof.size;
        if (s->prof.mismatched) {
            l->mismatched_blocks++;
            l->mismatched_bytes += s->prof.size;
        }
    }
}

/* The profile (prof.h; docs/design.md, "Heap profiler"), under the lock. */
static int write_profile(int fd)
{
    out.fd = fd;
    out.error = 0;
    out.len = 0;
    find_pages();
    struct site_live l;
    uint64_t live_blocks = 0, live_bytes = 0, alloc_blocks = 0, alloc_bytes = 0;
    uint32_t sites = 0;
    for (uint32_t index = PROF_OTHER; index <= prof.site_count; index++) {
        const struct prof_site *site = &prof.sites[index];
        if (!site->alloc_blocks) continue;
        site_live(site, &l);
        live_blocks += l.blocks;
        live_bytes += l.bytes;
        alloc_blocks += site->alloc_blocks;
        alloc_bytes += site->alloc_bytes;
        sites++;
    }
    uint64_t rate = prof.mean > 1 ? prof.mean : 1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    out_str("heap profile: ");
    out_u64(live_blocks);
    out_str(": ");
    out_u64(live_bytes);
    out_str(" [ ");
    out_u64(alloc_blocks);
    out_str(": ");
    out_u64(alloc_bytes);
    out_str("] @ heap_v2/");
    out_u64(rate);
    out_str("\n# numamalloc heap profile 1\n# pid ");
    out_u64((uint64_t)getpid());
    out_str("\n# command ");
    out_command();
    out_str("\n# rank ");
    out_i64(nm_process_rank());
    out_str("\n# nodes ");
    out_u64((uint64_t)nm_topo.node_count);
    for (int i = 0; i < nm_topo.node_count; i++) {
        out_str(" ");
        out_u64((uint64_t)nm_topo.node_id[i]);
    }
    out_str("\n# sample_bytes ");
    out_u64(rate);
    out_str("\n# time_ms ");
    out_u64((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000);
    out_str("\n# sites ");
    out_u64(sites);
    out_str(" dropped ");
    out_u64(prof.dropped);
    out_str("\n");

    for (uint32_t index = PROF_OTHER; index <= prof.site_count; index++) {
        const struct prof_site *site = &prof.sites[index];
        if (!site->alloc_blocks) continue;
        site_live(site, &l);
        out_str("# site live_node");
        for (int i = 0; i < nm_topo.node_count; i++) {
            out_str(" ");
            out_pair(l.node_blocks[i], l.node_bytes[i]);
        }
        out_str(" freed ");
        out_pair(site->freed_blocks, site->freed_bytes);
        out_str(" cross_node_frees ");
        out_pair(site->cross_blocks, site->cross_bytes);
        out_str(" mismatched ");
        out_pair(l.mismatched_blocks, l.mismatched_bytes);
        out_str("\n");
        out_u64(l.blocks);
        out_str(": ");
        out_u64(l.bytes);
        out_str(" [ ");
        out_u64(site->alloc_blocks);
        out_str(": ");
        out_u64(site->alloc_bytes);
        out_str("] @");
        for (uint32_t i = 0; i < site->depth; i++) {
            out_str(" ");
            out_hex(site->frame[i]);
        }
        out_str("\n");
    }
    out_str("\nMAPPED_LIBRARIES:\n");
    out_file("/proc/self/maps");
    out_flush();
    if (out.error) {
        errno = out.error;
        return -1;
    }
    return 0;
}

/* Open `path` for a profile without waiting: a FIFO nobody reads fails
 * (ENXIO) instead of holding up the process; then writes block again. */
static int open_profile(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd >= 0) {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
    return fd;
}

/* Write a profile to open file `fd` and close it, under the lock (the
 * caller holds it).  0, or -1 with errno. */
static int write_and_close(int fd)
{
    int rc = write_profile(fd);
    int saved = errno;
    if (close(fd) != 0 && rc == 0) return -1;
    errno = saved;
    return rc;
}

/* The next file of NUMAMALLOC_PROF_FILE (%n: profiles begun before). */
static int open_next_profile(void)
{
    char path[4096];
    if (!nm_file_name(nm_opt.prof_file, atomic_fetch_add(&prof.dumps, 1), path, sizeof path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open_profile(path);
}

/* A profile to `fd` (the caller does not hold the lock). */
static int dump_to_fd(int fd)
{
    if (fd < 0) return -1;
    prof_lock();
    int rc = write_and_close(fd);
    prof_unlock();
    return rc;
}

static int dump_to_pattern(void)
{
    if (prof.broken) {
        errno = ENOTRECOVERABLE;
        return -1;
    }
    return dump_to_fd(open_next_profile());
}

nm_export int nm_prof_dump(const char *path)
{
    if (!atomic_load_explicit(&nm_proc.sample_alloc, memory_order_relaxed)) {
        errno = EINVAL;
        return -1;
    }
    if (prof.broken) {
        errno = ENOTRECOVERABLE;
        return -1;
    }
    return path ? dump_to_fd(open_profile(path)) : dump_to_pattern();
}

/* ---- start-up, exit, signals, fork ---------------------------------------------------- */

static void dump_at_exit(void)
{
    if (prof.broken) return;
    if (dump_to_pattern() == 0) return;
    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc: cannot write the heap profile to NUMAMALLOC_PROF_FILE='");
    nm_line_value(&l, nm_opt.prof_file);
    nm_line_str(&l, "'\n");
    nm_line_write(&l, 2);
}

/* A profile now, written with the lock this handler won (no other thread
 * changes the tables meanwhile, and no fork takes it halfway); or, when
 * the lock is held (perhaps by the thread this signal interrupted), by
 * its holder when it lets go. */
static void dump_on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    if (prof.broken) return;
    if (nm_flag_try(&prof.lock)) {
        int fd = open_next_profile();
        if (fd >= 0) (void)write_and_close(fd);
        prof_unlock();
    } else {
        atomic_store(&prof.dump_pending, true);
    }
    errno = saved;
}

/* The executable mapping that holds this file's code: frames in it are
 * the library's own.  When the library is linked into the program itself
 * (libnumamalloc.a) that mapping is the program's: nothing is left out. */
static void find_own_code(void)
{
    uintptr_t self = (uintptr_t)&nm_prof_alloc, entry = getauxval(AT_ENTRY);
    char buf[8192];
    int fd = nm_os_open_read("/proc/self/maps");
    if (fd < 0) return;
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            char *end;
            uintptr_t lo = strtoull(line, &end, 16), hi = *end == '-' ? strtoull(end + 1, NULL, 16) : 0;
            if (self >= lo && self < hi) {
                if (!(entry >= lo && entry < hi)) {
                    prof.own_lo = lo;
                    prof.own_hi = hi;
                }
                nm_os_close(fd);
                return;
            }
            line = nl + 1;
        }
        have = (size_t)(buf + have - line);
        memmove(buf, line, have);
        if (have == sizeof buf - 1) have = 0;   /* a line longer than the buffer */
    }
    nm_os_close(fd);
}

void nm_prof_init(void)
{
    if (!nm_opt.prof || atomic_load(&nm_proc.sample_alloc)) return;
    size_t sites = nm_align_up((PROF_SITES + 2) * sizeof *prof.sites, NM_OS_PAGE);
    size_t slots = nm_align_up(PROF_SLOTS * sizeof *prof.slots, NM_OS_PAGE);
    prof.sites = nm_os_reserve(sites, NM_OS_PAGE, false);
    prof.slots = nm_os_reserve(slots, NM_OS_PAGE, false);
    if (!prof.sites || !prof.slots) {
        nm_os_warn("NUMAMALLOC_PROF: no memory for the profiler's tables; profiling is off");
        if (prof.sites) nm_os_release(prof.sites, sites);
        if (prof.slots) nm_os_release(prof.slots, slots);
        prof.sites = NULL;
        prof.slots = NULL;
        /* Nothing counts: allocations take the fast paths again (segment.c
         * set this for the profiler). */
        nm_proc.slow_allocs = nm_proc.secure;
        return;
    }
    prof.site_count = PROF_OTHER;
    prof.mean = nm_opt.prof_sample < PROF_MEAN_MAX ? nm_opt.prof_sample : PROF_MEAN_MAX;
    prof.seed = nm_proc.cookie_key ^ (uint64_t)getpid() << 32;
    find_own_code();
    atexit(dump_at_exit);
    if (nm_opt.prof_signal) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = dump_on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(nm_opt.prof_signal, &sa, NULL);
    }
    atomic_store(&nm_proc.sample_alloc, nm_prof_alloc);
}

/* The lock across a fork, so that the child's tables are whole: waited
 * for a few milliseconds at most, because a fork from a signal handler
 * may have interrupted its holder, which cannot let go before the fork
 * returns.  Without it the child stops profiling (prof.broken). */
void nm_prof_before_fork(void)
{
    if (!atomic_load_explicit(&nm_proc.sample_alloc, memory_order_relaxed)) return;
    uint64_t give_up = 0;
    while (!(prof.fork_locked = nm_flag_try(&prof.lock))) {
        uint64_t now = nm_os_now_ms();
        if (give_up == 0) give_up = now + PROF_FORK_WAIT_MS;
        else if (now >= give_up) break;
        sched_yield();
    }
}

void nm_prof_after_fork(bool child)
{
    if (!atomic_load_explicit(&nm_proc.sample_alloc, memory_order_relaxed)) return;
    if (child) {
        atomic_store(&prof.dump_pending, false);
        atomic_store(&prof.dumps, 0);
        if (!prof.fork_locked) prof.broken = true;
        atomic_store(&prof.lock, false);   /* the holder, if another thread, is not here */
        return;
    }
    if (prof.fork_locked) prof_unlock();
}
