/*
 * options.c — run-time options, parsed from a table.
 *
 * Each option names its variable, its kind and where the value goes.  The
 * sources, each overriding the one before (as jemalloc's malloc_conf):
 * the program's own `nm_conf` string, the NUMAMALLOC_CONF string, then
 * the single variables (NUMAMALLOC_PURGE_DELAY_MS=...).  A value that does
 * not parse gets one warning line naming the variable (or the string's
 * item) and what it accepts, and the option stays as it was; an unknown
 * NUMAMALLOC_ variable or key gets one line naming the closest option.
 * Also where an error of the program
 * (a bad free, heap corruption) is reported and NUMAMALLOC_ON_ERROR applied
 * (nm_report_error).  May call the os layer (for the warning)
 * and libc; never allocates, so it runs inside the very first malloc.
 */
#include "options.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "os.h"

extern char **environ;

/* The program's built-in configuration string, if it defines one
 * (numamalloc.h: nm_conf). */
extern const char *nm_conf __attribute__((weak));

struct nm_options nm_opt = {
    .verbose = false,
    .stats_at_exit = NM_STATS_OFF,
    .stats_file = NULL,
    .stats_interval_ms = 0,
    .purge_delay_ms = 1000,
    .cache_bytes = 256 * NM_MiB,
    .purge_thread = true,
    .hugepages = NM_HUGEPAGES_THP,
    .on_error = NM_ON_ERROR_ABORT,
    .sysfs_root = "/sys",
    .policy = NULL,
    .policy_from = "NUMAMALLOC_POLICY",
    .interleave_above = 0,
    .prof = false,
    .prof_sample = 512 * NM_KiB,
    .prof_file = "numamalloc.%p.heap",
    .prof_signal = 0,
};

/* ---- finding a variable without malloc ----------------------------------- */

/* Fallback when the first malloc comes before libc set `environ`. */
static char proc_environ[64 * 1024];
static size_t proc_environ_len;
static bool proc_environ_read;

static const char *match(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=' ? entry + n + 1 : NULL;
}

const char *nm_env_block_find(const char *block, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < len;) {
        size_t entry = strnlen(block + i, len - i);
        if (entry > n && memcmp(block + i, name, n) == 0 && block[i + n] == '=')
            return block + i + n + 1;
        i += entry + 1;
    }
    return NULL;
}

const char *nm_getenv(const char *name)
{
    if (environ) {
        for (char **e = environ; *e; e++) {
            const char *v = match(*e, name);
            if (v) return v;
        }
        return NULL;
    }
    if (!proc_environ_read) {
        ssize_t n = nm_os_read_file("/proc/self/environ", proc_environ, sizeof proc_environ);
        proc_environ_len = n > 0 ? (size_t)n : 0;
        proc_environ_read = true;
    }
    return nm_env_block_find(proc_environ, proc_environ_len, name);
}

/* ---- the table ------------------------------------------------------------- */

enum option_kind { OPT_BOOL, OPT_UINT, OPT_SIZE, OPT_CHOICE, OPT_TEXT, OPT_DURATION };

struct option_choice { const char *text; int value; };

struct option_desc {
    const char *name;
    enum option_kind kind;
    void *target;                         /* bool*, uint64_t*, int-sized enum*, const char** */
    uint64_t scale;                       /* OPT_UINT: multiply the number by this;
                                             OPT_SIZE: the unit of a bare number;
                                             OPT_DURATION: ms */
    const struct option_choice *choices;  /* OPT_CHOICE: NULL-terminated */
    const char *accepted;                 /* for the warning */
};

static const struct option_choice hugepage_choices[] = {
    { "off", NM_HUGEPAGES_OFF }, { "0", NM_HUGEPAGES_OFF }, { "thp", NM_HUGEPAGES_THP },
    { "hugetlb", NM_HUGEPAGES_HUGETLB }, { NULL, 0 },
};
static const struct option_choice stats_choices[] = {
    { "0", NM_STATS_OFF }, { "no", NM_STATS_OFF }, { "off", NM_STATS_OFF }, { "false", NM_STATS_OFF },
    { "1", NM_STATS_TEXT }, { "yes", NM_STATS_TEXT }, { "on", NM_STATS_TEXT }, { "true", NM_STATS_TEXT },
    { "text", NM_STATS_TEXT }, { "json", NM_STATS_JSON }, { NULL, 0 },
};
static const struct option_choice signal_choices[] = {
    { "0", 0 }, { "off", 0 }, { "USR1", SIGUSR1 }, { "SIGUSR1", SIGUSR1 },
    { "USR2", SIGUSR2 }, { "SIGUSR2", SIGUSR2 }, { NULL, 0 },
};
static const struct option_choice on_error_choices[] = {
    { "abort", NM_ON_ERROR_ABORT }, { "warn", NM_ON_ERROR_WARN }, { NULL, 0 },
};

