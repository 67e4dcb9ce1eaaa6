/*
 * policy.c — explicit placement, part one: the public topology functions,
 * node sets, and memory policies as values (build, parse, check, format,
 * apply to a range with mbind).
 *
 * Node ids in this API are the kernel's (sparse); the layers below index
 * nodes densely (topology.h).  Nothing here allocates or uses stdio: policy
 * text is parsed inside the first malloc (NUMAMALLOC_POLICY).  Policy text
 * may name its nodes by a device (near:DEVICE, device.c) or by a kind of
 * memory (hbm, cxl, ...: resolved here from tier.c's figures).
 *
 * May call the topology, tier, device, os and options layers: it sits
 * below the segment layer, so that the heap layer can parse
 * NUMAMALLOC_POLICY at start-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "numamalloc.h"
#include "options.h"
#include "device.h"
#include "os.h"
#include "policy.h"
#include "topology.h"

/* ---- topology ------------------------------------------------------------------ */

/* Dense index of node id `node`, or -1 with errno EINVAL. */
static int node_index(int node)
{
    nm_topology_ensure();
    int index = nm_topology_index(&nm_topo, node);
    if (index < 0) errno = EINVAL;
    return index;
}

nm_export int nm_node_count(void)
{
    nm_topology_ensure();
    return nm_topo.node_count;
}

nm_export int nm_node_ids(int *ids, int max)
{
    nm_topology_ensure();
    for (int i = 0; i < nm_topo.node_count && i < max; i++) ids[i] = nm_topo.node_id[i];
    return nm_topo.node_count;
}

nm_export int nm_node_of_cpu(int cpu)
{
    nm_topology_ensure();
    if (cpu < 0 || cpu >= nm_topo.cpu_limit || nm_topo.node_of_cpu[cpu] < 0) {
        errno = EINVAL;
        return -1;
    }
    return nm_topo.node_id[nm_topo.node_of_cpu[cpu]];
}

nm_export int nm_current_node(void)
{
    nm_topology_ensure();
    return nm_topo.node_id[nm_topology_current_node()];
}

nm_export int nm_node_distance(int from, int to)
{
    int a = node_index(from), b = node_index(to);
    if (a < 0 || b < 0) return -1;
    return nm_topo.distance[a][b];
}

nm_export int nm_node_cpus(int node, int *cpus, int max)
{
    int index = node_index(node);
    if (index < 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < nm_topo.cpu_limit; cpu++) {
        if (nm_topo.node_of_cpu[cpu] != index) continue;
        if (count < max) cpus[count] = cpu;
        count++;
    }
    return count;
}

nm_export int nm_node_memory(int node, uint64_t *total, uint64_t *free_bytes)
{
    int index = node_index(node);
    if (index < 0) return -1;
    if (total) *total = nm_topo.mem_total[index];
    if (free_bytes) *free_bytes = nm_topology_free_now(&nm_topo, index, nm_opt.sysfs_root);
    return 0;
}

nm_export int nm_node_has_cpus(int node)
{
    int index = node_index(node);
    if (index < 0) return -1;
    return nm_topo.cpu_count[index] > 0;
}

nm_export int nm_nodes_by_distance(int node, int *ids, int max)
{
    int from = node_index(node);
    if (from < 0) return -1;
    int order[NM_MAX_NODES];
    int n = nm_topo.node_count;
    for (int i = 0; i < n; i++) order[i] = i;
    /* Insertion sort: at most 64 nodes; itself first (distance 10 and, on a
     * sane table, the only 10), then by distance, ties by id. */
    for (int i = 1; i < n; i++) {
        int x = order[i], j = i;
        while (j > 0) {
            int y = order[j - 1];
            int dx = x == from ? -1 : nm_topo.distance[from][x];
            int dy = y == from ? -1 : nm_topo.distance[from][y];
            if (dy < dx || (dy == dx && y < x)) break;
            order[j] = y;
            j--;
        }
        order[j] = x;
    }
    for (int i = 0; i < n && i < max; i++) ids[i] = nm_topo.node_id[order[i]];
    return n;
}

