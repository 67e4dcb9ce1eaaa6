/*
 * options.c — environment options, parsed from a table.
 *
 * Each option names its variable, its kind and where the value goes.  A value
 * that does not parse gets one warning line naming the variable and what it
 * accepts, and the default stays.  Also where an error of the program
 * (a bad free, heap corruption) is reported and NUMAMALLOC_ON_ERROR applied
 * (nm_report_error).  May call the os layer (for the warning)
 * and libc; never allocates, so it runs inside the very first malloc.
 */
#include "options.h"

#include <stdlib.h>
#include <string.h>

#include "os.h"

extern char **environ;

struct nm_options nm_opt = {
    .verbose = false,
    .stats_at_exit = false,
    .purge_delay_ms = 1000,
    .cache_bytes = 256 * NM_MiB,
    .purge_thread = true,
    .hugepages = NM_HUGEPAGES_THP,
    .on_error = NM_ON_ERROR_ABORT,
    .sysfs_root = "/sys",
    .policy = NULL,
    .interleave_above = 0,
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

enum option_kind { OPT_BOOL, OPT_UINT, OPT_SIZE, OPT_CHOICE, OPT_TEXT };

struct option_choice { const char *text; int value; };

struct option_desc {
    const char *name;
    enum option_kind kind;
    void *target;                         /* bool*, uint64_t*, int-sized enum*, const char** */
    uint64_t scale;                       /* OPT_UINT: multiply the number by this */
    const struct option_choice *choices;  /* OPT_CHOICE: NULL-terminated */
    const char *accepted;                 /* for the warning */
};

static const struct option_choice hugepage_choices[] = {
    { "off", NM_HUGEPAGES_OFF }, { "0", NM_HUGEPAGES_OFF }, { "thp", NM_HUGEPAGES_THP },
    { "hugetlb", NM_HUGEPAGES_HUGETLB }, { NULL, 0 },
};
static const struct option_choice on_error_choices[] = {
    { "abort", NM_ON_ERROR_ABORT }, { "warn", NM_ON_ERROR_WARN }, { NULL, 0 },
};

static const struct option_desc options[] = {
    { "NUMAMALLOC_VERBOSE", OPT_BOOL, &nm_opt.verbose, 0, NULL, "0 or 1" },
    { "NUMAMALLOC_STATS", OPT_BOOL, &nm_opt.stats_at_exit, 0, NULL, "0 or 1" },
    { "NUMAMALLOC_PURGE_DELAY_MS", OPT_UINT, &nm_opt.purge_delay_ms, 1, NULL,
      "a number of milliseconds (0 = return memory at once)" },
    { "NUMAMALLOC_CACHE_MB", OPT_UINT, &nm_opt.cache_bytes, NM_MiB, NULL,
      "a number of MiB kept per node" },
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
      "a size in bytes, with an optional K, M or G (0 = off)" },
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

static bool apply(const struct option_desc *o, const char *value)
{
    switch (o->kind) {
    case OPT_BOOL: {
        bool *b = o->target;
        if (!strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "on")) { *b = true; return true; }
        if (!strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "off")) { *b = false; return true; }
        return false;
    }
    case OPT_UINT:
        return parse_uint(value, strlen(value), o->scale, o->target);
    case OPT_SIZE: {
        /* digits, then an optional K, M or G (powers of 1024) */
        static const struct { char suffix; uint64_t scale; } units[] = {
            { 'K', NM_KiB }, { 'k', NM_KiB }, { 'M', NM_MiB }, { 'm', NM_MiB },
            { 'G', NM_GiB }, { 'g', NM_GiB },
        };
        size_t n = strlen(value);
        uint64_t scale = 1;
        for (size_t i = 0; n > 0 && i < sizeof units / sizeof units[0]; i++)
            if (value[n - 1] == units[i].suffix) { scale = units[i].scale; n--; break; }
        return parse_uint(value, n, scale, o->target);
    }
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

void nm_options_parse(nm_option_lookup *lookup, const void *source, int warn_fd)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const char *value = lookup(options[i].name, source);
        if (!value || apply(&options[i], value)) continue;
        nm_line l = { .len = 0 };
        nm_line_str(&l, "numamalloc: ignoring ");
        nm_line_str(&l, options[i].name);
        nm_line_str(&l, "='");
        nm_line_value(&l, value);
        nm_line_str(&l, "': expected ");
        nm_line_str(&l, options[i].accepted);
        nm_line_str(&l, "\n");
        nm_line_write(&l, warn_fd);
    }
}

static const char *environment(const char *name, const void *source)
{
    (void)source;
    return nm_getenv(name);
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
    nm_options_parse(environment, NULL, 2);
}
