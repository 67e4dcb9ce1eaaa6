/* policy.c — fuzz target for the policy parser (nm_policy_parse, the
 * NUMAMALLOC_POLICY text) and nm_policy_format.
 *
 * The input is the policy text.  It is parsed against several recorded
 * machines (tests/sysfs: one node, two nodes, four nodes under a cpuset
 * that allows 1-2, sparse ids with a CPU-only node and a CXL node, eight
 * nodes, tiered), each loaded into the library's topology in turn, and the
 * answer is checked against a model written here from the grammar in
 * numamalloc.h:
 *     local | bind:NODES | preferred:NODE | preferred-many:NODES
 *           | interleave:NODES | weighted-interleave:NODES | near:DEVICE
 * NODES is "all" (the usable nodes), ids and ranges ("0-3", "0,2", a
 * repeated id is the same node), near:DEVICE or a kind of memory; every
 * node must exist, have memory and be allowed.  A policy the model accepts
 * is accepted (or refused with ENOSYS when the kernel lacks the mode), with
 * the model's node set; one it refuses gets EINVAL (ENODEV for a kind the
 * machine has no usable node of), a one-line reason, and the output left
 * alone.  Kinds the model decides exactly: dram, cxl, memory-only and
 * highest-capacity in a mode taking a set.  The ranked kinds (hbm,
 * highest-bandwidth, lowest-latency: their HMAT figures and tiers come from
 * this machine's /sys, not the tree), a kind in preferred (the nearest to
 * the caller) and near:DEVICE (this machine's devices) are checked
 * loosely: accepted, a non-empty set of usable nodes the kind admits (one
 * for preferred, and for near); refused, ENODEV, ENXIO or EINVAL.
 * Accepted policies format to text that parses back to the same policy;
 * reasons and formatted text cut by a short buffer are prefixes of the
 * whole, and nothing is written past a buffer. */
#define _GNU_SOURCE
#include "numamalloc.h"
#include "topology.h"

#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>

static const char *const tree_names[] = {
    "one-node", "two-node", "four-node-cpuset", "sparse-cxl", "eight-node", "tiered",
};
#define TREE_COUNT (sizeof tree_names / sizeof tree_names[0])
static struct nm_topology trees[TREE_COUNT];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    nm_topology_ensure();   /* the process's own, loaded once; replaced below */
    for (size_t i = 0; i < TREE_COUNT; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/tests/sysfs/%s", nm_fuzz_repo(), tree_names[i]);
        nm_topology_load(&trees[i], path);
        FUZZ_CHECK(!trees[i].fallback, "recorded tree %s did not load", path);
    }
    return 0;
}

/* ---- the model ------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum nm_policy_mode mode;
    enum { NONE, ONE, SET } nodes;
} model_modes[] = {
    { "local", NM_POLICY_LOCAL, NONE },
    { "bind", NM_POLICY_BIND, SET },
    { "preferred", NM_POLICY_PREFERRED, ONE },
    { "preferred-many", NM_POLICY_PREFERRED_MANY, SET },
    { "interleave", NM_POLICY_INTERLEAVE, SET },
    { "weighted-interleave", NM_POLICY_WEIGHTED_INTERLEAVE, SET },
};

static bool usable(const struct nm_topology *t, int id)
{
    int index = id >= 0 && id < NM_MAX_NODE_ID ? t->index_of_id[id] : -1;
    return index >= 0 && t->has_memory[index] && t->mem_allowed[index];
}

/* A decimal number up to 2^20 (leading zeros are fine) at *s. */
static bool model_number(const char **s, long *out)
{
    const char *p = *s;
    while (*p == '0' && p[1] >= '0' && p[1] <= '9') p++;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 7) return false;
    long v = strtol(p, NULL, 10);
    if (v > (1 << 20)) return false;
    *out = v;
    *s = p + digits;
    return true;
}

/* The kernel's list format as the topology layer documents it: blanks,
 * then items N or N-M (N <= M, numbers up to 2^20) separated by commas,
 * then white space; an empty list is empty.  Ids of 1024 and more make
 * the list unusable for a policy. */
static bool model_list(const char *s, nm_nodeset *set)
{
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '\0' || *s == '\n') goto tail;
    for (;;) {
        long first, last;
        if (!model_number(&s, &first)) return false;
        last = first;
        if (*s == '-') {
            s++;
            if (!model_number(&s, &last) || last < first) return false;
        }
        if (last >= NM_NODE_ID_LIMIT) return false;
        for (long id = first; id <= last; id++) nm_nodeset_add(set, (int)id);
        if (*s != ',') break;
        s++;
    }
