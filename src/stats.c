/*
 * stats.c — statistics: a snapshot of the counters every layer keeps
 * (nm_stats_get), a readable table of it (nm_stats_print) and the same as
 * JSON with the process's own figures (nm_stats_json).
 *
 * Reads the node counters (segment layer), the per-class counters of every
 * heap ever made (heap layer) and the process-wide event counters; the
 * table and the JSON also count the blocks in use, page by page
 * (heap.h: nm_heap_count_blocks), as nothing on the allocation paths
 * counts them.  Other threads keep running while we read, so a snapshot
 * is approximate.  Never allocates and never uses stdio: safe at exit and
 * inside malloc_stats().  Calls take turns (one snapshot at a time).
 *
 * May call the heap, large, page, segment, purge, topology, options and os
 * layers.
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "heap.h"
#include "numamalloc.h"
#include "options.h"
#include "purge.h"
#include "stats.h"

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* What the table and the JSON show beyond struct nm_stats (whose layout
 * programs compiled against the header rely on). */
struct stats_more {
    uint64_t peak_in_use[NM_STATS_MAX_NODES];
    uint64_t cross_node_frees;   /* all heaps, and threads without one */
    uint64_t large_bytes[NM_STATS_MAX_NODES];   /* usable bytes of live large blocks */
    uint64_t large_blocks, large_total;         /* all nodes */
    struct nm_block_count blocks;               /* small and medium blocks in use */
    bool counted;                               /* blocks were counted (no fork at it) */
};

/* One snapshot at a time: the table and the JSON use static storage (10 KiB
 * is too much for a small thread's stack).  A second caller waits (a flag
 * waited for, os.h: nm_flag_wait; not a queue: a fork child, where a
 * signal handler may have forked in the middle of a snapshot, just clears
 * it). */
static _Atomic bool stats_busy;

static void stats_enter(void) { nm_flag_wait(&stats_busy); }

static void stats_leave(void) { nm_flag_release(&stats_busy); }

void nm_stats_after_fork(void)
{
    stats_leave();   /* a thread that held it does not exist in the child */
}

/* The bytes of the blocks of class `c` in use. */
static uint64_t class_bytes(const struct stats_more *more, int c)
{
    return more->blocks.blocks[c] * nm_class_size[c];
}

/* One pass over the counters: `out`, and `more` unless NULL. */
static void snapshot(struct nm_stats *out, struct stats_more *more)
{
    memset(out, 0, sizeof *out);
    if (more) memset(more, 0, sizeof *more);
    nm_heap_init();
    out->node_count = nm_topo.node_count < NM_STATS_MAX_NODES ? nm_topo.node_count
                                                              : NM_STATS_MAX_NODES;
    for (int i = 0; i < out->node_count; i++) {
        struct nm_node_state *ns = &nm_proc.nodes[i];
        struct nm_node_stats *n = &out->node[i];
        uint64_t decommitted = load(&ns->decommitted);
        n->node = nm_topo.node_id[i];
        n->mapped = load(&ns->mapped);
        n->committed = n->mapped > decommitted ? n->mapped - decommitted : 0;
        n->in_use = load(&ns->in_use);
        n->segments = load(&ns->segments);
        n->large_blocks = load(&ns->large_blocks);
        n->cached = load(&ns->cached);
        if (more) {
            more->peak_in_use[i] = load(&ns->in_use_peak);
            more->large_bytes[i] = load(&ns->large_bytes);
            more->large_blocks += n->large_blocks;
            more->large_total += more->large_bytes[i];
        }
    }

    out->class_count = NM_CLASS_COUNT < NM_STATS_MAX_CLASSES ? NM_CLASS_COUNT
                                                             : NM_STATS_MAX_CLASSES;
    for (int c = 0; c < out->class_count; c++) {
        out->size_class[c].block_size = nm_class_size[c];
        out->size_class[c].pages = load(&nm_proc.class_pages[c]);
    }
    for (struct nm_heap *h = atomic_load_explicit(&nm_proc.heaps, memory_order_acquire); h;
         h = h->all_next) {
        for (int c = 0; c < out->class_count; c++) {
            out->size_class[c].allocs += load(&h->allocs[c]);
        }
        out->remote_frees += load(&h->remote_frees);
        if (more) more->cross_node_frees += load(&h->cross_node_frees);
    }
    if (more) more->cross_node_frees += load(&nm_proc.counters.cross_node_frees);
    out->remote_frees += load(&nm_proc.counters.purge_collected);
    out->large_allocs = load(&nm_proc.counters.large_allocs);
    out->large_frees = load(&nm_proc.counters.large_frees);
    out->purges = load(&nm_proc.counters.purges);
    out->purged_bytes = load(&nm_proc.counters.purged_bytes);
    out->threads = load(&nm_proc.counters.threads);
    out->abandoned = load(&nm_proc.counters.abandoned);
    out->reclaimed = load(&nm_proc.counters.reclaimed);
    if (more && nm_purge_visit_begin()) {
        nm_heap_count_blocks(&more->blocks);
        nm_purge_visit_end();
        more->counted = true;
    }
}