static const struct option_desc options[] = {
    { "NUMAMALLOC_VERBOSE", OPT_BOOL, &nm_opt.verbose, 0, NULL, "0 or 1" },
    { "NUMAMALLOC_STATS", OPT_CHOICE, &nm_opt.stats_at_exit, 0, stats_choices, "0, 1 (a table) or json" },
    { "NUMAMALLOC_STATS_FILE", OPT_TEXT, &nm_opt.stats_file, 0, NULL, "a file name (%p: pid, %r: rank)" },
    { "NUMAMALLOC_STATS_INTERVAL", OPT_DURATION, &nm_opt.stats_interval_ms, 0, NULL,
      "a duration: 10s, 500ms, 2m or a number of seconds (0 = off)" },
    { "NUMAMALLOC_PURGE_DELAY_MS", OPT_UINT, &nm_opt.purge_delay_ms, 1, NULL,
      "a number of milliseconds (0 = return memory at once)" },
    { "NUMAMALLOC_CACHE_MB", OPT_SIZE, &nm_opt.cache_bytes, NM_MiB, NULL,
      "a number of MiB kept per node, or a size with K, M, G or T" },
    { "NUMAMALLOC_PURGE_THREAD", OPT_BOOL, &nm_opt.purge_thread, 0, NULL, "0 or 1" },
    { "NUMAMALLOC_HUGEPAGES", OPT_CHOICE, &nm_opt.hugepages, 0, hugepage_choices,
      "off, thp or hugetlb" },
    { "NUMAMALLOC_ON_ERROR", OPT_CHOICE, &nm_opt.on_error, 0, on_error_choices, "abort or warn" },
    { "NUMAMALLOC_SECURE", OPT_BOOL, &nm_opt.secure, 0, NULL, "0 or 1" },
    { "NUMAMALLOC_SYSFS_ROOT", OPT_TEXT, &nm_opt.sysfs_root, 0, NULL, "a directory" },
    { "NUMAMALLOC_POLICY", OPT_TEXT, &nm_opt.policy, 0, NULL,
      "local, bind:NODES, preferred:NODE, preferred-many:NODES, interleave:NODES or "
      "weighted-interleave:NODES" },
    { "NUMAMALLOC_INTERLEAVE_ABOVE", OPT_SIZE, &nm_opt.interleave_above, 1, NULL,
      "a size in bytes, or with K, M, G or T (0 = off)" },
    { "NUMAMALLOC_PROF", OPT_BOOL, &nm_opt.prof, 0, NULL, "0 or 1" },
    { "NUMAMALLOC_PROF_SAMPLE", OPT_SIZE, &nm_opt.prof_sample, 1, NULL,
      "a size in bytes, or with K, M, G or T (1 = every allocation)" },
    { "NUMAMALLOC_PROF_FILE", OPT_TEXT, &nm_opt.prof_file, 0, NULL,
      "a file name (%p: pid, %r: rank, %n: dump number)" },
    { "NUMAMALLOC_PROF_SIGNAL", OPT_CHOICE, &nm_opt.prof_signal, 0, signal_choices,
      "USR1, USR2 or 0" },
};

/* The `n` characters at `s`, all decimal digits (at least one), times
 * `scale`; false when they are not, or the result overflows. */
static bool parse_uint(const char *s, size_t n, uint64_t scale, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10) return false;
        v = v * 10 + digit;
    }
    if (scale && v > UINT64_MAX / scale) return false;
    *out = v * scale;
    return true;
}

/* A size: digits, then an optional unit K, M, G or T (either case, powers
 * of 1024), which may be followed by "iB" or "B" (64K, 64KiB, 64kb); a bare
 * number counts in `unit`s. */