/* ---- node sets -------------------------------------------------------------------- */

nm_export void nm_nodeset_clear(nm_nodeset *set)
{
    memset(set, 0, sizeof *set);
}

nm_export void nm_nodeset_add(nm_nodeset *set, int node)
{
    if (node >= 0 && node < NM_NODE_ID_LIMIT) set->bits[node / 64] |= (uint64_t)1 << (node % 64);
}

nm_export int nm_nodeset_has(const nm_nodeset *set, int node)
{
    return node >= 0 && node < NM_NODE_ID_LIMIT && (set->bits[node / 64] >> (node % 64)) & 1;
}

nm_export int nm_nodeset_count(const nm_nodeset *set)
{
    int count = 0;
    for (int i = 0; i < NM_NODESET_WORDS; i++) count += (int)nm_popcount64(set->bits[i]);
    return count;
}

nm_export nm_nodeset nm_nodeset_all(void)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_topology_ensure();
    for (int i = 0; i < nm_topo.node_count; i++) nm_nodeset_add(&set, nm_topo.node_id[i]);
    return set;
}

/* Every node whose memory the process may use (it has memory and the
 * cpuset allows it): what "all" means in a policy, as in numactl. */
static nm_nodeset usable_nodes(void)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    for (int i = 0; i < nm_topo.node_count; i++)
        if (nm_topology_usable(&nm_topo, i)) nm_nodeset_add(&set, nm_topo.node_id[i]);
    return set;
}

/* ---- policies as values ------------------------------------------------------------- */

static nm_policy policy_of(enum nm_policy_mode mode, const nm_nodeset *nodes)
{
    nm_policy p;
    memset(&p, 0, sizeof p);
    p.mode = mode;
    if (nodes) p.nodes = *nodes;
    return p;
}

nm_export nm_policy nm_policy_local(void) { return policy_of(NM_POLICY_LOCAL, NULL); }
nm_export nm_policy nm_policy_bind(const nm_nodeset *n) { return policy_of(NM_POLICY_BIND, n); }
nm_export nm_policy nm_policy_preferred_many(const nm_nodeset *n)
{
    return policy_of(NM_POLICY_PREFERRED_MANY, n);
}
nm_export nm_policy nm_policy_interleave(const nm_nodeset *n)
{
    return policy_of(NM_POLICY_INTERLEAVE, n);
}
nm_export nm_policy nm_policy_weighted_interleave(const nm_nodeset *n)
{
    return policy_of(NM_POLICY_WEIGHTED_INTERLEAVE, n);
}
nm_export nm_policy nm_policy_preferred(int node)
{
    nm_nodeset set;
    nm_nodeset_clear(&set);
    nm_nodeset_add(&set, node);
    return policy_of(NM_POLICY_PREFERRED, &set);
}

/* The text name and kernel mode of each policy mode, and what its node set
 * must look like. */
struct mode_desc {
    const char *name;
    int kernel_mode;
    enum { NODES_NONE, NODES_ONE, NODES_SET } nodes;
};

static const struct mode_desc modes[] = {
    [NM_POLICY_LOCAL] = { "local", NM_MPOL_LOCAL, NODES_NONE },
    [NM_POLICY_BIND] = { "bind", NM_MPOL_BIND, NODES_SET },
    [NM_POLICY_PREFERRED] = { "preferred", NM_MPOL_PREFERRED, NODES_ONE },
    [NM_POLICY_PREFERRED_MANY] = { "preferred-many", NM_MPOL_PREFERRED_MANY, NODES_SET },
    [NM_POLICY_INTERLEAVE] = { "interleave", NM_MPOL_INTERLEAVE, NODES_SET },
    [NM_POLICY_WEIGHTED_INTERLEAVE] = { "weighted-interleave", NM_MPOL_WEIGHTED_INTERLEAVE,
                                        NODES_SET },
};
#define MODE_COUNT (sizeof modes / sizeof modes[0])