nm_export void nm_stats_get(struct nm_stats *out)
{
    snapshot(out, NULL);
}

/* ---- printing --------------------------------------------------------------------------- */

struct column {
    const char *title;
    size_t width;
};

static void print_header(int fd, const struct column *cols, size_t n)
{
    nm_line l = { .len = 0 };
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        at += cols[i].width;
        nm_line_str(&l, cols[i].title);
        nm_line_pad(&l, at);
    }
    nm_line_str(&l, "\n");
    nm_line_write(&l, fd);
}

static void print_event(int fd, const char *name, uint64_t value, bool as_size)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, "  ");
    nm_line_str(&l, name);
    nm_line_pad(&l, 24);
    if (as_size) nm_line_size(&l, value); else nm_line_u64(&l, value);
    nm_line_str(&l, "\n");
    nm_line_write(&l, fd);
}

nm_export void nm_stats_print(int fd)
{
    /* Static, used in turns (stats_enter): 10 KiB is too much for a small
     * thread stack. */
    static struct nm_stats st;
    static struct stats_more more;
    stats_enter();
    snapshot(&st, &more);

    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc statistics\n");
    nm_line_write(&l, fd);

    static const struct column node_cols[] = {
        { "  node", 8 }, { "mapped", 13 }, { "committed", 13 }, { "in use", 13 },
        { "cached", 13 }, { "segments", 10 }, { "large", 8 },
    };
    print_header(fd, node_cols, sizeof node_cols / sizeof node_cols[0]);
    for (int i = 0; i < st.node_count; i++) {
        const struct nm_node_stats *n = &st.node[i];
        size_t at = 0;
        nm_line_str(&l, "  ");
        nm_line_u64(&l, (uint64_t)n->node);
        nm_line_pad(&l, at += node_cols[0].width);
        nm_line_size(&l, n->mapped);    nm_line_pad(&l, at += node_cols[1].width);
        nm_line_size(&l, n->committed); nm_line_pad(&l, at += node_cols[2].width);
        nm_line_size(&l, n->in_use);    nm_line_pad(&l, at += node_cols[3].width);
        nm_line_size(&l, n->cached);    nm_line_pad(&l, at += node_cols[4].width);
        nm_line_u64(&l, n->segments);   nm_line_pad(&l, at += node_cols[5].width);
        nm_line_u64(&l, n->large_blocks);
        nm_line_str(&l, "\n");
        nm_line_write(&l, fd);
    }

    static const struct column class_cols[] = {
        { "  block size", 14 }, { "allocs", 16 }, { "pages", 10 }, { "page bytes", 12 },
        { "blocks", 12 }, { "in blocks", 10 },
    };
    print_header(fd, class_cols, sizeof class_cols / sizeof class_cols[0]);
    for (int c = 0; c < st.class_count; c++) {
        const struct nm_class_stats *k = &st.size_class[c];
        if (k->allocs == 0 && k->pages == 0 && more.blocks.blocks[c] == 0) continue;
        size_t at = 0;
        nm_line_str(&l, "  ");
        nm_line_u64(&l, k->block_size);
        nm_line_pad(&l, at += class_cols[0].width);
        nm_line_u64(&l, k->allocs);     nm_line_pad(&l, at += class_cols[1].width);
        nm_line_u64(&l, k->pages);      nm_line_pad(&l, at += class_cols[2].width);
        nm_line_size(&l, k->pages << (k->block_size <= NM_SMALL_MAX ? NM_SMALL_PAGE_SHIFT
                                                                    : NM_MEDIUM_PAGE_SHIFT));
        nm_line_pad(&l, at += class_cols[3].width);
        nm_line_u64(&l, more.blocks.blocks[c]);
        nm_line_pad(&l, at += class_cols[4].width);
        nm_line_size(&l, class_bytes(&more, c));
        nm_line_str(&l, "\n");
        nm_line_write(&l, fd);
    }

    nm_line_str(&l, "  large");
    nm_line_pad(&l, 52);
    nm_line_u64(&l, more.large_blocks);
    nm_line_pad(&l, 64);
    nm_line_size(&l, more.large_total);
    nm_line_str(&l, "\n");
    nm_line_write(&l, fd);

    nm_line_str(&l, "events\n");
    nm_line_write(&l, fd);
    print_event(fd, "large allocs", st.large_allocs, false);
    print_event(fd, "large frees", st.large_frees, false);
    print_event(fd, "remote frees", st.remote_frees, false);
    print_event(fd, "cross-node frees", more.cross_node_frees, false);
    print_event(fd, "purges", st.purges, false);
    print_event(fd, "purged", st.purged_bytes, true);
    print_event(fd, "thread heaps", st.threads, false);
    print_event(fd, "segments abandoned", st.abandoned, false);
    print_event(fd, "segments adopted", st.reclaimed, false);
    stats_leave();
}

