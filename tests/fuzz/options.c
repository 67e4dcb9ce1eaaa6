/* options.c — fuzz target for the option parser (src/options.c).
 *
 * The input is an environment block as /proc/self/environ holds it:
 * NAME=VALUE entries, each ended by '\0'.  nm_env_block_find looks the
 * options up in it (the real environment is never touched) and
 * nm_options_parse sets nm_opt from them, its warnings going to a pipe.
 * Each option's value is then checked against a model written here from
 * the documented grammar (README's Environment section): the first entry
 * for a name wins; booleans 0/1/yes/no/on/off; numbers are plain decimal
 * digits, scaled (MiB) without overflow; sizes take one K, M or G suffix;
 * choices are exact words; text is any non-empty value.  A value that
 * does not parse leaves the default and gets exactly one warning line,
 * "numamalloc: ignoring NAME=...", in table order; a value that parses
 * gets none. */
#define _GNU_SOURCE
#include "options.h"

#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>

static struct nm_options defaults;
static int warn_pipe[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    defaults = nm_opt;   /* nm_options_init never ran: the built-in defaults */
    FUZZ_CHECK(pipe2(warn_pipe, O_NONBLOCK | O_CLOEXEC) == 0);
    return 0;
}

struct block {
    const char *text;
    size_t len;
};

static const char *lookup(const char *name, const void *source)
{
    const struct block *b = source;
    return nm_env_block_find(b->text, b->len, name);
}

/* ---- the model --------------------------------------------------------------- */

/* The first entry "name=..." of the block, found another way: split at
 * every '\0' and compare the text before the first '='. */
static const char *model_find(const struct block *b, const char *name)
{
    const char *end = b->text + b->len;
    for (const char *entry = b->text; entry < end; entry += strlen(entry) + 1) {
        const char *eq = memchr(entry, '=', strlen(entry));
        if (eq && (size_t)(eq - entry) == strlen(name) && memcmp(entry, name, strlen(name)) == 0)
            return eq + 1;
    }
    return NULL;
}

/* Plain decimal digits, exactly, times `scale`; false on anything else or
 * on overflow. */
static bool model_number(const char *s, size_t n, uint64_t scale, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return false;
    }
    if (__builtin_mul_overflow(v, scale, &v)) return false;
    *out = v;
    return true;
}

static bool model_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "1", "yes", "on" }, *const no[] = { "0", "no", "off" };
    for (int i = 0; i < 3; i++) {
        if (!strcmp(s, yes[i])) { *out = true; return true; }
        if (!strcmp(s, no[i])) { *out = false; return true; }
    }
    return false;
}

static bool model_size(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    uint64_t scale = 1;
    if (n > 0) {
        switch (s[n - 1]) {
        case 'K': case 'k': scale = (uint64_t)1 << 10; n--; break;
        case 'M': case 'm': scale = (uint64_t)1 << 20; n--; break;
        case 'G': case 'g': scale = (uint64_t)1 << 30; n--; break;
        }
    }
    return model_number(s, n, scale, out);
}

/* The options in nm_options_parse's order (its table), each with the
 * model's verdict on the block and the field to compare. */
enum kind { BOOL, UINT, SIZE, HUGEPAGES, ON_ERROR, TEXT };
static const struct model_option {
    const char *name;
    enum kind kind;
    uint64_t scale;
} model_options[] = {
    { "NUMAMALLOC_VERBOSE", BOOL, 0 },
    { "NUMAMALLOC_STATS", BOOL, 0 },
    { "NUMAMALLOC_PURGE_DELAY_MS", UINT, 1 },
    { "NUMAMALLOC_CACHE_MB", UINT, (uint64_t)1 << 20 },
    { "NUMAMALLOC_PURGE_THREAD", BOOL, 0 },
    { "NUMAMALLOC_HUGEPAGES", HUGEPAGES, 0 },
    { "NUMAMALLOC_ON_ERROR", ON_ERROR, 0 },
    { "NUMAMALLOC_SYSFS_ROOT", TEXT, 0 },
    { "NUMAMALLOC_POLICY", TEXT, 0 },
    { "NUMAMALLOC_INTERLEAVE_ABOVE", SIZE, 0 },
};
#define OPTION_COUNT (sizeof model_options / sizeof model_options[0])

