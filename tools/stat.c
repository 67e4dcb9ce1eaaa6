/*
 * stat.c — `numamalloc stat [OPTIONS] -- PROGRAM [ARGS]`: run a program with
 * the library preloaded and NUMAMALLOC_STATS=1 (=json with --json, whose
 * report then holds the library's JSON objects), and report what the run did:
 * the system's NUMA counters from /proc/vmstat, the same per node
 * (nodeN/numastat), free memory per node, before and after, and the
 * statistics numamalloc printed at the program's exit.
 *
 * Those statistics go to the program's standard error, so that is a pipe
 * through this command: each block from the line "numamalloc statistics" to
 * the last line indented by two spaces (or "events"), and each line that
 * starts as the library's JSON object does, is kept for the report;
 * everything else is passed on to our standard error as it comes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "numamalloc.h"
#include "tool.h"

#define STATS_HEADER "numamalloc statistics"
#define STATS_JSON_START "{\"numamalloc\":\""   /* a line of NUMAMALLOC_STATS=json */

/* The counters of /proc/vmstat, and their names in nodeN/numastat. */
static const struct {
    const char *vmstat, *numastat;
} counters[] = {
    { "numa_hit", "numa_hit" },
    { "numa_miss", "numa_miss" },
    { "numa_foreign", "numa_foreign" },
    { "numa_local", "local_node" },
    { "numa_other", "other_node" },
    { "numa_interleave", "interleave_hit" },
};
#define COUNTER_COUNT (sizeof counters / sizeof counters[0])

struct sample {
    bool have[COUNTER_COUNT];
    uint64_t value[COUNTER_COUNT];
};

struct node_sample {
    struct sample counts;       /* nodeN/numastat */
    uint64_t free;
};

struct snapshot {
    struct sample system;       /* /proc/vmstat */
    struct node_sample *nodes;  /* in the order of nm_node_ids */
};

/* The value after "NAME " on a line of `text` (/proc/vmstat, numastat). */
static bool find_counter(const char *text, const char *name, uint64_t *out)
{
    size_t len = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            *out = strtoull(line + len + 1, NULL, 10);
            return true;
        }
    }
    return false;
}

static void sample_file(struct sample *s, const char *path, bool per_node)
{
    char *text = read_text(path);
    for (size_t c = 0; c < COUNTER_COUNT; c++) {
        const char *name = per_node ? counters[c].numastat : counters[c].vmstat;
        s->have[c] = text && find_counter(text, name, &s->value[c]);
    }
    free(text);
}

static void take_snapshot(struct snapshot *s, const int *ids, int count)
{
    s->nodes = calloc((size_t)count + 1, sizeof *s->nodes);
    if (!s->nodes) fail(EXIT_FAILED, "out of memory");
    sample_file(&s->system, "/proc/vmstat", false);
    for (int i = 0; i < count; i++) {
        char path[4096];
        uint64_t total;
        snprintf(path, sizeof path, "%s/devices/system/node/node%d/numastat", sysfs_root(), ids[i]);
        sample_file(&s->nodes[i].counts, path, true);
        nm_node_memory(ids[i], &total, &s->nodes[i].free);
    }
}

/* ---- the program's standard error ------------------------------------------------ */

struct blocks {
    int count;
    char **text;                /* each block, lines ending in '\n' */
};

struct filter {
    char *line;                 /* the line being read (no '\n' yet) */
    size_t len, cap;
    bool passing;               /* part of this line was already passed on */
    char *block;                /* the statistics block being read, or NULL */
    size_t block_len;
    struct blocks *out;
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;     /* our stderr is gone: drop the program's output */
        p += w;
        n -= (size_t)w;
    }
}

static void block_append(struct filter *f, const char *line, size_t len)
{
    f->block = realloc(f->block, f->block_len + len + 2);
    if (!f->block) fail(EXIT_FAILED, "out of memory");
    memcpy(f->block + f->block_len, line, len);
    f->block_len += len;
    f->block[f->block_len++] = '\n';
    f->block[f->block_len] = '\0';
}

static void block_end(struct filter *f)
{
    if (!f->block) return;
    struct blocks *b = f->out;
    b->text = realloc(b->text, (size_t)(b->count + 1) * sizeof *b->text);
    if (!b->text) fail(EXIT_FAILED, "out of memory");
    b->text[b->count++] = f->block;
    f->block = NULL;
    f->block_len = 0;
}

static bool in_block(const char *line, size_t len)
{
    return (len >= 2 && line[0] == ' ' && line[1] == ' ') || (len == 6 && memcmp(line, "events", 6) == 0);
}