tail:
    while (*s == '\n' || *s == ' ' || *s == '\t') s++;
    return *s == '\0';
}

/* The verdicts of the model: REFUSE (with want_errno), ACCEPT (exactly
 * the model's policy), LOOSE (accepted with a non-empty set of nodes of
 * `allowed`, one node when `one`, or refused with ENODEV, ENXIO or EINVAL). */
enum verdict { REFUSE, ACCEPT, LOOSE };
static int want_errno;
static nm_nodeset allowed;
static bool one;

/* The kinds of memory, and which nodes each admits. */
static const struct {
    const char *name;
    enum { ANY, CPUS, NO_CPUS, BIGGEST } admits;
    bool ranked;    /* by HMAT figures and tiers: checked loosely */
} model_kinds[] = {
    { "hbm", ANY, true }, { "highest-bandwidth", ANY, true }, { "lowest-latency", ANY, true },
    { "highest-capacity", BIGGEST, false }, { "cxl", NO_CPUS, false },
    { "memory-only", NO_CPUS, false }, { "dram", CPUS, false },
};

/* NODES naming kind `k` on `t`. */
static enum verdict model_kind(const struct nm_topology *t, size_t k, bool single, nm_nodeset *set)
{
    uint64_t most = 0;
    for (int i = 0; i < t->node_count; i++)
        if (usable(t, t->node_id[i]) && t->mem_total[i] > most) most = t->mem_total[i];
    for (int i = 0; i < t->node_count; i++) {
        int id = t->node_id[i];
        bool admitted = model_kinds[k].admits == ANY ? true
                        : model_kinds[k].admits == CPUS ? t->cpu_count[i] > 0
                        : model_kinds[k].admits == NO_CPUS ? t->cpu_count[i] == 0
                        : t->mem_total[i] == most;
        if (usable(t, id) && admitted) nm_nodeset_add(set, id);
    }
    if (nm_nodeset_count(set) == 0) {
        want_errno = ENODEV;
        return REFUSE;
    }
    if (!model_kinds[k].ranked && !single) return ACCEPT;
    allowed = *set;
    one = single;
    return LOOSE;
}

/* What the parser must answer for `text` on machine `t`. */
static enum verdict model_parse(const struct nm_topology *t, const char *text, nm_policy *out)
{
    want_errno = EINVAL;
    bool near = !strncmp(text, "near:", 5);
    const char *colon = strchr(text, ':');
    size_t name_len = near ? 4 : colon ? (size_t)(colon - text) : strlen(text);
    size_t m = 0;
    while (m < sizeof model_modes / sizeof model_modes[0] &&
           !(strlen(model_modes[m].name) == name_len &&
             !strncmp(near ? "bind" : text, model_modes[m].name, name_len)))
        m++;
    if (m == sizeof model_modes / sizeof model_modes[0]) return REFUSE;
    memset(out, 0, sizeof *out);
    out->mode = model_modes[m].mode;
    if (model_modes[m].nodes == NONE) return colon == NULL ? ACCEPT : REFUSE;
    if (!colon || !colon[1]) return REFUSE;
    const char *nodes = near ? text : colon + 1;
    if (!strncmp(nodes, "near:", 5)) {
        if (!nodes[5]) return REFUSE;
        nm_nodeset_clear(&allowed);
        for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
            if (usable(t, id)) nm_nodeset_add(&allowed, id);
        one = true;
        return LOOSE;
    }
    for (size_t k = 0; k < sizeof model_kinds / sizeof model_kinds[0]; k++)
        if (!strcmp(nodes, model_kinds[k].name))
            return model_kind(t, k, model_modes[m].nodes == ONE, &out->nodes);
    if (!strcmp(colon + 1, "all")) {
        if (model_modes[m].nodes == ONE) return REFUSE;
        for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
            if (usable(t, id)) nm_nodeset_add(&out->nodes, id);
    } else if (!model_list(colon + 1, &out->nodes)) {
        return REFUSE;
    }
    int count = nm_nodeset_count(&out->nodes);
    if (model_modes[m].nodes == ONE ? count != 1 : count == 0) return REFUSE;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
        if (nm_nodeset_has(&out->nodes, id) && !usable(t, id)) return REFUSE;
    return ACCEPT;
}

/* Whether `got` is a set the LOOSE verdict allows. */
static bool loose_ok(const nm_policy *got, const nm_policy *want)
{
    int count = nm_nodeset_count(&got->nodes);
    if (got->mode != want->mode || count == 0 || (one && count != 1)) return false;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++)
        if (nm_nodeset_has(&got->nodes, id) && !nm_nodeset_has(&allowed, id)) return false;
    return true;
}