/* ---- JSON ------------------------------------------------------------------------------
 *
 * Written into the caller's buffer as snprintf does: as much as fits,
 * always NUL-terminated when len > 0, and the length the whole text needs
 * is returned.  Numbers are bytes or counts, never text. */

struct json_out {
    char *buf;
    size_t len, pos;             /* pos counts every byte, also past len */
    bool first;                  /* no member yet in the open object or array */
};

static void json_raw(struct json_out *j, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, j->pos++)
        if (j->pos + 1 < j->len) j->buf[j->pos] = s[i];
}

static void json_text(struct json_out *j, const char *s) { json_raw(j, s, strlen(s)); }

/* The length of the UTF-8 sequence at s (2 to 4), or 0 if it is none. */
static size_t utf8_length(const unsigned char *s)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (s[0] >= 0xf8) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* A JSON string: quotes, backslashes and control characters escaped, and
 * each byte that is not part of valid UTF-8 (a file name may hold any). */
static void json_string(struct json_out *j, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    json_raw(j, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        size_t n = *c >= 0x80 ? utf8_length(c) : 1;
        if (*c == '"' || *c == '\\') {
            char e[2] = { '\\', (char)*c };
            json_raw(j, e, 2);
        } else if (*c < 0x20 || *c == 0x7f || n == 0) {
            char e[6] = { '\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15] };
            json_raw(j, e, 6);
        } else {
            json_raw(j, (const char *)c, n);
            c += n - 1;
        }
    }
    json_raw(j, "\"", 1);
}

static void json_key(struct json_out *j, const char *key)
{
    if (!j->first) json_raw(j, ",", 1);
    j->first = false;
    if (key) {
        json_string(j, key);
        json_raw(j, ":", 1);
    }
}

static void json_number(struct json_out *j, uint64_t v)
{
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n > 0) json_raw(j, &digits[--n], 1);
}

static void json_u64(struct json_out *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_number(j, v);
}

static void json_open(struct json_out *j, const char *key, char bracket)
{
    json_key(j, key);
    json_raw(j, &bracket, 1);
    j->first = true;
}

static void json_close(struct json_out *j, char bracket)
{
    json_raw(j, &bracket, 1);
    j->first = false;
}

/* The first line of /proc/self/status starting with `field` ("VmHWM:"),
 * its number in kB times 1024; 0 if not found. */
static uint64_t status_kib(const char *text, const char *field)
{
    const char *at = strstr(text, field);
    if (!at) return 0;
    uint64_t v = 0;
    for (at += strlen(field); *at == ' ' || *at == '\t'; at++) {}
    for (; *at >= '0' && *at <= '9'; at++) v = v * 10 + (uint64_t)(*at - '0');
    return v * 1024;
}

