/*
 * prof.c — `numamalloc prof`: read the heap profiles the library writes
 * (NUMAMALLOC_PROF=1) and report them, or run a program with profiling on
 * and report its profile when it exits.
 *
 *   numamalloc prof report FILE [--top=N] [--alloc] [--collapsed] [--svg=OUT] [-o OUT]
 *   numamalloc prof [OPTIONS] [--] PROGRAM [ARGS]
 *
 * The file is the legacy gperftools text heap profile (pprof reads it),
 * with the NUMA data on lines starting with '#' that pprof skips:
 *
 *   heap profile: LIVE_OBJS: LIVE_BYTES [ ALLOC_OBJS: ALLOC_BYTES] @ heap_v2/RATE
 *   # numamalloc heap profile 1
 *   # pid, # command, # rank, # nodes N ID..., # sample_bytes, # time_ms,
 *   # sites N dropped M
 *   # site live_node O:B ... freed O:B cross_node_frees O:B mismatched O:B
 *   LIVE_OBJS: LIVE_BYTES [ ALLOC_OBJS: ALLOC_BYTES] @ ADDR ...   (innermost first)
 *   ...
 *   MAPPED_LIBRARIES:
 *   (the process's /proc/PID/maps)
 *
 * Every count is a raw sample count; a pair (objects, bytes) is estimated
 * as both times 1 / (1 - exp(-(bytes / objects) / RATE)), as pprof does
 * (scaleHeapSample); RATE <= 1 recorded every allocation.  The estimates
 * are rounded once per pair, and every total here is a sum of them, so the
 * table, the folded stacks and the flame graph add up to the same bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#define PROFILE_VERSION 1
#define MAX_NODES 1024

/* A raw sample count: blocks and their bytes. */
struct pair {
    uint64_t objs, bytes;
};

/* One allocation site (a call stack).  The raw pairs are as the file has
 * them; the est_ fields their estimates (est_nodes: live bytes per node in
 * the order of profile.node_ids). */
struct site {
    struct pair live, alloc, freed, cross, mismatched;
    struct pair *nodes;         /* NULL when the file has no "# site" line for it */
    size_t depth;
    uint64_t *frames;           /* return addresses, innermost first */
    const char **names;         /* their functions, filled by symbolize_sites */
    uint64_t est_live, est_live_objs, est_alloc, est_alloc_objs, est_freed, est_freed_objs;
    uint64_t est_cross, est_cross_objs, est_mismatched, est_mismatched_objs;
    uint64_t *est_nodes;
    size_t index;               /* its place in the file */
};

struct profile {
    const char *path;
    uint64_t rate;              /* heap_v2/RATE: the average sampling interval in bytes */
    int version;                /* 0: a gperftools profile without numamalloc's lines */
    long long pid, rank;        /* -1 when not given (rank: not an MPI/Slurm task) */
    char *command;
    int node_count;
    int *node_ids;
    uint64_t time_ms;
    bool has_time;
    long long sites_declared, dropped;   /* -1 when not given */
    size_t count;
    struct site *sites;
    const char *maps;           /* the MAPPED_LIBRARIES section */
    size_t maps_len;
    char *text;                 /* the file */
};

/* ---- reading a profile ----------------------------------------------------------------- */

/* A line being parsed: [at, end). */
struct cursor {
    const char *at, *end;
};

static void skip_spaces(struct cursor *c)
{
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t')) c->at++;
}

/* The literal `s` after optional spaces. */
static bool literal(struct cursor *c, const char *s)
{
    skip_spaces(c);
    size_t n = strlen(s);
    if ((size_t)(c->end - c->at) < n || memcmp(c->at, s, n) != 0) return false;
    c->at += n;
    return true;
}