static bool parse_size(const char *value, uint64_t unit, uint64_t *out)
{
    static const struct { char letter; uint64_t scale; } units[] = {
        { 'k', NM_KiB }, { 'm', NM_MiB }, { 'g', NM_GiB }, { 't', NM_GiB * 1024 },
    };
    size_t n = strlen(value);
    if (n >= 2 && (value[n - 1] == 'B' || value[n - 1] == 'b')) {
        n--;                                             /* "..B" */
        if (n >= 2 && value[n - 1] == 'i') n--;          /* "..iB" */
    }
    if (n >= 2) {
        char c = value[n - 1] | 0x20;                    /* lower case */
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (c == units[i].letter) return parse_uint(value, n - 1, units[i].scale, out);
    }
    if (n != strlen(value)) return false;                /* a "B" with no unit */
    return parse_uint(value, n, unit, out);
}

/* A duration in milliseconds: digits, then "ms", "s", "m" or nothing
 * (seconds). */
static bool parse_duration(const char *value, uint64_t *out)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "", 1000 },
    };
    size_t digits = strspn(value, "0123456789");
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(value + digits, units[i].unit)) return parse_uint(value, digits, units[i].ms, out);
    return false;
}

static bool apply(const struct option_desc *o, const char *value)
{
    switch (o->kind) {
    case OPT_BOOL: {
        bool *b = o->target;
        if (!strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "true")) {
            *b = true;
            return true;
        }
        if (!strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "off") || !strcmp(value, "false")) {
            *b = false;
            return true;
        }
        return false;
    }
    case OPT_UINT:
        return parse_uint(value, strlen(value), o->scale, o->target);
    case OPT_SIZE:
        return parse_size(value, o->scale, o->target);
    case OPT_DURATION:
        return parse_duration(value, o->target);
    case OPT_CHOICE:
        for (const struct option_choice *c = o->choices; c->text; c++) {
            if (!strcmp(value, c->text)) { *(int *)o->target = c->value; return true; }
        }
        return false;
    case OPT_TEXT:
        if (!*value) return false;
        *(const char **)o->target = value;
        return true;
    }
    return false;
}

/* ---- names: variables, configuration keys, the closest one ---------------- */

#define OPTION_COUNT (sizeof options / sizeof options[0])
#define PREFIX "NUMAMALLOC_"
#define PREFIX_LEN (sizeof PREFIX - 1)

/* Variables of the numamalloc family that are not options of the library
 * (read by the command, or the configuration string itself). */
static const char *const other_variables[] = { "NUMAMALLOC_CONF", "NUMAMALLOC_PROC_ROOT", "NUMAMALLOC_LIBRARY" };

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c; }

/* Whether the `n` characters at `key` are option o's configuration key:
 * its variable's name without the prefix, in lower case. */
static bool key_is(const struct option_desc *o, const char *key, size_t n)
{
    const char *name = o->name + PREFIX_LEN;
    if (strlen(name) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower(name[i]) != key[i]) return false;
    return true;
}

/* Edit distance (insertions, deletions, substitutions; case ignored)
 * between the `an` characters at a and the `bn` at b, for names of up to
 * 63 characters (longer ones count as far from everything). */
static size_t distance(const char *a, size_t an, const char *b, size_t bn)
{
    enum { MAX = 63 };
    if (an > MAX || bn > MAX) return SIZE_MAX;
    size_t row[MAX + 1];
    for (size_t j = 0; j <= bn; j++) row[j] = j;
    for (size_t i = 1; i <= an; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t up = row[j];
            size_t best = diagonal + (lower(a[i - 1]) != lower(b[j - 1]));
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diagonal = up;
        }
    }
    return row[bn];
}

/* The option whose name (skip = 0) or key (skip = PREFIX_LEN) is closest
 * to the `n` characters at `text`; the first of the table on a tie. */
static const struct option_desc *closest(const char *text, size_t n, size_t skip)
{
    const struct option_desc *best = &options[0];
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const char *name = options[i].name + skip;
        size_t d = distance(text, n, name, strlen(name));
        if (d < best_d) { best_d = d; best = &options[i]; }
    }
    return best;
}

/* ---- warnings ------------------------------------------------------------------ */