/* Text built into a caller's buffer, snprintf-style: `len` counts what
 * the whole text needs, the buffer keeps what fits (NUL-terminated). */
struct text {
    char *buf;
    size_t cap;
    size_t len;
};

static void text_str(struct text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++, t->len++)
        if (t->len + 1 < t->cap) t->buf[t->len] = s[i];
    if (t->cap) t->buf[t->len < t->cap ? t->len : t->cap - 1] = '\0';
}

static void text_int(struct text *t, int v)
{
    char digits[12];
    int n = 0;
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do { digits[sizeof digits - 1 - n++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) digits[sizeof digits - 1 - n++] = '-';
    text_str(t, digits + sizeof digits - n, (size_t)n);
}

/* A node set as list text ("0-3", "0,2,4"). */
static void text_nodes(struct text *t, const nm_nodeset *set)
{
    bool first = true;
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++) {
        if (!nm_nodeset_has(set, id)) continue;
        int last = id;
        while (last + 1 < NM_NODE_ID_LIMIT && nm_nodeset_has(set, last + 1)) last++;
        if (!first) text_str(t, ",", 1);
        text_int(t, id);
        if (last != id) { text_str(t, "-", 1); text_int(t, last); }
        first = false;
        id = last;
    }
}

/* Text from the caller as a reason quotes it: at most VALUE_SHOWN
 * characters, the rest cut to "...", control characters (a newline) as
 * '?', so that the reason stays one short line. */
enum { VALUE_SHOWN = 64 };
static void text_value(struct text *t, const char *s)
{
    size_t n = 0;
    for (; s[n] && n < VALUE_SHOWN; n++) {
        char c = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
        text_str(t, &c, 1);
    }
    if (s[n]) text_str(t, "...", 3);
}

/* A reason: pieces of text and numbers.  Each piece is a string; a piece
 * "%d" takes the next int argument, "%n" the next node set, "%v" the next
 * string, text from the caller (text_value); NULL ends the list. */
static int fail(char *err, size_t len, int error, ...)
{
    struct text t = { err, err ? len : 0, 0 };
    va_list ap;
    va_start(ap, error);
    for (const char *piece; (piece = va_arg(ap, const char *)) != NULL;) {
        if (!strcmp(piece, "%d")) text_int(&t, va_arg(ap, int));
        else if (!strcmp(piece, "%n")) text_nodes(&t, va_arg(ap, const nm_nodeset *));
        else if (!strcmp(piece, "%v")) text_value(&t, va_arg(ap, const char *));
        else text_str(&t, piece, strlen(piece));
    }
    va_end(ap);
    errno = error;
    return -1;
}

/* Whether the kernel accepts `kernel_mode` for mbind: asked once per mode
 * on a scratch page. */