/* A number after optional spaces: decimal, or hexadecimal after "0x". */
static bool number(struct cursor *c, uint64_t *out, bool hex)
{
    skip_spaces(c);
    if (hex && c->end - c->at > 2 && c->at[0] == '0' && (c->at[1] == 'x' || c->at[1] == 'X')) c->at += 2;
    unsigned base = hex ? 16 : 10;
    uint64_t v = 0;
    const char *start = c->at;
    for (; c->at < c->end; c->at++) {
        char ch = *c->at;
        unsigned d;
        if (ch >= '0' && ch <= '9') d = (unsigned)(ch - '0');
        else if (hex && (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') d = (unsigned)((ch | 0x20) - 'a' + 10);
        else break;
        if (v > (UINT64_MAX - d) / base) return false;
        v = v * base + d;
    }
    if (c->at == start) return false;
    *out = v;
    return true;
}

static bool signed_number(struct cursor *c, long long *out)
{
    skip_spaces(c);
    bool negative = c->at < c->end && *c->at == '-';
    if (negative) c->at++;
    uint64_t v;
    if (!number(c, &v, false) || v > (uint64_t)LLONG_MAX) return false;
    *out = negative ? -(long long)v : (long long)v;
    return true;
}

static bool at_end(struct cursor *c)
{
    skip_spaces(c);
    return c->at == c->end;
}

/* "OBJS:BYTES" */
static bool pair(struct cursor *c, struct pair *p)
{
    return number(c, &p->objs, false) && c->at < c->end && *c->at++ == ':' && number(c, &p->bytes, false);
}

/* "LIVE_OBJS: LIVE_BYTES [ ALLOC_OBJS: ALLOC_BYTES]" */
static bool counts(struct cursor *c, struct pair *live, struct pair *alloc)
{
    return number(c, &live->objs, false) && literal(c, ":") && number(c, &live->bytes, false) && literal(c, "[") &&
           number(c, &alloc->objs, false) && literal(c, ":") && number(c, &alloc->bytes, false) && literal(c, "]");
}

/* The numamalloc data of a site: "live_node O:B ... freed O:B
 * cross_node_frees O:B mismatched O:B", one live_node pair per node. */
static bool site_line(struct cursor *c, int node_count, struct site *s)
{
    if (!literal(c, "live_node")) return false;
    s->nodes = xcalloc((size_t)node_count, sizeof *s->nodes);
    for (int i = 0; i < node_count; i++)
        if (!pair(c, &s->nodes[i])) return false;
    return literal(c, "freed") && pair(c, &s->freed) && literal(c, "cross_node_frees") && pair(c, &s->cross) &&
           literal(c, "mismatched") && pair(c, &s->mismatched) && at_end(c);
}

/* The estimate of a raw pair (pprof's scaleHeapSample), rounded. */
static uint64_t estimate(struct pair p, uint64_t rate, uint64_t *objs)
{
    if (p.objs == 0 || p.bytes == 0 || rate <= 1) {
        *objs = p.objs;
        return p.bytes;
    }
    double average = (double)p.bytes / (double)p.objs;
    double scale = 1.0 / (1.0 - exp(-average / (double)rate));
    *objs = (uint64_t)llround((double)p.objs * scale);
    return (uint64_t)llround((double)p.bytes * scale);
}

static void estimate_site(struct site *s, int node_count, uint64_t rate)
{
    s->est_live = estimate(s->live, rate, &s->est_live_objs);
    s->est_alloc = estimate(s->alloc, rate, &s->est_alloc_objs);
    s->est_freed = estimate(s->freed, rate, &s->est_freed_objs);
    s->est_cross = estimate(s->cross, rate, &s->est_cross_objs);
    s->est_mismatched = estimate(s->mismatched, rate, &s->est_mismatched_objs);
    s->est_nodes = xcalloc((size_t)node_count, sizeof *s->est_nodes);
    uint64_t ignored;
    for (int i = 0; s->nodes && i < node_count; i++) s->est_nodes[i] = estimate(s->nodes[i], rate, &ignored);
}

/* Read and check the profile at `path`; NULL with the reason (one line,
 * naming the file) in `err` if it is no profile, or cut short. */
static struct profile *profile_read(const char *path, char *err, size_t err_len)
{
    struct profile *p = xcalloc(1, sizeof *p);
    p->path = path;
    p->pid = p->rank = p->sites_declared = p->dropped = -1;
    p->text = read_text(path);
    if (!p->text) {
        snprintf(err, err_len, "prof: %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t len = strlen(p->text);
    static const char magic[] = "heap profile:";
    if (strncmp(p->text, magic, sizeof magic - 1) != 0) {
        snprintf(err, err_len, "prof: %s: not a heap profile (it does not begin with 'heap profile:')", path);
        return NULL;
    }
    size_t cap = 0, line_no = 0;
    bool pending = false;       /* a "# site" line waits for its sample */
    struct site next = { 0 };
    bool maps_found = false;
    for (size_t at = 0; at < len;) {
        const char *line = p->text + at;
        const char *nl = memchr(line, '\n', len - at);
        if (!nl) {
            snprintf(err, err_len, "prof: %s: truncated: line %zu is cut short (no newline at the end)", path,
                     line_no + 1);
            return NULL;
        }
        at = (size_t)(nl - p->text) + 1;
        line_no++;
        struct cursor c = { line, nl };
        if (line_no == 1) {
            struct pair live, alloc;
            c.at += sizeof magic - 1;
            if (!counts(&c, &live, &alloc) || !literal(&c, "@") || !literal(&c, "heap_v2/") ||
                !number(&c, &p->rate, false) || !at_end(&c)) {
                snprintf(err, err_len, "prof: %s: line 1: not a heap_v2 profile header ('heap profile: N: N [ N: N] @ heap_v2/RATE')",
                         path);
                return NULL;
            }
            continue;
        }
        if (c.at == c.end) continue;
        if (strncmp(line, "MAPPED_LIBRARIES:", 17) == 0 && at_end(&(struct cursor){ line + 17, nl })) {
            p->maps = p->text + at;
            p->maps_len = len - at;
            maps_found = true;
            break;
        }
        if (*line == '#') {
            c.at++;
            uint64_t v;
            long long sv;
            bool ok = true;
            if (literal(&c, "numamalloc heap profile")) {
                ok = signed_number(&c, &sv) && at_end(&c);
                if (ok && sv != PROFILE_VERSION) {
                    snprintf(err, err_len, "prof: %s: numamalloc heap profile version %lld (this command reads version %d)",
                             path, sv, PROFILE_VERSION);
                    return NULL;
                }
                p->version = (int)sv;
            } else if (literal(&c, "pid ")) {
                ok = signed_number(&c, &p->pid) && at_end(&c);
            } else if (literal(&c, "rank ")) {
                ok = signed_number(&c, &p->rank) && at_end(&c);
            } else if (literal(&c, "command")) {
                skip_spaces(&c);
                free(p->command);
                p->command = strndup(c.at, (size_t)(c.end - c.at));
            } else if (literal(&c, "nodes ")) {
                ok = number(&c, &v, false) && v >= 1 && v <= MAX_NODES && !p->node_ids;
                if (ok) {
                    p->node_count = (int)v;
                    p->node_ids = xcalloc(v, sizeof *p->node_ids);
                    for (int i = 0; ok && i < p->node_count; i++) {
                        uint64_t id;
                        ok = number(&c, &id, false) && id < MAX_NODES;
                        p->node_ids[i] = (int)id;
                    }
                    ok = ok && at_end(&c);
                }
            } else if (literal(&c, "time_ms ")) {
                ok = number(&c, &p->time_ms, false) && at_end(&c);
                p->has_time = ok;
            } else if (literal(&c, "sites ")) {
                ok = signed_number(&c, &p->sites_declared) && literal(&c, "dropped") &&
                     signed_number(&c, &p->dropped) && at_end(&c);
            } else if (literal(&c, "site ")) {
                free(next.nodes);
                next = (struct site){ 0 };
                ok = p->node_ids && site_line(&c, p->node_count, &next);
                pending = ok;
            }
            /* Other comments (sample_bytes: the header's RATE again; lines a
             * later version may add) are skipped, as pprof does. */
            if (!ok) {
                struct cursor key = { line + 1, nl };
                skip_spaces(&key);
                int key_len = (int)strcspn(key.at, " \t\n");
                snprintf(err, err_len, "prof: %s: line %zu: malformed '# %.*s' line%s", path, line_no,
                         key_len > 40 ? 40 : key_len, key.at,
                         !p->node_ids && strncmp(key.at, "site ", 5) == 0 ? " (it comes before '# nodes')" : "");
                return NULL;
            }
            continue;
        }
        /* A sample line. */
        struct site s = pending ? next : (struct site){ 0 };
        pending = false;
        next = (struct site){ 0 };
        if (!counts(&c, &s.live, &s.alloc) || !literal(&c, "@")) {
            snprintf(err, err_len, "prof: %s: line %zu: not a sample line ('N: N [ N: N] @ ADDRESS...')", path, line_no);
            return NULL;
        }
        size_t frame_cap = 16;
        s.frames = xmalloc(frame_cap * sizeof *s.frames);
        while (!at_end(&c)) {
            uint64_t a;
            if (!number(&c, &a, true) || (c.at < c.end && *c.at != ' ' && *c.at != '\t')) {
                snprintf(err, err_len, "prof: %s: line %zu: bad address in the stack", path, line_no);
                return NULL;
            }
            if (s.depth == frame_cap) {
                s.frames = realloc(s.frames, (frame_cap *= 2) * sizeof *s.frames);
                if (!s.frames) fail(EXIT_FAILED, "out of memory");
            }
            s.frames[s.depth++] = a;
        }
        if (p->count == cap) {
            cap = cap ? cap * 2 : 64;
            p->sites = realloc(p->sites, cap * sizeof *p->sites);
            if (!p->sites) fail(EXIT_FAILED, "out of memory");
        }
        s.index = p->count;
        p->sites[p->count++] = s;
    }
    if (p->sites_declared >= 0 && (uint64_t)p->sites_declared > p->count) {
        snprintf(err, err_len, "prof: %s: truncated: %zu of the %lld sites it announces", path, p->count,
                 p->sites_declared);
        return NULL;
    }
    if (!maps_found) {
        snprintf(err, err_len, "prof: %s: no MAPPED_LIBRARIES section (truncated?): the process's mappings are "
                               "needed to name functions", path);
        return NULL;
    }
    bool any_mapping = false;
    for (size_t at = 0; at < p->maps_len && !any_mapping;) {
        const char *line = p->maps + at;
        const char *nl = memchr(line, '\n', p->maps_len - at);
        size_t n = nl ? (size_t)(nl - line) : p->maps_len - at;
        struct maps_line m;
        any_mapping = maps_line_parse(line, n, &m);
        at += n + 1;
    }
    if (!any_mapping && p->count > 0) {
        snprintf(err, err_len, "prof: %s: the MAPPED_LIBRARIES section holds no /proc/PID/maps line", path);
        return NULL;
    }
    for (size_t i = 0; i < p->count; i++) estimate_site(&p->sites[i], p->node_count, p->rate);
    return p;
}

static void symbolize_sites(struct profile *p)
{
    struct symbolizer *sym = symbolizer_new(p->maps, p->maps_len);
    for (size_t i = 0; i < p->count; i++) {
        struct site *s = &p->sites[i];
        s->names = xcalloc(s->depth, sizeof *s->names);
        for (size_t f = 0; f < s->depth; f++) {
            char buf[4200];
            /* A return address is just past its call: look up the call. */
            uint64_t a = s->frames[f] ? s->frames[f] - 1 : 0;
            const char *name = symbolize(sym, a, buf, sizeof buf);
            if (name == buf) {
                name = strdup(buf);
                if (!name) fail(EXIT_FAILED, "out of memory");
            }
            s->names[f] = name;
        }
    }
}

/* ---- the table ------------------------------------------------------------------------------ */

struct report_options {
    int top;
    bool alloc;                 /* rank by allocated bytes, not live */
    bool collapsed;
    const char *svg;
};

static uint64_t site_value(const struct site *s, bool alloc)
{
    return alloc ? s->est_alloc : s->est_live;
}

static bool by_alloc;
static int by_value(const void *a, const void *b)
{
    const struct site *x = *(const struct site *const *)a, *y = *(const struct site *const *)b;
    uint64_t vx = site_value(x, by_alloc), vy = site_value(y, by_alloc);
    if (vx != vy) return vx > vy ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static const struct site **sorted_sites(const struct profile *p, bool alloc)
{
    const struct site **order = xcalloc(p->count, sizeof *order);
    for (size_t i = 0; i < p->count; i++) order[i] = &p->sites[i];
    by_alloc = alloc;
    qsort(order, p->count, sizeof *order, by_value);
    return order;
}

/* Append `text` to the line in `buf` (used bytes `*used`, room for `width`
 * columns); false, leaving it as it was, if it does not fit. */
static bool append(char *buf, size_t *used, size_t width, const char *text)
{
    size_t n = strlen(text);
    if (*used + n > width) return false;
    memcpy(buf + *used, text, n + 1);
    *used += n;
    return true;
}

/* "innermost < caller < ..." within `width` columns, ending in " < ..." when
 * callers are left out. */
static void format_chain(char *buf, size_t width, const struct site *s)
{
    size_t used = 0;
    buf[0] = '\0';
    if (s->depth == 0) {
        append(buf, &used, width, "(no stack)");
        return;
    }
    for (size_t f = 0; f < s->depth; f++) {
        char part[4200];
        snprintf(part, sizeof part, "%s%s", f ? " < " : "", s->names[f]);
        if (append(buf, &used, width, part)) continue;
        if (f == 0) {   /* an innermost name longer than the line: cut it */
            snprintf(buf, width + 1, "%.*s...", (int)(width - 3), s->names[0]);
            return;
        }
        while (!append(buf, &used, width, " < ...")) {   /* make room for the mark */
            char *last = strrchr(buf, '<');
            if (!last || last == buf) break;
            used = (size_t)(last - buf) - 1;
            buf[used] = '\0';
        }
        return;
    }
}

/* "12M", "3.5K", "0": a size in few characters (`buf` of 32 bytes), one
 * word, for the many nodes of a "live by node" line; elsewhere sizes are
 * format_bytes's "12.0 MiB". */
static const char *compact_bytes(char *buf, uint64_t bytes)
{
    static const char units[] = "BKMGTP";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (bytes == 0) snprintf(buf, 32, "0");
    else if (u == 0) snprintf(buf, 32, "%" PRIu64 "B", bytes);
    else if (v < 9.95) snprintf(buf, 32, "%.1f%c", v, units[u]);
    else snprintf(buf, 32, "%.0f%c", v, units[u]);
    return buf;
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* `text` in at most `width` columns (bytes), "..." where it is cut (not
 * inside a UTF-8 character), control characters (a terminal's escapes,
 * from a profile's command line) as '?'. */
static void print_clipped(FILE *out, const char *text, size_t width)
{
    size_t n = strlen(text);
    bool cut = n > width;
    if (cut) {
        n = width > 3 ? width - 3 : 0;
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
    }
    if (cut) fputs("...", out);
}

static void print_table(FILE *out, const struct profile *p, const struct report_options *o)
{
    char a[32], b[32], c[32], d[32], e[32];
    const char *what = o->alloc ? "allocated" : "live";
    int used = fprintf(out, "numamalloc heap profile of pid %lld", p->pid);
    if (p->rank >= 0) used += fprintf(out, ", rank %lld", p->rank);
    used += fprintf(out, ": ");
    print_clipped(out, p->command ? p->command : "(command unknown)", used < 60 ? 80 - (size_t)used : 20);
    fputc('\n', out);
    const struct site **order = sorted_sites(p, o->alloc);
    size_t shown = 0;
    while (shown < p->count && shown < (size_t)o->top && site_value(order[shown], o->alloc) > 0) shown++;
    if (p->rate > 1)
        fprintf(out, "top %zu of %zu sites by %s bytes,\nestimated from samples every %s\n", shown,
                p->count, what, format_bytes(a, p->rate));
    else
        fprintf(out, "top %zu of %zu sites by %s bytes (every allocation recorded)\n", shown, p->count, what);
    if (p->dropped > 0)
        fprintf(out, "warning: %lld %s dropped (the library's site table was full):\n"
                     "their bytes are not here\n",
                p->dropped, plural((uint64_t)p->dropped, "site was", "sites were"));

    /* Up to two nodes get a column each; more are listed under the site. */
    bool node_columns = p->node_count >= 1 && p->node_count <= 2;
    fprintf(out, "\n  %2s %10s %8s", "#", "live", "blocks");
    for (int n = 0; node_columns && n < p->node_count; n++) {
        char head[16];
        snprintf(head, sizeof head, "node %d", p->node_ids[n]);
        fprintf(out, " %10s", head);
    }
    fprintf(out, " %10s %10s %10s\n", "allocated", "cross-node", "mismatched");
    for (size_t i = 0; i < shown; i++) {
        const struct site *s = order[i];
        fprintf(out, "  %2zu %10s %8" PRIu64, i + 1, format_bytes(a, s->est_live), s->est_live_objs);
        for (int n = 0; node_columns && n < p->node_count; n++)
            fprintf(out, " %10s", s->nodes ? format_bytes(b, s->est_nodes[n]) : "-");
        fprintf(out, " %10s %10s %10s\n", format_bytes(c, s->est_alloc), format_bytes(d, s->est_cross),
                format_bytes(e, s->est_mismatched));
        char chain[80];
        format_chain(chain, 80 - 6, s);
        fprintf(out, "     %s\n", chain);
        if (!node_columns && p->node_count > 2 && s->nodes) {
            /* "live by node 0:12M 1:3.0M ...", wrapped at 80 columns */
            static const char head[] = "     live by node ";
            struct wrap w;
            fputs(head, out);
            wrap_begin(&w, out, (int)strlen(head), (int)strlen(head), 80);
            for (int n = 0; n < p->node_count; n++) {
                char item[48];
                snprintf(item, sizeof item, "%d:%s", p->node_ids[n], compact_bytes(a, s->est_nodes[n]));
                wrap_word(&w, item, strlen(item));
            }
            fprintf(out, "\n");
        }
    }
    free(order);
    if (p->version)
        fprintf(out, "\ncross-node: freed by a thread on another node than the block's memory;\n"
                     "mismatched: live, its first page outside the nodes its policy names\n");

    struct site total = { 0 };
    uint64_t *node_total = xcalloc((size_t)p->node_count, sizeof *node_total);
    for (size_t i = 0; i < p->count; i++) {
        const struct site *s = &p->sites[i];
        total.est_live += s->est_live, total.est_live_objs += s->est_live_objs;
        total.est_alloc += s->est_alloc, total.est_alloc_objs += s->est_alloc_objs;
        total.est_freed += s->est_freed, total.est_freed_objs += s->est_freed_objs;
        total.est_cross += s->est_cross, total.est_cross_objs += s->est_cross_objs;
        total.est_mismatched += s->est_mismatched, total.est_mismatched_objs += s->est_mismatched_objs;
        for (int n = 0; n < p->node_count; n++) node_total[n] += s->est_nodes[n];
    }
    if (p->node_count > 0) {
        uint64_t sum = 0;
        for (int n = 0; n < p->node_count; n++) sum += node_total[n];
        fprintf(out, "\nlive bytes by node\n");
        for (int n = 0; n < p->node_count; n++)
            fprintf(out, "  node %-4d %12s %6.1f%%\n", p->node_ids[n], format_bytes(a, node_total[n]),
                    sum ? 100.0 * (double)node_total[n] / (double)sum : 0.0);
    }
    free(node_total);
    fprintf(out, "\ntotals%s\n", p->rate > 1 ? " (estimated)" : "");
    fprintf(out, "  live              %12s in %" PRIu64 " %s\n", format_bytes(a, total.est_live), total.est_live_objs,
            plural(total.est_live_objs, "block", "blocks"));
    fprintf(out, "  allocated         %12s in %" PRIu64 " %s\n", format_bytes(a, total.est_alloc),
            total.est_alloc_objs, plural(total.est_alloc_objs, "block", "blocks"));
    if (p->version) {
        fprintf(out, "  freed             %12s in %" PRIu64 " %s\n", format_bytes(a, total.est_freed),
                total.est_freed_objs, plural(total.est_freed_objs, "block", "blocks"));
        fprintf(out, "  cross-node frees  %12s in %" PRIu64 " %s\n",
                format_bytes(a, total.est_cross), total.est_cross_objs, plural(total.est_cross_objs, "block", "blocks"));
        fprintf(out, "  mismatched        %12s in %" PRIu64 " %s\n",
                format_bytes(a, total.est_mismatched), total.est_mismatched_objs,
                plural(total.est_mismatched_objs, "block", "blocks"));
    }
    fprintf(out, "\nprofile %s\n", p->path);
    fprintf(out, "  pid %lld, rank %s", p->pid, p->rank >= 0 ? "" : "none (not an MPI or Slurm task)");
    if (p->rank >= 0) fprintf(out, "%lld", p->rank);
    fprintf(out, "\n  command ");
    print_clipped(out, p->command ? p->command : "(unknown)", 80 - 10);
    fputc('\n', out);
    if (p->has_time) {
        time_t t = (time_t)(p->time_ms / 1000);
        struct tm tm;
        char when[64];
        if (localtime_r(&t, &tm) && strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm))
            fprintf(out, "  written %s\n", when);
    }
    if (p->rate > 1) fprintf(out, "  sampling one block every %s allocated on average (heap_v2/%" PRIu64 ")\n",
                             format_bytes(a, p->rate), p->rate);
    else fprintf(out, "  sampling: every allocation recorded (heap_v2/%" PRIu64 ")\n", p->rate);
    fprintf(out, "  %zu %s", p->count, plural(p->count, "site", "sites"));
    if (p->dropped >= 0) fprintf(out, ", %lld dropped", p->dropped);
    fprintf(out, "\n");
}

/* ---- folded stacks ---------------------------------------------------------------------------- */

static void print_collapsed(FILE *out, const struct profile *p, bool alloc)
{
    for (size_t i = 0; i < p->count; i++) {
        const struct site *s = &p->sites[i];
        uint64_t value = site_value(s, alloc);
        if (value == 0) continue;
        if (s->depth == 0) fputs("(no stack)", out);
        for (size_t f = s->depth; f-- > 0;) {
            /* ';' separates frames and the last space the value: neither may
             * be inside a name. */
            for (const char *c = s->names[f]; *c; c++) fputc(*c == ';' ? ':' : *c == '\n' ? ' ' : *c, out);
            if (f) fputc(';', out);
        }
        fprintf(out, " %" PRIu64 "\n", value);
    }
}

/* ---- the SVG flame graph ----------------------------------------------------------------------- */

/* A frame of the flame graph: the sites whose stacks start (outermost
 * first) with the same functions down to this one.  value: their bytes
 * (live or allocated); alloc and remote: their allocated bytes and the
 * part of those freed by another node or placed outside the policy. */
struct frame {
    const char *name;
    uint64_t value, alloc, remote;
    uint64_t *nodes;            /* live bytes per node */
    struct frame *children;     /* sorted by name once built */
    size_t child_count, child_cap;
};

static struct frame *frame_child(struct frame *f, const char *name, int node_count)
{
    for (size_t i = 0; i < f->child_count; i++)
        if (strcmp(f->children[i].name, name) == 0) return &f->children[i];
    if (f->child_count == f->child_cap) {
        f->child_cap = f->child_cap ? f->child_cap * 2 : 4;
        f->children = realloc(f->children, f->child_cap * sizeof *f->children);
        if (!f->children) fail(EXIT_FAILED, "out of memory");
    }
    struct frame *c = &f->children[f->child_count++];
    *c = (struct frame){ .name = name, .nodes = xcalloc((size_t)node_count, sizeof *c->nodes) };
    return c;
}

static void frame_add(struct frame *f, const struct site *s, uint64_t value, int node_count)
{
    f->value += value;
    f->alloc += s->est_alloc;
    f->remote += s->est_cross + s->est_mismatched;
    for (int n = 0; n < node_count; n++) f->nodes[n] += s->est_nodes[n];
}

static int frame_by_name(const void *a, const void *b)
{
    return strcmp(((const struct frame *)a)->name, ((const struct frame *)b)->name);
}

static void frame_sort(struct frame *f, int depth, int *max_depth, size_t *count)
{
    (*count)++;
    if (depth > *max_depth) *max_depth = depth;
    if (f->child_count > 1) qsort(f->children, f->child_count, sizeof *f->children, frame_by_name);
    for (size_t i = 0; i < f->child_count; i++) frame_sort(&f->children[i], depth + 1, max_depth, count);
}

/* Text for XML: &, <, >, " escaped, control characters and bytes that are
 * not UTF-8 replaced by '?', at most `max_chars` characters ("..." after
 * a cut; 0: no limit). */
static void xml_text(FILE *out, const char *s, size_t max_chars)
{
    size_t len = strlen(s), chars = 0;
    size_t total = 0;   /* characters in s */
    for (size_t i = 0; i < len; i++) total += ((unsigned char)s[i] & 0xc0) != 0x80;
    bool cut = max_chars && total > max_chars;
    size_t keep = cut ? (max_chars > 2 ? max_chars - 2 : 0) : total;
    for (size_t i = 0; i < len && chars < keep; chars++) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        bool valid = n > 0 && i + n <= len && (n == 1 || c >= 0xc2);
        for (size_t k = 1; valid && k < n; k++) valid = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (!valid) {
            fputc('?', out);
            i++;
            continue;
        }
        if (n > 1) fwrite(s + i, 1, n, out);
        else if (c == '&') fputs("&amp;", out);
        else if (c == '<') fputs("&lt;", out);
        else if (c == '>') fputs("&gt;", out);
        else if (c == '"') fputs("&quot;", out);
        else if (c < 0x20 || c == 0x7f) fputc('?', out);
        else fputc(c, out);
        i += n;
    }
    if (cut) fputs("..", out);
}

struct svg {
    FILE *out;
    const struct profile *p;
    double scale;               /* pixels per byte */
    double x0, bottom;          /* the left edge; the top of the bottom row */
    uint64_t total;
    const char *what;           /* "live" or "allocated" */
};

enum { SVG_WIDTH = 1200, ROW = 17, FONT = 12, MARGIN = 10 };
static const double GLYPH_WIDTH = 7.0;   /* a character of 12 px monospace, about */

/* Local (warm orange) to remote (blue-purple), by the share of the
 * allocated bytes that was freed from another node or is mismatched;
 * a little variation by name tells neighbours apart. */
static void frame_colour(const struct frame *f, char *buf, size_t len, bool root)
{
    if (root) {
        snprintf(buf, len, "rgb(200,200,200)");
        return;
    }
    double share = f->alloc ? (double)f->remote / (double)f->alloc : 0.0;
    if (share > 1) share = 1;
    unsigned h = 5381;
    for (const char *c = f->name; *c; c++) h = h * 33 + (unsigned char)*c;
    int jitter = f->name[0] ? (int)(h % 25) - 12 : 0;
    static const int local[3] = { 240, 150, 60 }, remote[3] = { 105, 85, 205 };
    int rgb[3];
    for (int k = 0; k < 3; k++) {
        int v = (int)lround(local[k] + (remote[k] - local[k]) * share) + jitter;
        rgb[k] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    snprintf(buf, len, "rgb(%d,%d,%d)", rgb[0], rgb[1], rgb[2]);
}

static void svg_frame(struct svg *g, const struct frame *f, double x, int depth)
{
    FILE *out = g->out;
    double w = (double)f->value * g->scale;
    double y = g->bottom - depth * ROW;
    char colour[32], a[32], b[32];
    frame_colour(f, colour, sizeof colour, depth == 0);
    double share = g->total ? 100.0 * (double)f->value / (double)g->total : 0;
    fprintf(out, "<g class=\"frame\"><title>");
    xml_text(out, f->name, 0);
    fprintf(out, "\n%s %s bytes (%.2f%%)", format_bytes(a, f->value), g->what, share);
    if (g->p->node_count > 0) {
        fprintf(out, "\nlive by node:");
        for (int n = 0; n < g->p->node_count; n++) fprintf(out, " %d: %s", g->p->node_ids[n], format_bytes(a, f->nodes[n]));
    }
    fprintf(out, "\ncross-node freed or mismatched: %s of %s allocated (%.1f%%)</title>", format_bytes(a, f->remote),
            format_bytes(b, f->alloc), f->alloc ? 100.0 * (double)f->remote / (double)f->alloc : 0.0);
    fprintf(out, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"%s\" rx=\"2\"/>", x, y, w, ROW - 1,
            colour);
    size_t chars = w > 6 ? (size_t)((w - 6) / GLYPH_WIDTH) : 0;
    if (chars >= 3) {
        fprintf(out, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + ROW - 5);
        xml_text(out, f->name, chars);
        fprintf(out, "</text>");
    }
    fprintf(out, "</g>\n");
    for (size_t i = 0; i < f->child_count; i++) {
        svg_frame(g, &f->children[i], x, depth + 1);
        x += (double)f->children[i].value * g->scale;
    }
}

static void write_svg(const char *path, const struct profile *p, bool alloc)
{
    struct frame root = { .name = "all", .nodes = xcalloc((size_t)p->node_count + 1, sizeof(uint64_t)) };
    for (size_t i = 0; i < p->count; i++) {
        const struct site *s = &p->sites[i];
        uint64_t value = site_value(s, alloc);
        if (value == 0) continue;
        struct frame *f = &root;
        frame_add(f, s, value, p->node_count);
        if (s->depth == 0) frame_add(frame_child(f, "(no stack)", p->node_count), s, value, p->node_count);
        for (size_t k = s->depth; k-- > 0;) {
            f = frame_child(f, s->names[k], p->node_count);
            frame_add(f, s, value, p->node_count);
        }
    }
    int max_depth = 0;
    size_t frames = 0;
    frame_sort(&root, 0, &max_depth, &frames);

    FILE *out = strcmp(path, "-") == 0 ? stdout : fopen(path, "we");
    if (!out) fail(EXIT_FAILED, "prof: cannot write %s: %s", path, strerror(errno));
    const int top = 66, legend = 46;
    int height = top + (max_depth + 1) * ROW + legend;
    struct svg g = {
        .out = out, .p = p, .total = root.value, .x0 = MARGIN, .what = alloc ? "allocated" : "live",
        .scale = root.value ? (double)(SVG_WIDTH - 2 * MARGIN) / (double)root.value : 0,
        .bottom = top + max_depth * ROW,
    };
    char a[32];
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\">\n",
            SVG_WIDTH, height, SVG_WIDTH, height);
    fprintf(out, "<style>text { font-family: monospace; font-size: %dpx; fill: #000; } "
                 ".title { font-size: 17px; font-family: sans-serif; } "
                 ".note { font-family: sans-serif; fill: #333; } g.frame:hover rect { stroke: #000; stroke-width: 0.7; }"
                 "</style>\n", FONT);
    fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", SVG_WIDTH, height);
    fprintf(out, "<text class=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">numamalloc heap profile: %s bytes, "
                 "pid %lld",
            SVG_WIDTH / 2, g.what, p->pid);
    if (p->rank >= 0) fprintf(out, ", rank %lld", p->rank);
    fprintf(out, "</text>\n<text class=\"note\" x=\"%d\" y=\"44\" text-anchor=\"middle\">", SVG_WIDTH / 2);
    xml_text(out, p->command ? p->command : "(command unknown)", 120);
    fprintf(out, "</text>\n<text class=\"note\" x=\"%d\" y=\"60\" text-anchor=\"middle\">width: %s bytes%s, "
                 "%s in all; callers below, allocating functions on top</text>\n",
            SVG_WIDTH / 2, g.what, p->rate > 1 ? " (estimated from samples)" : "", format_bytes(a, root.value));
    if (root.value == 0) {
        fprintf(out, "<text class=\"note\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">no %s bytes in this profile</text>\n",
                SVG_WIDTH / 2, top + ROW, g.what);
    } else {
        svg_frame(&g, &root, g.x0, 0);
    }
    /* The legend: the colour scale from local to remote. */
    int ly = top + (max_depth + 1) * ROW + 14;
    fprintf(out, "<text class=\"note\" x=\"%d\" y=\"%d\">colour: share of a frame's allocated bytes freed by a "
                 "thread on another node (cross-node frees) or placed outside its policy's nodes (mismatched)</text>\n",
            MARGIN, ly);
    fprintf(out, "<text class=\"note\" x=\"%d\" y=\"%d\">0%% (local)</text>\n", MARGIN, ly + 20);
    for (int step = 0; step <= 10; step++) {   /* the scale in steps of 10% */
        char colour[32];
        struct frame sample = { .name = "", .alloc = 10, .remote = (uint64_t)step };
        frame_colour(&sample, colour, sizeof colour, false);
        fprintf(out, "<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"18\" height=\"12\" fill=\"%s\"/>\n",
                MARGIN + 75 + step * 18, ly + 10, colour);
    }
    fprintf(out, "<text class=\"note\" x=\"%d\" y=\"%d\">100%% (remote)</text>\n", MARGIN + 75 + 11 * 18 + 6, ly + 20);
    fprintf(out, "</svg>\n");
    if (fflush(out) != 0 || ferror(out) || (out != stdout && fclose(out) != 0))
        fail(EXIT_FAILED, "prof: cannot write %s: %s", path, strerror(errno));
}

/* ---- the commands -------------------------------------------------------------------------------- */

enum { OPT_TOP = 512, OPT_ALLOC, OPT_COLLAPSED, OPT_SVG, OPT_SAMPLE };

static bool report_option(struct report_options *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_TOP: {
        char *end;
        errno = 0;
        long n = strtol(arg, &end, 10);
        if (end == arg || *end || errno || n < 1 || n > INT_MAX) fail(EXIT_USAGE, "prof: --top=%s: not a number of sites (1 or more)", arg);
        o->top = (int)n;
        return true;
    }
    case OPT_ALLOC: o->alloc = true; return true;
    case OPT_COLLAPSED: o->collapsed = true; return true;
    case OPT_SVG:
        if (!*arg) fail(EXIT_USAGE, "prof: --svg needs a file name");
        o->svg = arg;
        return true;
    default: return false;
    }
}

#define REPORT_LONG_OPTIONS                                    \
    { "top", required_argument, NULL, OPT_TOP },               \
    { "alloc", no_argument, NULL, OPT_ALLOC },                 \
    { "collapsed", no_argument, NULL, OPT_COLLAPSED },         \
    { "svg", required_argument, NULL, OPT_SVG }

static void report(FILE *out, struct profile *p, const struct report_options *o)
{
    symbolize_sites(p);
    if (o->svg) write_svg(o->svg, p, o->alloc);
    if (o->collapsed) print_collapsed(out, p, o->alloc);
    else print_table(out, p, o);
}

static int prof_report(int argc, char **argv)
{
    static const struct option options[] = {
        REPORT_LONG_OPTIONS,
        { "output", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct report_options o = { .top = 10 };
    const char *output = NULL;
    int opt;
    /* Options may come before or after FILE. */
    while ((opt = getopt_long(argc, argv, ":o:", options, NULL)) != -1) {
        if (report_option(&o, opt, optarg)) continue;
        switch (opt) {
        case 'o': output = optarg; break;
        case OPT_HELP: command_help("prof");
        default: bad_option("prof report", opt, argv);
        }
    }
    if (optind >= argc) fail(EXIT_USAGE, "prof report: no profile file given (numamalloc prof report FILE)");
    if (argc - optind > 1) fail(EXIT_USAGE, "prof report: give one profile file, not %d", argc - optind);
    char err[4400];
    struct profile *p = profile_read(argv[optind], err, sizeof err);
    if (!p) fail(EXIT_FAILED, "%s", err);
    FILE *out = stdout;
    if (output && strcmp(output, "-") != 0 && !(out = fopen(output, "we")))
        fail(EXIT_FAILED, "prof: cannot write %s: %s", output, strerror(errno));
    if (o.svg && output && strcmp(o.svg, output) == 0 && strcmp(output, "-") != 0)
        fail(EXIT_USAGE, "prof report: --svg and -o name the same file");
    report(out, p, &o);
    if (fflush(out) != 0 || ferror(out) || (out != stdout && fclose(out) != 0))
        fail(EXIT_FAILED, "prof: cannot write the report: %s", strerror(errno));
    finish();
}

/* A size as the library reads it: digits, then K, M, G or T (powers of
 * 1024), optionally followed by "B" or "iB". */
static bool valid_size(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0) return false;
    const char *unit = s + n;
    if (!*unit) return true;
    if (!strchr("kKmMgGtT", *unit)) return false;
    unit++;
    return !*unit || strcmp(unit, "B") == 0 || strcmp(unit, "b") == 0 || strcmp(unit, "iB") == 0;
}

/* The profile files of a run: the glob of the pattern with %p, %r and %n
 * as '*' (the rest escaped). */
static void pattern_glob(const char *pattern, glob_t *g)
{
    size_t len = strlen(pattern);
    char *text = xmalloc(2 * len + 1), *w = text;
    for (const char *c = pattern; *c; c++) {
        if (c[0] == '%' && (c[1] == 'p' || c[1] == 'r' || c[1] == 'n')) {
            *w++ = '*';
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            *w++ = '%';
            c++;
        } else {
            if (strchr("*?[\\", *c)) *w++ = '\\';
            *w++ = *c;
        }
    }
    *w = '\0';
    memset(g, 0, sizeof *g);
    int rc = glob(text, 0, NULL, g);
    if (rc != 0 && rc != GLOB_NOMATCH) fail(EXIT_FAILED, "prof: cannot list %s: %s", text, strerror(errno));
    free(text);
}

struct file_state {
    char *path;
    struct stat st;
};

static bool unchanged(const struct file_state *before, size_t n, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(before[i].path, path) != 0) continue;
        return before[i].st.st_ino == st.st_ino && before[i].st.st_size == st.st_size &&
               before[i].st.st_mtim.tv_sec == st.st_mtim.tv_sec && before[i].st.st_mtim.tv_nsec == st.st_mtim.tv_nsec;
    }
    return false;
}

struct other {
    struct profile *profile;
    uint64_t live;
};

static int by_live(const void *a, const void *b)
{
    const struct other *x = a, *y = b;
    if (x->live != y->live) return x->live > y->live ? -1 : 1;
    return strcmp(x->profile->path, y->profile->path);
}

static int prof_run(int argc, char **argv)
{
    static const struct option options[] = {
        LAUNCH_LONG_OPTIONS,
        REPORT_LONG_OPTIONS,
        { "output", required_argument, NULL, 'o' },
        { "sample", required_argument, NULL, OPT_SAMPLE },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct launch l = { .command = "prof" };
    struct report_options o = { .top = 10 };
    const char *pattern = "numamalloc.%p.heap", *sample = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "+:o:" LAUNCH_SHORT_OPTIONS, options, NULL)) != -1) {
        if (launch_option(&l, opt, optarg) || report_option(&o, opt, optarg)) continue;
        switch (opt) {
        case 'o':
            if (!*optarg) fail(EXIT_USAGE, "prof: -o needs a file name pattern");
            pattern = optarg;
            break;
        case OPT_SAMPLE:
            if (!valid_size(optarg)) fail(EXIT_USAGE, "prof: --sample=%s: not a size (bytes, or with K, M, G or T)", optarg);
            sample = optarg;
            break;
        case OPT_HELP: command_help("prof");
        default: bad_option("prof", opt, argv);
        }
    }
    if (optind >= argc) fail(EXIT_USAGE, "prof: no program given (numamalloc prof [OPTIONS] -- PROGRAM [ARGS])");
    if (o.collapsed) fail(EXIT_USAGE, "prof: --collapsed is for prof report FILE");
    launch_check(&l);

    /* An absolute pattern: the program may change directory. */
    char *full;
    if (pattern[0] == '/') {
        full = strdup(pattern);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) fail(EXIT_FAILED, "prof: cannot get the current directory: %s", strerror(errno));
        if (asprintf(&full, "%s/%s", cwd, pattern) < 0) full = NULL;
    }
    if (!full) fail(EXIT_FAILED, "out of memory");
    glob_t before;
    pattern_glob(full, &before);
    struct file_state *states = xcalloc(before.gl_pathc, sizeof *states);
    size_t state_count = 0;
    for (size_t i = 0; i < before.gl_pathc; i++)
        if (stat(before.gl_pathv[i], &states[state_count].st) == 0) states[state_count++].path = before.gl_pathv[i];

    launch_environment(&l);
    launch_warn_unpreloadable(&l, argv[optind]);
    if (setenv("NUMAMALLOC_PROF", "1", 1) != 0 || setenv("NUMAMALLOC_PROF_FILE", full, 1) != 0 ||
        (sample && setenv("NUMAMALLOC_PROF_SAMPLE", sample, 1) != 0))
        fail(EXIT_FAILED, "prof: setenv: %s", strerror(errno));

    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    pid_t pid = launch_start(argv + optind, -1);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}

    /* The program's own profile is reported; others (its children that
     * ran with the library) are listed. */
    glob_t after;
    pattern_glob(full, &after);
    FILE *out = stderr;
    struct profile *own = NULL;
    struct other *list = xcalloc(after.gl_pathc, sizeof *list);   /* the others */
    size_t n = 0;
    char msg[4400];
    for (size_t i = 0; i < after.gl_pathc; i++) {
        const char *path = after.gl_pathv[i];
        if (unchanged(states, state_count, path)) continue;
        struct profile *p = profile_read(path, msg, sizeof msg);
        if (!p) {
            fprintf(out, "numamalloc: %s\n", msg);
            continue;
        }
        if (p->pid == pid && !own) {
            own = p;
            continue;
        }
        list[n].profile = p;
        for (size_t k = 0; k < p->count; k++) list[n].live += p->sites[k].est_live;
        n++;
    }
    if (own) {
        report(out, own, &o);
    } else {
        fprintf(out, "numamalloc: prof: %s wrote no heap profile %s (a program that ends by _exit() or a signal, "
                     "and a static or set-user-ID one, writes none)\n",
                argv[optind], full);
    }
    if (n) {
        /* The largest first, at most OTHERS_SHOWN of them. */
        enum { OTHERS_SHOWN = 10 };
        qsort(list, n, sizeof *list, by_live);
        fprintf(out, "\nother processes of the run wrote %zu %s (numamalloc prof report FILE):\n", n,
                plural(n, "profile", "profiles"));
        for (size_t i = 0; i < n && i < OTHERS_SHOWN; i++) {
            char a[32];
            const struct profile *p = list[i].profile;
            int used = fprintf(out, "  %s: %s live, pid %lld, ", p->path, format_bytes(a, list[i].live), p->pid);
            print_clipped(out, p->command ? p->command : "?", used < 60 ? 80 - (size_t)used : 20);
            fputc('\n', out);
        }
        if (n > OTHERS_SHOWN) fprintf(out, "  and %zu more with less live memory\n", n - OTHERS_SHOWN);
    }
    if (fflush(out) != 0 || ferror(out)) fail(EXIT_FAILED, "prof: cannot write the report: %s", strerror(errno));
    return exit_status_of(status);
}

int cmd_prof(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "report") == 0) return prof_report(argc - 1, argv + 1);
    return prof_run(argc, argv);
}