/* "numamalloc: ignoring <what>: expected <accepted>" */
static void warn_value(int fd, const char *source, const char *what, const struct option_desc *o)
{
    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc: ignoring ");
    nm_line_str(&l, source ? source : o->name);   /* NUMAMALLOC_CONF item '..' or NAME='..' */
    nm_line_str(&l, source ? " item '" : "='");
    nm_line_value(&l, what);
    nm_line_str(&l, "': expected ");
    nm_line_str(&l, o->accepted);
    nm_line_str(&l, "\n");
    nm_line_write(&l, fd);
}

/* "numamalloc: ignoring <source> <kind> '<text>': <why>[; did you mean <name>?]" */
static void warn_unknown(int fd, const char *source, const char *kind, const char *text, size_t n,
                         const char *why, const char *suggestion)
{
    char shown[72];
    size_t len = n < sizeof shown - 1 ? n : sizeof shown - 1;
    memcpy(shown, text, len);
    shown[len] = '\0';
    nm_line l = { .len = 0 };
    nm_line_str(&l, "numamalloc: ignoring ");
    if (source) {
        nm_line_str(&l, source);
        nm_line_str(&l, " ");
    }
    nm_line_str(&l, kind);
    nm_line_str(&l, " '");
    nm_line_value(&l, shown);
    nm_line_str(&l, "': ");
    nm_line_str(&l, why);
    if (suggestion) {
        nm_line_str(&l, "; did you mean ");
        nm_line_str(&l, suggestion);
        nm_line_str(&l, "?");
    }
    nm_line_str(&l, "\n");
    nm_line_write(&l, fd);
}

/* ---- the configuration string ---------------------------------------------------
 *
 * "key:value,key:value,...": the keys are the variables' names without
 * NUMAMALLOC_, in any case (purge_delay_ms:50).  A piece between commas
 * that has no ':' belongs to the value before it, so node lists keep
 * their commas (policy:bind:0,2,cache_mb:64); an empty piece ends an item.
 * The text is copied (the values of text options point into the copy), at
 * most NM_CONF_MAX - 1 bytes. */
#define NM_CONF_MAX 1024

static void conf_item(char *item, const char *source, int fd)
{
    char *colon = strchr(item, ':');
    if (!colon) {
        warn_unknown(fd, source, "item", item, strlen(item), "expected key:value", NULL);
        return;
    }
    size_t n = (size_t)(colon - item);
    for (size_t i = 0; i < n; i++) item[i] = lower(item[i]);
    if (n == 0) {
        warn_unknown(fd, source, "item", item, strlen(item), "expected key:value", NULL);
        return;
    }
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (!key_is(&options[i], item, n)) continue;
        if (!apply(&options[i], colon + 1)) warn_value(fd, source, item, &options[i]);
        else if (options[i].target == &nm_opt.policy) nm_opt.policy_from = source;
        return;
    }
    /* The key is shown in lower case, as the table's keys are. */
    char key[64];
    size_t k = 0;
    for (const char *c = closest(item, n, PREFIX_LEN)->name + PREFIX_LEN; *c && k < sizeof key - 1; c++)
        key[k++] = lower(*c);
    key[k] = '\0';
    warn_unknown(fd, source, "key", item, n, "not an option", key);
}

static void conf_parse(const char *text, char copy[NM_CONF_MAX], const char *source, int fd)
{
    size_t len = strlen(text);
    if (len >= NM_CONF_MAX) {
        warn_unknown(fd, NULL, source, text, len, "longer than 1023 bytes", NULL);
        return;
    }
    memcpy(copy, text, len + 1);
    /* Piece by piece (the text between commas): an empty piece ends the
     * item before it, a piece with a ':' starts an item, one without
     * joins the item before it (its comma stays) or, with none, is an
     * item by itself. */
    char *item = NULL;
    for (char *piece = copy;;) {
        char *comma = strchr(piece, ',');
        size_t n = comma ? (size_t)(comma - piece) : strlen(piece);
        if (n == 0 || memchr(piece, ':', n) || !item) {
            if (item) {
                piece[-1] = '\0';
                conf_item(item, source, fd);
            }
            item = n ? piece : NULL;
        }
        if (!comma) break;
        piece = comma + 1;
    }
    if (item) conf_item(item, source, fd);
}

/* ---- reading every source ------------------------------------------------------- */

/* A variable NUMAMALLOC_... (the entry "NAME=VALUE") that is not an option:
 * one warning naming the closest option. */
