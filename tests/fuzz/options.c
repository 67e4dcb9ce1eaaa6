/* options.c — fuzz target for the option parser (src/options.c).
 *
 * The input is an environment block as /proc/self/environ holds it:
 * NAME=VALUE entries, each ended by '\0'.  nm_env_block_find looks the
 * options up in it (the real environment is never touched) and
 * nm_options_parse sets nm_opt from them, its warnings going to a pipe.
 * The result is then checked against a model written here from the
 * documented grammar (README's Environment section): the first entry for a
 * name wins; NUMAMALLOC_CONF is "key:value" items separated by commas
 * (keys are the names without NUMAMALLOC_, in any case; a piece without
 * ':' joins the item before it, an empty piece ends it; 1023 bytes at
 * most), applied in order, and each single variable overrides it;
 * booleans 0/1/yes/no/on/off/true/false (NUMAMALLOC_STATS also text and
 * json); numbers are plain decimal digits,
 * durations digits and one of "ms", "s", "m" or nothing (seconds),
 * scaled without overflow; sizes take one unit letter K, M, G or T, maybe
 * followed by "iB" or "B" (a bare number in the option's unit); choices are
 * exact words; text is any non-empty value.  Each problem is one warning
 * line, in this order: the string's items, the variables (table order),
 * then each NUMAMALLOC_ entry that is no option, naming the closest
 * option (no other is nearer by edit distance).  The first byte of the
 * input, when it is '#', makes the rest of its first entry a built-in
 * string (nm_conf) that NUMAMALLOC_CONF and the variables override. */
#define _GNU_SOURCE
#include "options.h"

#include "fuzz.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <strings.h>

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

static const char *next_entry(const void *source, size_t *cursor)
{
    const struct block *b = source;
    if (*cursor >= b->len) return NULL;
    const char *entry = b->text + *cursor;
    *cursor += strlen(entry) + 1;
    return entry;
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
    static const char *const yes[] = { "1", "yes", "on", "true" }, *const no[] = { "0", "no", "off", "false" };
    for (int i = 0; i < 4; i++) {
        if (!strcmp(s, yes[i])) { *out = true; return true; }
        if (!strcmp(s, no[i])) { *out = false; return true; }
    }
    return false;
}

/* Digits, then nothing (counted in `unit`s) or one of the suffixes. */
static bool model_size(const char *s, uint64_t unit, uint64_t *out)
{
    size_t digits = strspn(s, "0123456789");
    const char *suffix = s + digits;
    if (!*suffix) return model_number(s, digits, unit, out);
    static const char letters[] = "kKmMgGtT";
    const char *l = *suffix ? strchr(letters, *suffix) : NULL;
    if (!l) return false;
    static const char *const tails[] = { "", "B", "b", "iB", "ib" };
    bool tail_ok = false;
    for (size_t t = 0; t < 5; t++) tail_ok |= !strcmp(suffix + 1, tails[t]);
    if (!tail_ok) return false;
    return model_number(s, digits, (uint64_t)1 << (10 * (1 + (l - letters) / 2)), out);
}

/* Digits and then exactly "ms" (times 1), "s" or nothing (times 1000),
 * or "m" (times 60000). */
static bool model_duration(const char *s, uint64_t *out)
{
    size_t digits = strspn(s, "0123456789");
    const char *unit = s + digits;
    uint64_t scale = !strcmp(unit, "ms") ? 1 : !strcmp(unit, "s") || !*unit ? 1000
                   : !strcmp(unit, "m") ? 60000 : 0;
    return scale && model_number(s, digits, scale, out);
}

/* The options in nm_options_parse's order (its table). */
static const char *const model_names[] = {
    "NUMAMALLOC_VERBOSE", "NUMAMALLOC_STATS", "NUMAMALLOC_STATS_FILE", "NUMAMALLOC_STATS_INTERVAL",
    "NUMAMALLOC_PURGE_DELAY_MS", "NUMAMALLOC_CACHE_MB",
    "NUMAMALLOC_PURGE_THREAD", "NUMAMALLOC_HUGEPAGES", "NUMAMALLOC_ON_ERROR", "NUMAMALLOC_SECURE",
    "NUMAMALLOC_SYSFS_ROOT", "NUMAMALLOC_POLICY", "NUMAMALLOC_INTERLEAVE_ABOVE", "NUMAMALLOC_PROF",
    "NUMAMALLOC_PROF_SAMPLE", "NUMAMALLOC_PROF_FILE", "NUMAMALLOC_PROF_SIGNAL",
};
#define OPTION_COUNT (sizeof model_names / sizeof model_names[0])
#define POLICY 11

/* Apply option i's value to `want` as the model reads it; false if the
 * model rejects it. */