static bool kernel_has_mode(int kernel_mode)
{
    static _Atomic int known[8];   /* 0 unknown, 1 yes, 2 no */
    int k = atomic_load_explicit(&known[kernel_mode], memory_order_relaxed);
    if (k) return k == 1;
    void *page = mmap(NULL, NM_OS_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool yes = false;
    if (page != MAP_FAILED) {
        /* The nodes this process may use, from the kernel itself (the
         * topology may have been read from a recorded sysfs tree). */
        nm_nodemask mask;
        memset(&mask, 0, sizeof mask);
        nm_nodemask allowed;
        memset(&allowed, 0, sizeof allowed);
        int first = 0;
        if (nm_os_get_mempolicy(NULL, &allowed, NULL, NM_MPOL_F_MEMS_ALLOWED) == 0)
            while (first < NM_MASK_BITS - 1 && !nm_mask_test(&allowed, first)) first++;
        nm_mask_set(&mask, first);
        bool needs_mask = kernel_mode != NM_MPOL_LOCAL && kernel_mode != NM_MPOL_DEFAULT;
        yes = nm_os_mbind(page, NM_OS_PAGE, kernel_mode, needs_mask ? &mask : NULL, 0) == 0 ||
              errno != EINVAL;
        munmap(page, NM_OS_PAGE);
    }
    atomic_store_explicit(&known[kernel_mode], yes ? 1 : 2, memory_order_relaxed);
    return yes;
}

nm_export int nm_policy_check(const nm_policy *p, char *err, size_t err_len)
{
    nm_topology_ensure();
    if ((unsigned)p->mode >= MODE_COUNT)
        return fail(err, err_len, EINVAL, "unknown policy mode ", "%d", (int)p->mode, NULL);
    const struct mode_desc *m = &modes[p->mode];
    int count = nm_nodeset_count(&p->nodes);
    if (m->nodes == NODES_NONE && count != 0)
        return fail(err, err_len, EINVAL, m->name, " takes no nodes", NULL);
    if (m->nodes == NODES_ONE && count != 1)
        return fail(err, err_len, EINVAL, m->name, " takes exactly one node, not ", "%d", count,
                    NULL);
    if (m->nodes == NODES_SET && count == 0)
        return fail(err, err_len, EINVAL, m->name, " needs at least one node: the node set is empty",
                    NULL);
    nm_nodeset all = nm_nodeset_all();
    for (int id = 0; id < NM_NODE_ID_LIMIT; id++) {
        if (!nm_nodeset_has(&p->nodes, id)) continue;
        int index = nm_topology_index(&nm_topo, id);
        if (index < 0)
            return fail(err, err_len, EINVAL, "node ", "%d", id, " does not exist (nodes: ", "%n",
                        &all, ")", NULL);
        if (!nm_topo.has_memory[index])
            return fail(err, err_len, EINVAL, "node ", "%d", id, " has no memory", NULL);
        if (!nm_topo.mem_allowed[index]) {
            nm_nodeset allowed = usable_nodes();
            return fail(err, err_len, EINVAL, "node ", "%d", id,
                        " is not allowed in this cpuset (allowed: ", "%n", &allowed, ")", NULL);
        }
    }
    if (!kernel_has_mode(m->kernel_mode))
        return fail(err, err_len, ENOSYS, "this kernel has no ", m->name, " policy",
                    p->mode == NM_POLICY_WEIGHTED_INTERLEAVE ? " (Linux 6.9+)"
                    : p->mode == NM_POLICY_PREFERRED_MANY   ? " (Linux 5.15+)" : "", NULL);
    return 0;
}

/* ---- memory kinds ------------------------------------------------------------------
 *
 * A kind names nodes by what their memory is.  It is resolved when the
 * text is parsed, for the thread that parses it, among the nodes whose
 * memory the process may use (usable_nodes):
 *   hbm, highest-bandwidth  the highest HMAT read bandwidth; without HMAT
 *                           figures, the fastest memory tier (lowest
 *                           tier number; every node when there are none)
 *   lowest-latency          the lowest HMAT read latency; without HMAT,
 *                           the smallest distance from the caller's node
 *   highest-capacity        the most memory (MemTotal)
 *   cxl, memory-only        nodes with memory and no CPUs
 *   dram                    nodes with memory and CPUs
 * For bandwidth and latency, nodes whose figures tie are ranked by their
 * distance from the node the calling thread runs on (HMAT gives each
 * node's figures from its own nearest CPUs), so a two-socket machine's
 * highest-bandwidth is the caller's socket.  Every node that ties on
 * every key is included.  A node without HMAT figures ranks after those
 * with them. */

enum kind_rule { KIND_BANDWIDTH, KIND_LATENCY, KIND_CAPACITY, KIND_MEMORY_ONLY, KIND_WITH_CPUS };

static const struct {
    const char *name;
    enum kind_rule rule;
} kinds[] = {
    { "hbm", KIND_BANDWIDTH },
    { "highest-bandwidth", KIND_BANDWIDTH },
    { "lowest-latency", KIND_LATENCY },
    { "highest-capacity", KIND_CAPACITY },
    { "cxl", KIND_MEMORY_ONLY },
    { "memory-only", KIND_MEMORY_ONLY },
    { "dram", KIND_WITH_CPUS },
};
#define KIND_COUNT (sizeof kinds / sizeof kinds[0])

/* A node's rank for a kind: lower is better, compared key by key. */
struct rank {
    uint64_t key[2];
};

static bool rank_below(const struct rank *a, const struct rank *b)
{
    return a->key[0] != b->key[0] ? a->key[0] < b->key[0] : a->key[1] < b->key[1];
}

static bool kind_admits(enum kind_rule rule, int index)
{
    if (rule == KIND_MEMORY_ONLY) return nm_topo.cpu_count[index] == 0;
    if (rule == KIND_WITH_CPUS) return nm_topo.cpu_count[index] > 0;
    return true;
}

/* The HMAT figure a kind ranks by (0: unknown). */
static uint64_t hmat_figure(enum kind_rule rule, int index)
{
    struct nm_node_perf perf;
    if (nm_node_perf(nm_topo.node_id[index], &perf) != 0) return 0;
    return rule == KIND_BANDWIDTH ? perf.read_bandwidth : perf.read_latency;
}

/* The nodes of `rule` among `candidates` (dense indexes set in the array),
 * relative to the calling thread's node. */
static nm_nodeset kind_nodes(enum kind_rule rule, const bool *candidates)
{
    int saved_errno = errno;
    int from = nm_topology_current_node();
    uint64_t figure[NM_MAX_NODES] = {0};
    bool hmat = false;
    if (rule == KIND_BANDWIDTH || rule == KIND_LATENCY) {
        for (int i = 0; i < nm_topo.node_count; i++) {
            if (candidates[i]) figure[i] = hmat_figure(rule, i);
            hmat |= figure[i] != 0;
        }
    }
    struct rank rank[NM_MAX_NODES], best = { { UINT64_MAX, UINT64_MAX } };
    for (int i = 0; i < nm_topo.node_count; i++) {
        if (!candidates[i]) continue;
        uint64_t distance = nm_topo.distance[from][i];
        struct rank r = { { 0, 0 } };
        switch (rule) {
        case KIND_BANDWIDTH:
            if (hmat) {
                r.key[0] = figure[i] ? UINT64_MAX - 1 - figure[i] : UINT64_MAX - 1;
            } else {
                int tier = nm_node_tier(nm_topo.node_id[i]);
                r.key[0] = tier >= 0 ? (uint64_t)tier : UINT64_MAX - 1;
            }
            r.key[1] = distance;
            break;
        case KIND_LATENCY:
            r.key[0] = hmat ? (figure[i] ? figure[i] : UINT64_MAX - 1) : distance;
            r.key[1] = hmat ? distance : 0;
            break;
        case KIND_CAPACITY:
            r.key[0] = UINT64_MAX - 1 - nm_topo.mem_total[i];
            break;
        case KIND_MEMORY_ONLY:
        case KIND_WITH_CPUS:
            break;
        }
        rank[i] = r;
        if (rank_below(&r, &best)) best = r;
    }
    nm_nodeset set;
    nm_nodeset_clear(&set);
    for (int i = 0; i < nm_topo.node_count; i++)
        if (candidates[i] && !rank_below(&best, &rank[i])) nm_nodeset_add(&set, nm_topo.node_id[i]);
    errno = saved_errno;
    return set;
}

/* The node of `set` nearest to the calling thread's node (ties: the lower
 * id): what a one-node mode takes of a kind. */
static nm_nodeset nearest_of(const nm_nodeset *set)
{
    int from = nm_topology_current_node(), pick = -1;
    for (int i = 0; i < nm_topo.node_count; i++) {
        if (!nm_nodeset_has(set, nm_topo.node_id[i])) continue;
        if (pick < 0 || nm_topo.distance[from][i] < nm_topo.distance[from][pick]) pick = i;
    }
    nm_nodeset one;
    nm_nodeset_clear(&one);
    if (pick >= 0) nm_nodeset_add(&one, nm_topo.node_id[pick]);
    return one;
}

/* NODES that name a kind: 0 with the kind's nodes in *out, 1 when `list`
 * is not a kind, -1 (ENODEV) when the machine or cpuset has no such node. */
static int parse_kind(const char *list, nm_nodeset *out, char *err, size_t err_len)
{
    size_t k = 0;
    while (k < KIND_COUNT && strcmp(list, kinds[k].name) != 0) k++;
    if (k == KIND_COUNT) return 1;
    bool usable[NM_MAX_NODES] = {0}, present[NM_MAX_NODES] = {0};
    bool any_present = false;
    for (int i = 0; i < nm_topo.node_count; i++) {
        present[i] = nm_topo.has_memory[i] && kind_admits(kinds[k].rule, i);
        usable[i] = present[i] && nm_topology_usable(&nm_topo, i);
        any_present |= present[i];
    }
    *out = kind_nodes(kinds[k].rule, usable);
    if (nm_nodeset_count(out) > 0) return 0;
    if (any_present) {
        nm_nodeset allowed = usable_nodes();
        return fail(err, err_len, ENODEV, "no node of kind ", kinds[k].name,
                    " is allowed in this cpuset (allowed: ", "%n", &allowed, ")", NULL);
    }
    nm_nodeset all = nm_nodeset_all();
    return fail(err, err_len, ENODEV, "no node of kind ", kinds[k].name, " on this machine (nodes: ",
                "%n", &all, ")", NULL);
}

/* NODES of the form near:DEVICE: the node of the device, or, when that
 * node's memory cannot be used (none, or outside the cpuset), the nearest
 * node whose memory can (as a thread running there gets).  -1 with errno
 * ENODEV (no such device) or ENXIO (no node affinity). */
static int parse_near(const char *dev, nm_nodeset *out, char *err, size_t err_len)
{
    if (!*dev) return fail(err, err_len, EINVAL, "near needs a device, e.g. 'near:eth0'", NULL);
    int node;
    int home = nm_device_home_node(dev, &node);
    if (home < 0 && errno == ENODEV)
        return fail(err, err_len, ENODEV, "no device '", "%v", dev,
                    "': expected a PCI address, network interface, block device or /dev path",
                    NULL);
    if (home < 0 && node < 0)
        return fail(err, err_len, ENXIO, "device '", "%v", dev,
                    "' has no NUMA node (its numa_node is -1)", NULL);
    if (home < 0) {
        nm_nodeset all = nm_nodeset_all();
        return fail(err, err_len, ENXIO, "device '", "%v", dev, "' is on node ", "%d", node,
                    ", which is not a node of this machine (nodes: ", "%n", &all, ")", NULL);
    }
    nm_nodeset_clear(out);
    nm_nodeset_add(out, home);
    return 0;
}

/* The NODES part of a policy for mode `m`. */
static int parse_nodes(const struct mode_desc *m, const char *list, nm_nodeset *out, char *err,
                       size_t err_len)
{
    nm_nodeset_clear(out);
    if (!*list)
        return fail(err, err_len, EINVAL, m->name, " needs nodes, e.g. '", m->name,
                    m->nodes == NODES_SET ? ":0-1'" : ":0'", NULL);
    if (strncmp(list, "near:", 5) == 0) return parse_near(list + 5, out, err, err_len);
    if (strcmp(list, "all") == 0) {
        if (m->nodes == NODES_ONE)
            return fail(err, err_len, EINVAL, m->name, " takes one node, not 'all'", NULL);
        *out = usable_nodes();
        return 0;
    }
    int kind = parse_kind(list, out, err, err_len);
    if (kind <= 0) {
        if (kind == 0 && m->nodes == NODES_ONE) *out = nearest_of(out);
        return kind;
    }
    int64_t highest;
    if (nm_topology_parse_list_highest(list, out->bits, NM_NODE_ID_LIMIT, &highest) < 0)
        return fail(err, err_len, EINVAL, "bad node list '", "%v", list,
                    "': expected ids and ranges like 0-3 or 0,2, a kind such as dram or cxl, "
                    "or near:DEVICE", NULL);
    if (highest >= NM_NODE_ID_LIMIT)
        return fail(err, err_len, EINVAL, "bad node list '", "%v", list, "': node ids go up to ",
                    "%d", NM_NODE_ID_LIMIT - 1, NULL);
    return 0;
}

nm_export int nm_policy_parse(const char *text, nm_policy *out, char *err, size_t err_len)
{
    nm_topology_ensure();
    if (!text) return fail(err, err_len, EINVAL, "no policy given", NULL);
    /* "near:DEVICE" alone is bind:near:DEVICE. */
    bool near = strncmp(text, "near:", 5) == 0;
    const char *colon = strchr(text, ':');
    size_t name_len = colon ? (size_t)(colon - text) : strlen(text);
    const struct mode_desc *m = near ? &modes[NM_POLICY_BIND] : NULL;
    for (size_t i = 0; !near && i < MODE_COUNT; i++) {
        if (strlen(modes[i].name) == name_len && strncmp(text, modes[i].name, name_len) == 0)
            m = &modes[i];
    }
    if (!m) {
        char name[VALUE_SHOWN + 2];   /* enough for fail to cut it */
        size_t n = name_len < sizeof name - 1 ? name_len : sizeof name - 1;
        memcpy(name, text, n);
        name[n] = '\0';
        return fail(err, err_len, EINVAL, "unknown policy '", "%v", name,
                    "': expected local, bind:NODES, preferred:NODE, preferred-many:NODES, "
                    "interleave:NODES, weighted-interleave:NODES or near:DEVICE", NULL);
    }
    nm_policy p = policy_of((enum nm_policy_mode)(m - modes), NULL);
    if (m->nodes == NODES_NONE) {
        if (colon) return fail(err, err_len, EINVAL, m->name, " takes no nodes: '", "%v", text, "'", NULL);
    } else if (parse_nodes(m, near ? text : colon ? colon + 1 : "", &p.nodes, err, err_len) != 0) {
        return -1;
    }
    if (nm_policy_check(&p, err, err_len) != 0) return -1;
    *out = p;
    return 0;
}

nm_export int nm_policy_format(const nm_policy *p, char *buf, size_t len)
{
    struct text t = { buf, len, 0 };
    if (len) buf[0] = '\0';
    if ((unsigned)p->mode >= MODE_COUNT) {
        text_str(&t, "unknown", 7);
        return (int)t.len;
    }
    const struct mode_desc *m = &modes[p->mode];
    text_str(&t, m->name, strlen(m->name));
    if (m->nodes != NODES_NONE) {
        text_str(&t, ":", 1);
        text_nodes(&t, &p->nodes);
    }
    return (int)t.len;
}

/* ---- applying a policy ------------------------------------------------------------------- */

int nm_policy_kernel_mode(const nm_policy *p)
{
    return modes[p->mode].kernel_mode;
}

void nm_policy_kernel_mask(const nm_policy *p, nm_nodemask *mask)
{
    memset(mask, 0, sizeof *mask);
    for (int w = 0; w < NM_NODESET_WORDS && w < NM_MASK_WORDS; w++) mask->bits[w] = p->nodes.bits[w];
}

int nm_policy_apply(void *start, size_t len, const nm_policy *p, unsigned flags)
{
    nm_nodemask mask;
    nm_policy_kernel_mask(p, &mask);
    const struct mode_desc *m = &modes[p->mode];
    long r = nm_os_mbind(start, len, m->kernel_mode, m->nodes == NODES_NONE ? NULL : &mask, flags);
    return r == 0 ? 0 : -1;
}