static void check_name(const char *entry, int fd)
{
    if (strncmp(entry, PREFIX, PREFIX_LEN) != 0) return;
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (strlen(options[i].name) == n && !memcmp(options[i].name, entry, n)) return;
    for (size_t i = 0; i < sizeof other_variables / sizeof other_variables[0]; i++)
        if (strlen(other_variables[i]) == n && !memcmp(other_variables[i], entry, n)) return;
    warn_unknown(fd, NULL, "variable", entry, n, "not an option", closest(entry, n, 0)->name);
}

void nm_options_parse(const struct nm_option_source *src, const char *builtin_conf, int warn_fd)
{
    static char builtin_copy[NM_CONF_MAX], env_copy[NM_CONF_MAX];
    if (builtin_conf) conf_parse(builtin_conf, builtin_copy, "nm_conf", warn_fd);
    const char *conf = src->lookup("NUMAMALLOC_CONF", src->source);
    if (conf) conf_parse(conf, env_copy, "NUMAMALLOC_CONF", warn_fd);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const char *value = src->lookup(options[i].name, src->source);
        if (!value) continue;
        if (!apply(&options[i], value)) warn_value(warn_fd, NULL, value, &options[i]);
        else if (options[i].target == &nm_opt.policy) nm_opt.policy_from = options[i].name;
    }
    size_t cursor = 0;
    for (const char *entry; (entry = src->next(src->source, &cursor));) check_name(entry, warn_fd);
}

static const char *environment(const char *name, const void *source)
{
    (void)source;
    return nm_getenv(name);
}

/* The entries of the environment, or of /proc/self/environ before libc
 * set `environ` (nm_getenv read it then). */
static const char *environment_next(const void *source, size_t *cursor)
{
    (void)source;
    if (environ) return environ[*cursor] ? environ[(*cursor)++] : NULL;
    if (*cursor >= proc_environ_len) return NULL;
    const char *entry = proc_environ + *cursor;
    *cursor += strnlen(entry, proc_environ_len - *cursor) + 1;
    return entry;
}

long nm_process_rank(void)
{
    static const char *const names[] = { "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = nm_getenv(names[i]);
        if (!v || *v < '0' || *v > '9') continue;
        long r = 0;
        for (; *v >= '0' && *v <= '9' && r < 100000000; v++) r = r * 10 + (*v - '0');
        return r;
    }
    return -1;
}

void nm_report_error(const nm_line *l)
{
    nm_line out = { .len = 0 };
    nm_line_str(&out, "numamalloc: ");
    for (size_t i = 0; i < l->len && out.len < sizeof out.data - 1; i++) out.data[out.len++] = l->data[i];
    nm_line_str(&out, "\n");
    nm_line_write(&out, 2);
    if (nm_opt.on_error == NM_ON_ERROR_ABORT) abort();
}

void nm_options_init(void)
{
    static bool done;
    if (done) return;
    done = true;
    const struct nm_option_source env = { environment, environment_next, NULL };
    nm_options_parse(&env, &nm_conf ? nm_conf : NULL, 2);
    /* A set-user-ID program (or one with capabilities) creates or
     * truncates no file its environment names: it writes no profile, and
     * its statistics go to stderr. */
    if (getauxval(AT_SECURE)) {
        nm_opt.stats_file = NULL;
        if (nm_opt.prof) {
            nm_opt.prof = false;
            nm_os_warn("NUMAMALLOC_PROF ignored in a set-user-ID program");
        }
    }
}

bool nm_file_name(const char *pattern, long number, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *c = pattern; *c; c++) {
        nm_line l = { .len = 0 };
        if (c[0] == '%' && (c[1] == 'p' || c[1] == 'r' || (c[1] == 'n' && number >= 0))) {
            long v = c[1] == 'p' ? (long)getpid() : c[1] == 'r' ? nm_process_rank() : number;
            if (v >= 0) nm_line_u64(&l, (uint64_t)v);
            else nm_line_str(&l, "none");
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            nm_line_str(&l, "%");
            c++;
        } else {
            l.data[l.len++] = *c;
        }
        if (n + l.len >= cap) return false;
        memcpy(out + n, l.data, l.len);
        n += l.len;
    }
    out[n] = '\0';
    return true;
}