static bool model_apply(size_t i, const char *v, struct nm_options *want)
{
    switch (i) {
    case 0: return model_bool(v, &want->verbose);
    case 1: {
        bool on;
        if (!strcmp(v, "json")) { want->stats_at_exit = NM_STATS_JSON; return true; }
        if (!strcmp(v, "text")) { want->stats_at_exit = NM_STATS_TEXT; return true; }
        if (!model_bool(v, &on)) return false;
        want->stats_at_exit = on ? NM_STATS_TEXT : NM_STATS_OFF;
        return true;
    }
    case 2: if (!*v) return false; want->stats_file = v; return true;
    case 3: return model_duration(v, &want->stats_interval_ms);
    case 4: return model_number(v, strlen(v), 1, &want->purge_delay_ms);
    case 5: return model_size(v, (uint64_t)1 << 20, &want->cache_bytes);
    case 6: return model_bool(v, &want->purge_thread);
    case 7:
        if (!strcmp(v, "off") || !strcmp(v, "0")) { want->hugepages = NM_HUGEPAGES_OFF; return true; }
        if (!strcmp(v, "thp")) { want->hugepages = NM_HUGEPAGES_THP; return true; }
        if (!strcmp(v, "hugetlb")) { want->hugepages = NM_HUGEPAGES_HUGETLB; return true; }
        return false;
    case 8:
        if (!strcmp(v, "abort")) { want->on_error = NM_ON_ERROR_ABORT; return true; }
        if (!strcmp(v, "warn")) { want->on_error = NM_ON_ERROR_WARN; return true; }
        return false;
    case 9: return model_bool(v, &want->secure);
    case 10: if (!*v) return false; want->sysfs_root = v; return true;
    case POLICY: if (!*v) return false; want->policy = v; return true;
    case 12: return model_size(v, 1, &want->interleave_above);
    case 13: return model_bool(v, &want->prof);
    case 14: return model_size(v, 1, &want->prof_sample);
    case 15: if (!*v) return false; want->prof_file = v; return true;
    case 16: {
        static const struct { const char *text; int signal; } signals[] = {
            { "0", 0 }, { "off", 0 }, { "USR1", SIGUSR1 }, { "SIGUSR1", SIGUSR1 },
            { "USR2", SIGUSR2 }, { "SIGUSR2", SIGUSR2 },
        };
        for (size_t k = 0; k < sizeof signals / sizeof signals[0]; k++)
            if (!strcmp(v, signals[k].text)) { want->prof_signal = signals[k].signal; return true; }
        return false;
    }
    }
    return false;
}

/* ---- the expected warnings ---------------------------------------------------- */

static char expected[65536];   /* the lines' starts, each ended by '\n' */
static size_t expected_len;
static char expected_suggestion[64][64];   /* per "did you mean" line, the name given */
static int suggestions;

static void expect(const char *start)
{
    size_t n = strlen(start);
    FUZZ_CHECK(expected_len + n + 1 < sizeof expected);
    memcpy(expected + expected_len, start, n);
    expected_len += n;
    expected[expected_len++] = '\n';
}

/* The model's configuration strings keep their values here, for as long
 * as the input is checked (text options point at them). */
static char model_items[2][1100][1100];

/* Split `text` into items as the grammar says; returns how many. */
static int model_split(const char *text, char items[][1100])
{
    int count = 0;
    bool open = false;
    for (const char *p = text;;) {
        size_t n = strcspn(p, ",");
        bool colon = memchr(p, ':', n) != NULL;
        if (n == 0) {
            open = false;
        } else if (colon || !open) {
            memcpy(items[count], p, n);
            items[count][n] = '\0';
            count++;
            open = true;
        } else {   /* joins the open item, with its comma */
            size_t have = strlen(items[count - 1]);
            items[count - 1][have] = ',';
            memcpy(items[count - 1] + have + 1, p, n);
            items[count - 1][have + 1 + n] = '\0';
        }
        if (!p[n]) break;
        p += n + 1;
    }
    return count;
}