/* Whether the `len` bytes at `line` are one whole JSON object: braces and
 * brackets balanced outside strings, nothing after the last one.  (A line
 * of the program's own that starts as the library's does, or one cut
 * short, is passed on as output, not pasted into the report.) */
static bool one_json_object(const char *line, size_t len)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1 == len;
            if (depth < 0) return false;
        } else if ((unsigned char)c < 0x20) {
            return false;
        }
    }
    return false;
}

/* A whole line (without its '\n'): keep it in the block or pass it on. */
static void filter_line(struct filter *f, const char *line, size_t len)
{
    if (f->block && in_block(line, len)) {
        block_append(f, line, len);
        return;
    }
    block_end(f);
    if (len > strlen(STATS_JSON_START) && memcmp(line, STATS_JSON_START, strlen(STATS_JSON_START)) == 0 &&
        one_json_object(line, len)) {
        f->block = calloc(1, 1);   /* the whole object is on this line */
        if (!f->block) fail(EXIT_FAILED, "out of memory");
        block_append(f, line, len);
        block_end(f);
        return;
    }
    if (len == strlen(STATS_HEADER) && memcmp(line, STATS_HEADER, len) == 0) {
        f->block = calloc(1, 1);
        if (!f->block) fail(EXIT_FAILED, "out of memory");
        block_append(f, line, len);
        return;
    }
    write_all(STDERR_FILENO, line, len);
    write_all(STDERR_FILENO, "\n", 1);
}

/* Whether the start of a line may still become a statistics line. */
static bool may_be_statistics(const struct filter *f)
{
    if (f->block) return true;
    if (f->len <= strlen(STATS_HEADER) && memcmp(f->line, STATS_HEADER, f->len) == 0) return true;
    size_t start = f->len < strlen(STATS_JSON_START) ? f->len : strlen(STATS_JSON_START);
    return memcmp(f->line, STATS_JSON_START, start) == 0;
}

static void filter_data(struct filter *f, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            if (f->passing) write_all(STDERR_FILENO, "\n", 1);
            else filter_line(f, f->line, f->len);
            f->len = 0;
            f->passing = false;
            continue;
        }
        if (f->passing) {
            size_t run = 1;
            while (i + run < n && data[i + run] != '\n') run++;
            write_all(STDERR_FILENO, data + i, run);
            i += run - 1;
            continue;
        }
        if (f->len + 1 >= f->cap) {
            f->cap = f->cap ? f->cap * 2 : 256;
            f->line = realloc(f->line, f->cap);
            if (!f->line) fail(EXIT_FAILED, "out of memory");
        }
        f->line[f->len++] = data[i];
    }
    /* A line that cannot be statistics is passed on before its '\n' comes
     * (a prompt, progress output). */
    if (f->len && !f->passing && !may_be_statistics(f)) {
        write_all(STDERR_FILENO, f->line, f->len);
        f->len = 0;
        f->passing = true;
    }
}

static void filter_end(struct filter *f)
{
    if (f->len && !f->passing) {
        if (f->block && in_block(f->line, f->len)) {
            block_append(f, f->line, f->len);
        } else {
            block_end(f);
            write_all(STDERR_FILENO, f->line, f->len);
        }
    }
    block_end(f);
    free(f->line);
}

/* ---- running the program -------------------------------------------------------------- */