nm_export size_t nm_stats_json(char *buf, size_t len)
{
    static struct nm_stats st;
    static struct stats_more more;
    stats_enter();
    snapshot(&st, &more);
    struct json_out j = { buf, len, 0, true };

    /* Who: the process, and what the kernel says of its memory. */
    static char text[4096];
    json_open(&j, NULL, '{');
    json_key(&j, "numamalloc");
    json_text(&j, "\"" NUMAMALLOC_VERSION_STRING "\"");
    json_u64(&j, "pid", (uint64_t)getpid());
    json_key(&j, "command");
    ssize_t n = nm_os_read_file("/proc/self/cmdline", text, sizeof text);
    json_string(&j, n > 0 ? text : "");
    json_key(&j, "rank");
    long rank = nm_process_rank();
    if (rank >= 0) json_number(&j, (uint64_t)rank);
    else json_text(&j, "null");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_u64(&j, "time", (uint64_t)now.tv_sec);
    json_u64(&j, "time_ms", (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000);

    json_open(&j, "process", '{');
    uint64_t resident = 0;
    if (nm_os_read_file("/proc/self/statm", text, sizeof text) > 0) {
        const char *at = strchr(text, ' ');   /* size, then resident (pages) */
        for (at = at ? at + 1 : ""; *at >= '0' && *at <= '9'; at++)
            resident = resident * 10 + (uint64_t)(*at - '0');
    }
    json_u64(&j, "rss", resident * (uint64_t)sysconf(_SC_PAGESIZE));
    n = nm_os_read_file("/proc/self/status", text, sizeof text);
    json_u64(&j, "peak_rss", n > 0 ? status_kib(text, "VmHWM:") : 0);
    struct rusage usage;
    bool have_usage = getrusage(RUSAGE_SELF, &usage) == 0;
    json_u64(&j, "minor_faults", have_usage ? (uint64_t)usage.ru_minflt : 0);
    json_u64(&j, "major_faults", have_usage ? (uint64_t)usage.ru_majflt : 0);
    json_close(&j, '}');

    json_open(&j, "nodes", '[');
    for (int i = 0; i < st.node_count; i++) {
        const struct nm_node_stats *s = &st.node[i];
        json_open(&j, NULL, '{');
        json_u64(&j, "node", (uint64_t)s->node);
        json_u64(&j, "mapped", s->mapped);
        json_u64(&j, "committed", s->committed);
        json_u64(&j, "in_use", s->in_use);
        json_u64(&j, "peak_in_use", more.peak_in_use[i]);
        json_u64(&j, "cached", s->cached);
        json_u64(&j, "segments", s->segments);
        json_u64(&j, "large_blocks", s->large_blocks);
        uint64_t in_blocks = more.large_bytes[i];
        in_blocks += more.blocks.node_bytes[i];
        json_u64(&j, "in_blocks", in_blocks);
        json_close(&j, '}');
    }
    json_close(&j, ']');

    json_open(&j, "classes", '[');
    for (int c = 0; c < st.class_count; c++) {
        const struct nm_class_stats *k = &st.size_class[c];
        if (k->allocs == 0 && k->pages == 0 && more.blocks.blocks[c] == 0) continue;
        json_open(&j, NULL, '{');
        json_u64(&j, "block_size", k->block_size);
        json_u64(&j, "allocs", k->allocs);
        json_u64(&j, "pages", k->pages);
        json_u64(&j, "page_bytes", k->pages << (k->block_size <= NM_SMALL_MAX ? NM_SMALL_PAGE_SHIFT
                                                                             : NM_MEDIUM_PAGE_SHIFT));
        json_u64(&j, "blocks_in_use", more.blocks.blocks[c]);
        json_u64(&j, "bytes_in_use", class_bytes(&more, c));
        json_close(&j, '}');
    }
    json_close(&j, ']');

    json_open(&j, "large", '{');
    json_u64(&j, "blocks_in_use", more.large_blocks);
    json_u64(&j, "bytes_in_use", more.large_total);
    json_close(&j, '}');
    json_key(&j, "blocks_counted");
    json_text(&j, more.counted ? "true" : "false");
    json_u64(&j, "heaps_skipped", more.blocks.heaps_skipped);

    json_open(&j, "events", '{');
    json_u64(&j, "large_allocs", st.large_allocs);
    json_u64(&j, "large_frees", st.large_frees);
    json_u64(&j, "remote_frees", st.remote_frees);
    json_u64(&j, "cross_node_frees", more.cross_node_frees);
    json_u64(&j, "purges", st.purges);
    json_u64(&j, "purged_bytes", st.purged_bytes);
    json_u64(&j, "thread_heaps", st.threads);
    json_u64(&j, "segments_abandoned", st.abandoned);
    json_u64(&j, "segments_adopted", st.reclaimed);
    json_close(&j, '}');
    json_close(&j, '}');
    json_raw(&j, "\n", 1);
    if (len) buf[j.pos < len ? j.pos : len - 1] = '\0';
    stats_leave();
    return j.pos;
}