static size_t model_distance(const char *a, const char *b)
{
    size_t an = strlen(a), bn = strlen(b), d[65][65];
    if (an > 64 || bn > 64) return SIZE_MAX;
    for (size_t i = 0; i <= an; i++) d[i][0] = i;
    for (size_t j = 0; j <= bn; j++) d[0][j] = j;
    for (size_t i = 1; i <= an; i++)
        for (size_t j = 1; j <= bn; j++) {
            size_t best = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[an][bn];
}

/* A string's items applied to `want` (source: its name in the warnings). */
static void model_conf(const char *text, int which, const char *source, struct nm_options *want,
                       const char **policy_from)
{
    char line[1400];
    if (strlen(text) > 1023) {
        snprintf(line, sizeof line, "numamalloc: ignoring %s '", source);
        expect(line);
        return;
    }
    int count = model_split(text, model_items[which]);
    for (int k = 0; k < count; k++) {
        char *item = model_items[which][k];
        char *colon = strchr(item, ':');
        if (!colon || colon == item) {
            snprintf(line, sizeof line, "numamalloc: ignoring %s item '", source);
            expect(line);
            continue;
        }
        size_t i = 0;
        for (; i < OPTION_COUNT; i++) {
            const char *key = model_names[i] + strlen("NUMAMALLOC_");
            if (strlen(key) == (size_t)(colon - item) && !strncasecmp(key, item, strlen(key))) break;
        }
        if (i == OPTION_COUNT) {
            snprintf(line, sizeof line, "numamalloc: ignoring %s key '", source);
            expect(line);
            expected_suggestion[suggestions][0] = 'k';   /* a key: compared in lower case */
            FUZZ_CHECK(suggestions < 63);
            size_t n = (size_t)(colon - item) < 62 ? (size_t)(colon - item) : 62;
            memcpy(expected_suggestion[suggestions] + 1, item, n);
            expected_suggestion[suggestions][n + 1] = '\0';
            suggestions++;
            continue;
        }
        if (!model_apply(i, colon + 1, want)) {
            snprintf(line, sizeof line, "numamalloc: ignoring %s item '", source);
            expect(line);
        } else if (i == POLICY) {
            *policy_from = source;
        }
    }
}

/* ---- the target ---------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The block and the '\0' after it that nm_env_block_find asks for. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct block b = { text, size };
    const char *builtin = NULL;
    if (size > 0 && text[0] == '#') {   /* the first entry is nm_conf */
        builtin = text + 1;
        size_t first = strlen(text) + 1;
        b.text = text + first;
        b.len = first <= size ? size - first : 0;
    }

    expected_len = 0;
    suggestions = 0;
    struct nm_options want = defaults;
    const char *policy_from = "NUMAMALLOC_POLICY";
    if (builtin) model_conf(builtin, 0, "nm_conf", &want, &policy_from);
    const char *conf = model_find(&b, "NUMAMALLOC_CONF");
    FUZZ_CHECK(nm_env_block_find(b.text, b.len, "NUMAMALLOC_CONF") == conf);
    if (conf) model_conf(conf, 1, "NUMAMALLOC_CONF", &want, &policy_from);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const char *v = model_find(&b, model_names[i]);
        FUZZ_CHECK(nm_env_block_find(b.text, b.len, model_names[i]) == v, "%s found at another entry",
                   model_names[i]);
        if (!v) continue;
        if (model_apply(i, v, &want)) {
            if (i == POLICY) policy_from = model_names[i];
        } else {
            char line[128];
            snprintf(line, sizeof line, "numamalloc: ignoring %s='", model_names[i]);
            expect(line);
        }
    }
    /* Entries of the family that are no option, in the block's order. */
    for (const char *e = b.text, *end = b.text + b.len; e < end; e += strlen(e) + 1) {
        if (strncmp(e, "NUMAMALLOC_", 11) != 0) continue;
        size_t n = strcspn(e, "=");
        bool known = (n == 15 && !strncmp(e, "NUMAMALLOC_CONF", 15)) ||
                     (n == 20 && !strncmp(e, "NUMAMALLOC_PROC_ROOT", 20)) ||
                     (n == 18 && !strncmp(e, "NUMAMALLOC_LIBRARY", 18));
        for (size_t i = 0; i < OPTION_COUNT && !known; i++)
            known = strlen(model_names[i]) == n && !strncmp(e, model_names[i], n);
        if (known) continue;
        expect("numamalloc: ignoring variable '");
        FUZZ_CHECK(suggestions < 63);
        size_t shown = n < 62 ? n : 62;
        expected_suggestion[suggestions][0] = 'v';
        memcpy(expected_suggestion[suggestions] + 1, e, shown);
        expected_suggestion[suggestions][shown + 1] = '\0';
        suggestions++;
    }

    nm_opt = defaults;
    const struct nm_option_source source = { lookup, next_entry, &b };
    nm_options_parse(&source, builtin, warn_pipe[1]);

    FUZZ_CHECK(nm_opt.verbose == want.verbose);
    FUZZ_CHECK(nm_opt.stats_at_exit == want.stats_at_exit);
    FUZZ_CHECK((nm_opt.stats_file == NULL) == (want.stats_file == NULL));
    FUZZ_CHECK(!want.stats_file || !strcmp(nm_opt.stats_file, want.stats_file));
    FUZZ_CHECK(nm_opt.stats_interval_ms == want.stats_interval_ms, "%llu, model %llu",
               (unsigned long long)nm_opt.stats_interval_ms, (unsigned long long)want.stats_interval_ms);
    FUZZ_CHECK(nm_opt.purge_delay_ms == want.purge_delay_ms, "%llu, model %llu",
               (unsigned long long)nm_opt.purge_delay_ms, (unsigned long long)want.purge_delay_ms);
    FUZZ_CHECK(nm_opt.cache_bytes == want.cache_bytes, "%llu, model %llu",
               (unsigned long long)nm_opt.cache_bytes, (unsigned long long)want.cache_bytes);
    FUZZ_CHECK(nm_opt.purge_thread == want.purge_thread);
    FUZZ_CHECK(nm_opt.hugepages == want.hugepages);
    FUZZ_CHECK(nm_opt.on_error == want.on_error);
    FUZZ_CHECK(nm_opt.secure == want.secure);
    FUZZ_CHECK(!strcmp(nm_opt.sysfs_root, want.sysfs_root), "'%s', model '%s'", nm_opt.sysfs_root,
               want.sysfs_root);
    FUZZ_CHECK((nm_opt.policy == NULL) == (want.policy == NULL));
    FUZZ_CHECK(!want.policy || !strcmp(nm_opt.policy, want.policy), "'%s', model '%s'", nm_opt.policy,
               want.policy);
    FUZZ_CHECK(!strcmp(nm_opt.policy_from, policy_from), "'%s', model '%s'", nm_opt.policy_from,
               policy_from);
    FUZZ_CHECK(nm_opt.interleave_above == want.interleave_above, "%llu, model %llu",
               (unsigned long long)nm_opt.interleave_above,
               (unsigned long long)want.interleave_above);
    FUZZ_CHECK(nm_opt.prof == want.prof);
    FUZZ_CHECK(nm_opt.prof_sample == want.prof_sample, "%llu, model %llu",
               (unsigned long long)nm_opt.prof_sample, (unsigned long long)want.prof_sample);
    FUZZ_CHECK(!strcmp(nm_opt.prof_file, want.prof_file), "'%s', model '%s'", nm_opt.prof_file,
               want.prof_file);
    FUZZ_CHECK(nm_opt.prof_signal == want.prof_signal);

    /* The warnings: one whole line per problem, in the model's order, each
     * starting as expected; a "did you mean" names the closest option. */
    static char out[65536];
    ssize_t n = read(warn_pipe[0], out, sizeof out - 1);
    if (n < 0) {
        FUZZ_CHECK(errno == EAGAIN);
        n = 0;
    }
    out[n] = '\0';
    FUZZ_CHECK(n == 0 || out[n - 1] == '\n', "the last warning is not a whole line: '%s'", out);
    const char *line = out, *want_line = expected;
    int suggestion = 0;
    while (want_line < expected + expected_len) {
        size_t start = strcspn(want_line, "\n");
        FUZZ_CHECK(strncmp(line, want_line, start) == 0, "expected a line starting \"%.*s\", found \"%s\"",
                   (int)start, want_line, line);
        const char *end = strchr(line, '\n');
        FUZZ_CHECK(end != NULL);
        if (strstr(want_line, "key '") == want_line + start - 5 ||
            strstr(want_line, "variable '") == want_line + start - 10) {
            /* The last one in the line (the name shown may hold the words). */
            const char *mean = NULL;
            for (const char *m = strstr(line, "; did you mean "); m && m < end; m = strstr(m + 1, "; did you mean "))
                mean = m;
            FUZZ_CHECK(mean != NULL, "no suggestion in \"%.*s\"", (int)(end - line), line);
            char named[64];
            size_t len = (size_t)(end - 1 - (mean + 15));   /* up to the '?' */
            FUZZ_CHECK(len < sizeof named && end[-1] == '?');
            memcpy(named, mean + 15, len);
            named[len] = '\0';
            const char *asked = expected_suggestion[suggestion] + 1;
            bool is_key = expected_suggestion[suggestion][0] == 'k';
            suggestion++;
            size_t best = SIZE_MAX, got = SIZE_MAX;
            for (size_t i = 0; i < OPTION_COUNT; i++) {
                const char *name = model_names[i] + (is_key ? 11 : 0);
                size_t d = model_distance(asked, name);
                if (d < best) best = d;
                if (!strcasecmp(name, named)) got = d;
            }
            FUZZ_CHECK(got != SIZE_MAX, "\"%s\" is no option", named);
            FUZZ_CHECK(got == best || strlen(asked) >= 62, "\"%s\" suggested for \"%s\": %zu edits, the closest takes %zu",
                       named, asked, got, best);
        }
        line = end + 1;
        want_line += start + 1;
    }
    FUZZ_CHECK(*line == '\0', "more output than one line per problem: \"%s\"", line);
    free(text);
    return 0;
}