/* Apply option i's value to `want` as the model reads it; false if the
 * model rejects it. */
static bool model_apply(size_t i, const char *v, struct nm_options *want)
{
    const struct model_option *o = &model_options[i];
    switch (i) {
    case 0: return model_bool(v, &want->verbose);
    case 1: return model_bool(v, &want->stats_at_exit);
    case 2: return model_number(v, strlen(v), o->scale, &want->purge_delay_ms);
    case 3: return model_number(v, strlen(v), o->scale, &want->cache_bytes);
    case 4: return model_bool(v, &want->purge_thread);
    case 5:
        if (!strcmp(v, "off") || !strcmp(v, "0")) { want->hugepages = NM_HUGEPAGES_OFF; return true; }
        if (!strcmp(v, "thp")) { want->hugepages = NM_HUGEPAGES_THP; return true; }
        if (!strcmp(v, "hugetlb")) { want->hugepages = NM_HUGEPAGES_HUGETLB; return true; }
        return false;
    case 6:
        if (!strcmp(v, "abort")) { want->on_error = NM_ON_ERROR_ABORT; return true; }
        if (!strcmp(v, "warn")) { want->on_error = NM_ON_ERROR_WARN; return true; }
        return false;
    case 7: if (!*v) return false; want->sysfs_root = v; return true;
    case 8: if (!*v) return false; want->policy = v; return true;
    case 9: return model_size(v, &want->interleave_above);
    }
    return false;
}

/* ---- the target ---------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The block and the '\0' after it that nm_env_block_find asks for. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct block b = { text, size };

    struct nm_options want = defaults;
    bool rejected[OPTION_COUNT] = { false };
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const char *v = model_find(&b, model_options[i].name);
        FUZZ_CHECK(nm_env_block_find(b.text, b.len, model_options[i].name) == v,
                   "%s found at another entry", model_options[i].name);
        if (v && !model_apply(i, v, &want)) rejected[i] = true;
    }

    nm_opt = defaults;
    nm_options_parse(lookup, &b, warn_pipe[1]);

    FUZZ_CHECK(nm_opt.verbose == want.verbose);
    FUZZ_CHECK(nm_opt.stats_at_exit == want.stats_at_exit);
    FUZZ_CHECK(nm_opt.purge_delay_ms == want.purge_delay_ms, "%llu, model %llu",
               (unsigned long long)nm_opt.purge_delay_ms, (unsigned long long)want.purge_delay_ms);
    FUZZ_CHECK(nm_opt.cache_bytes == want.cache_bytes, "%llu, model %llu",
               (unsigned long long)nm_opt.cache_bytes, (unsigned long long)want.cache_bytes);
    FUZZ_CHECK(nm_opt.purge_thread == want.purge_thread);
    FUZZ_CHECK(nm_opt.hugepages == want.hugepages);
    FUZZ_CHECK(nm_opt.on_error == want.on_error);
    FUZZ_CHECK(nm_opt.sysfs_root == want.sysfs_root);
    FUZZ_CHECK(nm_opt.policy == want.policy);
    FUZZ_CHECK(nm_opt.interleave_above == want.interleave_above, "%llu, model %llu",
               (unsigned long long)nm_opt.interleave_above,
               (unsigned long long)want.interleave_above);

    /* The warnings: one whole line per rejected value, in table order. */
    char out[16384];
    ssize_t n = read(warn_pipe[0], out, sizeof out - 1);
    if (n < 0) {
        FUZZ_CHECK(errno == EAGAIN);
        n = 0;
    }
    out[n] = '\0';
    FUZZ_CHECK(n == 0 || out[n - 1] == '\n', "the last warning is not a whole line: '%s'", out);
    const char *line = out;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (!rejected[i]) continue;
        char start[64];
        snprintf(start, sizeof start, "numamalloc: ignoring %s='", model_options[i].name);
        FUZZ_CHECK(strncmp(line, start, strlen(start)) == 0,
                   "expected a line starting \"%s\", found \"%s\"", start, line);
        const char *end = strchr(line, '\n');
        FUZZ_CHECK(end != NULL);
        line = end + 1;
    }
    FUZZ_CHECK(*line == '\0', "more output than one line per rejected value: \"%s\"", line);
    free(text);
    return 0;
}