struct outcome {
    int status;                 /* from wait4 */
    struct rusage usage;
    double seconds;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Pass the program's stderr on until it ends, and wait for the program.
 * Descendants may keep the pipe open after it exits: then wait at most a
 * second of silence. */
static void follow(pid_t pid, int err_fd, struct filter *f, struct outcome *o, double t0)
{
    bool reaped = false;
    double quiet_since = 0;
    char buf[65536];
    for (;;) {
        struct pollfd p = { .fd = err_fd, .events = POLLIN };
        int ready = poll(&p, 1, 100);
        if (ready > 0) {
            ssize_t n = read(err_fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            filter_data(f, buf, (size_t)n);
            quiet_since = now();
            continue;
        }
        if (ready < 0 && errno != EINTR) break;
        if (!reaped) {
            pid_t w = wait4(pid, &o->status, WNOHANG, &o->usage);
            if (w == pid) {
                reaped = true;
                quiet_since = now();
                o->seconds = quiet_since - t0;
            }
        } else if (now() - quiet_since >= 1.0) {
            break;
        }
    }
    close(err_fd);
    filter_end(f);
    if (reaped) return;
    while (wait4(pid, &o->status, 0, &o->usage) < 0 && errno == EINTR) {}
    o->seconds = now() - t0;
}

/* ---- the report ------------------------------------------------------------------------- */

struct report {
    char **argv;
    int count;
    int *ids;
    struct snapshot before, after;
    struct outcome outcome;
    struct blocks blocks;
};

static void print_text(FILE *out, const struct report *r)
{
    char a[32];
    const struct outcome *o = &r->outcome;
    fprintf(out, "numamalloc stat:");
    for (char **arg = r->argv; *arg; arg++) fprintf(out, " %s", *arg);
    fprintf(out, "\n");
    if (WIFSIGNALED(o->status)) {
        fprintf(out, "  killed by signal %d (%s)", WTERMSIG(o->status), strsignal(WTERMSIG(o->status)));
    } else {
        fprintf(out, "  exit status %d", exit_status_of(o->status));
    }
    fprintf(out, ", %.3f s elapsed, %.3f s user, %.3f s system, max RSS %s\n", o->seconds,
            (double)o->usage.ru_utime.tv_sec + (double)o->usage.ru_utime.tv_usec / 1e6,
            (double)o->usage.ru_stime.tv_sec + (double)o->usage.ru_stime.tv_usec / 1e6,
            format_bytes(a, (uint64_t)o->usage.ru_maxrss * 1024));

    fprintf(out, "\nsystem NUMA counters (/proc/vmstat, all processes)\n");
    fprintf(out, "  %-16s %16s %16s %12s\n", "counter", "before", "after", "delta");
    for (size_t k = 0; k < COUNTER_COUNT; k++) {
        const struct sample *x = &r->before.system, *y = &r->after.system;
        if (!x->have[k] || !y->have[k]) {
            fprintf(out, "  %-16s %16s %16s %12s\n", counters[k].vmstat, "-", "-", "-");
            continue;
        }
        fprintf(out, "  %-16s %16" PRIu64 " %16" PRIu64 " %12" PRId64 "\n", counters[k].vmstat, x->value[k],
                y->value[k], (int64_t)(y->value[k] - x->value[k]));
    }

    /* Per node: one column per node, so that eight nodes still fit. */
    fprintf(out, "\nper node during the run (nodeN/numastat deltas; free memory)\n");
    fprintf(out, "  %-16s", "node");
    for (int i = 0; i < r->count; i++) fprintf(out, " %12d", r->ids[i]);
    fprintf(out, "\n");
    for (size_t k = 0; k < COUNTER_COUNT; k++) {
        fprintf(out, "  %-16s", counters[k].vmstat);
        for (int i = 0; i < r->count; i++) {
            const struct sample *x = &r->before.nodes[i].counts, *y = &r->after.nodes[i].counts;
            if (x->have[k] && y->have[k]) fprintf(out, " %12" PRId64, (int64_t)(y->value[k] - x->value[k]));
            else fprintf(out, " %12s", "-");
        }
        fprintf(out, "\n");
    }
    fprintf(out, "  %-16s", "free before");
    for (int i = 0; i < r->count; i++) fprintf(out, " %12s", format_bytes(a, r->before.nodes[i].free));
    fprintf(out, "\n  %-16s", "free after");
    for (int i = 0; i < r->count; i++) fprintf(out, " %12s", format_bytes(a, r->after.nodes[i].free));
    fprintf(out, "\n  %-16s", "free change");
    for (int i = 0; i < r->count; i++) {
        fprintf(out, " %12s", format_bytes_signed(a, (int64_t)(r->after.nodes[i].free - r->before.nodes[i].free)));
    }
    fprintf(out, "\n");

    fprintf(out, "\n");
    if (r->blocks.count == 0) {
        fprintf(out, "numamalloc statistics: none (the program did not use numamalloc's malloc or\n"
                     "did not end through exit(): _exit(), a signal, and static or set-user-ID\n"
                     "programs leave none)\n");
    }
    for (int i = 0; i < r->blocks.count; i++) {
        if (r->blocks.count > 1) fprintf(out, "process %d of %d that used numamalloc, in exit order:\n", i + 1, r->blocks.count);
        fputs(r->blocks.text[i], out);
    }
}

static void print_json(FILE *out, const struct report *r)
{
    struct json j;
    const struct outcome *o = &r->outcome;
    json_begin(&j, out);
    json_open(&j, NULL, '{');
    json_open_inline(&j, "command", '[');
    for (char **arg = r->argv; *arg; arg++) json_string(&j, NULL, *arg);
    json_close(&j, '[');
    json_int(&j, "exit_status", exit_status_of(o->status));
    if (WIFSIGNALED(o->status)) json_int(&j, "signal", WTERMSIG(o->status));
    else json_null(&j, "signal");
    json_double(&j, "elapsed_s", o->seconds);
    json_double(&j, "user_s", (double)o->usage.ru_utime.tv_sec + (double)o->usage.ru_utime.tv_usec / 1e6);
    json_double(&j, "system_s", (double)o->usage.ru_stime.tv_sec + (double)o->usage.ru_stime.tv_usec / 1e6);
    json_uint(&j, "max_rss_bytes", (uint64_t)o->usage.ru_maxrss * 1024);
    json_open(&j, "vmstat", '{');
    for (size_t k = 0; k < COUNTER_COUNT; k++) {
        const struct sample *x = &r->before.system, *y = &r->after.system;
        if (!x->have[k] || !y->have[k]) {
            json_null(&j, counters[k].vmstat);
            continue;
        }
        json_open_inline(&j, counters[k].vmstat, '{');
        json_uint(&j, "before", x->value[k]);
        json_uint(&j, "after", y->value[k]);
        json_int(&j, "delta", (int64_t)(y->value[k] - x->value[k]));
        json_close(&j, '{');
    }
    json_close(&j, '{');
    json_open(&j, "nodes", '[');
    for (int i = 0; i < r->count; i++) {
        const struct node_sample *x = &r->before.nodes[i], *y = &r->after.nodes[i];
        json_open(&j, NULL, '{');
        json_int(&j, "node", r->ids[i]);
        json_uint(&j, "free_before_bytes", x->free);
        json_uint(&j, "free_after_bytes", y->free);
        json_open_inline(&j, "deltas", '{');
        for (size_t k = 0; k < COUNTER_COUNT; k++) {
            if (x->counts.have[k] && y->counts.have[k]) {
                json_int(&j, counters[k].vmstat, (int64_t)(y->counts.value[k] - x->counts.value[k]));
            } else {
                json_null(&j, counters[k].vmstat);
            }
        }
        json_close(&j, '{');
        json_close(&j, '{');
    }
    json_close(&j, '[');
    /* The library's own JSON objects (NUMAMALLOC_STATS=json), one per
     * process that used it, in exit order. */
    json_open(&j, "numamalloc_statistics", '[');
    for (int i = 0; i < r->blocks.count; i++) json_raw(&j, NULL, r->blocks.text[i]);
    json_close(&j, '[');
    json_close(&j, '{');
    json_end(&j);
}

int cmd_stat(int argc, char **argv)
{
    static const struct option options[] = {
        LAUNCH_LONG_OPTIONS,
        { "json", no_argument, NULL, OPT_JSON },
        { "output", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct launch l = { .command = "stat", .stats = true };
    bool json = false;
    const char *output = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "+:o:" LAUNCH_SHORT_OPTIONS, options, NULL)) != -1) {
        if (launch_option(&l, opt, optarg)) continue;
        switch (opt) {
        case OPT_JSON: json = true; break;
        case 'o': output = optarg; break;
        case OPT_HELP: command_help("stat");
        default: bad_option("stat", opt, argv);
        }
    }
    if (optind >= argc) fail(EXIT_USAGE, "stat: no program given (numamalloc stat [OPTIONS] -- PROGRAM [ARGS])");
    launch_check(&l);
    FILE *out = stderr;
    if (output && strcmp(output, "-") == 0) out = stdout;
    else if (output && !(out = fopen(output, "we"))) fail(EXIT_FAILED, "stat: cannot write %s: %s", output, strerror(errno));

    struct report r = { .argv = argv + optind };
    r.count = nm_node_count();
    r.ids = calloc((size_t)r.count + 1, sizeof *r.ids);
    if (!r.ids) fail(EXIT_FAILED, "out of memory");
    nm_node_ids(r.ids, r.count);
    struct filter f = { .out = &r.blocks };

    /* The environment is set here and inherited by the child; our own
     * allocator read its options long ago. */
    launch_environment(&l);
    launch_warn_unpreloadable(&l, argv[optind]);
    unsetenv("NUMAMALLOC_STATS_FILE");   /* the statistics must come through stderr */
    if (json && setenv("NUMAMALLOC_STATS", "json", 1) != 0) fail(EXIT_FAILED, "stat: setenv: %s", strerror(errno));
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    take_snapshot(&r.before, r.ids, r.count);
    double t0 = now();
    /* The program's stderr into a pipe, read by follow(). */
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) fail(EXIT_FAILED, "cannot make a pipe: %s", strerror(errno));
    pid_t pid = launch_start(r.argv, err_pipe[1]);
    close(err_pipe[1]);
    follow(pid, err_pipe[0], &f, &r.outcome, t0);
    take_snapshot(&r.after, r.ids, r.count);

    if (json) print_json(out, &r);
    else print_text(out, &r);
    if (fflush(out) != 0 || ferror(out) || (out != stderr && out != stdout && fclose(out) != 0)) {
        fail(EXIT_FAILED, "stat: cannot write the report: %s", strerror(errno));
    }
    return exit_status_of(r.outcome.status);
}