/* ---- checks ------------------------------------------------------------------------- */

#define ERR_LEN 200
#define GUARD 0x5a

static void check_guard(const char *buf, size_t from, size_t to, const char *what)
{
    for (size_t i = from; i < to; i++)
        FUZZ_CHECK((unsigned char)buf[i] == GUARD, "%s: byte %zu past the buffer written", what, i);
}

static void check_one(size_t tree, const char *text, size_t text_len)
{
    nm_topo = trees[tree];
    nm_policy want;
    enum verdict verdict = model_parse(&trees[tree], text, &want);
    bool accept = verdict == ACCEPT;

    nm_policy got, untouched;
    memset(&got, 0x77, sizeof got);
    untouched = got;
    char err[ERR_LEN + 32];
    memset(err, GUARD, sizeof err);
    errno = 0;
    int r = nm_policy_parse(text, &got, err, ERR_LEN);
    int e = errno;
    check_guard(err, ERR_LEN, sizeof err, "reason");
    if (r == 0) {
        FUZZ_CHECK(verdict != REFUSE, "[%s] '%s' accepted; the model refuses it", tree_names[tree], text);
        if (verdict == LOOSE)
            FUZZ_CHECK(loose_ok(&got, &want), "[%s] '%s': nodes the model does not allow",
                       tree_names[tree], text);
        else
            FUZZ_CHECK(got.mode == want.mode && !memcmp(&got.nodes, &want.nodes, sizeof got.nodes),
                       "[%s] '%s': not the model's policy", tree_names[tree], text);
        FUZZ_CHECK(nm_policy_check(&got, NULL, 0) == 0);

        /* Formatted, it parses back to itself; cut, it is a prefix. */
        char full[8192], cut[64 + 16];
        int n = nm_policy_format(&got, full, sizeof full);
        FUZZ_CHECK(n > 0 && (size_t)n == strlen(full), "format gave %d for '%s'", n, full);
        nm_policy again;
        FUZZ_CHECK(nm_policy_parse(full, &again, NULL, 0) == 0, "'%s' (from '%s') does not parse",
                   full, text);
        FUZZ_CHECK(!memcmp(&again, &got, sizeof got), "'%s' parses to another policy", full);
        size_t len = text_len % 64;
        memset(cut, GUARD, sizeof cut);
        FUZZ_CHECK(nm_policy_format(&got, cut, len) == n);
        check_guard(cut, len, sizeof cut, "format");
        if (len > 0) {
            size_t kept = strlen(cut);
            FUZZ_CHECK(kept == ((size_t)n < len - 1 ? (size_t)n : len - 1) && !strncmp(cut, full, kept));
        }
        return;
    }
    FUZZ_CHECK(r == -1);
    FUZZ_CHECK(!memcmp(&got, &untouched, sizeof got), "a refused policy changed the output");
    if (verdict == LOOSE)
        FUZZ_CHECK(e == ENODEV || e == ENXIO || e == EINVAL || e == ENOSYS, "[%s] '%s': errno %d",
                   tree_names[tree], text, e);
    else
        FUZZ_CHECK(e == want_errno || (e == ENOSYS && accept), "[%s] '%s': errno %d, expected %d",
                   tree_names[tree], text, e, want_errno);
    FUZZ_CHECK(!accept || e == ENOSYS, "[%s] '%s' refused (%s); the model accepts it",
               tree_names[tree], text, err);
    size_t len = strlen(err);
    FUZZ_CHECK(len > 0 && len < ERR_LEN, "reason of %zu characters", len);
    FUZZ_CHECK(strchr(err, '\n') == NULL, "the reason is not one line: '%s'", err);

    /* A shorter buffer keeps a prefix of the reason; none is fine too. */
    size_t short_len = 1 + text_len % 40;
    char cut[64];
    memset(cut, GUARD, sizeof cut);
    FUZZ_CHECK(nm_policy_parse(text, &got, cut, short_len) == -1);
    check_guard(cut, short_len, sizeof cut, "short reason");
    FUZZ_CHECK(strlen(cut) == (len < short_len - 1 ? len : short_len - 1) && !strncmp(cut, err, strlen(cut)));
    FUZZ_CHECK(nm_policy_parse(text, &got, NULL, 0) == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    for (size_t tree = 0; tree < TREE_COUNT; tree++) check_one(tree, text, strlen(text));
    free(text);
    return 0;
}
